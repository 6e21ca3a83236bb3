/**
 * The hot-window node's status, throttled: at thousands of readings a second, redrawing the
 * status per message would flood the editor's comms, so changes are shown at most every
 * `intervalMs` (the first at once, the last one always).
 */
import type { StoreState } from './window-store';

export interface StatusView {
  fill: 'red' | 'green' | 'yellow' | 'grey';
  shape: 'dot' | 'ring';
  text: string;
}

/** Status texts, from the node's locale catalog. */
export interface StatusTexts {
  connected(count: number | undefined): string;
  connecting: string;
  disconnected: string;
  closed: string;
}

export class ThrottledStatus {
  private storeState: StoreState;
  private count = 0;
  private lastError?: string;
  private timer?: NodeJS.Timeout;
  private dirty = false;

  constructor(
    private readonly show: (s: StatusView) => void,
    private readonly texts: StatusTexts,
    initial: StoreState,
    /** Whether to count readings (the push operation) or just show the connection. */
    private readonly counting: boolean,
    private readonly intervalMs = 500,
  ) {
    this.storeState = initial;
    this.render();
  }

  setState(state: StoreState, error?: Error): void {
    this.storeState = state;
    if (state === 'connected') this.lastError = undefined;
    else if (error) this.lastError = error.message;
    this.update();
  }

  succeeded(readings = 0): void {
    this.count += readings;
    this.lastError = undefined;
    this.update();
  }

  failed(err: Error): void {
    this.lastError = err.message;
    this.update();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** What the status shows now. */
  view(): StatusView {
    const short = (s: string) => (s.length > 60 ? `${s.slice(0, 57)}...` : s);
    if (this.lastError) return { fill: 'red', shape: 'ring', text: short(this.lastError) };
    switch (this.storeState) {
      case 'connected':
        return { fill: 'green', shape: 'dot', text: this.texts.connected(this.counting ? this.count : undefined) };
      case 'connecting':
        return { fill: 'yellow', shape: 'ring', text: this.texts.connecting };
      case 'disconnected':
        return { fill: 'red', shape: 'ring', text: this.texts.disconnected };
      default:
        return { fill: 'grey', shape: 'ring', text: this.texts.closed };
    }
  }

  private update(): void {
    if (this.timer) {
      this.dirty = true;
      return;
    }
    this.render();
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.dirty) return;
    this.dirty = false;
    this.render();
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
  }

  private render(): void {
    this.show(this.view());
  }
}
