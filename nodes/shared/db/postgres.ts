/**
 * `SqlDatabase` on a `pg.Pool`. Type parsers are set on this pool only (pg's global parsers are
 * left alone, other code in the same process may rely on them): int8 → number (ids and counts
 * stay far below 2^53), timestamptz/timestamp → ISO 8601 with milliseconds and `Z`.
 */
import { createHash } from 'crypto';
import { Pool, TypeOverrides } from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import type { OpenDatabaseOptions, QueryOptions, SqlDatabase, SqlExecutor } from './types';

const OID_INT8 = 20;
const OID_TIMESTAMP = 1114;
const OID_TIMESTAMPTZ = 1184;
const OID_JSON = 114;
const OID_JSONB = 3802;

const ARRAY_ESCAPE = /["\\]/g;
const NEEDS_ESCAPE = /["\\]/;

/**
 * The text form of a one-dimensional PostgreSQL array of strings or finite numbers, for ONE bound
 * parameter (cast in the statement: `$1::text[]`, `$2::float8[]`, `$3::timestamptz[]`). Every
 * string element is double-quoted with `"` and `\` backslash-escaped, which is all PostgreSQL's
 * array input needs so that no content can end an element or the array (a quoted `NULL` is the
 * string NULL, `{}` and `,` inside quotes are text). Numbers go as JS prints them (float8 input
 * reads `1e+21`, `-1.5e-7`). pg's own array serialisation does the same per element through a type
 * dispatch and a copy of the whole text per element; this is one pass (for the ingest batches).
 */
export function pgArrayText(values: readonly (string | number)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new TypeError(`array element ${i} is not a finite number`);
      out += String(v);
    } else {
      out += NEEDS_ESCAPE.test(v) ? `"${v.replace(ARRAY_ESCAPE, '\\$&')}"` : `"${v}"`;
    }
  }
  return `${out}}`;
}

/**
 * PostgreSQL's text form of a timestamp (DateStyle ISO): `2026-01-26 08:00:00.123456+00`,
 * offsets like `+05:30` or `-03:30:45`; no offset for `timestamp without time zone` (read as UTC).
 * Returns ISO 8601 with milliseconds and `Z` (microseconds truncated, as stored readings have
 * milliseconds only), or the text unchanged for `infinity` and BC dates.
 */
export function pgTimestampToIso(text: string): string {
  // Fast path, taken for every row of every answer: the pool's sessions run in UTC (see
  // openPostgres), so PostgreSQL sends `YYYY-MM-DD HH:MM:SS[.ffffff]+00`, and the ISO form is a
  // matter of slicing (measured: 1000 rows' two timestamps 2 ms → 0.1 ms, no Date allocated).
  const n = text.length;
  if (n >= 22 && n <= 29 && text.charCodeAt(n - 3) === 43 /* + */ && text.endsWith('00') && text.charCodeAt(4) === 45 && text.charCodeAt(10) === 32) {
    if (n === 22) return `${text.slice(0, 10)}T${text.slice(11, 19)}.000Z`;
    if (text.charCodeAt(19) === 46 /* . */ && n >= 24) {
      return `${text.slice(0, 10)}T${text.slice(11, 19)}.${text.slice(20, Math.min(23, n - 3)).padEnd(3, '0')}Z`;
    }
  }
  const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?$/.exec(text);
  if (!m) return text;
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const d = new Date(Date.UTC(2000, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms));
  d.setUTCFullYear(Number(m[1])); // Date.UTC maps years 0-99 to 19xx
  let t = d.getTime();
  if (m[8]) {
    const offsetSeconds = Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0);
    t -= (m[8] === '-' ? -1 : 1) * offsetSeconds * 1000;
  }
  return new Date(t).toISOString();
}

function makeTypes(): TypeOverrides {
  const overrides = new TypeOverrides();
  overrides.setTypeParser(OID_INT8, (text: string) => Number(text));
  overrides.setTypeParser(OID_TIMESTAMPTZ, pgTimestampToIso);
  overrides.setTypeParser(OID_TIMESTAMP, pgTimestampToIso);
  // JSON stays text, as SQLite returns it: rowFromDb parses both alike. Parsed here, a jsonb
  // holding a string ("dark") would arrive as a JS string that rowFromDb cannot tell from text.
  overrides.setTypeParser(OID_JSON, (text: string) => text);
  overrides.setTypeParser(OID_JSONB, (text: string) => text);
  return overrides;
}

function asArray(params?: readonly unknown[]): unknown[] {
  return params ? [...params] : [];
}

const statementNames = new Map<string, string>();

/**
 * The name of the prepared statement for `sql`: derived from its text, so one name always means
 * one text (pg refuses a name reused for another text on a connection). Bounded: our statements
 * are a fixed handful.
 */
export function preparedName(sql: string): string {
  let name = statementNames.get(sql);
  if (!name) {
    name = `hv_${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    if (statementNames.size < 1000) statementNames.set(sql, name);
  }
  return name;
}

class PgExecutor implements SqlExecutor {
  readonly dialect = 'postgres' as const;
  constructor(private readonly target: Pool | PoolClient) {}
  async query<T>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T[]> {
    const res = options?.prepared
      ? await this.target.query<QueryResultRow>({ name: preparedName(sql), text: sql, values: asArray(params) })
      : await this.target.query<QueryResultRow>(sql, asArray(params));
    return res.rows as T[];
  }
  async execute(sql: string, params?: readonly unknown[]): Promise<number> {
    const res = await this.target.query(sql, asArray(params));
    return res.rowCount ?? 0;
  }
}

export class PostgresDatabase extends PgExecutor implements SqlDatabase {
  private closed = false;
  constructor(private readonly pool: Pool) {
    super(pool);
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A checked-out client has no pool listener: without ours a dropped connection would be an
    // unhandled 'error' event (a crash). The failing query rejects on its own.
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await fn(new PgExecutor(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = broken ?? (rollbackErr as Error);
      }
      throw err;
    } finally {
      client.removeListener('error', onError);
      // Passing an error destroys the connection instead of returning it to the pool.
      client.release(broken);
    }
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

export function openPostgres(url: string, opts: OpenDatabaseOptions = {}): PostgresDatabase {
  const timeout = opts.statementTimeoutMs ?? 10_000;
  const pool = new Pool({
    connectionString: url,
    max: opts.poolMax ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    // Server side: the statement is cancelled; client side: a hung connection still rejects.
    statement_timeout: timeout,
    query_timeout: timeout + 2_000,
    application_name: 'hypervolt',
    // Timestamps come back as `...+00`, the form pgTimestampToIso turns into ISO without a Date.
    options: '-c TimeZone=UTC',
    types: makeTypes(),
  });
  // An idle connection dropped by the server (restart, failover) must not crash the process;
  // the pool discards it and the next query opens a fresh one.
  pool.on('error', (err) => {
    opts.logger?.warn(`PostgreSQL idle connection error: ${err.message}`);
  });
  return new PostgresDatabase(pool);
}
