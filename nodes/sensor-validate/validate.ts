/**
 * Validation of sensor readings (CONTRACT section 1), free of Node-RED.
 *
 * `validatePayload` takes what an `mqtt in` or `http in` node delivers (a Buffer, a string, an
 * object or an array) and splits it into normalized `Reading`s and rejections, each rejection
 * with one stable `{code, field, message}`. Nothing here throws for anything a client sends.
 *
 * It runs once per MQTT message on the ingest path, so it is written for speed: regexes are
 * compiled once, options are resolved once per options object, timestamps are parsed by a regex
 * and `Date.UTC` (no `Date` object for the common canonical forms), and no closure is created
 * per reading.
 *
 * Choices where the contract is silent (documented in the node's help):
 * - `null` or an empty string in an optional field (unit, location, timestamp) counts as absent;
 *   `null` in sensor_type counts as absent (the topic may supply it); `null` value is `required`.
 * - sensor_id may be a non-negative integer number (DRF's CharField accepts it); it becomes a string.
 * - unit of an extra type without a default unit: `''`. location with neither payload nor topic: `''`.
 * - timestamp: ISO 8601 extended format, `T`/`t`/space between date and time, seconds optional,
 *   fraction truncated to milliseconds, offset `Z`, `±hh:mm`, `±hhmm` or `±hh`; a date alone is
 *   rejected (a reading needs a time of day); a JavaScript `Date` (from a function node) is accepted.
 */
import { isUtf8 } from 'buffer';
import type { Clock } from '../shared/clock';
import { isoFromEpochMs } from '../shared/iso-time';
import { DEFAULT_UNITS, type Reading, type ReadingError } from '../shared/types';

// ---- limits and defaults -------------------------------------------------------------------

export const MAX_PAYLOAD_BYTES = 65536;
export const MAX_BATCH = 1000;
/** A reading may be at most this far ahead of the clock (Pi clocks drift a little). */
export const MAX_FUTURE_MS = 5 * 60 * 1000;
export const DEFAULT_RETENTION_DAYS = 7;
export const DEFAULT_TOPIC_PREFIX = 'HyperVolt';
export const MAX_SENSOR_TYPE_LENGTH = 32;
export const MAX_SENSOR_ID_LENGTH = 64;
export const MAX_UNIT_LENGTH = 20;
export const MAX_LOCATION_LENGTH = 100;

export const KNOWN_SENSOR_TYPES: readonly string[] = Object.freeze(Object.keys(DEFAULT_UNITS));

export interface ValueRange {
  min?: number;
  max?: number;
}

/** Built-in ranges; `ValidateOptions.ranges` replaces the range of a type as a whole. */
export const DEFAULT_RANGES: Readonly<Record<string, Readonly<ValueRange>>> = Object.freeze({
  humidity: { min: 0, max: 100 },
  ldr: { min: 0 },
  current: { min: 0 },
  power: { min: 0 },
  energy: { min: 0 },
});

/** Every error code this module produces, with when it happens (the help text lists the same). */
export const ERROR_CODES = Object.freeze({
  invalid_utf8: 'the payload bytes are not valid UTF-8',
  payload_too_large: 'the payload is larger than 64 KiB',
  invalid_json: 'the payload is not valid JSON',
  not_an_object: 'the payload, or an element of the array, is not a JSON object',
  empty_batch: 'the payload is an empty array',
  batch_too_large: 'the payload is an array of more than 1000 readings',
  required: 'a required field is missing or null',
  not_a_string: 'a field that must be a string is not',
  too_long: 'a string field is longer than its limit',
  invalid_format: 'a string field has characters or a shape it may not have',
  unknown_sensor_type: 'sensor_type is well formed but not a known or allowed type',
  type_mismatch: "sensor_type differs from the topic's",
  location_mismatch: "location differs from the topic's",
  not_a_number: 'value is not a finite number or a decimal numeric string',
  out_of_range: "value is outside its type's range",
  invalid_timestamp: 'timestamp is not a valid ISO 8601 date and time (or time of day)',
  timestamp_in_future: 'timestamp is more than 5 minutes ahead of the clock',
  timestamp_too_old: 'timestamp is older than the retention period',
});

