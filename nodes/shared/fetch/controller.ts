/**
 * Everything a fetch node does besides talking to Node-RED: runs the schedule, keeps the
 * metrics, decides the status and when to warn. The node file maps `StatusView` to
 * `node.status` (through its i18n catalog), `send` to `node.send`, `warn` to `node.warn`.
 */
import type { Clock } from '../clock';
import type { FetchError } from './errors';
import type { FetchMetrics } from './metrics';
import { DEFAULT_JITTER, DEFAULT_RETRY_BASE_MS } from './retry';
import type { GridRow } from './rows';
import { FetchScheduler, type FetchOutcome, type ScheduleState } from './scheduler';
import type { TimerHandle, Timers } from '../timers';

export interface FetchJobResult {
  rows: GridRow[];
  /** The value to show on the status. */
  headline: number | null;
  /** Non-fatal problems, for the log. */
  notes: string[];
}

/** A status line: an i18n key of the node's catalog (`<type>.status.<key>`) and its parameters. */
export interface StatusView {
  fill: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape: 'ring' | 'dot';
  key: 'ok' | 'ok-forecast' | 'fetching' | 'retrying' | 'auth' | 'failed' | 'no-key' | 'config' | 'standby';
  params: Record<string, string | number>;
}

export interface FetchControllerOptions<R extends FetchJobResult> {
  run(signal: AbortSignal): Promise<R>;
  intervalMs: number;
  /** false: fetch only when triggered (see FetchSchedulerOptions.selfScheduled). Default true. */
  selfScheduled?: boolean;
  /** First retry delay; default 30 s. */
  retryBaseMs?: number;
  clock: Clock;
  timers: Timers;
  random?: () => number;
  metrics: FetchMetrics;
  /** `ok` shows the headline value, `ok-forecast` the number of points. */
  okKey: 'ok' | 'ok-forecast';
  formatValue(value: number): string;
  /** A result to pass on (one msg per fetch). */
  send(result: R): void;
  setStatus(view: StatusView): void;
  warn(message: string): void;
  /** Why nothing can be fetched (no key, an invalid setting): nothing is scheduled, triggers answer with it. */
  blocked?: FetchError;
}

const AGE_REFRESH_MS = 60_000;

/** "just now", "2 min ago", "3 h ago", "2 d ago". */
export function formatAge(ms: number): string {
  const min = Math.floor(Math.max(0, ms) / 60_000);
  if (min < 1) return 'just now';
  if (min < 60) return `${min} min ago`;
  const h = Math.floor(min / 60);
  if (h < 48) return `${h} h ago`;
  return `${Math.floor(h / 24)} d ago`;
}

