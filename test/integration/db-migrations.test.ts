/**
 * Opening the database: URL rules, migrations (idempotent, concurrent), the schema of CONTRACT
 * section 4 as other tools see it, and the driver conversions.
 */
import assert from 'assert/strict';
import { execFile } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { types as pgGlobalTypes } from 'pg';
import { openDatabase, resolveDatabaseTarget } from '../../nodes/shared/db';
import type { Database } from '../../nodes/shared/db';
import { migrate, MIGRATIONS } from '../../nodes/shared/db/migrations';
import { pgArrayText, pgTimestampToIso } from '../../nodes/shared/db/postgres';
import { translatePlaceholders } from '../../nodes/shared/db/sqlite';
import { backends } from './db-support';

/** CONTRACT section 4: every table and its columns, in order. */
const CONTRACT_TABLES: Record<string, string[]> = {
  sensor_readings: ['id', 'sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp', 'created_at'],
  grid_data: ['id', 'data_type', 'value', 'unit', 'zone', 'metadata', 'timestamp', 'created_at'],
  user_preferences: ['id', 'preference_key', 'preference_value', 'description', 'created_at', 'updated_at'],
  ai_decisions: ['id', 'decision_type', 'decision', 'confidence', 'reasoning', 'applied', 'timestamp', 'created_at'],
  energy_sources: ['id', 'source_type', 'is_available', 'capacity', 'current_output', 'priority', 'updated_at'],
};

/** PostgreSQL column types the contract asks for (timestamptz, jsonb, ...). */
const PG_TYPES: Record<string, Record<string, string>> = {
  sensor_readings: { id: 'bigint', value: 'double precision', timestamp: 'timestamp with time zone', created_at: 'timestamp with time zone' },
  grid_data: { id: 'bigint', value: 'double precision', metadata: 'jsonb', timestamp: 'timestamp with time zone' },
  user_preferences: { preference_key: 'character varying', preference_value: 'jsonb', updated_at: 'timestamp with time zone' },
  ai_decisions: { decision: 'jsonb', confidence: 'double precision', applied: 'boolean', timestamp: 'timestamp with time zone' },
  energy_sources: { is_available: 'boolean', capacity: 'double precision', current_output: 'double precision', priority: 'integer' },
};

async function columnsOf(db: Database, table: string): Promise<string[]> {
  if (db.dialect === 'sqlite') {
    return (await db.sql.query<{ name: string }>(`SELECT name FROM pragma_table_info($1) ORDER BY cid`, [table])).map((r) => r.name);
  }
  return (
    await db.sql.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
      [table],
    )
  ).map((r) => r.column_name);
}

/** Index name → its columns in order, with `DESC` where descending. */
async function indexesOf(db: Database, table: string): Promise<Map<string, { columns: string; unique: boolean }>> {
  const out = new Map<string, { columns: string; unique: boolean }>();
  if (db.dialect === 'sqlite') {
    const list = await db.sql.query<{ name: string; unique: number }>('SELECT name, "unique" FROM pragma_index_list($1)', [table]);
    for (const ix of list) {
      const cols = await db.sql.query<{ name: string; desc: number }>('SELECT name, "desc" FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno', [ix.name]);
      out.set(ix.name, { columns: cols.map((c) => (c.desc ? `${c.name} DESC` : c.name)).join(', '), unique: ix.unique === 1 });
    }
    return out;
  }
  const rows = await db.sql.query<{ indexname: string; indexdef: string }>(
    `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1`,
    [table],
  );
  for (const r of rows) {
    const cols = /\((.*)\)$/.exec(r.indexdef)![1];
    out.set(r.indexname, { columns: cols, unique: /CREATE UNIQUE INDEX/.test(r.indexdef) });
  }
  return out;
}

function hasIndex(ix: Map<string, { columns: string; unique: boolean }>, columns: string, unique = false): boolean {
  return [...ix.values()].some((i) => i.columns === columns && (!unique || i.unique));
}

