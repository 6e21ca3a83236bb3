/**
 * `ReadingRepository`: the `sensor_readings` table. A reading is identified by
 * (sensor_type, sensor_id, timestamp): a second delivery of the same reading is not stored again.
 */
import { COUNT_CAP, deleteOlderThan, EstimateCache, getRow, latestPerGroup, listRows } from './list-query';
import { pgArrayText } from './postgres';
import { SQLITE_MAX_VARIABLES } from './sqlite';
import { jsonRowSql, rowsFromDb, selectList, toIsoMs } from './table';
import { JsonText } from '../json-text';
import type { TableSpec } from './table';
import type {
  InsertReadingsResult,
  ListOptions,
  ListResult,
  NewestBeforeRequest,
  Reading,
  ReadingFilters,
  ReadingKey,
  ReadingRepository,
  ReadingRow,
  RecentReadingsOptions,
  SaveReadingsResult,
  SqlDatabase,
  SqlExecutor,
} from './types';

export const READINGS_TABLE: TableSpec<ReadingRow> = {
  table: 'sensor_readings',
  columns: {
    id: 'id',
    sensor_type: 'text',
    sensor_id: 'text',
    value: 'number',
    unit: 'text',
    location: 'text',
    timestamp: 'timestamp',
    created_at: 'timestamp',
  },
  filterable: ['sensor_type', 'sensor_id', 'location'],
  orderable: ['timestamp', 'created_at'],
  defaultOrdering: '-timestamp',
};

/** A reading's JSON text, built by PostgreSQL (`recentJson`). */
const READING_JSON_SQL = jsonRowSql(READINGS_TABLE);

export const DEFAULT_DELETE_BATCH = 5000;

const INSERT_COLUMNS = ['sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp'] as const;
/** Rows per SQLite statement: as many as the variable limit allows. */
const SQLITE_INSERT_CHUNK = Math.floor(SQLITE_MAX_VARIABLES / INSERT_COLUMNS.length);
const SQLITE_KEY_CHUNK = Math.floor(SQLITE_MAX_VARIABLES / 3);
/** Sensors per SQLite newestBefore statement: one UNION ALL arm each (SQLite allows 500 arms). */
const SQLITE_NEWEST_CHUNK = 200;

const RETURNING = `RETURNING ${selectList(READINGS_TABLE)}`;

/** One key string per reading; timestamps compared in their canonical ISO form. */
export function readingKey(k: ReadingKey): string {
  return `${k.sensor_type}\u0000${k.sensor_id}\u0000${k.timestamp}`;
}

