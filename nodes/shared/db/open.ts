/**
 * `openDatabase(url)`: PostgreSQL for `postgres://` / `postgresql://`, SQLite for everything else
 * that names a file (`sqlite:PATH`, `sqlite://PATH`, `file:PATH`, a plain path; empty →
 * `data/hypervolt.db`). Runs the migrations before handing the database out.
 */
import path from 'path';
import { fileURLToPath } from 'url';
import { migrate } from './migrations';
import { openPostgres } from './postgres';
import { createGridDataRepository } from './grid-data';
import { createReadingRepository } from './readings';
import { createPreferencesRepository } from './preferences';
import { createDecisionRepository } from './decisions';
import { createEnergySourceRepository } from './energy-sources';
import { openSqlite } from './sqlite';
import type { Database, OpenDatabaseOptions, SqlDatabase } from './types';
import { redactUrl } from '../redact';

export const DEFAULT_SQLITE_PATH = 'data/hypervolt.db';

export type DatabaseTarget =
  | { kind: 'postgres'; url: string; description: string }
  | { kind: 'sqlite'; path: string; description: string };

/** Which database a URL names (pure; no IO). Throws on a scheme we do not speak. */
export function resolveDatabaseTarget(url: string | undefined, baseDir?: string): DatabaseTarget {
  const raw = (url ?? '').trim();
  const base = baseDir ?? process.cwd();
  const sqlite = (p: string): DatabaseTarget => {
    if (p === '') throw new Error(`database URL "${raw}" names no SQLite file`);
    const file = p === ':memory:' ? p : path.resolve(base, p);
    return { kind: 'sqlite', path: file, description: `sqlite:${file}` };
  };
  if (raw === '') return sqlite(DEFAULT_SQLITE_PATH);
  if (/^postgres(ql)?:\/\//i.test(raw)) return { kind: 'postgres', url: raw, description: redactUrl(raw) };
  if (/^file:\/\//i.test(raw)) return sqlite(fileURLToPath(raw));
  if (/^sqlite:\/\//i.test(raw)) return sqlite(raw.slice('sqlite://'.length));
  if (/^(sqlite|file):/i.test(raw)) return sqlite(raw.slice(raw.indexOf(':') + 1));
  // `mysql://...` and the like: say so rather than create a file named after the URL.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
    throw new Error(`unsupported database URL scheme in "${redactUrl(raw)}" (use postgres://, sqlite: or a file path)`);
  }
  return sqlite(raw);
}

/** Opens the database named by `url` and (unless `migrate: false`) applies the migrations. */
export async function openDatabase(url: string | undefined, opts: OpenDatabaseOptions = {}): Promise<Database> {
  const target = resolveDatabaseTarget(url, opts.baseDir);
  const sql: SqlDatabase =
    target.kind === 'postgres'
      ? openPostgres(target.url, opts)
      : await openSqlite(target.path, opts);
  const clock = opts.clock ?? { now: () => Date.now() };
  try {
    if (opts.migrate !== false) await migrate(sql);
  } catch (err) {
    await sql.close().catch(() => undefined);
    throw err;
  }
  return {
    dialect: sql.dialect,
    description: target.description,
    sql,
    readings: createReadingRepository(sql, clock),
    gridData: createGridDataRepository(sql, clock),
    preferences: createPreferencesRepository(sql, clock),
    decisions: createDecisionRepository(sql, clock),
    energySources: createEnergySourceRepository(sql, clock),
    migrate: () => migrate(sql),
    ping: () => sql.ping(),
    close: () => sql.close(),
  };
}