describe('resolveDatabaseTarget', () => {
  const base = '/srv/app';
  it('picks PostgreSQL for postgres:// and postgresql:// and hides the password', () => {
    const t = resolveDatabaseTarget('postgres://hv:s3cret@db:5432/hypervolt', base);
    assert.equal(t.kind, 'postgres');
    assert.equal(t.kind === 'postgres' && t.url, 'postgres://hv:s3cret@db:5432/hypervolt');
    assert.ok(!t.description.includes('s3cret'));
    assert.equal(resolveDatabaseTarget('postgresql://db/x', base).kind, 'postgres');
    assert.equal(resolveDatabaseTarget('POSTGRES://db/x', base).kind, 'postgres');
  });

  it('picks SQLite data/hypervolt.db for an empty URL, relative to the base dir or the cwd', () => {
    assert.deepEqual(resolveDatabaseTarget('', base), { kind: 'sqlite', path: '/srv/app/data/hypervolt.db', description: 'sqlite:/srv/app/data/hypervolt.db' });
    assert.equal(resolveDatabaseTarget(undefined, base).kind, 'sqlite');
    assert.equal(resolveDatabaseTarget('  ').kind === 'sqlite' && (resolveDatabaseTarget('  ') as { path: string }).path, path.resolve(process.cwd(), 'data/hypervolt.db'));
  });

  it('reads sqlite:PATH, sqlite://PATH, file:PATH, file:// URLs and plain paths', () => {
    const p = (url: string) => {
      const t = resolveDatabaseTarget(url, base);
      assert.equal(t.kind, 'sqlite', url);
      return (t as { path: string }).path;
    };
    assert.equal(p('sqlite:db/x.db'), '/srv/app/db/x.db');
    assert.equal(p('sqlite:/var/lib/hv.db'), '/var/lib/hv.db');
    assert.equal(p('sqlite://db/x.db'), '/srv/app/db/x.db');
    assert.equal(p('sqlite:///var/lib/hv.db'), '/var/lib/hv.db');
    assert.equal(p('file:x.db'), '/srv/app/x.db');
    assert.equal(p('file:///var/lib/my%20hv.db'), '/var/lib/my hv.db');
    assert.equal(p('x.db'), '/srv/app/x.db');
    assert.equal(p('/abs/x.db'), '/abs/x.db');
    assert.equal(p(':memory:'), ':memory:');
    assert.equal(p('sqlite::memory:'), ':memory:');
  });

  it('refuses other schemes and an empty sqlite: path', () => {
    assert.throws(() => resolveDatabaseTarget('mysql://u:pw@h/db', base), (e: Error) => /unsupported database URL scheme/.test(e.message) && !e.message.includes('pw@'));
    assert.throws(() => resolveDatabaseTarget('sqlite:', base), /names no SQLite file/);
  });
});

describe('database helpers', () => {
  it('translates $n placeholders for SQLite, repeating and reordering values', () => {
    assert.deepEqual(translatePlaceholders('SELECT $2, $1, $2', ['a', 'b']), { sql: 'SELECT ?, ?, ?', params: ['b', 'a', 'b'] });
    assert.deepEqual(translatePlaceholders('SELECT $10', Array.from({ length: 10 }, (_, i) => i)), { sql: 'SELECT ?', params: [9] });
    assert.throws(() => translatePlaceholders('SELECT $3', [1]), /\$3 has no value/);
  });

  it('writes PostgreSQL array text: every string quoted and escaped, finite numbers as JS prints them', () => {
    assert.equal(pgArrayText([]), '{}');
    assert.equal(pgArrayText(['a', 'NULL', '', 'say "hi", {x}\\']), '{"a","NULL","","say \\"hi\\", {x}\\\\"}');
    assert.equal(pgArrayText([1, -0.5, 1e21, 1.5e-7]), '{1,-0.5,1e+21,1.5e-7}');
    assert.throws(() => pgArrayText([1, Number.NaN]), /element 1 is not a finite number/);
    assert.throws(() => pgArrayText([Infinity]), TypeError);
  });

  it('reads PostgreSQL timestamps of any session time zone as ISO UTC with milliseconds', () => {
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00+00'), '2026-01-26T08:00:00.000Z');
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00.123456+00'), '2026-01-26T08:00:00.123Z');
    assert.equal(pgTimestampToIso('2026-01-26 13:30:00.5+05:30'), '2026-01-26T08:00:00.500Z');
    assert.equal(pgTimestampToIso('2026-01-26 04:29:15-03:30:45'), '2026-01-26T08:00:00.000Z');
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00.12'), '2026-01-26T08:00:00.120Z', 'without time zone: UTC');
    assert.equal(pgTimestampToIso('0099-01-01 00:00:00+00'), '0099-01-01T00:00:00.000Z');
    assert.equal(pgTimestampToIso('infinity'), 'infinity');
    // the UTC fast path: every fraction length, and look-alikes that must take the general path
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00.1+00'), '2026-01-26T08:00:00.100Z');
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00.12+00'), '2026-01-26T08:00:00.120Z');
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00.999999+00'), '2026-01-26T08:00:00.999Z');
    assert.equal(pgTimestampToIso('2026-01-26 09:00:00+01'), '2026-01-26T08:00:00.000Z');
    assert.equal(pgTimestampToIso('2026-01-26 08:00:00.5-10'), '2026-01-26T18:00:00.500Z');
  });
});

