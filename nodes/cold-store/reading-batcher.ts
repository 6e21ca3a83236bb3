/**
 * Group commit for the ingest path: readings from many messages are written with one database
 * round trip per batch (CONTRACT: "never a DB round trip per message"), and each message learns
 * the outcome of its own readings. Free of Node-RED; timers, clock and randomness are injected.
 *
 * Policy:
 * - a batch is flushed when `maxBatch` items are queued or `maxDelayMs` after the oldest queued
 *   item arrived; one flush is in flight at a time, so rows are written in arrival order;
 * - with `flushWhenIdle`, a batch is also flushed as soon as no flush is in flight (deferred by
 *   one turn of the event loop, so the messages of one burst go together): natural batching,
 *   one-row batches at low rates (low latency), full batches under load; the timer is then only
 *   an upper bound;
 * - a message's items are never split across batches (a message larger than `maxBatch` is a
 *   batch of its own);
 * - a failed flush whose error is retryable (database down) keeps its items at the head of the
 *   queue and is retried with exponential backoff and jitter; callbacks are not failed;
 * - a flush that fails with a permanent error (bad data) is bisected: each half is retried on
 *   its own until the offending message is alone and fails (`isPermanentFailure(err)`);
 * - the queue is bounded by `maxQueued` items (queued + in flight): a message that would exceed
 *   it is refused at once with a `QueueFullError`;
 * - `close()` flushes what is queued until a deadline, then fails the rest with a count.
 */
import { Clock, systemClock } from '../shared/clock';
import { systemTimers, type Timers } from '../shared/timers';

export type { Timers };

/** What a flush may return: results aligned with the items, optionally a duplicate count. */
export interface FlushOutcome<R> {
  /** One result per item, in the order of the items. */
  results: R[];
  /** How many of the items already existed (counted in the stats, not an error). */
  duplicates?: number;
}

export type FlushFn<T, R> = (items: T[]) => Promise<R[] | FlushOutcome<R>>;

/** Called once per `add`: with an error, or with the results of that message's items. */
export type BatchCallback<R> = (err: Error | null, results?: R[]) => void;


/** A transition of the write path, for the node's status and log. */
export type BatcherEvent =
  | { type: 'down'; error: string; waiting: number }
  | { type: 'up'; written: number; downForMs: number };

export interface ReadingBatcherOptions<T, R> {
  flush: FlushFn<T, R>;
  /** Flush as soon as this many items are queued. Default 500. */
  maxBatch?: number;
  /** Flush at the latest this long after the oldest queued item arrived. Default 100 ms. */
  maxDelayMs?: number;
  /** Flush whenever no flush is in flight (natural batching) instead of waiting for the timer. Default false. */
  flushWhenIdle?: boolean;
  /** How a flush when idle is deferred (default `setImmediate`: after the messages already due this turn). */
  defer?: (fn: () => void) => void;
  /** Items held at most (queued + in flight); beyond it a message is refused. Default 100 000. */
  maxQueued?: number;
  /** First retry delay after a failed flush, doubled per attempt. Default 100 ms. */
  retryBaseMs?: number;
  /** Upper bound of the retry delay. Default 5000 ms. */
  retryMaxMs?: number;
  /** How long `close()` keeps trying to write what is queued. Default 10 000 ms. */
  closeTimeoutMs?: number;
  /** Whether a flush error may go away by itself (connection) or never will (bad data). Default: always retryable. */
  isRetryable?: (err: Error) => boolean;
  onEvent?: (event: BatcherEvent) => void;
  clock?: Clock;
  timers?: Timers;
  /** In [0, 1): jitter source. Default Math.random. */
  random?: () => number;
}

export interface BatcherStats {
  /** Items waiting for a flush (not in flight). */
  queued: number;
  /** Items of the flush in progress. */
  inFlight: number;
  /** Items stored as new rows. */
  written: number;
  /** Items that already existed. */
  duplicates: number;
  /** Items whose message failed for good (permanent error or close deadline). */
  failed: number;
  /** Messages refused because the queue was full. */
  refused: number;
  /** Items of the refused messages. */
  refusedItems: number;
  /** Successful flushes. */
  batches: number;
  /** Failed flush attempts that were (or will be) retried. */
  retries: number;
  lastError: string | null;
  /** Duration of the last successful flush. */
  lastFlushMs: number | null;
  /** False from a retryable flush failure until the next successful flush. */
  connected: boolean;
  closed: boolean;
}

export class QueueFullError extends Error {
  readonly code = 'QUEUE_FULL';
  constructor(
    readonly items: number,
    readonly maxQueued: number,
  ) {
    super(`write queue full (${maxQueued} readings waiting): message of ${items} reading(s) refused`);
    this.name = 'QueueFullError';
  }

