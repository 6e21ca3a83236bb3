/**
 * The ingest writer of the cold store: the group-commit batcher in front of the database, and
 * behind it a local spill file for database outages. Free of Node-RED.
 *
 * Bounds, in order (issue 7: "memory first, then the spool, then a counted refusal"):
 * 1. memory: while the database takes writes, readings wait in the batcher's queue;
 * 2. while it does not (a failed flush, or one running longer than `stalledAfterMs`: a hung
 *    database answers nothing until its time-out), readings beyond `spillAfter` in memory are
 *    written to the spill file instead, and their messages are settled as soon as the file has
 *    committed them: the ingest path (spool, hot window, WebSocket) goes on at full rate;
 *    also whenever the queue would exceed `maxQueued`;
 * 3. once the file holds `maxSpilled` readings, the batcher's own bound applies: past `maxQueued`
 *    a message is refused with a counted `QueueFullError` (the node's status turns red).
 * When the database is back, the file is drained in pages through the same batcher (idempotent
 * inserts, so a reading stored twice is stored once), each reading as its own message, so a
 * reading the database refuses for good is isolated by the batcher's bisect and dead-lettered in
 * the file with the database's error instead of blocking the rest.
 */
import type { Reading } from '../shared/types';
import { systemTimers, type Timers } from '../shared/timers';
import { isPermanentFailure, type ReadingBatcher } from './reading-batcher';
import type { ReadingSpill, SpilledReading } from './reading-spill';

/** `spilled` true: the readings are in the spill file, not yet in the database (no results). */
export type WriteCallback<R> = (err: Error | null, results?: R[], spilled?: boolean) => void;

export interface SpillingWriterOptions<R> {
  batcher: ReadingBatcher<Reading, R>;
  /** Null: no spill file (the batcher alone, as before). */
  spill: ReadingSpill | null;
  /** Readings kept in memory during an outage before spilling. Default 1000. */
  spillAfter?: number;
  /** Readings the spill file may hold. Default 1 000 000. */
  maxSpilled?: number;
  /** A flush running longer than this counts as an outage. Default 1000 ms. */
  stalledAfterMs?: number;
  /** How often the file is checked for readings to drain. Default 250 ms. */
  drainEveryMs?: number;
  /** Readings per drained page. Default 500. */
  pageSize?: number;
  timers?: Timers;
  /** A spill or drain problem (the readings concerned stay where they were). */
  onError?: (err: Error) => void;
  /** The file was drained empty after an outage: how many readings went through it. */
  onDrained?: (count: number) => void;
}

export class SpillingWriter<R> {
  readonly batcher: ReadingBatcher<Reading, R>;
  readonly spill: ReadingSpill | null;
  readonly spillAfter: number;
  readonly maxSpilled: number;
  private readonly stalledAfterMs: number;
  private readonly drainEveryMs: number;
  private readonly pageSize: number;
  private readonly timers: Timers;
  private readonly onError: (err: Error) => void;
  private readonly onDrained: (count: number) => void;
  private timer: unknown = null;
  private draining = false;
  private closed = false;
  /** Readings spilled but not yet committed to the file (its count does not hold them yet). */
  private spilling = 0;
  /** Readings drained since the file was last empty. */
  private drainedSinceEmpty = 0;

  constructor(opts: SpillingWriterOptions<R>) {
    this.batcher = opts.batcher;
    this.spill = opts.spill;
    this.spillAfter = Math.max(1, opts.spillAfter ?? 1000);
    this.maxSpilled = Math.max(1, opts.maxSpilled ?? 1_000_000);
    this.stalledAfterMs = Math.max(1, opts.stalledAfterMs ?? 1000);
    this.drainEveryMs = Math.max(1, opts.drainEveryMs ?? 250);
    this.pageSize = Math.max(1, opts.pageSize ?? 500);
    this.timers = opts.timers ?? systemTimers;
    this.onError = opts.onError ?? (() => {});
    this.onDrained = opts.onDrained ?? (() => {});
    if (this.spill) this.arm();
  }

  /** Readings in the spill file (committed) and on their way to it. */
  get spilled(): number {
    return (this.spill && !this.spill.isClosed ? this.spill.count : 0) + this.spilling;
  }

  /**
   * Queues one message's readings, or spills them (see the bounds above). `callback` once.
   * `maySpill` false: never to the file (a caller that needs the stored rows, e.g. an HTTP request
   * waiting for its answer, waits in memory instead).
   */
  add(items: Reading[], callback: WriteCallback<R>, maySpill = true): void {
    if (maySpill && this.shouldSpill(items.length)) {
      const spill = this.spill as ReadingSpill;
      this.spilling += items.length;
      spill.append(items).then(
        () => {
          this.spilling -= items.length;
          callback(null, undefined, true);
        },
        (err: Error) => {
          // The file cannot take them (disk full, closed): memory, then the batcher's refusal.
          this.spilling -= items.length;
          this.onError(err);
          this.batcher.add(items, callback);
        },
      );
      return;
    }
    this.batcher.add(items, callback);
  }

  private shouldSpill(n: number): boolean {
    const spill = this.spill;
    if (!spill || this.closed || spill.isClosed || n === 0) return false;
    if (this.spilled + n > this.maxSpilled) return false;
    const pending = this.batcher.pending;
    if (pending + n > this.batcher.maxQueued) return true;
    return pending + n > this.spillAfter && this.batcher.isDown(this.stalledAfterMs);
  }

  private arm(): void {
    if (this.closed) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.drainOnce();
      this.arm();
    }, this.drainEveryMs);
  }

  /**
   * One page from the file into the batcher, when the database is taking writes (or nothing else
   * is waiting, so the page itself probes it) and memory has room for it.
   */
  drainOnce(): void {
    const spill = this.spill;
    if (!spill || this.draining || this.closed || spill.isClosed) return;
    if (spill.count === 0) {
      if (this.drainedSinceEmpty > 0) {
        const n = this.drainedSinceEmpty;
        this.drainedSinceEmpty = 0;
        this.onDrained(n);
      }
      return;
    }
    const pending = this.batcher.pending;
    if (pending > 0 && this.batcher.isDown(this.stalledAfterMs)) return;
    if (pending + this.pageSize > Math.max(this.spillAfter, this.pageSize)) return;
    let page: SpilledReading[];
    try {
      page = spill.page(0, this.pageSize);
    } catch (err) {
      this.onError(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (page.length === 0) return;
    this.draining = true;
    const stored: number[] = [];
    const refused: Array<{ id: number; reading: Reading; reason: string }> = [];
    let open = page.length;
    const settled = () => {
      if (--open > 0) return;
      this.draining = false;
      try {
        spill.settle(stored, refused);
        this.drainedSinceEmpty += stored.length + refused.length;
      } catch (err) {
        // Left in the file: stored again (idempotently) by a later page.
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
      // The next page at once (not at the next check): the file drains at the database's pace.
      setImmediate(() => this.drainOnce());
    };
    for (const row of page) {
      this.batcher.add([row.reading], (err) => {
        if (!err) stored.push(row.id);
        else if (isPermanentFailure(err)) refused.push({ id: row.id, reading: row.reading, reason: err.message });
        // else closed: left in the file for the next start
        settled();
      });
    }
  }

  /**
   * Stops draining, lets the batcher write what it holds (its close deadline applies), then closes
   * the file; readings still in it are drained on the next start.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    try {
      await this.batcher.close();
    } finally {
      try {
        this.spill?.close();
      } catch (err) {
        this.onError(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}
