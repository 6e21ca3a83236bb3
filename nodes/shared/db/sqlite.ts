/**
 * `SqlDatabase` on better-sqlite3. The driver is synchronous: each statement runs to completion
 * on the event loop, so statements are kept small (batched inserts, chunked deletes that yield
 * between chunks). Operations are serialised through one promise chain so that a transaction
 * (BEGIN IMMEDIATE ... COMMIT around async code) never sees another caller's statements.
 *
 * The chain is shared by every connection this process has open on the same file: while one
 * connection holds the write lock across an `await`, another connection of the same thread
 * would otherwise spin in SQLite's busy handler, synchronously, so the holder could never
 * finish (a self-deadlock until busy_timeout). Between processes the busy timeout does its job.
 */
import fs from 'fs';
import path from 'path';
import BetterSqlite3 from 'better-sqlite3';
import type { OpenDatabaseOptions, SqlDatabase, SqlExecutor } from './types';

/** SQLite's default SQLITE_MAX_VARIABLE_NUMBER since 3.32 (the bundled library is newer). */
export const SQLITE_MAX_VARIABLES = 32766;

const STATEMENT_CACHE_SIZE = 200;

/**
 * `$1..$n` → `?` with the values reordered (and repeated) to match. better-sqlite3 cannot bind
 * SQLite's numbered `?NNN` parameters from an array, so positional `?` it is.
 */
export function translatePlaceholders(sql: string, params: readonly unknown[]): { sql: string; params: unknown[] } {
  const out: unknown[] = [];
  const text = sql.replace(/\$(\d+)/g, (_, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= params.length) throw new RangeError(`SQL placeholder $${n} has no value (${params.length} given)`);
    out.push(params[i]);
    return '?';
  });
  return { sql: text, params: out };
}

/** better-sqlite3 binds numbers, strings, bigints, Buffers and null only. */
function toSqliteValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return v.toISOString();
  return v;
}

class SqliteExecutor implements SqlExecutor {
  readonly dialect = 'sqlite' as const;
  private readonly cache = new Map<string, BetterSqlite3.Statement>();
  constructor(protected readonly db: BetterSqlite3.Database) {}

  protected prepare(sql: string): BetterSqlite3.Statement {
    let stmt = this.cache.get(sql);
    if (stmt) {
      // Map keeps insertion order: re-insert to mark as recently used.
      this.cache.delete(sql);
    } else {
      stmt = this.db.prepare(sql);
      if (this.cache.size >= STATEMENT_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    }
    this.cache.set(sql, stmt);
    return stmt;
  }

  runQuery<T>(sql: string, params?: readonly unknown[]): T[] {
    const t = translatePlaceholders(sql, params ?? []);
    const stmt = this.prepare(t.sql);
    const values = t.params.map(toSqliteValue);
    if (stmt.reader) return stmt.all(...values) as T[];
    stmt.run(...values);
    return [];
  }

  runExecute(sql: string, params?: readonly unknown[]): number {
    const t = translatePlaceholders(sql, params ?? []);
    const stmt = this.prepare(t.sql);
    const values = t.params.map(toSqliteValue);
    if (stmt.reader) return stmt.all(...values).length; // e.g. DELETE ... RETURNING
    return stmt.run(...values).changes;
  }

  async query<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return this.runQuery<T>(sql, params);
  }

  async execute(sql: string, params?: readonly unknown[]): Promise<number> {
    return this.runExecute(sql, params);
  }
}

/** The handle given to a transaction's callback: runs directly, the outer chain is held for it. */
class SqliteTxExecutor implements SqlExecutor {
  readonly dialect = 'sqlite' as const;
  active = true;
  constructor(private readonly inner: SqliteExecutor) {}
  async query<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    this.check();
    return this.inner.runQuery<T>(sql, params);
  }
  async execute(sql: string, params?: readonly unknown[]): Promise<number> {
    this.check();
    return this.inner.runExecute(sql, params);
  }
  private check(): void {
    if (!this.active) throw new Error('transaction already finished');
  }
}

/** One promise chain per database file of this process (see the top of this file). */
class OperationQueue {
  private tail: Promise<unknown> = Promise.resolve();
  users = 0;
  /** Runs `fn` after every operation queued before it has finished. */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

const queuesByFile = new Map<string, OperationQueue>();

function acquireQueue(file: string): OperationQueue {
  if (file === ':memory:') return new OperationQueue(); // every :memory: is a database of its own
  let q = queuesByFile.get(file);
  if (!q) {
    q = new OperationQueue();
    queuesByFile.set(file, q);
  }
  q.users += 1;
  return q;
}

function releaseQueue(file: string, q: OperationQueue): void {
  q.users -= 1;
  if (q.users <= 0 && queuesByFile.get(file) === q) queuesByFile.delete(file);
}

export class SqliteDatabase extends SqliteExecutor implements SqlDatabase {
  private closed = false;
  private readonly queue: OperationQueue;

  constructor(
    db: BetterSqlite3.Database,
    private readonly file: string,
  ) {
    super(db);
    this.queue = acquireQueue(file);
  }

  private serial<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.queue.run(() => {
      if (this.closed) throw new Error('database is closed');
      return fn();
    });
  }

  override query<T>(sql: string, params?: readonly unknown[]): Promise<T[]> {
    return this.serial(() => this.runQuery<T>(sql, params));
  }

  override execute(sql: string, params?: readonly unknown[]): Promise<number> {
    return this.serial(() => this.runExecute(sql, params));
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      // IMMEDIATE takes the write lock now: a deferred transaction that later writes can fail
      // with SQLITE_BUSY without waiting when another process wrote meanwhile (WAL).
      this.db.exec('BEGIN IMMEDIATE');
      const tx = new SqliteTxExecutor(this);
      try {
        const result = await fn(tx);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        // Some errors (SQLITE_FULL, ...) already rolled back.
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      } finally {
        tx.active = false;
      }
    });
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  private closing?: Promise<void>;

  close(): Promise<void> {
    this.closing ??= this.serial(() => {
      this.closed = true;
      this.db.close();
      releaseQueue(this.file, this.queue);
    });
    return this.closing;
  }
}

/**
 * Switching a file to WAL needs a moment's exclusive lock, and SQLite answers SQLITE_BUSY at once
 * (without its busy handler) when another process holds one, e.g. two instances starting
 * together on a fresh file: wait and try again, without blocking the event loop.
 */
async function enableWal(db: BetterSqlite3.Database, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() + wait > deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** `file` is an absolute path (see resolveDatabaseTarget) or `:memory:`. */
export async function openSqlite(file: string, opts: OpenDatabaseOptions = {}): Promise<SqliteDatabase> {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new BetterSqlite3(file, { timeout: opts.busyTimeoutMs ?? 5_000 });
  try {
    if (file !== ':memory:') await enableWal(db, opts.busyTimeoutMs ?? 5_000);
    // With WAL, NORMAL is durable against application crashes and much faster than FULL.
    db.pragma('synchronous = NORMAL');
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5_000))}`);
    db.pragma('foreign_keys = ON');
  } catch (err) {
    db.close();
    throw err;
  }
  return new SqliteDatabase(db, file);
}
