/**
 * The hot store in process: for a single instance without Redis. Same semantics as
 * `RedisWindowStore` (the shared suite in test/integration/window-store.test.ts proves it).
 */
import type { Reading, WindowEntry, WindowSnapshot } from '../shared/types';
import { type Clock, systemClock } from '../shared/clock';
import { isoFromEpochMs } from '../shared/iso-time';
import {
  assertContextName,
  assertSensorKey,
  parseSensorName,
  prepareEntries,
  sensorName,
} from './window-entry';
import { snapshotOf } from './window-stats';
import { BroadcastListeners, TickBatcher, unsubscribeHandle, type BroadcastListener, type Unsubscribe } from './broadcast';
import { assertLeadArgs } from './leadership';
import { StoreStateHolder } from './store-state';
import {
  DEFAULT_TTL_SECONDS,
  DEFAULT_WINDOW_SIZE,
  type SensorKey,
  type StoreLogger,
  type StoreState,
  type StoreStateListener,
  type WindowStore,
} from './window-store';

export interface MemoryWindowStoreOptions {
  size?: number;
  ttlSeconds?: number;
  clock?: Clock;
  /**
   * At most this many windows (default 10 000): a flood of new sensor ids must not exhaust memory.
   * When full, expired windows go first, then the least recently pushed one.
   */
  maxSensors?: number;
  logger?: StoreLogger;
}

interface StoredEntry {
  ms: number;
  value: number;
  /** Put back by `restoreMany`, not pushed: the reading's own push is new. */
  restored?: true;
}

interface Window {
  /** Sorted by ms ascending, one entry per ms. */
  entries: StoredEntry[];
  lastPush: number;
}

