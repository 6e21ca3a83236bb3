/**
 * Injectable timers, so schedules can be tested without waiting: `systemTimers` in the nodes,
 * `ManualTimers` (driven together with a `ManualClock`) in unit tests.
 */
import type { ManualClock } from './clock';

export type TimerHandle = unknown;

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface PendingTimer {
  id: number;
  at: number;
  fn: () => void;
}

/** Timers that fire only when `advance` moves the shared `ManualClock` past their time. */
export class ManualTimers implements Timers {
  private seq = 0;
  private pending: PendingTimer[] = [];

  constructor(private readonly clock: ManualClock) {}

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.pending.push({ id, at: this.clock.now() + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending = this.pending.filter((t) => t.id !== handle);
  }

  /** Number of timers waiting to fire. */
  get count(): number {
    return this.pending.length;
  }

  /** Ms until the next timer fires, or undefined when none is pending. */
  nextDelay(): number | undefined {
    if (this.pending.length === 0) return undefined;
    return Math.min(...this.pending.map((t) => t.at)) - this.clock.now();
  }

  /**
   * Moves the clock forward by `ms`, firing each due timer in time order at its own time, and
   * lets promises settle after each one (so async work a timer starts can finish and schedule more).
   */
  async advance(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    await settle();
    for (;;) {
      const due = this.pending.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.pending = this.pending.filter((t) => t !== due);
      if (due.at > this.clock.now()) this.clock.set(due.at);
      due.fn();
      await settle();
    }
    this.clock.set(end);
    await settle();
  }
}

/** Lets pending promise callbacks run (several macrotask turns, for chains of awaits). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** `p`, or a rejection with `message` once `ms` have passed first (the timer is cleared either way). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