for (const backend of backends()) {
  describe(`migrations on ${backend.name}`, function () {
    let url: string;
    const open: Database[] = [];
    const track = (db: Database) => (open.push(db), db);

    before(async function () {
      url = await backend.create(this, 'migr');
    });
    after(async () => {
      for (const db of open) await db.close();
      await backend.destroy();
    });

    it('two processes opening a fresh database together apply each migration once', async () => {
      // Separate pools / connections, as two processes would have.
      const [a, b] = await Promise.all([openDatabase(url), openDatabase(url)]);
      track(a);
      track(b);
      const versions = await a.sql.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
    });

    it('two separate OS processes migrating the same database at once both succeed', async function () {
      const fresh = await backend.create(this, 'migr2');
      const moduleDir = path.resolve(__dirname, '../../nodes/shared/db');
      const script = `require(${JSON.stringify(moduleDir)}).openDatabase(process.argv[1])
        .then((db) => db.migrate().then((v) => db.close().then(() => console.log(JSON.stringify(v)))))
        .catch((e) => { console.error(e.message); process.exit(1); });`;
      const run = () =>
        new Promise<string>((resolve, reject) =>
          execFile(process.execPath, ['-e', script, fresh], (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))),
        );
      const outputs = await Promise.all([run(), run()]);
      assert.deepEqual(outputs.map((o) => o.trim()), ['[]', '[]'], 'each saw the schema complete after open');
      const db = track(await openDatabase(fresh));
      const versions = await db.sql.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
    });

    it('upgrades a version 1 database with rows in it to the latest version, keeping the rows', async function () {
      const fresh = await backend.create(this, 'migrv1');
      const v1 = track(await openDatabase(fresh, { migrate: false }));
      assert.deepEqual(await migrate(v1.sql, MIGRATIONS.filter((m) => m.version === 1)), [1]);
      await v1.readings.insertMany([
        { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 1, unit: 'lux', location: 'hall', timestamp: '2026-01-26T08:00:00.000Z' },
      ]);
      assert.ok(!(await indexesOf(v1, 'sensor_readings')).has('sensor_readings_type_timestamp'));
      assert.deepEqual(await v1.migrate(), MIGRATIONS.filter((m) => m.version > 1).map((m) => m.version));
      const ix = await indexesOf(v1, 'sensor_readings');
      assert.ok(ix.has('sensor_readings_type_timestamp') && ix.has('sensor_readings_sensor_timestamp'), JSON.stringify([...ix]));
      assert.equal((await v1.readings.list({ filters: { sensor_type: 'ldr' } })).count, 1);
    });

    it('is idempotent: opening again and migrating again apply nothing', async () => {
      const db = track(await openDatabase(url));
      assert.deepEqual(await db.migrate(), []);
      assert.deepEqual(await db.migrate(), []);
      const rows = await db.sql.query<{ version: number; applied_at: string }>('SELECT version, applied_at FROM schema_migrations');
      assert.equal(rows.length, MIGRATIONS.length);
      assert.match(String(rows[0].applied_at), /^\d{4}-\d\d-\d\dT/);
      await db.ping();
    });

    it('creates every table of the contract with exactly its columns', async () => {
      const db = open[0];
      for (const [table, columns] of Object.entries(CONTRACT_TABLES)) {
        assert.deepEqual(await columnsOf(db, table), columns, table);
      }
      if (db.dialect === 'postgres') {
        for (const [table, types] of Object.entries(PG_TYPES)) {
          const rows = await db.sql.query<{ column_name: string; data_type: string }>(
            `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1`,
            [table],
          );
          const actual = Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
          for (const [col, type] of Object.entries(types)) assert.equal(actual[col], type, `${table}.${col}`);
        }
      }
    });

    it('has the unique keys and the indexes the queries rely on', async () => {
      const db = open[0];
      const readings = await indexesOf(db, 'sensor_readings');
      assert.ok(hasIndex(readings, 'sensor_type, sensor_id, "timestamp" DESC', true) || hasIndex(readings, 'sensor_type, sensor_id, timestamp DESC', true), JSON.stringify([...readings]));
      assert.ok(hasIndex(readings, '"timestamp" DESC') || hasIndex(readings, 'timestamp DESC'));
      assert.ok(hasIndex(readings, 'location, "timestamp"') || hasIndex(readings, 'location, timestamp'));
      // version 2: the filtered lists (?sensor_type= or ?sensor_id=, newest first)
      assert.ok(hasIndex(readings, 'sensor_type, "timestamp" DESC') || hasIndex(readings, 'sensor_type, timestamp DESC'), JSON.stringify([...readings]));
      assert.ok(hasIndex(readings, 'sensor_id, "timestamp" DESC') || hasIndex(readings, 'sensor_id, timestamp DESC'));
      const grid = await indexesOf(db, 'grid_data');
      assert.ok(hasIndex(grid, 'data_type, zone, "timestamp"', true) || hasIndex(grid, 'data_type, zone, timestamp', true), JSON.stringify([...grid]));
      assert.ok(hasIndex(grid, 'data_type, "timestamp" DESC') || hasIndex(grid, 'data_type, timestamp DESC'));
      const decisions = await indexesOf(db, 'ai_decisions');
      assert.ok(hasIndex(decisions, '"timestamp" DESC') || hasIndex(decisions, 'timestamp DESC'));
      assert.ok(hasIndex(decisions, 'decision_type, "timestamp" DESC') || hasIndex(decisions, 'decision_type, timestamp DESC'));
      assert.ok(hasIndex(await indexesOf(db, 'user_preferences'), 'preference_key', true));
      assert.ok(hasIndex(await indexesOf(db, 'energy_sources'), 'source_type', true));
    });

    it('enforces the keys and checks in the database itself', async () => {
      const db = open[0];
      await db.sql.execute(`INSERT INTO user_preferences (preference_key, preference_value) VALUES ($1, $2)`, ['k', JSON.stringify({ a: 1 })]);
      await assert.rejects(db.sql.execute(`INSERT INTO user_preferences (preference_key, preference_value) VALUES ($1, $2)`, ['k', '1']));
      await assert.rejects(db.sql.execute(`INSERT INTO ai_decisions (decision_type, confidence) VALUES ($1, $2)`, ['general', 1.5]));
      await db.sql.execute(`INSERT INTO energy_sources (source_type) VALUES ($1)`, ['grid']);
      await assert.rejects(db.sql.execute(`INSERT INTO energy_sources (source_type) VALUES ($1)`, ['grid']));
      const [src] = await db.sql.query<Record<string, unknown>>('SELECT is_available, capacity, current_output, priority FROM energy_sources');
      assert.deepEqual({ ...src, is_available: Boolean(src.is_available) }, { is_available: true, capacity: null, current_output: 0, priority: 0 });
    });

    it('rolls a failed transaction back completely', async () => {
      const db = open[0];
      await assert.rejects(
        db.sql.transaction(async (tx) => {
          await tx.execute(`INSERT INTO energy_sources (source_type) VALUES ($1)`, ['solar']);
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal((await db.sql.query('SELECT id FROM energy_sources WHERE source_type = $1', ['solar'])).length, 0);
      // and the database is usable afterwards
      assert.equal(await db.sql.transaction(async (tx) => tx.execute(`INSERT INTO energy_sources (source_type) VALUES ($1)`, ['solar'])), 1);
    });

    if (backend.name === 'postgres') {
      it('returns ISO UTC timestamps whatever the session time zone, without touching pg global parsers', async () => {
        const db = open[0];
        const dbName = new URL(url).pathname.slice(1);
        await db.sql.execute(`ALTER DATABASE ${dbName} SET timezone TO 'Asia/Kolkata'`);
        const other = track(await openDatabase(url));
        const [row] = await other.sql.query<{ tz: string; ts: string; n: number }>(
          `SELECT current_setting('TimeZone') AS tz, '2026-01-26T08:00:00.123Z'::timestamptz AS ts, 9007199254740::int8 AS n`,
        );
        // Our pool's sessions run in UTC whatever the database default (the fast timestamp path)...
        assert.equal(row.tz, 'UTC');
        assert.equal(row.ts, '2026-01-26T08:00:00.123Z');
        // ...and a session switched to another zone still reads ISO UTC (the parser's general path).
        const inKolkata = await other.sql.transaction(async (tx) => {
          await tx.execute(`SET LOCAL TimeZone TO 'Asia/Kolkata'`);
          return tx.query<{ tz: string; ts: string }>(
            `SELECT current_setting('TimeZone') AS tz, '2026-01-26T08:00:00.123Z'::timestamptz AS ts`,
          );
        });
        assert.deepEqual(inKolkata, [{ tz: 'Asia/Kolkata', ts: '2026-01-26T08:00:00.123Z' }]);
        assert.equal(row.n, 9007199254740);
        // pg's own defaults are untouched: int8 stays a string there
        assert.equal(pgGlobalTypes.getTypeParser(20, 'text')('5'), '5');
      });

      it('rejects with a clear error when PostgreSQL cannot be reached, within the connect timeout', async () => {
        const started = Date.now();
        await assert.rejects(openDatabase('postgres://postgres@127.0.0.1:1/nope', { connectionTimeoutMs: 1000 }), /ECONNREFUSED|connect/);
        assert.ok(Date.now() - started < 5000);
      });
    } else {
      it('creates the directory, uses WAL and a busy timeout', async () => {
        const db = open[0];
        assert.ok(fs.existsSync(db.description.slice('sqlite:'.length)));
        assert.equal((await db.sql.query<{ journal_mode: string }>('PRAGMA journal_mode'))[0].journal_mode, 'wal');
        assert.equal((await db.sql.query<{ timeout: number }>('PRAGMA busy_timeout'))[0].timeout, 5000);
      });

      it('opens an in-memory database and a default file under the base dir', async () => {
        const mem = track(await openDatabase(':memory:'));
        assert.deepEqual(await columnsOf(mem, 'sensor_readings'), CONTRACT_TABLES.sensor_readings);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvtest-default-'));
        try {
          const def = await openDatabase('', { baseDir: dir });
          await def.close();
          assert.ok(fs.existsSync(path.join(dir, 'data', 'hypervolt.db')));
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });

      it('serialises a transaction against other callers and refuses use after close', async () => {
        const db = track(await openDatabase(':memory:'));
        const order: string[] = [];
        const tx = db.sql.transaction(async (t) => {
          await t.execute(`INSERT INTO energy_sources (source_type) VALUES ($1)`, ['battery']);
          await new Promise((r) => setTimeout(r, 20));
          order.push('tx');
          throw new Error('undo');
        });
        const outside = db.sql.query('SELECT COUNT(*) AS n FROM energy_sources').then((r) => {
          order.push('outside');
          return r;
        });
        await assert.rejects(tx, /undo/);
        assert.deepEqual(await outside, [{ n: 0 }], 'the outside query ran after the rollback, never inside the transaction');
        assert.deepEqual(order, ['tx', 'outside']);
        await db.close();
        await db.close();
        await assert.rejects(db.sql.query('SELECT 1'), /closed/);
      });
    }
  });
}
