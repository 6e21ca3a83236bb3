/**
 * What the simulated Pi publishes: one stream per (location, sensor type), its topic, readings in
 * the exact payload shape of CONTRACT section 1, and malformed payloads for demos of the reject
 * path. Pure functions.
 */
import { House, unitOf, type SensorType } from './house';
import type { Reading } from '../../nodes/shared/types';

export interface Stream {
  location: string;
  sensor_type: SensorType;
  /** `{type}_{n}` with n the location's position (1-based): unique per type across locations. */
  sensor_id: string;
  unit: string;
  topic: string;
}

/** A reading as the Pi sends it: the contract's shape, every field present. */
export type SimReading = Reading;

/** Every (location, sensor) pair, locations outer: the order readings are taken in. */
export function makeStreams(prefix: string, locations: readonly string[], sensors: readonly SensorType[]): Stream[] {
  const streams: Stream[] = [];
  locations.forEach((location, i) => {
    for (const type of sensors) {
      streams.push({
        location,
        sensor_type: type,
        sensor_id: `${type}_${i + 1}`,
        unit: unitOf(type),
        topic: `${prefix}/sensors/${location}/${type}`,
      });
    }
  });
  return streams;
}

export function readingAt(house: House, stream: Stream, t: number): SimReading {
  return {
    sensor_type: stream.sensor_type,
    sensor_id: stream.sensor_id,
    value: house.value(stream.sensor_type, stream.location, t),
    unit: stream.unit,
    location: stream.location,
    timestamp: new Date(t).toISOString(),
  };
}

/**
 * The malformed payloads `--bad-every` sends, in turn, each with the error code the pipeline's
 * validator gives it (the unit tests hold the validator to these).
 */
export const BAD_KINDS = [
  { kind: 'truncated_json', code: 'invalid_json' },
  { kind: 'text_value', code: 'not_a_number' },
  { kind: 'missing_sensor_id', code: 'required' },
  { kind: 'clock_not_set', code: 'timestamp_too_old' },
  { kind: 'bad_location', code: 'invalid_format' },
  { kind: 'boolean_value', code: 'not_a_number' },
] as const;

export type BadKind = (typeof BAD_KINDS)[number]['kind'];

/** A malformed reading of `kind` (as an object), or null for `truncated_json`, which is text only. */
export function badReading(kind: BadKind, good: SimReading): Record<string, unknown> | null {
  switch (kind) {
    case 'truncated_json':
      return null;
    case 'text_value':
      return { ...good, value: 'n/a' };
    case 'missing_sensor_id': {
      const { sensor_id: _omitted, ...rest } = good;
      return rest;
    }
    case 'clock_not_set':
      // A Pi without a real-time clock and no network time reports 1970.
      return { ...good, timestamp: new Date(Math.floor(Date.parse(good.timestamp) % 86400000)).toISOString() };
    case 'bad_location':
      return { ...good, location: 'Living Room!' };
    case 'boolean_value':
      return { ...good, value: true };
  }
}

/**
 * The payload text of one message: one reading as an object, or (`array`, a batching Pi) the
 * readings as a JSON array. With `bad`, the first reading is replaced by a malformed one (or the
 * whole text is cut short).
 */
export function encodeMessage(readings: readonly SimReading[], opts: { array: boolean; bad?: BadKind }): string {
  const items: unknown[] = readings.slice();
  if (opts.bad !== undefined && readings.length > 0) {
    const broken = badReading(opts.bad, readings[0]);
    if (broken === null) {
      const whole = JSON.stringify(opts.array ? readings : readings[0]);
      return whole.slice(0, Math.max(1, Math.floor(whole.length / 2)));
    }
    items[0] = broken;
  }
  return JSON.stringify(opts.array ? items : items[0]);
}
