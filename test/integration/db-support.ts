/**
 * The two database backends the db-*.test.ts suites run against: SQLite in a temp file and a
 * fresh PostgreSQL database (skipped outside CI when PostgreSQL is down).
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { openDatabase } from '../../nodes/shared/db';
import type { Database, OpenDatabaseOptions } from '../../nodes/shared/db';
import { createTestDatabase, requireService, RUN_ID } from '../support/services';

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** Prepares a fresh empty database and returns its URL (from a hook or a test; may be called again). */
  create(ctx: Mocha.Context, label: string): Promise<string>;
  /** Removes every database `create` made. */
  destroy(): Promise<void>;
}

function sqliteBackend(): Backend {
  const dirs: string[] = [];
  return {
    name: 'sqlite',
    async create(_ctx, label) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hvtest-${RUN_ID}-${label}-`));
      dirs.push(dir);
      return `sqlite:${path.join(dir, 'nested', 'hypervolt.db')}`;
    },
    async destroy() {
      for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresBackend(): Backend {
  const drops: (() => Promise<void>)[] = [];
  return {
    name: 'postgres',
    async create(ctx, label) {
      await requireService(ctx, 'postgres');
      const t = await createTestDatabase(label);
      drops.push(t.drop);
      return t.url;
    },
    async destroy() {
      for (const drop of drops.splice(0)) await drop();
    },
  };
}

/** A fresh pair of backends; each suite gets its own. */
export function backends(): Backend[] {
  return [sqliteBackend(), postgresBackend()];
}

/**
 * Opens a migrated database on a fresh backend for the suite, empties the given tables before
 * each test, closes and drops after. Returns a getter (the value exists once `before` ran).
 */
export function useDatabase(backend: Backend, label: string, tables: string[], opts?: OpenDatabaseOptions): () => Database {
  let db: Database | undefined;
  before(async function () {
    const url = await backend.create(this, label);
    db = await openDatabase(url, opts);
  });
  beforeEach(async () => {
    for (const t of tables) await db!.sql.execute(`DELETE FROM ${t}`);
  });
  after(async () => {
    await db?.close();
    db = undefined;
    await backend.destroy();
  });
  return () => db!;
}

/** ISO timestamp `ms` milliseconds before now (rounded to ms, as stored). */
export function ago(ms: number, now = Date.now()): string {
  return new Date(now - ms).toISOString();
}
