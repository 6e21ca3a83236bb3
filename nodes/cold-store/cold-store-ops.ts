/**
 * The logic of the `cold-store` node, free of Node-RED: the batched write of readings, the
 * grid data upsert, the REST operations on readings, the retention cleanup and the health
 * check. The node file only wires these to messages.
 */
import type { Database, ReadingRepository, ReadingRow } from '../shared/db';
import type { Reading } from '../shared/types';
import { ApiResponse, apiRequestFromMsg, applyApiResponse, notFound, ok, unavailable } from '../shared/http';
import * as readingsApi from '../shared/api/readings';
import * as gridApi from '../shared/api/grid-data';
import { preferences } from '../shared/api/preferences';
import { energySources } from '../shared/api/energy-sources';
import { methodNotAllowed, serve } from '../shared/api/common';
import type { ApiHandler } from '../shared/api/common';
import { getOpenApi } from '../shared/api/openapi';
import { getMetrics } from '../shared/api/metrics';
import { allowedMethods } from '../shared/api/routes';
import type { Labels, MetricFamily } from '../shared/metrics';
import { systemTimers, type Timers } from '../shared/timers';
import type { FlushOutcome, BatcherStats } from './reading-batcher';
import { gridRowsFromPayload, InputError, readingsFromPayload } from './cold-store-input';

export type Operation =
  | 'write-readings'
  | 'write-grid-data'
  | 'list-readings'
  | 'get-reading'
  | 'latest-readings'
  | 'recent-readings'
  | 'cleanup'
  | 'health'
  | ApiOperation
  | FixedOperation;

/** REST operations of the resources beyond readings, each answered by a handler of nodes/shared/api. */
export type ApiOperation = 'list-grid-data' | 'latest-grid-data' | 'recent-grid-data' | 'preferences' | 'energy-sources';
/** Operations that answer without the database. */
export type FixedOperation = 'openapi' | 'metrics' | 'method-not-allowed' | 'not-found';

export const OPERATIONS: readonly Operation[] = [
  'write-readings',
  'write-grid-data',
  'list-readings',
  'get-reading',
  'latest-readings',
  'recent-readings',
  'list-grid-data',
  'latest-grid-data',
  'recent-grid-data',
  'preferences',
  'energy-sources',
  'cleanup',
  'health',
  'openapi',
  'metrics',
  'method-not-allowed',
  'not-found',
];

/** The operations that need no database (the editor lets `database` be empty for these). */
export const NO_DATABASE_OPERATIONS: readonly Operation[] = ['openapi', 'metrics', 'method-not-allowed', 'not-found'];

/** Data types `recent-grid-data` serves (`GET /api/grid-data/{data_type}/`). */
export const RECENT_GRID_TYPES = ['carbon_intensity', 'weather'] as const;

export type Msg = Record<string, unknown>;

/** Something that hands out the database, or rejects when it is unavailable (the config node). */
export type DatabaseSource = () => Promise<Database>;

/**
 * The batcher's flush for readings: one `saveMany` per batch (one INSERT, plus one
 * `findByKeys` only when there were duplicates); every reading gets its stored row.
 */
export function readingFlush(getDatabase: DatabaseSource, onFlushed?: (seconds: number) => void, wantRows = true) {
  return async (readings: Reading[]): Promise<FlushOutcome<ReadingRow | null>> => {
    const db = await getDatabase();
    const started = process.hrtime.bigint();
    if (!wantRows) {
      // Nobody reads the rows (output not wired, e.g. the MQTT path): no lookup of duplicates,
      // no row objects per reading.
      const { duplicates } = await db.readings.storeMany(readings);
      onFlushed?.(Number(process.hrtime.bigint() - started) / 1e9);
      return { results: new Array<null>(readings.length).fill(null), duplicates };
    }
    const saved = await db.readings.saveMany(readings);
    onFlushed?.(Number(process.hrtime.bigint() - started) / 1e9);
    return { results: saved.rows, duplicates: saved.duplicates };
  };
}

/** Whether a write node's output needs the stored rows: option `output` (default rows) and wired at all. */
export function wantsRows(output: unknown, wires: unknown): boolean {
  if (output === 'none') return false;
  if (!Array.isArray(wires)) return true;
  return wires.some((w) => Array.isArray(w) && w.length > 0);
}

