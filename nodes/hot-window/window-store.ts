import type { Reading, WindowSnapshot } from '../shared/types';

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
   * for the lot). Rejects without writing anything when a reading is malformed.
   */
  pushMany(readings: readonly Reading[]): Promise<void>;
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
  /** Resolves when the store answers; rejects when it does not (within a few seconds). */
  ping(): Promise<void>;
  /** Releases the connection and timers; later calls reject. */
  close(): Promise<void>;
}
