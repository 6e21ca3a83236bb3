/**
 * The public shapes of the database layer (Node-RED-free): the SQL abstraction, the rows of each
 * table of CONTRACT section 4, and the repositories the nodes and REST handlers call.
 * Both implementations (PostgreSQL, SQLite) return identical JS rows: ids and numbers as
 * `number`, timestamps as ISO 8601 UTC strings with milliseconds and `Z`, JSON columns as
 * objects, booleans as `true`/`false`.
 */
import type { JsonText } from '../json-text';
import type { Reading, ReadingRow } from '../types';

export type { Reading, ReadingRow };

export type Dialect = 'postgres' | 'sqlite';

export interface QueryOptions {
  /**
   * Keep the statement parsed and planned on each connection (PostgreSQL: a named prepared
   * statement; SQLite prepares and caches every statement anyway). For hot statements without
   * parameters only: with parameters PostgreSQL may switch to a generic plan after five runs,
   * which is not what a skewed filter wants.
   */
  prepared?: boolean;
}

/** Runs statements. SQL is always ours and written once with `$1..$n` placeholders. */
export interface SqlExecutor {
  readonly dialect: Dialect;
  /** One statement; returns its rows (raw driver values, see repositories for conversion). */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T[]>;
  /** One statement; returns the number of rows it changed. */
  execute(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface SqlDatabase extends SqlExecutor {
  /**
   * Runs `fn` in one transaction (PostgreSQL: one pooled connection; SQLite: BEGIN IMMEDIATE,
   * other callers wait). Use only `tx` inside `fn`: calling the outer database from inside a
   * SQLite transaction waits for the transaction itself (deadlock).
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Resolves when the database answers a trivial query; rejects otherwise (health checks). */
  ping(): Promise<void>;
  /** Releases the pool / file handle; waits for a running transaction first. Idempotent. */
  close(): Promise<void>;
}

/** Something to tell about connection problems that have no caller to reject (idle pool errors). */
export interface DbLogger {
  warn(message: string): void;
  log?(message: string): void;
}

export interface OpenDatabaseOptions {
  /** Base directory for relative SQLite paths and the default `data/hypervolt.db`; default process.cwd(). */
  baseDir?: string;
  /** Run the migrations on open (default true). */
  migrate?: boolean;
  logger?: DbLogger;
  /** Used by `recent()` when no `now` is passed; default the system clock. */
  clock?: { now(): number };
  /** PostgreSQL: server statement_timeout and client query_timeout, ms (default 10000). */
  statementTimeoutMs?: number;
  /** PostgreSQL: connect timeout, ms (default 5000). */
  connectionTimeoutMs?: number;
  /** PostgreSQL: pool size (default 10). */
  poolMax?: number;
  /** SQLite: how long to wait for another process's lock, ms (default 5000). */
  busyTimeoutMs?: number;
}

/** What `openDatabase` returns: the connection plus one repository per table. */
export interface Database {
  readonly dialect: Dialect;
  /** The URL with any password removed, or `sqlite:/absolute/path`; for logs and status. */
  readonly description: string;
  readonly sql: SqlDatabase;
  readonly readings: ReadingRepository;
  readonly gridData: GridDataRepository;
  readonly preferences: PreferencesRepository;
  readonly decisions: DecisionRepository;
  readonly energySources: EnergySourceRepository;
  /** Applies pending migrations; returns the versions applied now (empty when up to date). */
  migrate(): Promise<number[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// ---- generic list queries (DRF-style pagination, exact filters, ordering) ----

export interface ListOptions<F> {
  /** Exact-match filters; undefined values are ignored. */
  filters?: F;
  /** `field` or `-field` from the table's ordering whitelist; default the table's (newest first). */
  ordering?: string;
  /** From 1; default 1. */
  page?: number;
  /** Default 100. */
  pageSize?: number;
}

export interface ListResult<Row> {
  /**
   * Number of matching rows. Exact up to a cap (see list-query.ts); past it an estimate
   * (PostgreSQL: the planner's row estimate, never below the cap; SQLite: the cap, a lower
   * bound) and `countExact` is false.
   */
  count: number;
  countExact: boolean;
  rows: Row[];
  /** True when a row exists after this page (known without relying on `count`). */
  hasNext: boolean;
}

// ---- sensor_readings ----

export interface ReadingKey {
  sensor_type: string;
  sensor_id: string;
  timestamp: string;
}

export interface ReadingFilters {
  sensor_type?: string;
  sensor_id?: string;
  location?: string;
}

export interface RecentReadingsOptions {
  /** Rows with timestamp >= now - hours. */
  hours: number;
  limit: number;
  sensor_type?: string;
  sensor_id?: string;
  /** Epoch ms; default the repository's clock. */
  now?: number;
}

export interface InsertReadingsResult {
  /** The rows stored by this call (not in input order). */
  inserted: ReadingRow[];
  /** How many of the input readings were not stored because their key already existed (or repeated in the batch). */
  duplicates: number;
}

export interface SaveReadingsResult {
  /** One stored row per input reading, in input order (a duplicate gets the existing row). */
  rows: ReadingRow[];
  inserted: number;
  duplicates: number;
}

/** A sensor and the time (ISO 8601) before which its newest rows are wanted (newestBefore). */
export interface NewestBeforeRequest {
  sensor_type: string;
  sensor_id: string;
  before: string;
}

export interface ReadingRepository {
  /** One INSERT per batch (SQLite: per chunk of the variable limit, one transaction); dedup by key. */
  insertMany(readings: readonly Reading[]): Promise<InsertReadingsResult>;
  /** The same INSERT without reading rows back: how many were new, how many duplicates (the ingest path). */
  storeMany(readings: readonly Reading[]): Promise<{ inserted: number; duplicates: number }>;
  /** The stored rows for these keys, in one query (per chunk on SQLite). */
  findByKeys(keys: readonly ReadingKey[]): Promise<ReadingRow[]>;
  /** insertMany + findByKeys for the duplicates: the stored row of every input, in input order. */
  saveMany(readings: readonly Reading[]): Promise<SaveReadingsResult>;
  /** Concurrent identical calls of `list`, `latest` and `recent` share one query (see readings.ts). */
  list(options: ListOptions<ReadingFilters>): Promise<ListResult<ReadingRow>>;
  get(id: number): Promise<ReadingRow | undefined>;
  /**
   * For each sensor, its newest `limit` rows with a timestamp before that sensor's `before`, in one
   * query (per chunk on SQLite); any order. Rebuilds the hot windows of many sensors at once.
   */
  newestBefore(sensors: readonly NewestBeforeRequest[], limit: number): Promise<ReadingRow[]>;
  /** Newest row of each (sensor_type, sensor_id), computed in the database. */
  latest(): Promise<ReadingRow[]>;
  /** Newest first. */
  recent(options: RecentReadingsOptions): Promise<ReadingRow[]>;
  /** `recent` as the JSON text of its array (built by the database on PostgreSQL). */
  recentJson(options: RecentReadingsOptions): Promise<JsonText>;
  /** Deletes rows with timestamp < cutoff (a row exactly at the cutoff stays) in batches; returns the total. */
  deleteOlderThan(cutoffIso: string, batchSize?: number): Promise<number>;
}

// ---- grid_data ----

export interface GridData {
  data_type: string;
  value: number;
  unit: string;
  zone: string;
  metadata: Record<string, unknown>;
  /** ISO 8601; stored in UTC with milliseconds. */
  timestamp: string;
}

export interface GridDataRow extends GridData {
  id: number;
  created_at: string;
}

export interface GridDataFilters {
  data_type?: string;
  zone?: string;
}

export interface GridDataRepository {
  /** Insert, or on the same (data_type, zone, timestamp) replace value, unit, metadata. Returns the stored rows. */
  upsertMany(rows: readonly GridData[]): Promise<GridDataRow[]>;
  list(options: ListOptions<GridDataFilters>): Promise<ListResult<GridDataRow>>;
  get(id: number): Promise<GridDataRow | undefined>;
  /** Newest row of each data_type (or only of `dataType`), computed in the database. */
  latest(dataType?: string): Promise<GridDataRow[]>;
  /** Rows of `dataType` with timestamp >= now - hours, newest first, at most `limit`. */
  recent(dataType: string, hours: number, limit: number, now?: number): Promise<GridDataRow[]>;
  deleteOlderThan(cutoffIso: string, batchSize?: number): Promise<number>;
}

// ---- errors shared by the repositories ----

/**
 * A write that would break a unique column (`preference_key`, `source_type`). The API answers
 * 400 `{"<field>": ["<verbose name> with this <field name> already exists."]}`.
 */
export class ConflictError extends Error {
  readonly code = 'CONFLICT';
  constructor(
    readonly field: string,
    readonly value: unknown,
    message = `${field} ${String(value)} already exists`,
  ) {
    super(message);
    this.name = 'ConflictError';
  }
}

// ---- user_preferences ----

export interface UserPreference {
  preference_key: string;
  /** Any JSON value, null included. */
  preference_value: unknown;
  description: string;
}

export interface UserPreferenceRow extends UserPreference {
  id: number;
  created_at: string;
  updated_at: string;
}

export interface PreferencesRepository {
  /** Paginated, newest first (by id). Filters and ordering are not offered. */
  list(options: ListOptions<Record<string, never>>): Promise<ListResult<UserPreferenceRow>>;
  getByKey(key: string): Promise<UserPreferenceRow | undefined>;
  /** Throws `ConflictError('preference_key')` when the key exists. */
  create(input: UserPreference): Promise<UserPreferenceRow>;
  /** PUT: every field replaced (the key may change; a taken key: `ConflictError`). Undefined: no such key. */
  replace(key: string, input: UserPreference): Promise<UserPreferenceRow | undefined>;
  /** PATCH: only the given fields change. Undefined: no such key. */
  patch(key: string, fields: Partial<UserPreference>): Promise<UserPreferenceRow | undefined>;
  /** True when a row was deleted. */
  delete(key: string): Promise<boolean>;
}

// ---- ai_decisions ----

export interface AiDecision {
  decision_type: string;
  decision: Record<string, unknown>;
  confidence: number;
  reasoning: string;
  applied: boolean;
  /** ISO 8601; stored in UTC with milliseconds. */
  timestamp: string;
}

export interface AiDecisionRow extends AiDecision {
  id: number;
  created_at: string;
}

export interface DecisionFilters {
  decision_type?: string;
  applied?: boolean;
}

export interface RecentDecisionsOptions {
  hours: number;
  limit: number;
  decision_type?: string;
  /** Epoch ms; default the repository's clock. */
  now?: number;
}

export interface DecisionRepository {
  insert(input: AiDecision): Promise<AiDecisionRow>;
  /** Paginated; filters decision_type, applied; ordering timestamp, created_at, confidence (default -timestamp). */
  list(options: ListOptions<DecisionFilters>): Promise<ListResult<AiDecisionRow>>;
  get(id: number): Promise<AiDecisionRow | undefined>;
  /** Timestamp at or after now - hours, newest first, at most `limit`. */
  recent(options: RecentDecisionsOptions): Promise<AiDecisionRow[]>;
  /** The newest decision (of a type), or undefined. */
  latest(decisionType?: string): Promise<AiDecisionRow | undefined>;
  /** The only change a decision allows. Undefined: no such id. */
  setApplied(id: number, applied: boolean): Promise<AiDecisionRow | undefined>;
}

// ---- energy_sources ----

export interface EnergySource {
  source_type: string;
  is_available: boolean;
  /** W; null when unknown. */
  capacity: number | null;
  current_output: number;
  priority: number;
}

export interface EnergySourceRow extends EnergySource {
  id: number;
  updated_at: string;
}

export interface EnergySourceRepository {
  /** Paginated, highest priority first (then id). */
  list(options: ListOptions<Record<string, never>>): Promise<ListResult<EnergySourceRow>>;
  /** The available sources, highest priority first, as one array (there are at most a handful). */
  available(): Promise<EnergySourceRow[]>;
  get(id: number): Promise<EnergySourceRow | undefined>;
  /** Throws `ConflictError('source_type')` when the type exists. */
  create(input: EnergySource): Promise<EnergySourceRow>;
  /** PUT; a source_type taken by another row: `ConflictError`. Undefined: no such id. */
  replace(id: number, input: EnergySource): Promise<EnergySourceRow | undefined>;
  patch(id: number, fields: Partial<EnergySource>): Promise<EnergySourceRow | undefined>;
}