// SQLSTATE classes that a retry cannot fix: data exception, integrity constraint violation,
// syntax error or access rule violation (a bug or a schema mismatch, not an outage).
const PERMANENT_SQLSTATE = /^(22|23|42)[0-9A-Z]{3}$/;
const PERMANENT_SQLITE = /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE|ERROR)/;

/**
 * Whether a failed write may succeed later (connection refused or lost, timeout, database
 * locked, disk full) rather than never (the data or the SQL is wrong). Unknown errors count as
 * retryable: losing readings is worse than a retry loop the status shows.
 */
export function isRetryableDbError(err: Error): boolean {
  if (err instanceof InputError || err instanceof TypeError || err instanceof RangeError) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (PERMANENT_SQLSTATE.test(code)) return false;
    if (PERMANENT_SQLITE.test(code)) return false;
  }
  return true;
}

/** Stores grid data rows (low rate: not batched); `msg.payload` becomes the stored row(s). */
export async function writeGridData(msg: Msg, getDatabase: DatabaseSource): Promise<void> {
  const { rows, single } = gridRowsFromPayload(msg.payload);
  if (rows.length === 0) {
    msg.payload = [];
    return;
  }
  const db = await getDatabase();
  const stored = await db.gridData.upsertMany(rows);
  msg.payload = single ? stored[0] : stored;
}

/** Parses `msg.payload` for the batcher; the answer goes back in the same form (one row or an array). */
export { readingsFromPayload };

export type RestOperation = 'list-readings' | 'get-reading' | 'latest-readings' | 'recent-readings';

export function isRestOperation(op: string): op is RestOperation {
  return op === 'list-readings' || op === 'get-reading' || op === 'latest-readings' || op === 'recent-readings';
}

const DB_UNAVAILABLE = 'database unavailable';

const REST_HANDLERS = {
  'list-readings': readingsApi.listReadings,
  'get-reading': readingsApi.getReading,
  'latest-readings': readingsApi.latestReadings,
  'recent-readings': readingsApi.recentReadings,
} as const;

/**
 * Answers a REST request on readings into `msg` (statusCode, payload, headers). Never throws:
 * when the database cannot answer, the response is 503 `{"detail": "database unavailable"}`
 * (never a 500) and the cause is returned for the node's `done(err)`.
 */
