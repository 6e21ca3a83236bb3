/**
 * What each operation of the `hot-window` node does, free of Node-RED: the node file only routes
 * a msg here and reports the outcome.
 */
import type { Reading, WindowStats } from '../shared/types';
import { apiRequestFromMsg, badQuery, ok, unavailable, type ApiResponse } from '../shared/http';
import { WindowInputError, isSensorId, isSensorType, prepareEntries, sensorName } from './window-entry';
import type { SensorKey, WindowStore } from './window-store';

export const OPERATIONS = ['push', 'read', 'context', 'set-context', 'health', 'broadcast', 'on-broadcast', 'leader-gate'] as const;
export type HotWindowOperation = (typeof OPERATIONS)[number];

export function parseOperation(v: unknown): HotWindowOperation {
  if (v === undefined || v === null || v === '') return 'push';
  if ((OPERATIONS as readonly unknown[]).includes(v)) return v as HotWindowOperation;
  throw new Error(`unknown operation "${String(v)}"`);
}

/** The context names the `context` operation reports (CONTRACT section 4, `GET /api/context/`). */
export const CONTEXT_NAMES = ['carbon_intensity', 'weather'] as const;

type Msg = Record<string, unknown> & { req?: unknown; payload?: unknown };

// ---- push ----

/** A `Reading` or `Reading[]` payload as an array; throws `WindowInputError` for anything else. */
export function readingsFromPayload(payload: unknown): Reading[] {
  const readings = Array.isArray(payload) ? payload : [payload];
  prepareEntries(readings as Reading[]); // names the first bad reading; nothing is stored then
  return readings as Reading[];
}

/** What a push passes on: every msg (`all`, default) or only the readings new to the store (`new`). */
export type PassOn = 'all' | 'new';

export function parsePassOn(v: unknown): PassOn {
  return v === 'new' ? 'new' : 'all';
}

/** Stores the readings of a msg; resolves with how many, and which were new (not a redelivery). */
export async function pushPayload(
  store: WindowStore,
  payload: unknown,
): Promise<{ count: number; fresh: Reading[]; readings: Reading[] }> {
  const readings = readingsFromPayload(payload);
  const added = await store.pushMany(readings);
  const fresh = added.every(Boolean) ? readings : readings.filter((_, i) => added[i]);
  return { count: readings.length, fresh, readings };
}

/**
 * The payload to pass on after a push with `new` only: a single reading when it was new, the
 * new readings of an array when there are any; undefined when nothing is new (send nothing).
 */
export function newOnlyPayload(payload: unknown, fresh: Reading[]): unknown {
  if (!Array.isArray(payload)) return fresh.length > 0 ? payload : undefined;
  if (fresh.length === 0) return undefined;
  return fresh.length === payload.length ? payload : fresh;
}

// ---- read ----

export const REQUIRED_MESSAGE = 'sensor_type and sensor_id are required';
export const INVALID_MESSAGE = 'sensor_type and sensor_id must be 1 to 64 of A-Z a-z 0-9 _ . - (and : in sensor_id)';
export const UNAVAILABLE_DETAIL = 'hot store unavailable';

/** The sensor a read asks for: `msg.req.query` from `http in`, else `msg.payload`; or the 400 answer. */
export function sensorKeyFromMsg(msg: Msg): SensorKey | ApiResponse {
  const source = msg.req !== undefined ? apiRequestFromMsg(msg).query : msg.payload;
  const q = (source !== null && typeof source === 'object' ? source : {}) as Record<string, unknown>;
  const type = q.sensor_type;
  const id = q.sensor_id;
  // A repeated parameter arrives as an array: as unusable as a missing one.
  if (typeof type !== 'string' || typeof id !== 'string' || !type.trim() || !id.trim()) {
    return badQuery(REQUIRED_MESSAGE);
  }
  // Checked before the store sees them, so no client can make odd keys.
  if (!isSensorType(type) || !isSensorId(id)) return badQuery(INVALID_MESSAGE);
  return { sensor_type: type, sensor_id: id };
}

/** The answer to `GET /api/sensor-readings/buffer/`; `error` is set when the store failed (503). */
export async function readBuffer(store: WindowStore, msg: Msg): Promise<{ response: ApiResponse; error?: Error }> {
  const key = sensorKeyFromMsg(msg);
  if ('status' in key) return { response: key };
  try {
    return { response: ok(await store.read(key)) };
  } catch (err) {
    return { response: unavailable(UNAVAILABLE_DETAIL), error: asError(err) };
  }
}

// ---- context ----

export interface ContextPayload {
  sensors: Record<string, WindowStats>;
  carbon_intensity: unknown | null;
  weather: unknown | null;
}

/** A context row with `age_seconds` (whole seconds since its `timestamp`) when it has a timestamp. */
export function withAge(value: unknown, now: number): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value ?? null;
  const ts = (value as { timestamp?: unknown }).timestamp;
  const ms = typeof ts === 'string' ? Date.parse(ts) : NaN;
  if (!Number.isFinite(ms)) return value;
  return { ...value, age_seconds: Math.max(0, Math.floor((now - ms) / 1000)) };
}

