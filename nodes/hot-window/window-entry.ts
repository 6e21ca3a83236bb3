/**
 * What both window stores agree on before they store anything: which sensor keys are allowed,
 * how a reading becomes a window entry, and how a sensor is named (`type:id`).
 */
import type { Reading } from '../shared/types';
import { parseIsoMs } from '../shared/iso-time';
import type { SensorKey } from './window-store';

/**
 * A sensor_id: 1 to 64 of `A-Z a-z 0-9 _ . : -` (CONTRACT section 1). A sensor_type takes the
 * same characters but `:`, so `type:id` (a Redis key part, a registry member, a context key)
 * names exactly one sensor.
 */
const SENSOR_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const SENSOR_TYPE_RE = /^[A-Za-z0-9_.-]{1,64}$/;
/** Context names end up in keys and hash fields too. */
const CONTEXT_NAME_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

export class WindowInputError extends Error {
  override name = 'WindowInputError';
}

export function isSensorType(v: unknown): v is string {
  return typeof v === 'string' && SENSOR_TYPE_RE.test(v);
}

export function isSensorId(v: unknown): v is string {
  return typeof v === 'string' && SENSOR_ID_RE.test(v);
}

export function isSensorKey(key: SensorKey): boolean {
  return isSensorType(key.sensor_type) && isSensorId(key.sensor_id);
}

export function assertSensorKey(key: SensorKey): void {
  if (!key || !isSensorKey(key)) {
    throw new WindowInputError(
      'sensor_type and sensor_id must be 1 to 64 of A-Z a-z 0-9 _ . - (and : in sensor_id)',
    );
  }
}

export function assertContextName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !CONTEXT_NAME_RE.test(name)) {
    throw new WindowInputError('a context name must be 1 to 64 of A-Z a-z 0-9 _ . : -');
  }
}

/** `type:id`, the name of a sensor in the registry and in the context payload. */
export function sensorName(key: SensorKey): string {
  return `${key.sensor_type}:${key.sensor_id}`;
}

/** The inverse of `sensorName` (a type holds no `:`, so the first one splits). */
export function parseSensorName(name: string): SensorKey {
  const i = name.indexOf(':');
  return { sensor_type: name.slice(0, i), sensor_id: name.slice(i + 1) };
}

/** A reading reduced to what a window keeps, with its timestamp as epoch milliseconds. */
export interface PreparedEntry {
  key: SensorKey;
  ms: number;
  value: number;
}

/**
 * Checks one reading and reduces it to a window entry; throws `WindowInputError` naming the
 * field. Readings normally come from sensor-validate; this guards against a miswired flow.
 */
export function prepareEntry(reading: Reading, index = 0): PreparedEntry {
  const where = `reading ${index}`;
  if (reading === null || typeof reading !== 'object' || Array.isArray(reading)) {
    throw new WindowInputError(`${where}: not an object`);
  }
  if (!isSensorType(reading.sensor_type)) {
    throw new WindowInputError(`${where}: sensor_type must be 1 to 64 of A-Z a-z 0-9 _ . -`);
  }
  if (!isSensorId(reading.sensor_id)) {
    throw new WindowInputError(`${where}: sensor_id must be 1 to 64 of A-Z a-z 0-9 _ . : -`);
  }
  if (typeof reading.value !== 'number' || !Number.isFinite(reading.value)) {
    throw new WindowInputError(`${where}: value must be a finite number`);
  }
  const ms = typeof reading.timestamp === 'string' ? parseIsoMs(reading.timestamp) : NaN;
  if (!Number.isFinite(ms)) {
    throw new WindowInputError(`${where}: timestamp must be an ISO 8601 date-time`);
  }
  return { key: { sensor_type: reading.sensor_type, sensor_id: reading.sensor_id }, ms, value: reading.value };
}

/** Checks every reading before any is stored, so a bad batch stores nothing. */
export function prepareEntries(readings: readonly Reading[]): PreparedEntry[] {
  if (!Array.isArray(readings)) throw new WindowInputError('readings must be an array');
  return readings.map((r, i) => prepareEntry(r, i));
}
