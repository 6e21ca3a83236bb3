/**
 * What `cold-store` accepts on its input, checked before anything is queued: a bad message gets
 * a clear error of its own and never reaches (or blocks) a batch shared with other messages.
 * Readings normally come from `sensor-validate`; these checks only guard the table's shape
 * (the column lengths of the schema), they are not the contract's validation.
 */
import type { GridData, Reading } from '../shared/db';
import { canonicalIso } from '../shared/iso-time';
import { DEFAULT_UNITS } from '../shared/types';

export class InputError extends Error {
  readonly code = 'INVALID_INPUT';
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** Column limits of `sensor_readings` and `grid_data` (migrations, CONTRACT sections 1 and 4). */
const LIMITS = { sensor_type: 32, sensor_id: 64, unit: 20, location: 100, data_type: 32, zone: 64 } as const;

export const GRID_DATA_TYPES: readonly string[] = [
  'carbon_intensity',
  'weather',
  'electricity_price',
  'carbon_forecast',
  'weather_forecast',
];

/** At most this many items per message, so one message cannot take the whole queue. */
export const MAX_ITEMS_PER_MESSAGE = 10_000;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(o: Record<string, unknown>, field: keyof typeof LIMITS, where: string, required: boolean, dflt = ''): string {
  const v = o[field];
  if (v === undefined || v === null) {
    if (required) throw new InputError(`${where}.${field} is required`);
    return dflt;
  }
  if (typeof v !== 'string') throw new InputError(`${where}.${field} must be a string`);
  if (required && v.length === 0) throw new InputError(`${where}.${field} must not be empty`);
  if (v.length > LIMITS[field]) throw new InputError(`${where}.${field} is longer than ${LIMITS[field]} characters`);
  return v;
}

function finite(o: Record<string, unknown>, field: string, where: string): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new InputError(`${where}.${field} must be a finite number`);
  return v;
}

function isoTime(o: Record<string, unknown>, where: string): string {
  const v = o.timestamp;
  // The identity of a reading includes its timestamp: store one canonical form.
  const iso = typeof v === 'string' ? canonicalIso(v) : v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString() : null;
  if (iso === null) throw new InputError(`${where}.timestamp must be an ISO 8601 date-time`);
  return iso;
}

function items(payload: unknown, what: string): { list: unknown[]; single: boolean } {
  if (Array.isArray(payload)) {
    if (payload.length > MAX_ITEMS_PER_MESSAGE) {
      throw new InputError(`msg.payload has ${payload.length} ${what}s, at most ${MAX_ITEMS_PER_MESSAGE} per message`);
    }
    return { list: payload, single: false };
  }
  if (isObject(payload)) return { list: [payload], single: true };
  throw new InputError(`msg.payload must be a ${what} object or an array of them`);
}

/**
 * `msg.payload` (a Reading or Reading[]) as readings holding only the table's fields.
 * `single` tells whether the answer should be one row or an array.
 */
export function readingsFromPayload(payload: unknown): { readings: Reading[]; single: boolean } {
  const { list, single } = items(payload, 'reading');
  const readings = list.map((raw, i) => {
    const where = single ? 'msg.payload' : `msg.payload[${i}]`;
    if (!isObject(raw)) throw new InputError(`${where} must be a reading object`);
    const sensor_type = text(raw, 'sensor_type', where, true);
    return {
      sensor_type,
      sensor_id: text(raw, 'sensor_id', where, true),
      value: finite(raw, 'value', where),
      unit: text(raw, 'unit', where, false, DEFAULT_UNITS[sensor_type] ?? ''),
      location: text(raw, 'location', where, false),
      timestamp: isoTime(raw, where),
    };
  });
  return { readings, single };
}

/** `msg.payload` (one grid data row or an array) as rows holding only the table's fields. */
export function gridRowsFromPayload(payload: unknown): { rows: GridData[]; single: boolean } {
  const { list, single } = items(payload, 'grid data row');
  const rows = list.map((raw, i) => {
    const where = single ? 'msg.payload' : `msg.payload[${i}]`;
    if (!isObject(raw)) throw new InputError(`${where} must be a grid data object`);
    const data_type = text(raw, 'data_type', where, true);
    if (!GRID_DATA_TYPES.includes(data_type)) {
      throw new InputError(`${where}.data_type must be one of ${GRID_DATA_TYPES.join(', ')}`);
    }
    const metadata = raw.metadata ?? {};
    if (!isObject(metadata)) throw new InputError(`${where}.metadata must be an object`);
    return {
      data_type,
      value: finite(raw, 'value', where),
      unit: text(raw, 'unit', where, false),
      zone: text(raw, 'zone', where, false),
      metadata,
      timestamp: isoTime(raw, where),
    };
  });
  return { rows, single };
}

/** `retentionDays` as configured (`${RETENTION_DAYS}` may be empty): a positive number, else 7. */
export function parseRetentionDays(value: unknown, dflt = 7): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isFinite(n) && n > 0 ? n : dflt;
}

/** A positive integer option (batch size, flush ms, max queued), else the default. */
export function parsePositiveInt(value: unknown, dflt: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  return Number.isInteger(n) && n > 0 ? n : dflt;
}
