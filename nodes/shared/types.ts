/**
 * Shapes shared by every node: a validated reading as it travels through the pipeline,
 * the stored row, and the error shape of a rejected reading (CONTRACT section 1).
 */

/** A reading that passed `validateReading`: normalized, with the timestamp in UTC, millisecond precision. */
export interface Reading {
  sensor_type: string;
  sensor_id: string;
  value: number;
  unit: string;
  location: string;
  /** ISO 8601 UTC with milliseconds and `Z`, e.g. `2026-01-26T08:00:00.000Z`. */
  timestamp: string;
}

/** A reading as stored in `sensor_readings`. */
export interface ReadingRow extends Reading {
  id: number;
  created_at: string;
}

/** Why a reading was rejected: `{code, field, message}` as `msg.error` on the reject output. */
export interface ReadingError {
  code: string;
  field: string;
  message: string;
}

/** The known sensor types and their default units (CONTRACT section 1). */
export const DEFAULT_UNITS: Readonly<Record<string, string>> = Object.freeze({
  ldr: 'lux',
  current: 'A',
  voltage: 'V',
  temperature: 'celsius',
  humidity: '%',
  power: 'W',
  energy: 'Wh',
});

/** One entry of a hot window: what the AI needs of a reading. */
export interface WindowEntry {
  value: number;
  timestamp: string;
}

/** Stats of a hot window, as `GET /api/sensor-readings/buffer/` shows them. */
export interface WindowStats {
  count: number;
  is_full: boolean;
  latest_value?: number;
  latest_timestamp?: string;
  min_value?: number;
  max_value?: number;
  avg_value?: number;
}

export interface WindowSnapshot {
  readings: WindowEntry[];
  stats: WindowStats;
}