export type ErrorCode = keyof typeof ERROR_CODES;

// ---- options -----------------------------------------------------------------------------------

export interface ValidateOptions {
  /** Sensor types allowed besides the known ones. */
  extraTypes?: string[];
  /** Per-type value ranges; an entry replaces the built-in range of that type. */
  ranges?: Record<string, ValueRange>;
  /** Readings older than this many days are rejected. */
  retentionDays: number;
  clock: Clock;
  /** Default 65536. */
  maxPayloadBytes?: number;
  /** Default 1000. */
  maxBatch?: number;
}

/** Options checked and compiled into lookup tables; make one with `resolveOptions`. */
export interface ResolvedOptions {
  readonly types: ReadonlySet<string>;
  /** Maps, not objects: a type named `constructor` must not find `Object.prototype.constructor`. */
  readonly units: ReadonlyMap<string, string>;
  readonly ranges: ReadonlyMap<string, { readonly min: number; readonly max: number }>;
  readonly retentionMs: number;
  readonly clock: Clock;
  readonly maxPayloadBytes: number;
  readonly maxBatch: number;
}

/** A setting that cannot work (thrown at start, never for a reading). */
export class OptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionsError';
  }
}

const SENSOR_TYPE_RE = /^[a-z][a-z0-9_]{0,31}$/;
const SENSOR_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const LOCATION_RE = /^[a-z0-9_-]{1,100}$/;
/** Decimal notation only: `0x10`, `0b1`, `Infinity`, `1_000` and `''` are not numbers here. */
const DECIMAL_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const hasOwn = Object.prototype.hasOwnProperty;

const resolvedCache = new WeakMap<object, ResolvedOptions>();
const RESOLVED = Symbol('resolved');

function isResolved(o: ValidateOptions | ResolvedOptions): o is ResolvedOptions {
  return (o as unknown as Record<symbol, unknown>)[RESOLVED] === true;
}

/**
 * Checks and compiles options. Throws `OptionsError` with a clear message for a bad setting.
 * `validateReading` and `validatePayload` also accept plain `ValidateOptions` (resolved once per
 * object and cached, so treat an options object as immutable once used).
 */
export function resolveOptions(opts: ValidateOptions | ResolvedOptions): ResolvedOptions {
  if (isResolved(opts)) return opts;
  const cached = resolvedCache.get(opts);
  if (cached) return cached;

  if (!opts || typeof opts !== 'object') throw new OptionsError('options are required');
  if (!opts.clock || typeof opts.clock.now !== 'function') throw new OptionsError('options.clock must have a now() method');
  const days = opts.retentionDays;
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0) {
    throw new OptionsError(`retentionDays must be a positive number, got ${show(days)}`);
  }
  const maxPayloadBytes = positiveInteger(opts.maxPayloadBytes, MAX_PAYLOAD_BYTES, 'maxPayloadBytes');
  const maxBatch = positiveInteger(opts.maxBatch, MAX_BATCH, 'maxBatch');

  const types = new Set<string>(KNOWN_SENSOR_TYPES);
  const units = new Map<string, string>();
  for (const t of KNOWN_SENSOR_TYPES) units.set(t, DEFAULT_UNITS[t]);
  for (const t of opts.extraTypes ?? []) {
    if (typeof t !== 'string' || !SENSOR_TYPE_RE.test(t)) {
      throw new OptionsError(
        `extra type ${show(t)} is not a valid sensor type (a lowercase letter, then up to 31 of a-z 0-9 _)`,
      );
    }
    types.add(t);
  }

  const ranges = new Map<string, { min: number; max: number }>();
  for (const t of Object.keys(DEFAULT_RANGES)) {
    const r = DEFAULT_RANGES[t];
    ranges.set(t, { min: r.min ?? -Infinity, max: r.max ?? Infinity });
  }
  const given = opts.ranges ?? {};
  if (given === null || typeof given !== 'object' || Array.isArray(given)) {
    throw new OptionsError('ranges must be an object of {"sensor_type": {"min": n, "max": n}}');
  }
  for (const t of Object.keys(given)) {
    if (!types.has(t)) throw new OptionsError(`ranges: ${show(t)} is not a known sensor type (add it to the extra types)`);
    const r = (given as Record<string, unknown>)[t];
    if (r === null || typeof r !== 'object' || Array.isArray(r)) {
      throw new OptionsError(`ranges.${t} must be an object such as {"min": 0, "max": 100}`);
    }
    for (const k of Object.keys(r)) {
      if (k !== 'min' && k !== 'max') throw new OptionsError(`ranges.${t}: unknown key ${show(k)} (only min and max)`);
    }
    const { min, max } = r as Record<string, unknown>;
    for (const [k, v] of [['min', min], ['max', max]] as const) {
      if (v !== undefined && v !== null && (typeof v !== 'number' || !Number.isFinite(v))) {
        throw new OptionsError(`ranges.${t}.${k} must be a finite number, got ${show(v)}`);
      }
    }
    const lo = typeof min === 'number' ? min : -Infinity;
    const hi = typeof max === 'number' ? max : Infinity;
    if (lo > hi) throw new OptionsError(`ranges.${t}: min ${lo} is greater than max ${hi}`);
    ranges.set(t, { min: lo, max: hi });
  }

  const resolved: ResolvedOptions = Object.freeze({
    [RESOLVED]: true,
    types,
    units,
    ranges,
    retentionMs: days * 86_400_000,
    clock: opts.clock,
    maxPayloadBytes,
    maxBatch,
  });
  resolvedCache.set(opts, resolved);
  return resolved;
}