export async function answerRest(op: RestOperation, msg: Msg, getDatabase: DatabaseSource, now: number, jsonText = false): Promise<Error | undefined> {
  try {
    const db = await getDatabase();
    const req = apiRequestFromMsg(msg);
    if (jsonText) req.jsonText = true;
    applyApiResponse(msg, await REST_HANDLERS[op](db.readings, req, now));
    return undefined;
  } catch (err) {
    applyApiResponse(msg, unavailable(DB_UNAVAILABLE));
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * Deletes readings and grid data older than `retentionDays` before `now`.
 * `msg.payload = {"deleted": {"sensor_readings": n, "grid_data": m}}`; for an HTTP request
 * (`msg.req`) also status 200, or 503 and the error when the database is unavailable.
 */
export async function runCleanup(msg: Msg, getDatabase: DatabaseSource, retentionDays: number, now: number): Promise<Error | undefined> {
  const cutoff = new Date(now - retentionDays * 86_400_000).toISOString();
  try {
    const db = await getDatabase();
    const sensor_readings = await db.readings.deleteOlderThan(cutoff);
    const grid_data = await db.gridData.deleteOlderThan(cutoff);
    const body = { deleted: { sensor_readings, grid_data } };
    if (msg.req) applyApiResponse(msg, ok(body));
    else msg.payload = body;
    return undefined;
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    if (!msg.req) throw error;
    applyApiResponse(msg, unavailable(DB_UNAVAILABLE));
    return error;
  }
}

/** `SELECT 1` within `timeoutMs`: 'up' or 'down' (never throws). */
export async function checkHealth(getDatabase: DatabaseSource, timeoutMs = 1500, timers: Timers = systemTimers): Promise<'up' | 'down'> {
  let timer: unknown;
  const timeout = new Promise<'down'>((resolve) => {
    timer = timers.setTimeout(() => resolve('down'), timeoutMs);
  });
  const probe = (async (): Promise<'up' | 'down'> => {
    try {
      const db = await getDatabase();
      await db.ping();
      return 'up';
    } catch {
      return 'down';
    }
  })();
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    timers.clearTimeout(timer);
  }
}

export interface OperationContext {
  getDatabase: DatabaseSource;
  retentionDays: number;
  now: number;
  /** `recent-grid-data`: which data type (default carbon_intensity). */
  dataType?: string;
  /** The node answers HTTP with JSON bytes: a handler may answer JSON text (`JsonText`). */
  jsonText?: boolean;
}

export function isApiOperation(op: string): op is ApiOperation {
  return op === 'list-grid-data' || op === 'latest-grid-data' || op === 'recent-grid-data' || op === 'preferences' || op === 'energy-sources';
}

function apiHandler(op: ApiOperation, dataType: string | undefined): ApiHandler {
  switch (op) {
    case 'list-grid-data':
      return gridApi.listGridData;
    case 'latest-grid-data':
      return gridApi.latestGridData;
    case 'recent-grid-data':
      return gridApi.recentGridData(dataType ?? 'carbon_intensity');
    case 'preferences':
      return preferences;
    case 'energy-sources':
      return energySources;
  }
}

/**
 * Answers a REST request of the other resources into `msg`. Never throws: a failing database is
 * 503 `{"detail": "database unavailable"}`, its cause returned for `done(err)`.
 */
export async function answerApi(op: ApiOperation, msg: Msg, ctx: OperationContext): Promise<Error | undefined> {
  const served = await serve(apiHandler(op, ctx.dataType), ctx.getDatabase, apiRequestFromMsg(msg), { now: ctx.now });
  applyApiResponse(msg, served.response);
  return served.error;
}

/** The answers that need no database: the OpenAPI document, /metrics, 405 and 404. */
export function answerFixed(op: FixedOperation, msg: Msg): void {
  const req = apiRequestFromMsg(msg);
  switch (op) {
    case 'openapi':
      applyApiResponse(msg, getOpenApi(req));
      return;
    case 'metrics': {
      const res = getMetrics();
      applyApiResponse(msg, res);
      // applyApiResponse labels every answer JSON: this one is the Prometheus text format.
      (msg.headers as Record<string, string>)['content-type'] = res.headers!['content-type'];
      return;
    }
    case 'method-not-allowed':
      applyApiResponse(msg, methodNotAllowed(req.method, allowedMethods(req.url)));
      return;
    case 'not-found':
      applyApiResponse(msg, notFound());
  }
}

/** The write path's counters as Prometheus families (read at scrape time), labelled by node id. */
/** The writer's counters: the batcher's, and the spill file's. */
export type WriterStats = BatcherStats & { spilled?: number; drained?: number };

export function writerFamilies(node: string, stats: WriterStats): MetricFamily[] {
  const labels: Labels = { node };
  return [
    { name: 'hypervolt_cold_store_spilled', help: 'Readings in the spill file, waiting for the database.', type: 'gauge', samples: [{ labels, value: stats.spilled ?? 0 }] },
    { name: 'hypervolt_cold_store_drained_total', help: 'Readings written from the spill file to the database.', type: 'counter', samples: [{ labels, value: stats.drained ?? 0 }] },
    { name: 'hypervolt_cold_store_queue_depth', help: 'Readings waiting to be written (queued and in flight).', type: 'gauge', samples: [{ labels, value: stats.queued + stats.inFlight }] },
    { name: 'hypervolt_cold_store_written_total', help: 'Readings stored as new rows.', type: 'counter', samples: [{ labels, value: stats.written }] },
    { name: 'hypervolt_cold_store_duplicates_total', help: 'Readings that were already stored.', type: 'counter', samples: [{ labels, value: stats.duplicates }] },
    { name: 'hypervolt_cold_store_refused_total', help: 'Readings refused because the write queue was full.', type: 'counter', samples: [{ labels, value: stats.refusedItems }] },
    { name: 'hypervolt_cold_store_failed_total', help: 'Readings whose write failed for good.', type: 'counter', samples: [{ labels, value: stats.failed }] },
    { name: 'hypervolt_cold_store_retries_total', help: 'Failed flush attempts that were retried.', type: 'counter', samples: [{ labels, value: stats.retries }] },
    { name: 'hypervolt_cold_store_database_up', help: '1 while the last flush succeeded, 0 while writes are failing.', type: 'gauge', samples: [{ labels, value: stats.connected ? 1 : 0 }] },
  ];
}

/**
 * Runs an operation other than `write-readings` on `msg` (in place). Resolves with an error to
 * report through `done(err)` after the msg was sent (an HTTP 503 answer); rejects when nothing
 * should be sent (bad input, database down for a write).
 */
export async function runOperation(op: Operation, msg: Msg, ctx: OperationContext): Promise<Error | undefined> {
  switch (op) {
    case 'write-grid-data':
      await writeGridData(msg, ctx.getDatabase);
      return undefined;
    case 'cleanup':
      return runCleanup(msg, ctx.getDatabase, ctx.retentionDays, ctx.now);
    case 'health': {
      const cold_store = await checkHealth(ctx.getDatabase);
      const health = typeof msg.health === 'object' && msg.health !== null ? msg.health : {};
      msg.health = { ...health, cold_store };
      return undefined;
    }
    case 'openapi':
    case 'metrics':
    case 'method-not-allowed':
    case 'not-found':
      answerFixed(op, msg);
      return undefined;
    default:
      if (isRestOperation(op)) return answerRest(op, msg, ctx.getDatabase, ctx.now, ctx.jsonText);
      if (isApiOperation(op)) return answerApi(op, msg, ctx);
      throw new Error(`unknown operation ${op}`);
  }
}

/**
 * Calls `fn` at most once per `everyMs` however often `request()` is called (a node's status at
 * thousands of readings a second would flood the editor); the last request is never lost.
 */
export class Throttle {
  private timer: unknown = null;
  private lastAt = -Infinity;
  private stopped = false;
  constructor(
    private readonly fn: () => void,
    private readonly everyMs: number,
    private readonly now: () => number = Date.now,
    private readonly timers: Timers = systemTimers,
  ) {}

  /** Calls `fn` now. */
  run(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.lastAt = this.now();
    this.fn();
  }

  /** Calls `fn` as soon as allowed. */
  request(): void {
    if (this.timer !== null || this.stopped) return;
    const wait = Math.max(0, this.lastAt + this.everyMs - this.now());
    this.timer = this.timers.setTimeout(() => this.run(), wait);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}

export interface NodeStatus {
  fill: 'green' | 'yellow' | 'red' | 'grey';
  shape: 'dot' | 'ring';
  /** i18n key below `cold-store.status.` and its parameters. */
  key: string;
  params?: Record<string, number | string>;
}

/**
 * The node's status from the writer's stats and the database state: refusals win (data is
 * being turned away), then an outage, then the counters.
 */
export function writeStatus(stats: WriterStats, dbState: string, refusedShown: number): NodeStatus {
  if (stats.refused > refusedShown) {
    return { fill: 'red', shape: 'dot', key: 'refused', params: { refused: stats.refused, queued: stats.queued + stats.inFlight } };
  }
  const spilled = stats.spilled ?? 0;
  if (!stats.connected || dbState === 'down') {
    if (spilled > 0) return { fill: 'yellow', shape: 'ring', key: 'down-spilled', params: { waiting: stats.queued + stats.inFlight, spilled } };
    return { fill: 'yellow', shape: 'ring', key: 'down', params: { waiting: stats.queued + stats.inFlight } };
  }
  if (spilled > 0) return { fill: 'yellow', shape: 'dot', key: 'draining', params: { spilled, stored: stats.written } };
  if (dbState === 'connecting') return { fill: 'grey', shape: 'ring', key: 'connecting' };
  return {
    fill: 'green',
    shape: 'dot',
    key: 'stored',
    params: { stored: stats.written, queued: stats.queued + stats.inFlight },
  };
}

/** Status of the operations that only query: the database state. */
export function queryStatus(dbState: string): NodeStatus {
  if (dbState === 'up') return { fill: 'green', shape: 'dot', key: 'connected' };
  if (dbState === 'connecting') return { fill: 'grey', shape: 'ring', key: 'connecting' };
  return { fill: 'yellow', shape: 'ring', key: 'disconnected' };
}

/** Status of the operations that need no database. */
export function readyStatus(): NodeStatus {
  return { fill: 'green', shape: 'dot', key: 'ready' };
}
