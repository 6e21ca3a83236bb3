/**
 * Rebuilds hot windows from the cold store after the hot store lost them (a Redis restart, an
 * app restart with the in-process store). Lazy: the first push of a sensor since the store's last
 * (re)connect queues it; one query asks for the newest stored readings of every sensor queued
 * (up to `batch` sensors), which are pushed into their windows; later pushes of the sensor cost
 * nothing until the store reconnects. Never awaited on the message path, bounded in concurrency
 * and queue length. (It used to run one list query, with its count, per sensor: 100 queries at
 * once when 100 new sensors began together.)
 */
import { parseIsoMs } from '../shared/iso-time';
import type { Reading } from '../shared/types';
import type { SensorKey, StoreLogger, StoreState, StoreStateListener } from './window-store';

/** A sensor whose window is to be rebuilt, with the timestamp (ISO 8601) of the push that found it. */
export interface RebuildRequest {
  key: SensorKey;
  before: string;
}

/** For each sensor, its newest `limit` stored readings older than its `before` (any order). */
export type RecentReadings = (sensors: readonly RebuildRequest[], limit: number) => Promise<readonly Reading[]>;

/** What the rebuilder needs of a window store. */
export interface RebuildTarget {
  readonly size: number;
  readonly state: StoreState;
  onStateChange(listener: StoreStateListener): () => void;
  restoreMany(readings: readonly Reading[]): Promise<void>;
}

export interface WindowRebuildOptions {
  store: RebuildTarget;
  recent: RecentReadings;
  logger: StoreLogger;
  /** Rebuild queries running at once (default 2). */
  concurrency?: number;
  /** Sensors asked for in one query (default 500). */
  batch?: number;
  /** Sensors waiting for a rebuild (default 10 000); when full a sensor is left for a later push. */
  maxQueued?: number;
}

interface Job {
  key: SensorKey;
  name: string;
  /** Timestamp of the push that found the sensor (as the reading has it): older stored readings are rebuilt. */
  before: string;
  generation: number;
}

export const DEFAULT_REBUILD_CONCURRENCY = 2;
export const DEFAULT_REBUILD_BATCH = 500;
export const DEFAULT_REBUILD_QUEUE = 10_000;

export class WindowRebuilder {
  private readonly store: RebuildTarget;
  private readonly recent: RecentReadings;
  private readonly logger: StoreLogger;
  private readonly concurrency: number;
  private readonly batch: number;
  private readonly maxQueued: number;
  /** Sensors rebuilt (or being rebuilt) since the store's last (re)connect. */
  private readonly seen = new Set<string>();
  private readonly queue: Job[] = [];
  private readonly running = new Set<Promise<void>>();
  private generation = 0;
  private lastState: StoreState;
  private failing = false;
  private closed = false;
  private readonly unsubscribe: () => void;
  private idleWaiters: Array<() => void> = [];

  constructor(options: WindowRebuildOptions) {
    this.store = options.store;
    this.recent = options.recent;
    this.logger = options.logger;
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_REBUILD_CONCURRENCY);
    this.batch = Math.max(1, options.batch ?? DEFAULT_REBUILD_BATCH);
    this.maxQueued = Math.max(1, options.maxQueued ?? DEFAULT_REBUILD_QUEUE);
    this.lastState = this.store.state;
    this.unsubscribe = this.store.onStateChange((state) => this.onState(state));
  }

  /** Sensors rebuilt or queued since the last (re)connect (for tests and status). */
  get tracked(): number {
    return this.seen.size;
  }

  /** Called with the readings of every push; starts a rebuild for each sensor not seen yet. */
  notice(readings: readonly Reading[]): void {
    if (this.closed) return;
    for (const r of readings) {
      const name = `${r.sensor_type}:${r.sensor_id}`; // a sensor_type holds no ':' (validated)
      if (this.seen.has(name)) continue;
      if (this.queue.length >= this.maxQueued) continue; // full: a later push of this sensor tries again
      this.seen.add(name);
      this.queue.push({ key: { sensor_type: r.sensor_type, sensor_id: r.sensor_id }, name, before: r.timestamp, generation: this.generation });
    }
    this.pump();
  }

  /** Resolves when no rebuild is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops: drops what is queued, waits for the running queries, forgets the store. */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    this.queue.length = 0;
    await Promise.all([...this.running]);
    this.notifyIdle();
  }

  private onState(state: StoreState): void {
    // Back after a loss (or a first connect): the windows may be gone, so every sensor is rebuilt
    // again on its next push. Queued jobs of the old connection are dropped with the Set.
    if (state === 'connected' && this.lastState !== 'connected') {
      this.generation++;
      this.seen.clear();
      this.queue.length = 0;
    }
    this.lastState = state;
  }

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.queue.length > 0) {
      const jobs = this.queue.splice(0, this.batch);
      const run: Promise<void> = this.rebuild(jobs).finally(() => {
        this.running.delete(run);
        this.pump();
        this.notifyIdle();
      });
      this.running.add(run);
    }
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.running.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async rebuild(jobs: Job[]): Promise<void> {
    try {
      // Only what is older than the push that found each sensor: newer readings arrive through
      // the pushes themselves. An older one may still be on its way (stored by another instance,
      // its push not yet run): restored, not pushed, so that push is still new and broadcast.
      const rows = await this.recent(jobs, this.store.size);
      const older = rows
        .map((r) => ({
          ms: parseIsoMs(r.timestamp),
          reading: { sensor_type: r.sensor_type, sensor_id: r.sensor_id, value: r.value, unit: r.unit, location: r.location, timestamp: r.timestamp },
        }))
        .sort((a, b) => a.ms - b.ms)
        .map((o) => o.reading);
      if (older.length > 0 && !this.closed) await this.store.restoreMany(older);
      if (this.failing) {
        this.failing = false;
        this.logger.log(`hot window rebuild from the cold store works again (${describe(jobs)})`);
      }
    } catch (err) {
      // Retried on a later push of each sensor, unless the store reconnected since (then it is new anyway).
      for (const job of jobs) if (job.generation === this.generation) this.seen.delete(job.name);
      if (!this.failing && !this.closed) {
        this.failing = true; // logged once until a rebuild succeeds again
        this.logger.warn(`hot window rebuild from the cold store failed (${describe(jobs)}): ${(err as Error).message}`);
      }
    }
  }
}

/** The sensors of a rebuild for a log line: the first one's name, and how many more. */
function describe(jobs: readonly Job[]): string {
  return jobs.length === 1 ? jobs[0].name : `${jobs[0].name} and ${jobs.length - 1} more`;
}