function positiveInteger(v: unknown, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new OptionsError(`${name} must be a positive integer, got ${show(v)}`);
  }
  return v;
}

/** The node's "extra types" setting: `"co2, pressure"` → `['co2', 'pressure']` (checked by `resolveOptions`). */
export function parseExtraTypes(text: unknown): string[] {
  if (text === undefined || text === null) return [];
  if (typeof text !== 'string') throw new OptionsError('extra types must be a comma-separated list');
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** The node's "ranges" setting, a JSON text: `''` → `{}`; bad JSON → `OptionsError`. */
export function parseRanges(text: unknown): Record<string, ValueRange> {
  if (text === undefined || text === null) return {};
  if (typeof text === 'object' && !Array.isArray(text)) return text as Record<string, ValueRange>;
  if (typeof text !== 'string') throw new OptionsError('ranges must be a JSON object');
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new OptionsError(`ranges is not valid JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new OptionsError('ranges must be a JSON object such as {"temperature": {"min": -40, "max": 85}}');
  }
  return parsed as Record<string, ValueRange>;
}

/**
 * The node's retention setting: a number or numeric string; empty, or a `${VAR}` that Node-RED
 * left as is because the variable is not set, means the default (7).
 */
export function parseRetentionDays(v: unknown, fallback = DEFAULT_RETENTION_DAYS): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'string') {
    const t = v.trim();
    if (t === '' || /^\$\{[^}]*\}$/.test(t)) return fallback;
    if (!DECIMAL_RE.test(t)) throw new OptionsError(`retention days must be a positive number, got ${show(v)}`);
    v = Number(t);
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new OptionsError(`retention days must be a positive number, got ${show(v)}`);
  }
  return v;
}

// ---- topic -------------------------------------------------------------------------------------

export interface TopicParts {
  prefix: string;
  location: string;
  sensor_type: string;
}

/**
 * `{prefix}/sensors/{location}/{sensor_type}` → its parts; anything else → null. The prefix
 * may contain slashes (or be empty); the last three levels decide. The segments are returned as
 * they are: validation checks them like payload values.
 */
export function parseTopic(topic: unknown): TopicParts | null {
  if (typeof topic !== 'string') return null;
  const last = topic.lastIndexOf('/');
  if (last <= 0 || last === topic.length - 1) return null;
  const mid = topic.lastIndexOf('/', last - 1);
  if (mid <= 0 || mid === last - 1) return null;
  const sensors = topic.lastIndexOf('/', mid - 1);
  if (topic.slice(sensors + 1, mid) !== 'sensors') return null;
  return {
    prefix: sensors < 0 ? '' : topic.slice(0, sensors),
    location: topic.slice(mid + 1, last),
    sensor_type: topic.slice(last + 1),
  };
}

const SAFE_TOPIC_LEVEL = /^[A-Za-z0-9_.:-]{1,100}$/;
const UNSAFE_PREFIX = /[+#\u0000]/;

/**
 * `{prefix}/errors/{location}/{sensor_type}` for a rejection. Never a wildcard, never an extra
 * level: a location or type that is not a plain topic level becomes `unknown`, a prefix that is
 * empty, reserved (`$...`) or has a wildcard becomes `HyperVolt`.
 */
export function errorTopic(prefix: unknown, location: unknown, sensorType: unknown): string {
  const p =
    typeof prefix === 'string' && prefix !== '' && prefix[0] !== '$' && prefix.length <= 200 && !UNSAFE_PREFIX.test(prefix)
      ? prefix
      : DEFAULT_TOPIC_PREFIX;
  const loc = typeof location === 'string' && SAFE_TOPIC_LEVEL.test(location) ? location : 'unknown';
  const type = typeof sensorType === 'string' && SAFE_TOPIC_LEVEL.test(sensorType) ? sensorType : 'unknown';
  return `${p}/errors/${loc}/${type}`;
}

// ---- one reading -------------------------------------------------------------------------------

export interface ReadingContext {
  /** Location and type from the message topic, when it has the sensors shape. */
  topicLocation?: string;
  topicType?: string;
  /** The time of receipt (ms); default `clock.now()`. One value per payload keeps a batch consistent. */
  now?: number;
}

export type ReadingResult = { ok: true; reading: Reading } | { ok: false; error: ReadingError };

function fail(code: ErrorCode, field: string, message: string): { ok: false; error: ReadingError } {
  return { ok: false, error: { code, field, message } };
}

/** An own property only: a polluted `Object.prototype` or a crafted prototype supplies nothing. */
function own(o: object, key: string): unknown {
  return hasOwn.call(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

/** Checks and normalizes one reading; the result is a fresh object with exactly the six fields. */
export function validateReading(
  input: unknown,
  ctx: ReadingContext,
  opts: ValidateOptions | ResolvedOptions,
): ReadingResult {
  const o = resolveOptions(opts);
  return checkReading(input, ctx, o, ctx.now ?? o.clock.now());
}

function checkReading(input: unknown, ctx: ReadingContext, o: ResolvedOptions, now: number): ReadingResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return fail('not_an_object', 'payload', `a reading must be a JSON object, got ${describe(input)}`);
  }

  // sensor_type: from the payload, else from the topic; both given must agree.
  let type = own(input, 'sensor_type');
  const topicType = ctx.topicType;
  if (type === undefined || type === null) {
    if (topicType === undefined) {
      return fail('required', 'sensor_type', 'sensor_type is required (in the payload or as the last topic level)');
    }
    type = topicType;
  }
  if (typeof type !== 'string') return fail('not_a_string', 'sensor_type', `sensor_type must be a string, got ${describe(type)}`);
  if (type.length > MAX_SENSOR_TYPE_LENGTH) {
    return fail('too_long', 'sensor_type', `sensor_type must be at most ${MAX_SENSOR_TYPE_LENGTH} characters, got ${type.length}`);
  }
  if (!SENSOR_TYPE_RE.test(type)) {
    return fail('invalid_format', 'sensor_type', `sensor_type ${show(type)} must be a lowercase letter followed by a-z, 0-9 or _`);
  }
  if (topicType !== undefined && type !== topicType) {
    return fail('type_mismatch', 'sensor_type', `sensor_type ${show(type)} differs from the topic's ${show(topicType)}`);
  }
  if (!o.types.has(type)) {
    return fail('unknown_sensor_type', 'sensor_type', `sensor_type ${show(type)} is not one of ${[...o.types].join(', ')}`);
  }

  // sensor_id
  let id = own(input, 'sensor_id');
  if (id === undefined || id === null) return fail('required', 'sensor_id', 'sensor_id is required');
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) id = String(id);
  if (typeof id !== 'string') return fail('not_a_string', 'sensor_id', `sensor_id must be a string, got ${describe(id)}`);
  if (id.length > MAX_SENSOR_ID_LENGTH) {
    return fail('too_long', 'sensor_id', `sensor_id must be at most ${MAX_SENSOR_ID_LENGTH} characters, got ${id.length}`);
  }
  if (!SENSOR_ID_RE.test(id)) {
    return fail('invalid_format', 'sensor_id', `sensor_id ${show(id)} must be 1 to 64 of A-Z a-z 0-9 _ . : -`);
  }

  // value
  const rawValue = own(input, 'value');
  let value: number;
  if (typeof rawValue === 'number') {
    value = rawValue;
  } else if (typeof rawValue === 'string') {
    const t = rawValue.trim();
    value = t.length <= 100 && DECIMAL_RE.test(t) ? Number(t) : NaN;
  } else if (rawValue === undefined || rawValue === null) {
    return fail('required', 'value', `value is required: a finite number, got ${describe(rawValue)}`);
  } else {
    value = NaN;
  }
  if (!Number.isFinite(value)) {
    return fail('not_a_number', 'value', `value must be a finite number or a decimal numeric string, got ${describe(rawValue)}`);
  }
  value += 0; // -0 → 0
  const range = o.ranges.get(type);
  if (range !== undefined && (value < range.min || value > range.max)) {
    return fail('out_of_range', 'value', `value ${value} is outside the range of ${type} (${rangeText(range)})`);
  }

  // unit
  let unit = own(input, 'unit');
  if (unit === undefined || unit === null || unit === '') {
    unit = o.units.get(type) ?? '';
  } else if (typeof unit !== 'string') {
    return fail('not_a_string', 'unit', `unit must be a string, got ${describe(unit)}`);
  } else if (unit.length > MAX_UNIT_LENGTH) {
    return fail('too_long', 'unit', `unit must be at most ${MAX_UNIT_LENGTH} characters, got ${unit.length}`);
  }

  // location: from the payload, else from the topic; both given must agree.
  let location = own(input, 'location');
  const topicLocation = ctx.topicLocation;
  if (location === undefined || location === null || location === '') {
    location = topicLocation ?? '';
  } else if (typeof location !== 'string') {
    return fail('not_a_string', 'location', `location must be a string, got ${describe(location)}`);
  }
  if (location !== '') {
    if ((location as string).length > MAX_LOCATION_LENGTH) {
      return fail('too_long', 'location', `location must be at most ${MAX_LOCATION_LENGTH} characters, got ${(location as string).length}`);
    }
    if (!LOCATION_RE.test(location as string)) {
      return fail('invalid_format', 'location', `location ${show(location)} must be 1 to 100 of a-z 0-9 _ -`);
    }
    if (topicLocation !== undefined && location !== topicLocation) {
      return fail('location_mismatch', 'location', `location ${show(location)} differs from the topic's ${show(topicLocation)}`);
    }
  }

  // timestamp
  const rawTs = own(input, 'timestamp');
  let ms: number;
  let iso: string | undefined;
  if (rawTs === undefined || rawTs === null || rawTs === '') {
    ms = now;
  } else if (typeof rawTs === 'string') {
    ms = rawTs.length <= 64 ? parseTimestamp(rawTs, now) : NaN;
    if (ms !== ms) {
      return fail('invalid_timestamp', 'timestamp', `timestamp ${show(rawTs)} is not an ISO 8601 date and time such as 2026-01-26T08:00:00Z`);
    }
    // Already canonical (what we emit ourselves, and what most clients send): no Date needed.
    if (rawTs.length === 24 && rawTs.charCodeAt(10) === 84 /* T */ && rawTs.charCodeAt(19) === 46 /* . */ && rawTs.charCodeAt(23) === 90 /* Z */) {
      iso = rawTs;
    } else if (rawTs.length === 20 && rawTs.charCodeAt(10) === 84 && rawTs.charCodeAt(19) === 90) {
      iso = rawTs.slice(0, 19) + '.000Z';
    }
  } else if (rawTs instanceof Date && !Number.isNaN(rawTs.getTime())) {
    ms = rawTs.getTime();
  } else {
    return fail('invalid_timestamp', 'timestamp', `timestamp must be an ISO 8601 string such as 2026-01-26T08:00:00Z, got ${describe(rawTs)}`);
  }
  if (ms - now > MAX_FUTURE_MS) {
    return fail('timestamp_in_future', 'timestamp', `timestamp ${new Date(ms).toISOString()} is more than 5 minutes in the future`);
  }
  if (ms < now - o.retentionMs) {
    return fail('timestamp_too_old', 'timestamp', `timestamp ${safeIso(ms)} is older than the retention period of ${o.retentionMs / 86_400_000} days`);
  }
  if (iso === undefined) iso = isoFromEpochMs(ms);

  return {
    ok: true,
    reading: { sensor_type: type, sensor_id: id, value, unit: unit as string, location: location as string, timestamp: iso },
  };
}