  /**
   * Without a stack trace: under overload every refused message gets one of these, and capturing
   * a stack per refusal costs more than the refusal itself (the message says what happened).
   */
  static cheap(items: number, maxQueued: number): QueueFullError {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new QueueFullError(items, maxQueued);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

export class BatcherClosedError extends Error {
  readonly code = 'BATCHER_CLOSED';
  constructor(message = 'writer is closed: readings refused') {
    super(message);
    this.name = 'BatcherClosedError';
  }
}

interface Entry<T, R> {
  items: T[];
  /** When it was added (clock ms): its batch is due `maxDelayMs` later. */
  at: number;
  callback: BatchCallback<R>;
  settled: boolean;
}

const permanent = new WeakSet<Error>();

/** True for the error of a message the database refused for good (not an outage, not a full queue). */
export function isPermanentFailure(err: unknown): boolean {
  return err instanceof Error && permanent.has(err);
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class ReadingBatcher<T, R> {
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly maxQueued: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly closeTimeoutMs: number;
  private readonly flushFn: FlushFn<T, R>;
  private readonly isRetryable: (err: Error) => boolean;
  private readonly onEvent: (event: BatcherEvent) => void;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly random: () => number;

  /** Entries from `head` on are queued (a head index makes dequeue O(1); compacted now and then). */
  private queue: Entry<T, R>[] = [];
  private head = 0;
  readonly flushWhenIdle: boolean;
  private readonly defer: (fn: () => void) => void;
  private deferred = false;
  private queuedItems = 0;
  private inFlight: Entry<T, R>[] | null = null;
  private inFlightItems = 0;
  /** When the flush in flight started (clock ms). */
  private inFlightSince = 0;
  private timer: unknown = null;
  private timerKind: 'delay' | 'retry' | null = null;
  private attempt = 0;
  /** After a permanent failure of a multi-message batch: sizes (in messages) of the next batches (bisect). */
  private splits: number[] = [];
  /** Whether the batch in flight was taken under `splits` (put back on a retryable failure). */
  private splitBatch = false;
  private connected = true;
  /** From the first retryable failure until the backlog it caused is written. */
  private outage: { since: number; written: number } | null = null;
  /** Set when close gave up: a flush still in flight is ignored when it ends. */
  private abandoned = false;
  private closing: { deadline: unknown; resolve: () => void; promise: Promise<void> } | null = null;
  private readonly s = {
    written: 0,
    duplicates: 0,
    failed: 0,
    refused: 0,
    refusedItems: 0,
    batches: 0,
    retries: 0,
    lastError: null as string | null,
    lastFlushMs: null as number | null,
  };

  constructor(opts: ReadingBatcherOptions<T, R>) {
    this.flushFn = opts.flush;
    this.maxBatch = positive(opts.maxBatch, 500);
    this.maxDelayMs = nonNegative(opts.maxDelayMs, 100);
    this.maxQueued = positive(opts.maxQueued, 100_000);
    this.retryBaseMs = positive(opts.retryBaseMs, 100);
    this.retryMaxMs = Math.max(this.retryBaseMs, positive(opts.retryMaxMs, 5000));
    this.closeTimeoutMs = nonNegative(opts.closeTimeoutMs, 10_000);
    this.isRetryable = opts.isRetryable ?? (() => true);
    this.onEvent = opts.onEvent ?? (() => {});
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
    this.random = opts.random ?? Math.random;
    this.flushWhenIdle = opts.flushWhenIdle === true;
    this.defer = opts.defer ?? ((fn) => void setImmediate(fn));
  }

  /** Messages waiting for a flush. */
  private get queuedMessages(): number {
    return this.queue.length - this.head;
  }

  /**
   * Queues one message's items. `callback` is called exactly once: with the results of these
   * items after their batch committed, or with an error (queue full, closed, permanent failure).
   */
  add(items: T[], callback: BatchCallback<R>): void {
    if (this.closing) {
      callback(new BatcherClosedError());
      return;
    }
    if (items.length === 0) {
      callback(null, []);
      return;
    }
    if (this.queuedItems + this.inFlightItems + items.length > this.maxQueued) {
      this.s.refused++;
      this.s.refusedItems += items.length;
      callback(QueueFullError.cheap(items.length, this.maxQueued));
      return;
    }
    this.queue.push({ items, at: this.clock.now(), callback, settled: false });
    this.queuedItems += items.length;
    this.schedule();
  }

  stats(): BatcherStats {
    return {
      queued: this.queuedItems,
      inFlight: this.inFlightItems,
      ...this.s,
      connected: this.connected,
      closed: this.closing !== null,
    };
  }

  /**
   * Whether the writes are known to fail (a retryable flush failure since the last success) or the
   * flush in flight has run longer than `stalledAfterMs` (a hung database answers nothing: its
   * time-out comes much later). Cheap: no stats object.
   */
  isDown(stalledAfterMs: number): boolean {
    if (!this.connected) return true;
    return this.inFlight !== null && this.clock.now() - this.inFlightSince > stalledAfterMs;
  }

  /** Items accepted and not yet settled (queued + in flight). */
  get pending(): number {
    return this.queuedItems + this.inFlightItems;
  }

  /**
   * Stops accepting, writes what is queued (retrying as usual) and resolves when every callback
   * has been called. After `closeTimeoutMs` the remaining messages fail with an error that says
   * how many readings were not stored. Safe to call twice.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing.promise;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.closing = { deadline: null, resolve, promise };
    if (this.pending === 0) {
      this.finishClose();
      return promise;
    }
    this.closing.deadline = this.timers.setTimeout(() => this.abandon(), this.closeTimeoutMs);
    // Don't wait for the batch delay any more; a pending retry keeps its backoff.
    if (this.timerKind === 'delay') this.clearTimer();
    this.schedule();
    return promise;
  }

  /** Decides whether to flush now, arm the delay timer, or wait (flush in flight, retry armed). */
  private schedule(): void {
    if (this.inFlight || this.queuedMessages === 0) return;
    if (this.timerKind === 'retry') return;
    // Messages put back after a failure keep their arrival time, so they are due at once.
    const wait = this.queue[this.head].at + this.maxDelayMs - this.clock.now();
    if (this.closing !== null || this.queuedItems >= this.maxBatch || wait <= 0) {
      this.clearTimer();
      void this.flushNext();
      return;
    }
    if (this.flushWhenIdle && !this.deferred) {
      this.deferred = true;
      this.defer(() => {
        this.deferred = false;
        if (this.inFlight || this.queuedMessages === 0 || this.timerKind === 'retry') return;
        this.clearTimer();
        void this.flushNext();
      });
    }
    if (this.timerKind === 'delay') return;
    this.armTimer('delay', wait);
  }

  private armTimer(kind: 'delay' | 'retry', ms: number): void {
    this.clearTimer();
    this.timerKind = kind;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.timerKind = null;
      if (kind === 'retry') {
        void this.flushNext();
      } else {
        this.schedule();
      }
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.timerKind = null;
  }

  /** Takes whole messages from the head of the queue, up to `maxBatch` items (at least one message). */
  private takeBatch(): Entry<T, R>[] {
    const batch: Entry<T, R>[] = [];
    let n = 0;
    this.splitBatch = this.splits.length > 0;
    const limit = this.splitBatch ? (this.splits.shift() as number) : Infinity;
    const queue = this.queue;
    let head = this.head;
    while (head < queue.length && batch.length < limit) {
      const next = queue[head];
      if (batch.length > 0 && n + next.items.length > this.maxBatch) break;
      batch.push(next);
      n += next.items.length;
      queue[head++] = undefined as unknown as Entry<T, R>; // let it be collected once settled
    }
    if (head === queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (head > 1024 && head * 2 > queue.length) {
      // One splice per many batches keeps the array from growing at its head.
      queue.splice(0, head);
      this.head = 0;
    } else {
      this.head = head;
    }
    this.queuedItems -= n;
    this.inFlightItems = n;
    return batch;
  }

  private async flushNext(): Promise<void> {
    if (this.inFlight || this.queuedMessages === 0) return;
    const batch = this.takeBatch();
    this.inFlight = batch;
    const items: T[] = [];
    for (const e of batch) for (const it of e.items) items.push(it);
    const started = this.clock.now();
    this.inFlightSince = started;
    let outcome: FlushOutcome<R> | null = null;
    let failure: Error | null = null;
    let isBug = false;
    try {
      const raw = await this.flushFn(items);
      outcome = Array.isArray(raw) ? { results: raw } : raw;
      if (!outcome || !Array.isArray(outcome.results) || outcome.results.length !== items.length) {
        // A flush function that loses track of items is a bug, not an outage: fail, don't loop.
        failure = new Error(`flush returned ${outcome?.results?.length ?? 'no'} results for ${items.length} items`);
        outcome = null;
        isBug = true;
      }
    } catch (err) {
      failure = toError(err);
    }
    this.inFlight = null;
    if (this.abandoned) return;
    this.inFlightItems = 0;
    if (outcome) this.succeeded(batch, outcome, this.clock.now() - started);
    else this.failed(batch, failure as Error, isBug);
    if (this.closing && this.pending === 0) {
      this.finishClose();
      return;
    }
    this.schedule();
  }

  private succeeded(batch: Entry<T, R>[], outcome: FlushOutcome<R>, tookMs: number): void {
    const duplicates = Math.max(0, Math.min(outcome.duplicates ?? 0, outcome.results.length));
    const written = outcome.results.length - duplicates;
    this.s.batches++;
    this.s.written += written;
    this.s.duplicates += duplicates;
    this.s.lastFlushMs = tookMs;
    this.attempt = 0;
    this.connected = true;
    if (this.outage) {
      this.outage.written += written;
      // Report recovery once the backlog of the outage is written, not after its first batch.
      if (this.queuedItems === 0) {
        const { since, written: total } = this.outage;
        this.outage = null;
        this.emit({ type: 'up', written: total, downForMs: this.clock.now() - since });
      }
    }
    let offset = 0;
    for (const e of batch) {
      const mine = outcome.results.slice(offset, offset + e.items.length);
      offset += e.items.length;
      this.settle(e, null, mine);
    }
  }

  private failed(batch: Entry<T, R>[], err: Error, isBug: boolean): void {
    this.s.lastError = err.message;
    const retryable = !isBug && safeRetryable(this.isRetryable, err);
    if (!retryable) {
      if (batch.length === 1) {
        this.s.failed += batch[0].items.length;
        permanent.add(err);
        this.settle(batch[0], err);
        return;
      }
      // Which message is bad is unknown: put them back and try each half on its own.
      this.requeueFront(batch);
      const half = Math.ceil(batch.length / 2);
      this.splits.unshift(half, batch.length - half);
      return;
    }
    if (this.splitBatch) this.splits.unshift(batch.length);
    this.s.retries++;
    this.attempt++;
    this.connected = false;
    this.requeueFront(batch);
    if (this.outage === null) {
      this.outage = { since: this.clock.now(), written: 0 };
      this.emit({ type: 'down', error: err.message, waiting: this.pending });
    }
    if (this.queuedMessages > 0) this.armTimer('retry', this.backoff(this.attempt));
  }

  private emit(event: BatcherEvent): void {
    try {
      this.onEvent(event);
    } catch {
      // A listener's bug must not stop the writer.
    }
  }

  /** Exponential backoff with up to 20 % jitter below the capped delay. */
  backoff(attempt: number): number {
    const capped = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(capped * (0.8 + 0.2 * this.random()));
  }

  private requeueFront(batch: Entry<T, R>[]): void {
    const open = batch.filter((e) => !e.settled);
    // Rare (failures only): rebuilding the array here keeps the common path simple.
    this.queue = open.concat(this.queue.slice(this.head));
    this.head = 0;
    for (const e of open) this.queuedItems += e.items.length;
  }

  private settle(e: Entry<T, R>, err: Error | null, results?: R[]): void {
    if (e.settled) return;
    e.settled = true;
    try {
      if (err) e.callback(err);
      else e.callback(null, results);
    } catch {
      // A throwing callback must not break the batcher or the other messages of the batch.
    }
  }

  /** Close deadline passed: fail everything not yet written. */
  private abandon(): void {
    if (!this.closing) return;
    this.closing.deadline = null;
    this.abandoned = this.inFlight !== null;
    this.clearTimer();
    const left = [...(this.inFlight ?? []), ...this.queue.slice(this.head)].filter((e) => !e.settled);
    const count = left.reduce((n, e) => n + e.items.length, 0);
    const why = this.s.lastError ? `: ${this.s.lastError}` : '';
    const err = new Error(
      `closed after ${this.closeTimeoutMs} ms with ${count} reading(s) not stored${why}`,
    );
    this.queue = [];
    this.head = 0;
    this.queuedItems = 0;
    // An in-flight flush may still finish; its messages are settled here and its result ignored.
    this.inFlightItems = 0;
    this.s.failed += count;
    for (const e of left) this.settle(e, err);
    this.finishClose();
  }

  private finishClose(): void {
    if (!this.closing) return;
    this.clearTimer();
    if (this.closing.deadline !== null) this.timers.clearTimeout(this.closing.deadline);
    this.closing.deadline = null;
    this.closing.resolve();
  }
}

function safeRetryable(fn: (err: Error) => boolean, err: Error): boolean {
  try {
    return fn(err);
  } catch {
    return true;
  }
}

function positive(v: number | undefined, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : dflt;
}

function nonNegative(v: number | undefined, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : dflt;
}
