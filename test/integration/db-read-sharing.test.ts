/**
 * What keeps the readings REST reads cheap under concurrent requests (issue 6), on SQLite and
 * PostgreSQL: a first page and its capped count in one statement, identical reads in flight
 * shared (list, recent; latest has its own test in db-readings), planner estimates reused until
 * this repository writes. Statements are counted on the real database through a wrapper that
 * passes every call through.
 */
import assert from 'assert/strict';
import { COUNT_CAP, EstimateCache, listRows } from '../../nodes/shared/db/list-query';
import { createReadingRepository, READINGS_TABLE } from '../../nodes/shared/db/readings';
import type { SqlDatabase } from '../../nodes/shared/db';
import type { Reading } from '../../nodes/shared/types';
import { ago, backends, useDatabase } from './db-support';

const MINUTE = 60_000;
const HOUR = 3_600_000;

function reading(over: Partial<Reading> = {}): Reading {
  return { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 750, unit: 'lux', location: 'living_room', timestamp: '2026-01-26T08:00:00.000Z', ...over };
}

/** The database with every statement recorded (then run as usual). */
function recording(inner: SqlDatabase): { db: SqlDatabase; statements: string[] } {
  const statements: string[] = [];
  const db: SqlDatabase = Object.create(inner, {
    query: {
      value: (sql: string, params?: readonly unknown[]) => {
        statements.push(sql);
        return inner.query(sql, params);
      },
    },
  });
  return { db, statements };
}

