/**
 * The grid data row the fetch nodes produce (CONTRACT section 4, table `grid_data`, without
 * `id` and `created_at`): `cold-store` upserts it on (data_type, zone, timestamp).
 */
import { FetchError } from './errors';

export type GridDataType = 'carbon_intensity' | 'weather' | 'electricity_price' | 'carbon_forecast' | 'weather_forecast';

export interface GridRow {
  data_type: GridDataType;
  value: number;
  unit: string;
  zone: string;
  metadata: Record<string, unknown>;
  /** The API's own time of the value, ISO 8601 UTC with milliseconds and `Z`. */
  timestamp: string;
}

// An ISO 8601 date-time with a zone (Z or an offset): what both APIs send. Dates alone and
// zone-less times would be read in local time by Date.parse, so they are refused.
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** An API date-time string as ISO UTC with ms, or an `invalid_response` error naming the field. */
export function isoFromApi(value: unknown, field: string, api: string): string {
  if (typeof value !== 'string' || !ISO_WITH_ZONE.test(value.trim())) {
    throw new FetchError('invalid_response', `${api}: ${field} is not an ISO 8601 date-time`);
  }
  const ms = Date.parse(value.trim());
  if (!Number.isFinite(ms)) throw new FetchError('invalid_response', `${api}: ${field} is not a valid date-time`);
  return new Date(ms).toISOString();
}

/** Unix seconds (OpenWeatherMap `dt`) as ISO UTC with ms. */
export function isoFromUnixSeconds(value: unknown, field: string, api: string): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new FetchError('invalid_response', `${api}: ${field} is not a unix time`);
  }
  const d = new Date(value * 1000);
  if (!Number.isFinite(d.getTime())) throw new FetchError('invalid_response', `${api}: ${field} is out of range`);
  return d.toISOString();
}

/** A required finite number, or an `invalid_response` error. */
export function requireNumber(value: unknown, field: string, api: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new FetchError('invalid_response', `${api}: ${field} is missing or not a number`);
  }
  return value;
}

/** An optional number: null when absent, an error when present but not a finite number. */
export function optionalNumber(value: unknown, field: string, api: string): number | null {
  if (value === undefined || value === null) return null;
  return requireNumber(value, field, api);
}

/** An optional string: null when absent or not a string (free text the row only reports). */
export function optionalString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** An optional boolean: null when absent. */
export function optionalBoolean(value: unknown, field: string, api: string): boolean | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'boolean') throw new FetchError('invalid_response', `${api}: ${field} is not a boolean`);
  return value;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The body as an object, or an `invalid_response` error. */
export function requireObject(value: unknown, field: string, api: string): Record<string, unknown> {
  if (!isObject(value)) throw new FetchError('invalid_response', `${api}: ${field} is not an object`);
  return value;
}