// ---- timestamps --------------------------------------------------------------------------------

const DATE_TIME_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/;
const TIME_ONLY_RE = /^(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?([Zz])?$/;
const DAY_MS = 86_400_000;
/** 400 Gregorian years, exactly: `Date.UTC` maps years 0-99 to 1900-1999, so shift and shift back. */
const FOUR_CENTURIES_MS = 146_097 * DAY_MS;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * ISO 8601 date-time (or time of day, meaning today in UTC) → epoch ms, NaN when invalid.
 * Calendar dates are checked (no `2026-02-30` rolling over into March), as are hours 0-23,
 * minutes and seconds 0-59 and offsets up to ±23:59.
 */
export function parseTimestamp(s: string, now: number): number {
  let m = DATE_TIME_RE.exec(s);
  if (m !== null) {
    const year = +m[1];
    const month = +m[2];
    const day = +m[3];
    if (month < 1 || month > 12 || day < 1) return NaN;
    if (day > DAYS_IN_MONTH[month - 1] && !(month === 2 && day === 29 && isLeapYear(year))) return NaN;
    const t = timeOfDay(m[4], m[5], m[6], m[7]);
    if (t !== t) return NaN;
    let ms = year >= 100 ? Date.UTC(year, month - 1, day) : Date.UTC(year + 400, month - 1, day) - FOUR_CENTURIES_MS;
    ms += t;
    if (m[9] !== undefined) {
      const oh = +m[10];
      const om = m[11] === undefined ? 0 : +m[11];
      if (oh > 23 || om > 59) return NaN;
      const offset = (oh * 60 + om) * 60_000;
      ms += m[9] === '+' ? -offset : offset;
    }
    return ms;
  }
  m = TIME_ONLY_RE.exec(s);
  if (m !== null) {
    const t = timeOfDay(m[1], m[2], m[3], m[4]);
    return t !== t ? NaN : Math.floor(now / DAY_MS) * DAY_MS + t;
  }
  return NaN;
}

function timeOfDay(hh: string, mm: string, ss: string | undefined, frac: string | undefined): number {
  const h = +hh;
  const mi = +mm;
  const sec = ss === undefined ? 0 : +ss;
  if (h > 23 || mi > 59 || sec > 59) return NaN;
  let ms = 0;
  if (frac !== undefined) {
    // Truncated to milliseconds, as Date.parse does.
    ms = frac.length >= 3 ? +frac.slice(0, 3) : frac.length === 2 ? +frac * 10 : +frac * 100;
  }
  return ((h * 60 + mi) * 60 + sec) * 1000 + ms;
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

// ---- a whole payload ---------------------------------------------------------------------------

export interface Rejection {
  /** Position in the array payload; null when the payload was not an array or failed as a whole. */
  index: number | null;
  error: ReadingError;
  /** Where the reading came from, for the errors topic: the topic's, else the payload's raw value. */
  location?: string;
  sensor_type?: string;
  /** What was rejected, as received (may be large or not JSON-safe; see `toJsonSafe`). */
  input?: unknown;
}

export interface PayloadResult {
  accepted: Reading[];
  rejected: Rejection[];
}

const BOM = 0xfeff;

/**
 * Validates a message payload: a Buffer or string of JSON (from MQTT), or an already parsed
 * object or array (from `http in`, or `mqtt in` in auto-detect mode). Payload-level problems
 * give one rejection with `index: null`; otherwise each reading is accepted or rejected on its
 * own. Object payloads are not measured in bytes (their source, e.g. the HTTP body limit, is).
 */
/**
 * `receivedAt` (epoch ms) is when the message reached the pipeline: a reading without a timestamp
 * gets that time, so a message replayed from the spool after a crash keeps its identity
 * (sensor_type, sensor_id, timestamp) and is stored once. Default: now.
 */
export function validatePayload(raw: unknown, topic: unknown, opts: ValidateOptions | ResolvedOptions, receivedAt?: number): PayloadResult {
  const o = resolveOptions(opts);
  const parts = parseTopic(topic);
  const ctx: ReadingContext = {
    topicLocation: parts === null ? undefined : parts.location,
    topicType: parts === null ? undefined : parts.sensor_type,
  };
  const now = receivedAt !== undefined && Number.isFinite(receivedAt) ? receivedAt : o.clock.now();
  const accepted: Reading[] = [];
  const rejected: Rejection[] = [];

  let data: unknown = raw;
  let text: string | undefined;
  if (raw instanceof Uint8Array) {
    if (raw.byteLength > o.maxPayloadBytes) {
      return payloadError(rejected, ctx, 'payload_too_large', `the payload is ${raw.byteLength} bytes, more than ${o.maxPayloadBytes}`);
    }
    if (!isUtf8(raw)) return payloadError(rejected, ctx, 'invalid_utf8', 'the payload is not valid UTF-8');
    text = (Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).toString('utf8');
  } else if (typeof raw === 'string') {
    // Each character is at least one byte, at most three: count bytes only when it matters.
    if (raw.length > o.maxPayloadBytes || (raw.length * 3 > o.maxPayloadBytes && Buffer.byteLength(raw, 'utf8') > o.maxPayloadBytes)) {
      return payloadError(rejected, ctx, 'payload_too_large', `the payload is ${Buffer.byteLength(raw, 'utf8')} bytes, more than ${o.maxPayloadBytes}`);
    }
    text = raw;
  }
  if (text !== undefined) {
    if (text.charCodeAt(0) === BOM) text = text.slice(1);
    try {
      data = JSON.parse(text);
    } catch (err) {
      return payloadError(rejected, ctx, 'invalid_json', `the payload is not valid JSON: ${(err as Error).message}`, text);
    }
  }

  if (Array.isArray(data)) {
    if (data.length === 0) return payloadError(rejected, ctx, 'empty_batch', 'the payload is an empty array', data);
    if (data.length > o.maxBatch) {
      return payloadError(rejected, ctx, 'batch_too_large', `the payload has ${data.length} readings, more than ${o.maxBatch}`);
    }
    for (let i = 0; i < data.length; i++) {
      const item: unknown = data[i];
      const r = checkReading(item, ctx, o, now);
      if (r.ok) accepted.push(r.reading);
      else rejected.push(rejection(i, r.error, ctx, item));
    }
  } else if (data !== null && typeof data === 'object') {
    const r = checkReading(data, ctx, o, now);
    if (r.ok) accepted.push(r.reading);
    else rejected.push(rejection(null, r.error, ctx, data));
  } else {
    return payloadError(rejected, ctx, 'not_an_object', `the payload must be a JSON object or an array of objects, got ${describe(data)}`, data);
  }
  return { accepted, rejected };
}

/** What a batch of MQTT messages (sensor-in's batch output) gave. */
export interface MqttBatchResult {
  accepted: Reading[];
  /** Each rejection with the message it came from: its index in the batch and its topic. */
  rejected: Array<{ rejection: Rejection; entry: number; topic: unknown }>;
}

/**
 * Validates a batch of MQTT messages (`[{topic, payload, receivedAt}]`, sensor-in's batch output),
 * each message as `validatePayload` would on its own topic; the accepted readings of all of them
 * in order. An item that is not such an object is rejected like a message without a payload.
 */
export function validateMqttBatch(items: readonly unknown[], opts: ValidateOptions | ResolvedOptions): MqttBatchResult {
  const o = resolveOptions(opts);
  const accepted: Reading[] = [];
  const rejected: MqttBatchResult['rejected'] = [];
  for (let entry = 0; entry < items.length; entry++) {
    const item = items[entry];
    const m = (typeof item === 'object' && item !== null ? item : {}) as { topic?: unknown; payload?: unknown; receivedAt?: unknown };
    const r = validatePayload(m.payload, m.topic, o, typeof m.receivedAt === 'number' ? m.receivedAt : undefined);
    for (let i = 0; i < r.accepted.length; i++) accepted.push(r.accepted[i]);
    for (let i = 0; i < r.rejected.length; i++) rejected.push({ rejection: r.rejected[i], entry, topic: m.topic });
  }
  return { accepted, rejected };
}

function payloadError(
  rejected: Rejection[],
  ctx: ReadingContext,
  code: ErrorCode,
  message: string,
  input?: unknown,
): PayloadResult {
  const r: Rejection = { index: null, error: { code, field: 'payload', message }, location: ctx.topicLocation, sensor_type: ctx.topicType };
  if (input !== undefined) r.input = input;
  rejected.push(r);
  return { accepted: [], rejected };
}

function rejection(index: number | null, error: ReadingError, ctx: ReadingContext, item: unknown): Rejection {
  let location = ctx.topicLocation;
  let type = ctx.topicType;
  if (item !== null && typeof item === 'object') {
    if (location === undefined) {
      const l = own(item, 'location');
      if (typeof l === 'string') location = l;
    }
    if (type === undefined) {
      const t = own(item, 'sensor_type');
      if (typeof t === 'string') type = t;
    }
  }
  return { index, error, location, sensor_type: type, input: item };
}

// ---- output helpers ----------------------------------------------------------------------------

/** Largest JSON text of a rejected input that is echoed back whole. */
export const MAX_ECHO_CHARS = 4096;

/**
 * A JSON-safe copy of what was rejected, for the errors topic: circular structures, BigInts and
 * functions never make it fail; anything longer than `maxChars` as JSON becomes a truncated string.
 */
export function toJsonSafe(value: unknown, maxChars = MAX_ECHO_CHARS): unknown {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value.length > maxChars ? `${value.slice(0, maxChars)}…` : value;
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    return '[not serializable]';
  }
  if (text === undefined) return undefined;
  if (text.length > maxChars) return `${text.slice(0, maxChars)}…`;
  return JSON.parse(text);
}

/** What goes out on the reject output for one rejection (the node adds `_msgid`). */
export function rejectionMessage(
  r: Rejection,
  topicPrefix: unknown,
): { topic: string; error: ReadingError; payload: { error: ReadingError; reading?: unknown } } {
  const payload: { error: ReadingError; reading?: unknown } = { error: r.error };
  const reading = toJsonSafe(r.input);
  if (reading !== undefined) payload.reading = reading;
  return { topic: errorTopic(topicPrefix, r.location, r.sensor_type), error: r.error, payload };
}

// ---- message text helpers (error path only) ----------------------------------------------------

function show(v: unknown): string {
  if (typeof v === 'string') {
    const s = JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    return s;
  }
  return describe(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'undefined':
      return 'nothing';
    case 'string':
      return v === '' ? 'an empty string' : `the string ${show(v)}`;
    case 'number':
      return String(v);
    case 'boolean':
      return String(v);
    case 'bigint':
      return `${v}n`;
    case 'object':
      return 'an object';
    default:
      return `a ${typeof v}`;
  }
}

function rangeText(r: { min: number; max: number }): string {
  if (r.min === -Infinity) return `at most ${r.max}`;
  if (r.max === Infinity) return `at least ${r.min}`;
  return `${r.min} to ${r.max}`;
}

function safeIso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}