/** The reading with its timestamp in canonical form; a clear error for a reading that is not one. */
function normalize(r: Reading, index: number): Reading {
  if (!r || typeof r.sensor_type !== 'string' || typeof r.sensor_id !== 'string' || typeof r.value !== 'number' || !Number.isFinite(r.value)) {
    throw new TypeError(`reading ${index} is not a validated reading`);
  }
  let timestamp: string;
  try {
    timestamp = toIsoMs(r.timestamp);
  } catch {
    throw new TypeError(`reading ${index} has an invalid timestamp: ${String(r.timestamp)}`);
  }
  return {
    sensor_type: r.sensor_type,
    sensor_id: r.sensor_id,
    value: r.value,
    unit: r.unit ?? '',
    location: r.location ?? '',
    timestamp,
  };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

class SqlReadingRepository implements ReadingRepository {
  /** Completed writes (inserts, deletes) of this repository; a read in flight from before is not shared. */
  private writes = 0;
  /** Reads in flight that an identical later call may join (see `shared`), by key. */
  private readonly flights = new Map<string, { writes: number; since?: string; result: Promise<unknown> }>();
  /** Planner estimates of list counts, dropped whenever this repository writes (see EstimateCache). */
  private readonly estimates = new EstimateCache();

  constructor(
    private readonly db: SqlDatabase,
    private readonly clock: { now(): number },
  ) {}

  /** Something changed in the table: no query started before now may answer a later call. */
  private wrote(): void {
    this.writes += 1;
    this.estimates.invalidate();
  }

  async insertMany(input: readonly Reading[]): Promise<InsertReadingsResult> {
    if (input.length === 0) return { inserted: [], duplicates: 0 };
    const readings = input.map(normalize);
    const raw = await this.insert<Record<string, unknown>[]>(readings, (ex, sql, params) => ex.query<Record<string, unknown>>(`${sql} ${RETURNING}`, params), (parts) => parts.flat());
    const inserted = rowsFromDb(READINGS_TABLE, raw, this.db.dialect);
    if (inserted.length > 0) this.wrote();
    return { inserted, duplicates: readings.length - inserted.length };
  }

  async storeMany(input: readonly Reading[]): Promise<{ inserted: number; duplicates: number }> {
    if (input.length === 0) return { inserted: 0, duplicates: 0 };
    const readings = input.map(normalize);
    const inserted = await this.insert<number>(readings, (ex, sql, params) => ex.execute(sql, params), (counts) => counts.reduce((a, b) => a + b, 0));
    if (inserted > 0) this.wrote();
    return { inserted, duplicates: readings.length - inserted };
  }

  /**
   * The one INSERT of a batch, deduplicated by key: PostgreSQL one statement with six array
   * parameters, however many rows (no per-row placeholders to parse and plan; ON CONFLICT also
   * absorbs a key repeated inside the batch); SQLite multi-row VALUES per chunk of its variable
   * limit, in one transaction. `run` executes it (returning rows or a count); `merge` joins the
   * SQLite chunks' results.
   */
  private async insert<T>(
    readings: readonly ReturnType<typeof normalize>[],
    run: (ex: SqlExecutor, sql: string, params: unknown[]) => Promise<T>,
    merge: (parts: T[]) => T,
  ): Promise<T> {
    const conflict = 'ON CONFLICT (sensor_type, sensor_id, timestamp) DO NOTHING';
    if (this.db.dialect === 'postgres') {
      return run(
        this.db,
        `INSERT INTO sensor_readings (${INSERT_COLUMNS.join(', ')})
         SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::timestamptz[])
         ${conflict}`,
        INSERT_COLUMNS.map((c) => pgArrayText(readings.map((r) => r[c]))),
      );
    }
    return this.db.transaction(async (tx) => {
      const parts: T[] = [];
      for (const part of chunks(readings, SQLITE_INSERT_CHUNK)) {
        const values = part
          .map((_, i) => `(${INSERT_COLUMNS.map((__, j) => `$${i * INSERT_COLUMNS.length + j + 1}`).join(', ')})`)
          .join(', ');
        const params = part.flatMap((r) => INSERT_COLUMNS.map((c) => r[c]));
        parts.push(await run(tx, `INSERT INTO sensor_readings (${INSERT_COLUMNS.join(', ')}) VALUES ${values} ${conflict}`, params));
      }
      return merge(parts);
    });
  }

  async findByKeys(input: readonly ReadingKey[]): Promise<ReadingRow[]> {
    if (input.length === 0) return [];
    const keys = input.map((k, i) => {
      try {
        return { sensor_type: k.sensor_type, sensor_id: k.sensor_id, timestamp: toIsoMs(k.timestamp) };
      } catch {
        throw new TypeError(`key ${i} has an invalid timestamp: ${String(k.timestamp)}`);
      }
    });
    let raw: Record<string, unknown>[];
    if (this.db.dialect === 'postgres') {
      raw = await this.db.query(
        `SELECT ${selectList(READINGS_TABLE)} FROM sensor_readings
         WHERE (sensor_type, sensor_id, timestamp) IN
           (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]))`,
        [keys.map((k) => k.sensor_type), keys.map((k) => k.sensor_id), keys.map((k) => k.timestamp)],
      );
    } else {
      raw = [];
      for (const part of chunks(keys, SQLITE_KEY_CHUNK)) {
        const values = part.map((_, i) => `($${i * 3 + 1}, $${i * 3 + 2}, $${i * 3 + 3})`).join(', ');
        raw.push(
          ...(await this.db.query<Record<string, unknown>>(
            `SELECT ${selectList(READINGS_TABLE)} FROM sensor_readings
             WHERE (sensor_type, sensor_id, timestamp) IN (VALUES ${values})`,
            part.flatMap((k) => [k.sensor_type, k.sensor_id, k.timestamp]),
          )),
        );
      }
    }
    return rowsFromDb(READINGS_TABLE, raw, this.db.dialect);
  }

  async newestBefore(sensors: readonly NewestBeforeRequest[], limit: number): Promise<ReadingRow[]> {
    if (sensors.length === 0 || !(limit > 0)) return [];
    const wanted = sensors.map((s, i) => {
      try {
        return { sensor_type: s.sensor_type, sensor_id: s.sensor_id, before: toIsoMs(s.before) };
      } catch {
        throw new TypeError(`sensor ${i} has an invalid time: ${String(s.before)}`);
      }
    });
    const cols = selectList(READINGS_TABLE);
    let raw: Record<string, unknown>[];
    if (this.db.dialect === 'postgres') {
      // One index walk per sensor (sensor_type, sensor_id, timestamp), newest first.
      raw = await this.db.query(
        `SELECT ${selectList(READINGS_TABLE, 'r')} FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(sensor_type, sensor_id, before)
         CROSS JOIN LATERAL (SELECT * FROM sensor_readings s
           WHERE s.sensor_type = k.sensor_type AND s.sensor_id = k.sensor_id AND s.timestamp < k.before
           ORDER BY s.timestamp DESC LIMIT $4) r`,
        [wanted.map((k) => k.sensor_type), wanted.map((k) => k.sensor_id), wanted.map((k) => k.before), limit],
      );
    } else {
      raw = [];
      for (const part of chunks(wanted, SQLITE_NEWEST_CHUNK)) {
        const arms = part.map(
          (_, i) =>
            `SELECT * FROM (SELECT ${cols} FROM sensor_readings WHERE sensor_type = $${i * 3 + 2} AND sensor_id = $${i * 3 + 3} AND timestamp < $${i * 3 + 4}
             ORDER BY timestamp DESC LIMIT $1)`,
        );
        raw.push(
          ...(await this.db.query<Record<string, unknown>>(
            arms.join(' UNION ALL '),
            [limit, ...part.flatMap((k) => [k.sensor_type, k.sensor_id, k.before])],
          )),
        );
      }
    }
    return rowsFromDb(READINGS_TABLE, raw, this.db.dialect);
  }

  async saveMany(input: readonly Reading[]): Promise<SaveReadingsResult> {
    const readings = input.map(normalize);
    const { inserted, duplicates } = await this.insertMany(readings);
    const byKey = new Map(inserted.map((r) => [readingKey(r), r]));
    const missing = readings.filter((r) => !byKey.has(readingKey(r)));
    if (missing.length > 0) {
      for (const row of await this.findByKeys(missing)) byKey.set(readingKey(row), row);
    }
    const rows = readings.map((r, i) => {
      const row = byKey.get(readingKey(r));
      // Only possible if the row was deleted between the two statements (retention cleanup).
      if (!row) throw new Error(`reading ${i} was neither stored nor found`);
      return row;
    });
    return { rows, inserted: inserted.length, duplicates };
  }

  /**
   * Reads in flight are shared (single flight): a call identical to one whose query has not
   * answered yet joins it instead of running its own. Under 10 parallel requests for the same
   * thing (a dashboard's polls, the bench) the database answers once and the rows are parsed
   * once, where each call used to cost the same again (measured, 5 M rows: `latest` ~4 ms of
   * PostgreSQL CPU per walk, `recent` ~3 ms of Node CPU per 1000 rows).
   * A call joins only when no write of this repository has completed since that query started,
   * so a client that stored a reading here sees it. A write by another process (or instance) can
   * be missed only by a call that joined a query started before that write committed: staleness
   * is bounded by one query's duration (a few ms), and no result is kept once its query has
   * answered. Each caller gets its own array (a caller that edits its answer must not edit
   * another's); the row objects are shared, as the handlers and the nodes only read them.
   */
  private shared<T>(key: string, start: () => Promise<T>, since?: string): Promise<T> {
    const flight = this.flights.get(key);
    // `since` (recent): a later call has a later window start; the earlier call's rows, newest
    // first, cut at the later start are exactly the later call's answer (see `recent`).
    if (flight && flight.writes === this.writes && (since === undefined || (flight.since !== undefined && flight.since <= since))) {
      return flight.result as Promise<T>;
    }
    const result = start();
    const entry = { writes: this.writes, since, result };
    this.flights.set(key, entry);
    const clear = () => {
      if (this.flights.get(key) === entry) this.flights.delete(key);
    };
    result.then(clear, clear);
    return result;
  }

  async list(options: ListOptions<ReadingFilters>): Promise<ListResult<ReadingRow>> {
    const f = options.filters ?? {};
    const key = `list\u0000${JSON.stringify([options.ordering ?? null, options.page ?? 1, options.pageSize ?? null, f.sensor_type ?? null, f.sensor_id ?? null, f.location ?? null])}`;
    const result = await this.shared(key, () => listRows(this.db, READINGS_TABLE, options, COUNT_CAP, this.estimates));
    return { ...result, rows: result.rows.slice() };
  }

  get(id: number): Promise<ReadingRow | undefined> {
    return getRow(this.db, READINGS_TABLE, id);
  }

  /** Newest row of each sensor: a loose index scan (latestPerGroup), shared by concurrent calls. */
  async latest(): Promise<ReadingRow[]> {
    const rows = await this.shared('latest', () => latestPerGroup(this.db, READINGS_TABLE, ['sensor_type', 'sensor_id'], 'timestamp'));
    return rows.slice();
  }

  /** The WHERE clause, parameters and window start of `recent`; null when nothing can match. */
  private recentQuery(options: RecentReadingsOptions): { since: string; where: string; params: unknown[]; key: string } | null {
    const now = options.now ?? this.clock.now();
    const since = toIsoMs(now - options.hours * 3_600_000);
    const params: unknown[] = [since];
    let where = 'timestamp >= $1';
    for (const col of ['sensor_type', 'sensor_id'] as const) {
      const v = options[col];
      if (v === undefined) continue;
      if (v.includes('\u0000')) return null;
      params.push(v);
      where += ` AND ${col} = $${params.length}`;
    }
    params.push(options.limit);
    const key = JSON.stringify([options.limit, options.sensor_type ?? null, options.sensor_id ?? null]);
    return { since, where, params, key };
  }

  async recent(options: RecentReadingsOptions): Promise<ReadingRow[]> {
    const q = this.recentQuery(options);
    if (q === null) return [];
    const { since, where, params } = q;
    const sql = `SELECT ${selectList(READINGS_TABLE)} FROM sensor_readings WHERE ${where}
       ORDER BY timestamp DESC, id DESC LIMIT $${params.length}`;
    const rows = await this.shared(`recent\u0000${q.key}`, async () => rowsFromDb(READINGS_TABLE, await this.db.query<Record<string, unknown>>(sql, params), this.db.dialect), since);
    // Newest first: the rows at or after this call's own start are a prefix. A joined query
    // began earlier (its start is at or before ours), so its LIMIT newest rows hold all of ours
    // that it could see; rows before our start are cut off.
    let end = rows.length;
    while (end > 0 && rows[end - 1].timestamp < since) end--;
    return rows.slice(0, end);
  }

  /**
   * `recent` as JSON text. On PostgreSQL the database builds the array (`jsonRowSql`): Node gets
   * one string instead of parsing rows, building objects and stringifying them (measured, 1000
   * rows: the app's CPU per answer 40 % lower, PostgreSQL's per query 3.6 times); on SQLite
   * it is `JSON.stringify` of `recent`. Concurrent calls share one query and one text, like
   * `recent`, but a text cannot be cut at a later call's window start: a joined answer is taken
   * only when its oldest row is at or after this call's start (the usual case: a query that hit
   * its limit, or began within the same millisecond); otherwise this call runs its own query.
   */
  async recentJson(options: RecentReadingsOptions): Promise<JsonText> {
    const q = this.recentQuery(options);
    if (q === null) return new JsonText('[]');
    const { since, where, params } = q;
    const run = async (): Promise<{ oldest: string | null; json: JsonText }> => {
      if (this.db.dialect !== 'postgres') {
        const rows = await this.recent(options);
        return { oldest: rows.length > 0 ? rows[rows.length - 1].timestamp : null, json: new JsonText(JSON.stringify(rows)) };
      }
      const [row] = await this.db.query<{ oldest: string | null; body: string }>(
        `SELECT min(timestamp) AS oldest, COALESCE(string_agg(j, ',' ORDER BY timestamp DESC, id DESC), '') AS body
         FROM (SELECT timestamp, id, ${READING_JSON_SQL} AS j FROM sensor_readings WHERE ${where}
               ORDER BY timestamp DESC, id DESC LIMIT $${params.length}) r`,
        params,
      );
      return { oldest: row.oldest, json: new JsonText(`[${row.body}]`) };
    };
    let result = await this.shared(`recentJson\u0000${q.key}`, run, since);
    if (result.oldest !== null && result.oldest < since) result = await run();
    return result.json;
  }

  async deleteOlderThan(cutoffIso: string, batchSize = DEFAULT_DELETE_BATCH): Promise<number> {
    const n = await deleteOlderThan(this.db, READINGS_TABLE, 'timestamp', cutoffIso, batchSize);
    if (n > 0) this.wrote();
    return n;
  }
}

export function createReadingRepository(db: SqlDatabase, clock: { now(): number } = { now: () => Date.now() }): ReadingRepository {
  return new SqlReadingRepository(db, clock);
}