/** Index of the first entry with ms >= target. */
function lowerBound(entries: StoredEntry[], target: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid].ms < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class MemoryWindowStore implements WindowStore {
  readonly kind = 'memory' as const;
  readonly size: number;
  readonly ttlSeconds: number;
  private readonly ttlMs: number;
  private readonly clock: Clock;
  private readonly maxSensors: number;
  private readonly logger?: StoreLogger;
  /** Keyed `type:id`; Map order is push recency (a push re-inserts), oldest first. */
  private readonly windows = new Map<string, Window>();
  /** Context values kept as JSON text, so callers never share (or mutate) a stored object. */
  private readonly context = new Map<string, string>();
  private readonly stateHolder = new StoreStateHolder('connected');
  private sweepTimer?: NodeJS.Timeout;
  private evictionWarned = false;
  /** The broadcast channel in process: the messages of one tick reach each listener together. */
  private readonly listeners = new BroadcastListeners((err) => this.logger?.warn(`hot store broadcast: ${err.message}`));
  private readonly broadcast = new TickBatcher(async (text) => await this.listeners.deliver(text));

  constructor(options: MemoryWindowStoreOptions = {}) {
    this.size = options.size ?? DEFAULT_WINDOW_SIZE;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(this.size) || this.size < 1) throw new RangeError('size must be a positive integer');
    if (!(this.ttlSeconds > 0)) throw new RangeError('ttlSeconds must be positive');
    this.ttlMs = this.ttlSeconds * 1000;
    this.clock = options.clock ?? systemClock;
    this.maxSensors = options.maxSensors ?? 10_000;
    this.logger = options.logger;
    // Expired windows are also dropped when touched; the sweep frees those nobody touches again.
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(this.ttlMs, 60_000));
    this.sweepTimer.unref();
  }

  get state(): StoreState {
    return this.stateHolder.state;
  }

  onStateChange(listener: StoreStateListener): () => void {
    return this.stateHolder.on(listener);
  }

  async connect(): Promise<void> {
    this.assertOpen();
  }

  async pushMany(readings: readonly Reading[]): Promise<boolean[]> {
    this.assertOpen();
    const entries = prepareEntries(readings);
    const now = this.clock.now();
    const added: boolean[] = [];
    for (const { key, ms, value } of entries) {
      const name = sensorName(key);
      let w = this.liveWindow(name, now);
      if (w) this.windows.delete(name); // re-inserted below: keeps Map order = push recency
      else {
        this.makeRoom(now);
        w = { entries: [], lastPush: now };
      }
      added.push(this.insert(w.entries, ms, value));
      w.lastPush = now;
      this.windows.set(name, w);
    }
    return added;
  }

  async restoreMany(readings: readonly Reading[]): Promise<void> {
    this.assertOpen();
    const entries = prepareEntries(readings);
    const now = this.clock.now();
    for (const { key, ms, value } of entries) {
      const name = sensorName(key);
      let w = this.liveWindow(name, now);
      if (!w) {
        this.makeRoom(now);
        w = { entries: [], lastPush: now };
        this.windows.set(name, w);
      }
      this.insert(w.entries, ms, value, true);
    }
  }

  async read(key: SensorKey): Promise<WindowSnapshot> {
    this.assertOpen();
    assertSensorKey(key);
    return this.snapshot(sensorName(key), this.clock.now());
  }

  async readMany(keys: readonly SensorKey[]): Promise<WindowSnapshot[]> {
    this.assertOpen();
    keys.forEach(assertSensorKey);
    const now = this.clock.now();
    return keys.map((k) => this.snapshot(sensorName(k), now));
  }

  async activeSensors(): Promise<SensorKey[]> {
    this.assertOpen();
    this.sweep();
    return [...this.windows.keys()].map(parseSensorName);
  }

  async setContext(name: string, value: unknown): Promise<void> {
    this.assertOpen();
    assertContextName(name);
    const text = JSON.stringify(value ?? null);
    if (text === undefined) throw new TypeError('context value is not JSON-serialisable');
    this.context.set(name, text);
  }

  async getContext(name: string): Promise<unknown | null> {
    this.assertOpen();
    assertContextName(name);
    const text = this.context.get(name);
    return text === undefined ? null : JSON.parse(text);
  }

  async publish(messages: readonly unknown[]): Promise<void> {
    this.assertOpen();
    await this.broadcast.publish(messages);
  }

  subscribe(listener: BroadcastListener): Unsubscribe {
    this.assertOpen();
    return unsubscribeHandle(this.listeners.add(listener), Promise.resolve());
  }

  /** The only instance: always the leader. */
  async tryLead(name: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    assertLeadArgs(name, ttlMs);
    return true;
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  async close(): Promise<void> {
    if (this.stateHolder.state !== 'closed') this.broadcast.close(); // delivers what was published
    this.listeners.clear();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.windows.clear();
    this.context.clear();
    this.stateHolder.set('closed');
    this.stateHolder.clear();
  }

  /** Frees expired windows. */
  sweep(now = this.clock.now()): void {
    for (const [name, w] of this.windows) {
      if (this.isExpired(w, now)) this.windows.delete(name);
    }
  }

  private isExpired(w: Window, now: number): boolean {
    // Same boundary as a Redis key expiry: gone once more than the TTL has passed.
    return now - w.lastPush > this.ttlMs;
  }

  private liveWindow(name: string, now: number): Window | undefined {
    const w = this.windows.get(name);
    if (w && this.isExpired(w, now)) {
      this.windows.delete(name);
      return undefined;
    }
    return w;
  }

  private snapshot(name: string, now: number): WindowSnapshot {
    const w = this.liveWindow(name, now);
    const entries: WindowEntry[] = w ? w.entries.map((e) => ({ value: e.value, timestamp: isoFromEpochMs(e.ms) })) : [];
    return snapshotOf(entries, this.size);
  }

  /**
   * A push (`restored` false): false when the same pushed entry (timestamp and value) was there
   * already, as the Redis script. A restore (`restored` true) leaves a held timestamp as it is and
   * marks what it adds, which the reading's own push then replaces as new.
   */
  private insert(entries: StoredEntry[], ms: number, value: number, restored = false): boolean {
    const entry: StoredEntry = restored ? { ms, value, restored } : { ms, value };
    const n = entries.length;
    if (n === 0 || ms > entries[n - 1].ms) {
      entries.push(entry); // the usual case: readings arrive in order
    } else {
      const i = lowerBound(entries, ms);
      if (i < n && entries[i].ms === ms) {
        const held = entries[i];
        if (restored || (held.value === value && !held.restored)) return false; // held already
        entries[i] = entry; // a corrected value, or the push of a restored reading
      } else if (i === 0 && n >= this.size) return true; // older than the oldest of a full window
      else entries.splice(i, 0, entry);
    }
    if (entries.length > this.size) entries.splice(0, entries.length - this.size);
    return true;
  }

  private makeRoom(now: number): void {
    if (this.windows.size < this.maxSensors) return;
    this.sweep(now);
    while (this.windows.size >= this.maxSensors) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
      if (!this.evictionWarned) {
        this.evictionWarned = true;
        this.logger?.warn(`hot store: more than ${this.maxSensors} sensors; evicting the least recently pushed`);
      }
    }
  }

  private assertOpen(): void {
    if (this.stateHolder.state === 'closed') throw new Error('hot store is closed');
  }
}
