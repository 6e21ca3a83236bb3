/**
 * Node settings as the fetch nodes read them. Node-RED replaces a property whose whole value is
 * `${VAR}` by the environment variable, but leaves the text as it is when VAR is not set: such a
 * leftover, like an empty field, means "use the default".
 */
import { FetchError } from './errors';

export const DEFAULT_ZONE = 'IN-KA';
export const DEFAULT_LAT = 12.9716;
export const DEFAULT_LON = 77.5946;
export const DEFAULT_INTERVAL_MINUTES = 15;
/** The shortest interval or retry delay we accept: 1 s (the APIs rate-limit anything faster). */
const MIN_DELAY_MS = 1000;
/** Timeouts below this make no sense even on a LAN (tests use ~300 ms). */
const MIN_TIMEOUT_MS = 50;

const UNRESOLVED_ENV = /^\$\{[^}]*\}$|^\$\([^)]*\)$/;

/** The setting as a trimmed string, or undefined when empty or an unresolved `${VAR}`. */
export function settingText(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  return v === '' || UNRESOLVED_ENV.test(v) ? undefined : v;
}

/** The API key from the credentials, or undefined when there is none. */
export function resolveApiKey(credential: unknown): string | undefined {
  return settingText(credential);
}

/** A number setting: the default when unset, a `config` error when set to something else than a number. */
export function numberSetting(value: unknown, fallback: number, name: string): number {
  const v = settingText(value);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new FetchError('config', `${name} is not a number: ${v}`);
  return n;
}

/** A positive duration given in `unit` ms per step (minutes → 60000), at least `min` ms. */
function durationSetting(value: unknown, fallback: number, unitMs: number, name: string, minMs: number): number {
  const n = numberSetting(value, fallback, name);
  if (n <= 0) throw new FetchError('config', `${name} must be greater than 0`);
  return Math.max(minMs, Math.round(n * unitMs));
}

export function intervalMsSetting(value: unknown): number {
  return durationSetting(value, DEFAULT_INTERVAL_MINUTES, 60_000, 'interval (minutes)', MIN_DELAY_MS);
}

export function retryBaseMsSetting(value: unknown): number {
  return durationSetting(value, 30, 1000, 'first retry (seconds)', Math.min(MIN_DELAY_MS, 100));
}

export function timeoutMsSetting(value: unknown): number {
  return durationSetting(value, 10, 1000, 'timeout (seconds)', MIN_TIMEOUT_MS);
}

/** An Electricity Maps zone key (`IN-KA`, `DE`, `US-CAL-CISO`); also the `zone` of every row. */
export function zoneSetting(value: unknown): string {
  const v = settingText(value) ?? DEFAULT_ZONE;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(v)) throw new FetchError('config', `zone is not a zone key: ${v}`);
  return v;
}

export function latitudeSetting(value: unknown): number {
  const n = numberSetting(value, DEFAULT_LAT, 'latitude');
  if (n < -90 || n > 90) throw new FetchError('config', `latitude must be between -90 and 90: ${n}`);
  return n;
}

export function longitudeSetting(value: unknown): number {
  const n = numberSetting(value, DEFAULT_LON, 'longitude');
  if (n < -180 || n > 180) throw new FetchError('config', `longitude must be between -180 and 180: ${n}`);
  return n;
}

/** One of `allowed`, the first one when unset; an unknown value is a `config` error. */
export function choiceSetting<T extends string>(value: unknown, allowed: readonly T[], name: string): T {
  const v = settingText(value);
  if (v === undefined) return allowed[0];
  if (!(allowed as readonly string[]).includes(v)) throw new FetchError('config', `${name} must be one of ${allowed.join(', ')}`);
  return v as T;
}

/** A checkbox (true/false, or the strings a `${VAR}` gives). */
export function booleanSetting(value: unknown, fallback: boolean): boolean {
  if (typeof value === 'boolean') return value;
  const v = settingText(value);
  if (v === undefined) return fallback;
  return !/^(false|0|no|off)$/i.test(v);
}

/** The TypedInput type of a setting; flows saved before the type existed have none: a constant. */
export function settingType(type: unknown): 'str' | 'env' | 'msg' {
  return type === 'env' || type === 'msg' ? type : 'str';
}
