import type { Reading, WindowSnapshot } from '../shared/types';
import type { BroadcastListener, Unsubscribe } from './broadcast';

export type { BroadcastListener, Unsubscribe } from './broadcast';

/** Identifies one sensor's window. */
export interface SensorKey {
  sensor_type: string;
  sensor_id: string;
}

/**
 * Connection state of a store, for the nodes' status. The in-process store is always
 * `connected` until closed; the Redis store follows its client (`ready` → connected, a lost
 * connection → disconnected while it reconnects with backoff).
 */
export type StoreState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export type StoreStateListener = (state: StoreState, error?: Error) => void;

/** Where a store reports what it cannot throw (a lost connection, a failed reconnect). */
export interface StoreLogger {
  log(message: string): void;
  warn(message: string): void;
}

/** Defaults of the window length (SENSOR_BUFFER_SIZE), the idle TTL and the Redis key prefix. */
export const DEFAULT_WINDOW_SIZE = 60;
export const DEFAULT_TTL_SECONDS = 3600;
export const DEFAULT_PREFIX = 'hypervolt:';

/**
 * The hot store: per sensor the last N readings (oldest first, one entry per timestamp), an idle
 * expiry, a registry of active sensors, and a few named context values (latest carbon intensity,
 * latest weather) beside the windows so the AI reads its whole context from one place.
 * Two implementations: Redis (`RedisWindowStore`) and in-process (`MemoryWindowStore`); the same
 * test suite runs against both.
 *
 * Semantics shared by both:
 * - a reading with the timestamp of an entry already in its window replaces that entry's value
 *   (a redelivered reading does not add a second entry);
 * - a reading older than the oldest entry of a full window is dropped;
 * - a window expires `ttlSeconds` after its last push; so does its sensor's place in the registry.
 */
export interface WindowStore {
  readonly kind: 'redis' | 'memory';
  /** Window length (SENSOR_BUFFER_SIZE, default 60). */
  readonly size: number;
  /** Idle expiry of a window, in seconds (default 3600). */
  readonly ttlSeconds: number;
  /** Current connection state. */
  readonly state: StoreState;
  /** Calls `listener` on every state change; returns a function that removes it. */
  onStateChange(listener: StoreStateListener): () => void;
  /** Opens the connection (no-op in process). Rejects when the first attempt fails; retries go on. */
  connect(): Promise<void>;
  /**
   * Adds readings to their windows: atomic per reading, pipelined across readings (one round trip
   * for the lot). Rejects without writing anything when a reading is malformed. Resolves with one
   * flag per reading: false when its window already held the same entry (same timestamp and
   * value: a redelivery), true otherwise (also for a reading too old to enter a full window).
   * Atomic per reading, so among instances sharing the store exactly one push of a reading sees true.
   */
  pushMany(readings: readonly Reading[]): Promise<boolean[]>;
  /**
   * Puts stored readings back into their windows after the store lost them (the window rebuild):
   * a reading whose timestamp its window holds already is left out, so nothing pushed is changed.
   * A restored entry reads like any other but does not count as pushed: a later push of the same
   * reading is new (true), and only then it is broadcast. A reading can be in the cold store
   * before its own push (another instance stored it first): restoring it must not make that push
   * look like a redelivery. Rejects without writing anything when a reading is malformed.
   */
  restoreMany(readings: readonly Reading[]): Promise<void>;
  /** One sensor's window, oldest first, with its stats. */
  read(key: SensorKey): Promise<WindowSnapshot>;
  /** Several windows in one round trip, in the order of `keys`. */
  readMany(keys: readonly SensorKey[]): Promise<WindowSnapshot[]>;
  /** Sensors that received a reading within the idle TTL, least recently pushed first. */
  activeSensors(): Promise<SensorKey[]>;
  /** Stores a named context value (JSON-serialisable), e.g. `carbon_intensity`, `weather`. */
  setContext(name: string, value: unknown): Promise<void>;
  /** A named context value, or null when none. */
  getContext(name: string): Promise<unknown | null>;
  /**
   * Sends messages (JSON-serialisable) to every subscriber of the store's broadcast channel, on
   * every instance that shares the store (Redis: channel `{prefix}broadcast`), this one included.
   * The messages of one tick go together (one PUBLISH of a JSON array). Resolves once sent;
   * rejects when a message cannot be serialised or the store is down. At most once: a subscriber
   * that is disconnected at that moment misses the message.
   */
  publish(messages: readonly unknown[]): Promise<void>;
  /**
   * Calls `listener` with each message published on the channel (a parsed copy), in the order of
   * publication per publisher; returns a function that unsubscribes, whose `ready` resolves once
   * the subscription is active. Survives reconnects (what is published during one is missed).
   */
  subscribe(listener: BroadcastListener): Unsubscribe;
  /**
   * Leadership of the named job (e.g. `carbon-fetch`) among the instances sharing the store:
   * true when this store holds the lock now (taken, or held and extended by `ttlMs`), false when
   * another holds it. A leader that stops extending loses the lock `ttlMs` after its last call.
   * In process: always true (the only instance). Rejects when the store is down.
   */
  tryLead(name: string, ttlMs: number): Promise<boolean>;
  /** Resolves when the store answers; rejects when it does not (within a few seconds). */
  ping(): Promise<void>;
  /** Sends what is pending, releases held leaderships, the connections and timers; later calls reject. */
  close(): Promise<void>;
}