/** Everything the AI engine needs in one object: every active window's stats and the context rows. */
export async function buildContext(store: WindowStore, now: number): Promise<ContextPayload> {
  const [keys, carbon, weather] = await Promise.all([
    store.activeSensors(),
    store.getContext('carbon_intensity'),
    store.getContext('weather'),
  ]);
  const snapshots = await store.readMany(keys);
  const sensors: Record<string, WindowStats> = {};
  keys.forEach((k, i) => {
    // A window can expire between the registry read and the window read: leave it out then.
    if (snapshots[i].stats.count > 0) sensors[sensorName(k)] = snapshots[i].stats;
  });
  return { sensors, carbon_intensity: withAge(carbon, now), weather: withAge(weather, now) };
}

// ---- set-context ----

/** Grid-data rows (one or an array) to store as context under their `data_type`. */
export function contextRowsFromPayload(payload: unknown): Array<{ name: string; row: Record<string, unknown> }> {
  const rows = Array.isArray(payload) ? payload : [payload];
  return rows.map((row, i) => {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new WindowInputError(`row ${i}: a grid-data row must be an object`);
    }
    const name = (row as { data_type?: unknown }).data_type;
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
      throw new WindowInputError(`row ${i}: data_type must be 1 to 64 of A-Z a-z 0-9 _ . : -`);
    }
    return { name, row: row as Record<string, unknown> };
  });
}

export async function setContextRows(store: WindowStore, payload: unknown): Promise<number> {
  const rows = contextRowsFromPayload(payload);
  await Promise.all(rows.map(({ name, row }) => store.setContext(name, row)));
  return rows.length;
}

// ---- broadcast ----

/**
 * The message a `broadcast` msg carries: a WebSocket message object with a `type`
 * (`{type: 'sensor_update', data}`); throws `WindowInputError` for anything else, so a wiring
 * mistake fails the msg instead of sending clients something they cannot read.
 */
/** How a `broadcast` reads its payload: a ready message (`as-is`) or Reading(s) to wrap (`sensor_update`). */
export type BroadcastFormat = 'as-is' | 'sensor_update';

export function parseBroadcastFormat(v: unknown): BroadcastFormat {
  return v === 'sensor_update' ? 'sensor_update' : 'as-is';
}

/** The messages to publish for a payload in the given format: one per reading for `sensor_update`. */
export function broadcastMessages(payload: unknown, format: BroadcastFormat): Record<string, unknown>[] {
  if (format === 'as-is') return [broadcastMessageFromPayload(payload)];
  const readings = readingsFromPayload(payload);
  return readings.map(sensorUpdate);
}

/** CONTRACT section 3: `{type: 'sensor_update', data}` with exactly the reading's six fields. */
export function sensorUpdate(r: Reading): Record<string, unknown> {
  return {
    type: 'sensor_update',
    data: {
      sensor_type: r.sensor_type,
      sensor_id: r.sensor_id,
      value: r.value,
      unit: r.unit,
      location: r.location,
      timestamp: r.timestamp,
    },
  };
}

export function broadcastMessageFromPayload(payload: unknown): Record<string, unknown> {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new WindowInputError('a broadcast payload must be a message object such as {"type": "sensor_update", "data": {...}}');
  }
  const type = (payload as { type?: unknown }).type;
  if (typeof type !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(type)) {
    throw new WindowInputError('a broadcast message needs a type of 1 to 64 of A-Z a-z 0-9 _ . : -');
  }
  return payload as Record<string, unknown>;
}

// ---- leader-gate ----

export const DEFAULT_LEADER_TTL_SECONDS = 15;

/** The gate's lock name and lifetime from the node's properties (which may be `${VAR}` text). */
export function leaderGateSettings(lock: unknown, ttl: unknown): { lock: string; ttlMs: number } {
  const text = (v: unknown) => {
    const t = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
    return /^\$\{[^}]*\}$/.test(t) ? '' : t;
  };
  const name = text(lock);
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) throw new WindowInputError('the lock name must be 1 to 64 of A-Z a-z 0-9 _ . : -');
  const t = text(ttl);
  const seconds = t === '' ? DEFAULT_LEADER_TTL_SECONDS : Number(t);
  if (!Number.isFinite(seconds) || seconds < 1 || seconds > 3600) {
    throw new WindowInputError(`the lock ttl must be 1 to 3600 seconds, got "${t}"`);
  }
  return { lock: name, ttlMs: Math.round(seconds * 1000) };
}

// ---- health ----

/** `up` when the store answers a ping within `timeoutMs`. Never rejects. */
export async function checkHealth(store: WindowStore, timeoutMs = 1000): Promise<'up' | 'down'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'down'>((resolve) => {
    timer = setTimeout(() => resolve('down'), timeoutMs);
  });
  try {
    return await Promise.race([
      store.ping().then(
        () => 'up' as const,
        () => 'down' as const,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `msg.health` with `hot_store` set, keeping what other health nodes put there. */
export function withHealth(health: unknown, status: 'up' | 'down'): Record<string, unknown> {
  const prev = health !== null && typeof health === 'object' && !Array.isArray(health) ? health : {};
  return { ...(prev as Record<string, unknown>), hot_store: status };
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
