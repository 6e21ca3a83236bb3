import type { Reading, WindowSnapshot } from '../shared/types';

/** Identifies one sensor's window. */
export interface SensorKey {
  sensor_type: string;
  sensor_id: string;
}

/**
 * The hot store: per sensor the last N readings (oldest first, one entry per timestamp), an idle
 * expiry, a registry of active sensors, and a few named context values (latest carbon intensity,
 * latest weather) beside the windows so the AI reads its whole context from one place.
 * Two implementations: Redis (`RedisWindowStore`) and in-process (`MemoryWindowStore`); the same
 * test suite runs against both.
 */
export interface WindowStore {
  readonly kind: 'redis' | 'memory';
  /** Window length (SENSOR_BUFFER_SIZE, default 60). */
  readonly size: number;
  /** Adds readings to their windows: atomic per reading, pipelined across readings (one round trip for the lot). */
  pushMany(readings: readonly Reading[]): Promise<void>;
  /** One sensor's window, oldest first, with its stats. */
  read(key: SensorKey): Promise<WindowSnapshot>;
  /** Sensors that received a reading within the idle TTL. */
  activeSensors(): Promise<SensorKey[]>;
  /** Stores a named context value (JSON-serialisable), e.g. `carbon_intensity`, `weather`. */
  setContext(name: string, value: unknown): Promise<void>;
  /** A named context value, or null when none. */
  getContext(name: string): Promise<unknown | null>;
  /** Resolves when the store answers; rejects when it does not. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