for (const backend of backends()) {
  describe(`readings reads under concurrency on ${backend.name}`, function () {
    const db = useDatabase(backend, 'sharing', ['sensor_readings']);

    describe('list', () => {
      it('answers a first page and its capped count in one statement, with the same answers as before', async () => {
        const { db: rec, statements } = recording(db().sql);
        const repo = createReadingRepository(rec);
        await repo.insertMany(Array.from({ length: 7 }, (_, i) => reading({ value: i, timestamp: ago((i + 1) * MINUTE) })));
        statements.length = 0;

        const first = await repo.list({ pageSize: 3 });
        assert.deepEqual([first.count, first.countExact, first.hasNext, first.rows.length], [7, true, true, 3]);
        assert.deepEqual(first.rows.map((r) => r.value), [0, 1, 2]);
        assert.deepEqual(Object.keys(first.rows[0]), Object.keys(READINGS_TABLE.columns), 'no count column in the rows');
        assert.equal(statements.length, 1, statements.join('\n---\n'));

        // the last page knows its count without one; an empty page past the end counts apart
        statements.length = 0;
        const last = await repo.list({ page: 3, pageSize: 3 });
        assert.deepEqual([last.count, last.countExact, last.hasNext, last.rows.map((r) => r.value)], [7, true, false, [6]]);
        const past = await repo.list({ page: 4, pageSize: 3 });
        assert.deepEqual([past.rows, past.hasNext], [[], false]);
        assert.equal(past.count, 7);

        // capped: a lower bound (SQLite) or the planner's figure, never below the cap
        const capped = await listRows(rec, READINGS_TABLE, { pageSize: 2 }, 4);
        assert.equal(capped.countExact, false);
        assert.ok(capped.count >= 4, String(capped.count));
        assert.equal(capped.rows.length, 2);
      });

      it('pages past the cap take the count apart, only when there is a next page', async () => {
        const { db: rec, statements } = recording(db().sql);
        const repo = createReadingRepository(rec);
        await repo.insertMany(Array.from({ length: 12 }, (_, i) => reading({ value: i, timestamp: ago((i + 1) * MINUTE) })));
        statements.length = 0;
        // cap 4, page 3 of 3 rows (rows 7..9): past the cap, a next page exists → a count to its end
        const deep = await listRows(rec, READINGS_TABLE, { page: 3, pageSize: 3 }, 4);
        assert.deepEqual([deep.countExact, deep.hasNext, deep.rows.map((r) => r.value)], [false, true, [6, 7, 8]]);
        assert.ok(deep.count >= 9, String(deep.count));
        assert.ok(statements.some((s) => /COUNT\(\*\)/.test(s) && !/LIMIT \$\d+ OFFSET/.test(s)), 'a count of its own');
        statements.length = 0;
        const lastDeep = await listRows(rec, READINGS_TABLE, { page: 4, pageSize: 3 }, 4);
        assert.deepEqual([lastDeep.count, lastDeep.countExact, lastDeep.hasNext], [12, true, false]);
        assert.equal(statements.length, 1, 'the last page counts itself');
      });

      it('shares one query between identical concurrent calls, not between different ones, never across a write', async () => {
        const { db: rec, statements } = recording(db().sql);
        const repo = createReadingRepository(rec);
        await repo.insertMany([
          reading({ sensor_id: 'a', value: 1, timestamp: ago(3 * MINUTE) }),
          reading({ sensor_id: 'a', value: 2, timestamp: ago(2 * MINUTE) }),
          reading({ sensor_id: 'b', value: 3, timestamp: ago(MINUTE) }),
        ]);
        statements.length = 0;
        const [x, y] = await Promise.all([repo.list({ filters: { sensor_id: 'a' } }), repo.list({ filters: { sensor_id: 'a' } })]);
        assert.equal(statements.length, 1);
        assert.deepEqual(x, y);
        assert.notEqual(x.rows, y.rows, 'each caller its own array');
        assert.deepEqual(x.rows.map((r) => r.value), [2, 1]);

        statements.length = 0;
        const [a, b, c] = await Promise.all([
          repo.list({ filters: { sensor_id: 'a' } }),
          repo.list({ filters: { sensor_id: 'b' } }),
          repo.list({ filters: { sensor_id: 'a' }, ordering: 'timestamp' }),
        ]);
        assert.equal(statements.length, 3);
        assert.deepEqual([a.rows.map((r) => r.value), b.rows.map((r) => r.value), c.rows.map((r) => r.value)], [[2, 1], [3], [1, 2]]);

        // a write completing while a list is in flight: the next call runs its own query
        const stale = repo.list({ filters: { sensor_id: 'a' } });
        await repo.insertMany([reading({ sensor_id: 'a', value: 4, timestamp: ago(0) })]);
        const fresh = await repo.list({ filters: { sensor_id: 'a' } });
        await stale;
        assert.deepEqual(fresh.rows.map((r) => r.value), [4, 2, 1]);
        assert.equal(fresh.count, 3);
      });
    });

    describe('recent', () => {
      it('shares one query between concurrent calls; each answer is cut at its own window start', async () => {
        const { db: rec, statements } = recording(db().sql);
        const repo = createReadingRepository(rec);
        const now = Date.parse('2026-01-26T10:00:00.000Z');
        await repo.insertMany([
          reading({ value: 1, timestamp: ago(5 * MINUTE, now) }),
          reading({ value: 2, timestamp: ago(40 * MINUTE, now) }),
          reading({ value: 3, timestamp: ago(50 * MINUTE, now) }),
          reading({ value: 4, timestamp: ago(HOUR, now) }),
          reading({ value: 5, timestamp: ago(2 * HOUR, now) }),
        ]);
        // alone, for reference
        const alone = {
          early: (await repo.recent({ hours: 1, limit: 100, now })).map((r) => r.value),
          later: (await repo.recent({ hours: 1, limit: 100, now: now + 15 * MINUTE })).map((r) => r.value),
          later2: (await repo.recent({ hours: 1, limit: 1, now: now + 15 * MINUTE })).map((r) => r.value),
        };
        assert.deepEqual(alone, { early: [1, 2, 3, 4], later: [1, 2], later2: [1] });

        statements.length = 0;
        // the second call starts its window 15 min later: it joins the first and cuts its rows
        const [early, later] = await Promise.all([
          repo.recent({ hours: 1, limit: 100, now }),
          repo.recent({ hours: 1, limit: 100, now: now + 15 * MINUTE }),
        ]);
        assert.equal(statements.length, 1);
        assert.deepEqual([early.map((r) => r.value), later.map((r) => r.value)], [alone.early, alone.later]);
        assert.notEqual(early, later);

        statements.length = 0;
        // an earlier window start cannot be served from a later one; another limit or filter is another query
        const [l1, e1, lim, typ] = await Promise.all([
          repo.recent({ hours: 1, limit: 100, now: now + 15 * MINUTE }),
          repo.recent({ hours: 1, limit: 100, now }),
          repo.recent({ hours: 1, limit: 1, now: now + 15 * MINUTE }),
          repo.recent({ hours: 1, limit: 100, now, sensor_type: 'current' }),
        ]);
        assert.equal(statements.length, 4);
        assert.deepEqual([l1, e1, lim, typ].map((rows) => rows.map((r) => r.value)), [alone.later, alone.early, alone.later2, []]);

        // never across a write of this repository
        statements.length = 0;
        const stale = repo.recent({ hours: 1, limit: 100, now });
        await repo.insertMany([reading({ value: 6, timestamp: ago(MINUTE, now) })]);
        const fresh = await repo.recent({ hours: 1, limit: 100, now });
        await stale;
        assert.deepEqual(fresh.map((r) => r.value), [6, 1, 2, 3, 4]);
        assert.equal(statements.filter((s) => s.startsWith('SELECT')).length, 2);
      });

      it('recentJson: a joined query is taken only when none of its rows is before the later start', async () => {
        const { db: rec, statements } = recording(db().sql);
        const repo = createReadingRepository(rec);
        const now = Date.parse('2026-01-26T10:00:00.000Z');
        await repo.insertMany([1, 2, 3, 4].map((value, i) => reading({ value, timestamp: ago([5, 40, 50, 60][i] * MINUTE, now) })));
        const values = async (p: Promise<{ text: string }>) => (JSON.parse((await p).text) as { value: number }[]).map((r) => r.value);
        const alone = [
          await values(repo.recentJson({ hours: 1, limit: 100, now })),
          await values(repo.recentJson({ hours: 1, limit: 100, now: now + 15 * MINUTE })),
          await values(repo.recentJson({ hours: 1, limit: 2, now: now + 15 * MINUTE })),
        ];
        assert.deepEqual(alone, [[1, 2, 3, 4], [1, 2], [1, 2]]);

        // the same start: one query, one text
        statements.length = 0;
        const same = await Promise.all([0, 1, 2].map(() => repo.recentJson({ hours: 1, limit: 100, now })));
        assert.equal(statements.length, 1);
        assert.equal(new Set(same).size, 1);

        // a later start: the first query's rows reach before it (50 and 60 min old): its own query
        statements.length = 0;
        const [early, later] = await Promise.all([
          values(repo.recentJson({ hours: 1, limit: 100, now })),
          values(repo.recentJson({ hours: 1, limit: 100, now: now + 15 * MINUTE })),
        ]);
        assert.deepEqual([early, later], [alone[0], alone[1]]);
        assert.equal(statements.length, 2);
        // a later start where the first query's rows (its limit of 2) are all after it: joined
        statements.length = 0;
        const [e2, l2] = await Promise.all([
          values(repo.recentJson({ hours: 1, limit: 2, now })),
          values(repo.recentJson({ hours: 1, limit: 2, now: now + 15 * MINUTE })),
        ]);
        assert.deepEqual([e2, l2], [[1, 2], alone[2]]);
        assert.equal(statements.length, 1);
      });
    });

    if (backend.name === 'postgres') {
      describe('planner estimates', () => {
        it('are reused until the repository writes, and then asked again', async () => {
          const { db: rec, statements } = recording(db().sql);
          const repo = createReadingRepository(rec);
          const many = COUNT_CAP + 200;
          await repo.insertMany(Array.from({ length: many }, (_, i) => reading({ sensor_id: `s${i % 3}`, value: i, timestamp: ago(i * 1000) })));
          await db().sql.execute('ANALYZE sensor_readings');
          const explains = () => statements.filter((s) => s.startsWith('EXPLAIN')).length;
          const first = await repo.list({ filters: { sensor_type: 'ldr' } });
          assert.equal(first.countExact, false);
          assert.ok(Math.abs(first.count - many) <= many * 0.1, `estimate ${first.count} for ${many}`);
          await repo.list({ filters: { sensor_type: 'ldr' } });
          await repo.list({ filters: { sensor_type: 'ldr' }, page: 2 });
          assert.equal(explains(), 1, 'one EXPLAIN for the same filter');
          await repo.list({ filters: { sensor_type: 'ldr', location: 'living_room' } });
          assert.equal(explains(), 2, 'another filter, another estimate');
          await repo.insertMany([reading({ timestamp: ago(0) })]);
          await repo.list({ filters: { sensor_type: 'ldr' } });
          assert.equal(explains(), 3, 'a write drops the kept estimates');
        });

        it('expire after the TTL and are not kept when EXPLAIN fails', async () => {
          let t = 1_000_000;
          const cache = new EstimateCache(5000, 2, () => t);
          const { db: rec, statements } = recording(db().sql);
          await rec.execute(`INSERT INTO sensor_readings (sensor_type, sensor_id, value, timestamp)
            SELECT 'ldr', 's' || g, g, now() - g * interval '1 second' FROM generate_series(1, 2000) g`);
          await rec.execute('ANALYZE sensor_readings');
          const sql = 'SELECT 1 FROM sensor_readings WHERE sensor_type = $1';
          const e1 = await cache.get(rec, sql, ['ldr']);
          assert.ok(e1 > 1000, String(e1));
          t += 4999;
          assert.equal(await cache.get(rec, sql, ['ldr']), e1);
          assert.equal(statements.length, 1);
          t += 1;
          await cache.get(rec, sql, ['ldr']);
          assert.equal(statements.length, 2, 'expired');
          await assert.rejects(cache.get(rec, 'SELECT 1 FROM no_such_table', []));
          await assert.rejects(cache.get(rec, 'SELECT 1 FROM no_such_table', []));
          assert.equal(statements.length, 4, 'a failure is not kept');
          // bounded: a third key pushes the oldest out
          await cache.get(rec, sql, ['a']);
          await cache.get(rec, sql, ['b']);
          statements.length = 0;
          await cache.get(rec, sql, ['ldr']);
          assert.equal(statements.length, 1, 'the oldest entry went');
        });
      });
    }
  });
}