export class FetchController<R extends FetchJobResult> {
  private readonly scheduler: FetchScheduler<R> | undefined;
  private lastOk: { at: number; result: R } | undefined;
  private lastFailure: FetchError | undefined;
  /** kind/status of the failure last warned about, so each state change warns once. */
  private warnedFor: string | undefined;
  private ageTimer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly o: FetchControllerOptions<R>) {
    if (!o.blocked) {
      const baseMs = o.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
      this.scheduler = new FetchScheduler<R>({
        run: o.run,
        intervalMs: o.intervalMs,
        selfScheduled: o.selfScheduled,
        retry: { baseMs, capMs: o.intervalMs, jitter: DEFAULT_JITTER },
        clock: o.clock,
        timers: o.timers,
        random: o.random,
        onOutcome: (outcome, state, manual) => this.onOutcome(outcome, state, manual),
        onPhase: (state) => {
          if (state.phase === 'fetching' && !this.lastOk && !this.lastFailure) this.showStatus(state);
        },
      });
    }
  }

  get state(): ScheduleState {
    return this.scheduler?.state ?? { phase: this.stopped ? 'stopped' : 'halted', attempt: 0 };
  }

  /** Shows the status and fetches now (unless blocked). */
  start(): void {
    if (this.scheduler && this.o.selfScheduled !== false) this.scheduler.start();
    else this.showStatus(this.state);
  }

  /** A manual fetch (an input msg). Resolves with the outcome; never rejects. */
  trigger(): Promise<FetchOutcome<R>> {
    if (!this.scheduler) return Promise.resolve({ ok: false, error: this.o.blocked!, at: this.o.clock.now() });
    return this.scheduler.trigger();
  }

  stop(): void {
    this.stopped = true;
    this.scheduler?.stop();
    if (this.ageTimer !== undefined) this.o.timers.clearTimeout(this.ageTimer);
    this.ageTimer = undefined;
  }

  private onOutcome(outcome: FetchOutcome<R>, state: ScheduleState, manual: boolean): void {
    if (outcome.ok) {
      this.o.metrics.recordSuccess(outcome.value.rows.length, outcome.at);
      this.lastOk = { at: outcome.at, result: outcome.value };
      this.lastFailure = undefined;
      this.warnedFor = undefined;
      for (const note of outcome.value.notes) this.o.warn(note);
      if (outcome.value.rows.length > 0) this.o.send(outcome.value);
    } else {
      this.o.metrics.recordFailure(outcome.error, outcome.at);
      this.lastFailure = outcome.error;
      const key = `${outcome.error.kind}:${outcome.error.status ?? ''}`;
      // A manual fetch reports its failure through done(err); a scheduled one warns once per change.
      if (key !== this.warnedFor && !manual) this.o.warn(outcome.error.message);
      this.warnedFor = key;
    }
    this.showStatus(state);
  }

  /** Sets the status for a state and (re)arms the age refresh. */
  private showStatus(state: ScheduleState): void {
    if (this.stopped) return;
    this.o.setStatus(this.statusView(state));
    // Keep the "2 min ago" current while the last fetch is a success.
    if (this.ageTimer !== undefined) this.o.timers.clearTimeout(this.ageTimer);
    this.ageTimer = undefined;
    if (this.lastOk && !this.lastFailure) {
      this.ageTimer = this.o.timers.setTimeout(() => {
        this.ageTimer = undefined;
        this.showStatus(this.state);
      }, AGE_REFRESH_MS);
    }
  }

  /** The status for a state, at the clock's current time. */
  statusView(state: ScheduleState = this.state): StatusView {
    const now = this.o.clock.now();
    const blocked = this.o.blocked;
    if (blocked) {
      return blocked.kind === 'no_key'
        ? { fill: 'grey', shape: 'ring', key: 'no-key', params: {} }
        : { fill: 'red', shape: 'ring', key: 'config', params: { message: blocked.message } };
    }
    const failure = this.lastFailure;
    if (failure) {
      if (state.phase === 'halted') {
        return { fill: 'red', shape: 'ring', key: 'auth', params: { status: failure.reason } };
      }
      if (state.phase === 'retrying' && state.nextAt !== undefined) {
        const seconds = Math.max(0, Math.ceil((state.nextAt - now) / 1000));
        return { fill: 'yellow', shape: 'ring', key: 'retrying', params: { seconds, reason: failure.reason } };
      }
      return { fill: 'red', shape: 'ring', key: 'failed', params: { reason: failure.reason } };
    }
    if (this.lastOk) {
      const r = this.lastOk.result;
      return {
        fill: 'green',
        shape: 'dot',
        key: this.o.okKey,
        params: {
          value: r.headline === null ? '-' : this.o.formatValue(r.headline),
          count: r.rows.length,
          age: formatAge(now - this.lastOk.at),
        },
      };
    }
    // Only an input-driven node is idle before its first fetch: it waits for a trigger.
    if (state.phase === 'idle') return { fill: 'grey', shape: 'ring', key: 'standby', params: {} };
    return { fill: 'blue', shape: 'ring', key: 'fetching', params: {} };
  }
}

/** The `done` of a msg that triggered a fetch: a fetch cut short by close is no failure of the msg. */
export function completeFetch(done: (err?: Error) => void): (outcome: FetchOutcome<FetchJobResult>) => void {
  return (outcome) => (outcome.ok || outcome.error.kind === 'aborted' ? done() : done(outcome.error));
}

/**
 * Fetches for msgs that name their own target (a zone, a place): one at a time, so each msg
 * gets the target it asked for. `select` makes the next fetch use a target; `fetchedIs` tells
 * whether the last fetch used it (a msg that joined a retry of another target fetches again).
 */
export class TargetedFetches<T> {
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly controller: { trigger(): Promise<FetchOutcome<FetchJobResult>> },
    private readonly select: (target: T) => void,
    private readonly fetchedIs: (target: T) => boolean,
  ) {}

  fetch(target: T, done: (err?: Error) => void): void {
    this.queue = this.queue.then(async () => {
      this.select(target);
      let outcome = await this.controller.trigger();
      if (!this.fetchedIs(target)) outcome = await this.controller.trigger();
      completeFetch(done)(outcome);
    });
  }
}
