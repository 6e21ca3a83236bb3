/**
 * ReadingRepository and the readings REST handlers, one suite run against SQLite and PostgreSQL.
 */
import assert from 'assert/strict';
import { COUNT_CAP, listRows } from '../../nodes/shared/db/list-query';
import { createReadingRepository, READINGS_TABLE } from '../../nodes/shared/db/readings';
import type { SqlDatabase } from '../../nodes/shared/db';
import { getReading, latestReadings, listReadings, recentReadings } from '../../nodes/shared/api/readings';
import type { ApiRequest } from '../../nodes/shared/http';
import type { Reading, ReadingRow } from '../../nodes/shared/types';
import { ago, backends, useDatabase } from './db-support';

const CONTRACT_FIELDS = ['id', 'sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp', 'created_at'];
const ISO_MS_Z = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const MINUTE = 60_000;
const HOUR = 3_600_000;

function reading(over: Partial<Reading> = {}): Reading {
  return {
    sensor_type: 'ldr',
    sensor_id: 'ldr_1',
    value: 750,
    unit: 'lux',
    location: 'living_room',
    timestamp: '2026-01-26T08:00:00.000Z',
    ...over,
  };
}

/** `n` readings of one sensor, one per minute going back from `end`. */
function series(n: number, over: Partial<Reading> = {}, end = Date.parse('2026-01-26T08:00:00.000Z')): Reading[] {
  return Array.from({ length: n }, (_, i) => reading({ value: i, timestamp: new Date(end - i * MINUTE).toISOString(), ...over }));
}

function request(query: Record<string, unknown> = {}, params: Record<string, string> = {}, path = '/api/sensor-readings/'): ApiRequest {
  const u = new URL(`http://pi.local:1880${path}`);
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, String(one));
  }
  return { method: 'GET', query, params, body: undefined, url: u.toString() };
}

const INJECTIONS = [
  "'; DROP TABLE sensor_readings; --",
  "ldr' OR '1'='1",
  'ldr" OR "1"="1',
  '1; DELETE FROM sensor_readings',
  '\u0000',
  'ldr\u0000',
  '$1',
  '?',
  "%' OR 1=1 --",
  '\\',
];

for (const backend of backends()) {
  describe(`ReadingRepository on ${backend.name}`, function () {
    const db = useDatabase(backend, 'readings', ['sensor_readings']);
    const repo = () => db().readings;
    const tableCount = async () =>
      Number((await db().sql.query<{ n: number }>('SELECT COUNT(*) AS n FROM sensor_readings'))[0].n);

    describe('insertMany', () => {
      it('stores readings and returns the rows with exactly the contract fields', async () => {
        const { inserted, duplicates } = await repo().insertMany([reading(), reading({ sensor_id: 'ldr_2', value: 1.5 })]);
        assert.equal(duplicates, 0);
        assert.equal(inserted.length, 2);
        const row = inserted.find((r) => r.sensor_id === 'ldr_2')!;
        assert.deepEqual(Object.keys(row), CONTRACT_FIELDS);
        assert.equal(typeof row.id, 'number');
        assert.ok(row.id >= 1);
        assert.equal(row.value, 1.5);
        assert.equal(row.sensor_type, 'ldr');
        assert.equal(row.unit, 'lux');
        assert.equal(row.location, 'living_room');
        assert.equal(row.timestamp, '2026-01-26T08:00:00.000Z');
        assert.match(row.created_at, ISO_MS_Z);
        assert.ok(Math.abs(Date.parse(row.created_at) - Date.now()) < 60_000, 'created_at is now');
        assert.equal(await tableCount(), 2);
      });

      it('stores text with quotes, braces, commas, backslashes and non-ASCII exactly (array parameters)', async () => {
        const odd = ['°C "x", {y}\\', "it's", 'NULL', '', '☀️ lux'];
        const { inserted } = await repo().insertMany(odd.map((unit, i) => reading({ sensor_id: `odd_${i}`, unit })));
        const byId = new Map(inserted.map((r) => [r.sensor_id, r.unit]));
        odd.forEach((unit, i) => assert.equal(byId.get(`odd_${i}`), unit));
        const listed = await repo().list({ filters: { sensor_id: 'odd_0' } });
        assert.equal(listed.rows[0].unit, odd[0]);
      });

      it('stores every value and text exactly, whatever characters (the PostgreSQL array text)', async () => {
        const texts = [...INJECTIONS.filter((t) => !t.includes('\u0000')), '"', '\\"', '{a,b}', ' padded ', 'NULL', 'null', '', '\t\n', 'é☀️𝄞'];
        const values = [0, -0.5, 1e21, -1.5e-7, 123456789.123, Number.MAX_VALUE, Number.MIN_VALUE];
        const rs = texts.map((t, i) => reading({ sensor_id: `id ${t}`, unit: t.slice(0, 20), location: t, value: values[i % values.length] }));
        const { inserted } = await repo().insertMany(rs);
        assert.equal(inserted.length, rs.length);
        const stored = (await repo().list({ pageSize: 1000 })).rows;
        for (const r of rs) {
          const row = stored.find((x) => x.sensor_id === r.sensor_id);
          assert.ok(row, `stored: ${JSON.stringify(r.sensor_id)}`);
          assert.deepEqual([row.unit, row.location, row.value], [r.unit, r.location, r.value]);
        }
      });

      it('round-trips timestamps with milliseconds, normalising offsets to UTC Z', async () => {
        await repo().insertMany([
          reading({ sensor_id: 'a', timestamp: '2026-01-26T08:00:00.123Z' }),
          reading({ sensor_id: 'b', timestamp: '2026-01-26T10:00:00.999+02:00' }),
          reading({ sensor_id: 'c', timestamp: '2026-01-26T08:00:00.001Z' }),
        ]);
        const rows = (await repo().list({ ordering: 'timestamp' })).rows;
        assert.deepEqual(
          rows.map((r) => [r.sensor_id, r.timestamp]),
          [
            ['c', '2026-01-26T08:00:00.001Z'],
            ['a', '2026-01-26T08:00:00.123Z'],
            ['b', '2026-01-26T08:00:00.999Z'],
          ],
        );
      });

      it('stores a reading repeated inside one batch once and counts the duplicate', async () => {
        const r = await repo().insertMany([reading(), reading({ value: 999 }), reading({ sensor_id: 'other' })]);
        assert.equal(r.inserted.length, 2);
        assert.equal(r.duplicates, 1);
        assert.equal(await tableCount(), 2);
        const stored = await repo().findByKeys([reading()]);
        assert.equal(stored.length, 1);
        assert.equal(stored[0].value, 750, 'the first delivery is kept');
      });

      it('stores a reading delivered again in a later batch once', async () => {
        await repo().insertMany([reading()]);
        const again = await repo().insertMany([reading(), reading({ timestamp: '2026-01-26T08:00:01.000Z' })]);
        assert.equal(again.inserted.length, 1);
        assert.equal(again.inserted[0].timestamp, '2026-01-26T08:00:01.000Z');
        assert.equal(again.duplicates, 1);
        // the same instant written with an offset is the same reading
        const offset = await repo().insertMany([reading({ timestamp: '2026-01-26T09:00:00+01:00' })]);
        assert.equal(offset.duplicates, 1);
        assert.equal(await tableCount(), 2);
      });

      it('stores a batch of 1000 readings in one call', async () => {
        const batch = series(1000);
        const r = await repo().insertMany(batch);
        assert.equal(r.inserted.length, 1000);
        assert.equal(r.duplicates, 0);
        assert.equal(await tableCount(), 1000);
        assert.deepEqual(
          new Set(r.inserted.map((x) => x.timestamp)),
          new Set(batch.map((x) => x.timestamp)),
        );
      });

      it('storeMany writes the same rows without reading them back: new and duplicate counts only', async () => {
        await repo().insertMany([reading()]);
        const batch = [reading(), reading({ value: 1 }), ...series(1000, { sensor_id: 'ldr_2' })];
        assert.deepEqual(await repo().storeMany(batch), { inserted: 1000, duplicates: 2 });
        assert.equal(await tableCount(), 1001);
        const stored = await repo().findByKeys([reading()]);
        assert.equal(stored[0].value, 750, 'the first delivery is kept');
        assert.deepEqual(await repo().storeMany([]), { inserted: 0, duplicates: 0 });
      });

      it('does nothing for an empty batch', async () => {
        assert.deepEqual(await repo().insertMany([]), { inserted: [], duplicates: 0 });
      });

      it('rejects a batch holding a reading with an invalid timestamp and stores nothing of it', async () => {
        await assert.rejects(repo().insertMany([reading(), reading({ sensor_id: 'x', timestamp: 'yesterday' })]), /reading 1 has an invalid timestamp/);
        assert.equal(await tableCount(), 0);
      });
    });

    describe('newestBefore', () => {
      it("each sensor's newest `limit` rows older than its own time, in one call; other sensors and types left out", async () => {
        const end = Date.parse('2026-01-26T08:00:00.000Z');
        await repo().insertMany([
          ...series(10, { sensor_id: 'a' }),
          ...series(3, { sensor_id: 'b' }),
          ...series(4, { sensor_id: 'a', sensor_type: 'temperature', unit: 'C' }),
          ...series(5, { sensor_id: 'c' }),
        ]);
        const at = (minutesBefore: number) => new Date(end - minutesBefore * MINUTE).toISOString();
        const rows = await repo().newestBefore(
          [
            { sensor_type: 'ldr', sensor_id: 'a', before: at(2) }, // minutes 3..9 are older: the newest 4 of them
            { sensor_type: 'ldr', sensor_id: 'b', before: at(-1) }, // all 3
            { sensor_type: 'ldr', sensor_id: 'none', before: at(0) },
            { sensor_type: 'temperature', sensor_id: 'a', before: at(3) }, // its oldest is minute 3: strictly older, none
          ],
          4,
        );
        const got = rows.map((r) => `${r.sensor_type}/${r.sensor_id}/${(end - Date.parse(r.timestamp)) / MINUTE}`).sort();
        assert.deepEqual(got, ['ldr/a/3', 'ldr/a/4', 'ldr/a/5', 'ldr/a/6', 'ldr/b/0', 'ldr/b/1', 'ldr/b/2'].sort());
        for (const r of rows) assert.deepEqual(Object.keys(r).sort(), [...CONTRACT_FIELDS].sort());
        assert.deepEqual(await repo().newestBefore([], 4), []);
      });

      it('many sensors in one call (past the SQLite statement chunk), with hostile ids as plain values', async () => {
        const ids = [...Array.from({ length: 450 }, (_, i) => `s${i}`), ...INJECTIONS.filter((x) => !x.includes('\u0000'))];
        await repo().insertMany(ids.flatMap((id) => series(2, { sensor_id: id })));
        const rows = await repo().newestBefore(
          ids.map((sensor_id) => ({ sensor_type: 'ldr', sensor_id, before: '2026-01-26T09:00:00.000Z' })),
          1,
        );
        assert.equal(rows.length, ids.length);
        assert.deepEqual(new Set(rows.map((r) => r.sensor_id)), new Set(ids));
        for (const r of rows) assert.equal(r.timestamp, '2026-01-26T08:00:00.000Z');
        assert.equal(await tableCount(), ids.length * 2);
      });
    });

    describe('findByKeys and saveMany', () => {
      it('finds stored rows by key in one call and ignores unknown keys', async () => {
        await repo().insertMany(series(5));
        const wanted = series(5).slice(1, 3);
        const found = await repo().findByKeys([...wanted, reading({ sensor_id: 'nope' })]);
        assert.deepEqual(found.map((r) => r.timestamp).sort(), wanted.map((r) => r.timestamp).sort());
        assert.deepEqual(await repo().findByKeys([]), []);
      });

      it('saveMany returns the stored row of every input in input order, existing rows for duplicates', async () => {
        const first = await repo().saveMany([reading({ sensor_id: 'a' })]);
        assert.equal(first.inserted, 1);
        const batch = [reading({ sensor_id: 'b' }), reading({ sensor_id: 'a', value: 1 }), reading({ sensor_id: 'b' })];
        const saved = await repo().saveMany(batch);
        assert.equal(saved.inserted, 1);
        assert.equal(saved.duplicates, 2);
        assert.deepEqual(saved.rows.map((r) => r.sensor_id), ['b', 'a', 'b']);
        assert.equal(saved.rows[1].id, first.rows[0].id, 'the existing row of a');
        assert.equal(saved.rows[1].value, 750);
        assert.equal(saved.rows[0].id, saved.rows[2].id);
      });
    });

    describe('list', () => {
      beforeEach(async () => {
        await repo().insertMany([
          ...series(4, { sensor_type: 'ldr', sensor_id: 'ldr_1', location: 'living_room' }),
          ...series(3, { sensor_type: 'ldr', sensor_id: 'ldr_2', location: 'kitchen' }),
          ...series(2, { sensor_type: 'current', sensor_id: 'ldr_1', location: 'kitchen', unit: 'A' }),
        ]);
      });

      it('lists newest first by default with the exact count', async () => {
        const r = await repo().list({});
        assert.equal(r.count, 9);
        assert.equal(r.countExact, true);
        assert.equal(r.hasNext, false);
        const ts = r.rows.map((x) => x.timestamp);
        assert.deepEqual(ts, [...ts].sort().reverse());
      });

      it('filters by each field and by combinations', async () => {
        assert.equal((await repo().list({ filters: { sensor_type: 'ldr' } })).count, 7);
        assert.equal((await repo().list({ filters: { sensor_id: 'ldr_1' } })).count, 6);
        assert.equal((await repo().list({ filters: { location: 'kitchen' } })).count, 5);
        const both = await repo().list({ filters: { sensor_type: 'ldr', location: 'kitchen' } });
        assert.equal(both.count, 3);
        assert.ok(both.rows.every((x) => x.sensor_id === 'ldr_2'));
        assert.equal((await repo().list({ filters: { sensor_type: 'voltage' } })).count, 0);
      });

      it('orders by timestamp and created_at both ways, ties broken by id', async () => {
        const asc = (await repo().list({ ordering: 'timestamp', filters: { sensor_id: 'ldr_2' } })).rows;
        assert.deepEqual(asc.map((x) => x.value), [2, 1, 0]);
        const desc = (await repo().list({ ordering: '-timestamp', filters: { sensor_id: 'ldr_2' } })).rows;
        assert.deepEqual(desc.map((x) => x.value), [0, 1, 2]);
        const byCreated = (await repo().list({ ordering: 'created_at' })).rows.map((x) => x.id);
        assert.deepEqual(byCreated, [...byCreated].sort((a, b) => a - b), 'one batch: same created_at, ascending ids');
        const byCreatedDesc = (await repo().list({ ordering: '-created_at' })).rows.map((x) => x.id);
        assert.deepEqual(byCreatedDesc, [...byCreatedDesc].sort((a, b) => b - a));
        await assert.rejects(repo().list({ ordering: 'value' }), /cannot order/);
      });

      it('pages through every row once, with hasNext on all but the last page', async () => {
        const seen: number[] = [];
        for (let page = 1; page <= 3; page++) {
          const r = await repo().list({ page, pageSize: 4 });
          assert.equal(r.count, 9);
          assert.equal(r.hasNext, page < 3);
          seen.push(...r.rows.map((x) => x.id));
        }
        assert.equal(seen.length, 9);
        assert.equal(new Set(seen).size, 9);
        const past = await repo().list({ page: 4, pageSize: 4 });
        assert.deepEqual(past.rows, []);
        assert.equal(past.hasNext, false);
      });

      it('caps the count past the limit and says it is not exact', async () => {
        // cap 3: the page (1..2) is before the end, so a count is run, and stops at the cap.
        const capped = await listRows(db().sql, READINGS_TABLE, { pageSize: 2, filters: { sensor_type: 'ldr' } }, 3);
        assert.equal(capped.countExact, false);
        assert.equal(capped.count, 3, 'a lower bound: the cap');
        assert.equal(capped.rows.length, 2);
        assert.equal(capped.hasNext, true);
        const exact = await listRows(db().sql, READINGS_TABLE, { pageSize: 2, filters: { location: 'kitchen' } }, 10);
        assert.deepEqual([exact.count, exact.countExact], [5, true]);
        // a page far past the cap still counts exactly up to its end
        const deep = await listRows(db().sql, READINGS_TABLE, { page: 2, pageSize: 3 }, 1);
        assert.equal(deep.rows.length, 3);
        assert.ok(deep.count >= 6);
      });

      it('counts exactly up to COUNT_CAP, then estimates (PostgreSQL: planner, SQLite: the cap); next stays exact', async () => {
        const many = COUNT_CAP + 500;
        const ldrRows = many + 7; // plus the 7 ldr rows of beforeEach
        await repo().insertMany(series(many, { sensor_id: 'many' }));
        if (db().dialect === 'postgres') await db().sql.execute('ANALYZE sensor_readings');
        const first = await repo().list({ filters: { sensor_type: 'ldr' } });
        assert.equal(first.countExact, false);
        assert.ok(Number.isSafeInteger(first.count) && first.count >= COUNT_CAP, String(first.count));
        if (db().dialect === 'postgres') {
          // the planner's estimate from fresh statistics: near the truth, past what was counted
          assert.ok(Math.abs(first.count - (ldrRows)) <= many * 0.1, `estimate ${first.count} for ${ldrRows}`);
        } else {
          assert.equal(first.count, COUNT_CAP, 'SQLite: the cap, a lower bound');
        }
        assert.equal(first.rows.length, 100);
        assert.equal(first.hasNext, true);
        // a filter matching less than the cap: exact
        const few = await repo().list({ filters: { sensor_id: 'ldr_2' } });
        assert.deepEqual([few.count, few.countExact], [3, true]);
        // the last page knows the exact count, and says there is no next
        const lastPage = Math.ceil((ldrRows) / 100);
        const last = await repo().list({ filters: { sensor_type: 'ldr' }, page: lastPage });
        assert.deepEqual([last.count, last.countExact, last.hasNext], [ldrRows, true, false]);
        // the page before it counts up to its own end (past the cap): exact there too when the rows end within
        const before = await repo().list({ filters: { sensor_type: 'ldr' }, page: lastPage - 1 });
        assert.equal(before.hasNext, true);
        assert.ok(before.count >= (lastPage - 1) * 100, String(before.count));
      });

      it('treats SQL injection strings in filters as plain values: empty results, no error, nothing harmed', async () => {
        for (const evil of INJECTIONS) {
          for (const field of ['sensor_type', 'sensor_id', 'location'] as const) {
            const r = await repo().list({ filters: { [field]: evil } });
            assert.equal(r.count, 0, `${field}=${JSON.stringify(evil)}`);
            assert.deepEqual(r.rows, []);
          }
          assert.deepEqual(await repo().recent({ hours: 8760, limit: 10, sensor_type: evil, now: Date.parse('2026-01-26T09:00:00Z') }), []);
        }
        assert.equal(await tableCount(), 9);
      });
    });

    describe('get', () => {
      it('returns the row by id and undefined for an unknown or impossible id', async () => {
        const [row] = (await repo().insertMany([reading()])).inserted;
        assert.deepEqual(await repo().get(row.id), row);
        assert.equal(await repo().get(row.id + 1000), undefined);
        assert.equal(await repo().get(0), undefined);
        assert.equal(await repo().get(-1), undefined);
        assert.equal(await repo().get(1.5), undefined);
        assert.equal(await repo().get(Number.MAX_SAFE_INTEGER), undefined);
      });
    });

    describe('latest', () => {
      it('returns one row per (sensor_type, sensor_id), the newest by timestamp', async () => {
        // newest rows inserted first, so "highest id" would be wrong
        await repo().insertMany([
          reading({ sensor_id: 'a', value: 3, timestamp: '2026-01-26T08:03:00.000Z' }),
          reading({ sensor_id: 'b', value: 20, timestamp: '2026-01-26T07:00:00.000Z' }),
          reading({ sensor_type: 'current', sensor_id: 'a', value: 100, unit: 'A', timestamp: '2026-01-26T06:00:00.000Z' }),
        ]);
        await repo().insertMany([
          reading({ sensor_id: 'a', value: 1, timestamp: '2026-01-26T08:01:00.000Z' }),
          reading({ sensor_id: 'a', value: 2, timestamp: '2026-01-26T08:02:59.999Z' }),
          reading({ sensor_id: 'b', value: 10, timestamp: '2026-01-26T06:00:00.000Z' }),
          reading({ sensor_type: 'current', sensor_id: 'a', value: 50, unit: 'A', timestamp: '2026-01-26T05:00:00.000Z' }),
        ]);
        const latest = await repo().latest();
        assert.deepEqual(
          latest.map((r) => [r.sensor_type, r.sensor_id, r.value, r.timestamp]).sort(),
          [
            ['current', 'a', 100, '2026-01-26T06:00:00.000Z'],
            ['ldr', 'a', 3, '2026-01-26T08:03:00.000Z'],
            ['ldr', 'b', 20, '2026-01-26T07:00:00.000Z'],
          ],
        );
        for (const r of latest) assert.deepEqual(Object.keys(r), CONTRACT_FIELDS);
      });

      it('returns an empty array for an empty table', async () => {
        assert.deepEqual(await repo().latest(), []);
      });

      it('shares one query between concurrent calls, but never one started before a write it completed', async () => {
        let latestQueries = 0;
        const inner = db().sql;
        const counting: SqlDatabase = Object.create(inner, {
          query: {
            value: (sql: string, params?: readonly unknown[]) => {
              if (sql.includes('WITH RECURSIVE')) latestQueries += 1;
              return inner.query(sql, params);
            },
          },
        });
        const own = createReadingRepository(counting);
        await own.insertMany([reading({ sensor_id: 'a', value: 1 })]);
        const [x, y, z] = await Promise.all([own.latest(), own.latest(), own.latest()]);
        assert.equal(latestQueries, 1, 'three concurrent calls, one query');
        assert.deepEqual(x, y);
        assert.notEqual(x, y, 'each caller its own array');
        assert.notEqual(y, z, 'each caller its own array');
        assert.deepEqual(z.map((r) => r.value), [1]);
        // a write completing while a query is in flight: the next call does not join that query
        const stale = own.latest();
        await own.insertMany([reading({ sensor_id: 'a', value: 2, timestamp: '2026-01-26T09:00:00.000Z' })]);
        const fresh = await own.latest();
        await stale;
        assert.deepEqual(fresh.map((r) => r.value), [2]);
        assert.equal(latestQueries, 3);
        // sequential calls each query (nothing is kept after a query ends)
        await own.latest();
        assert.equal(latestQueries, 4);
      });

      it('finds every sensor among many', async () => {
        const batch: Reading[] = [];
        for (let s = 0; s < 40; s++) batch.push(...series(5, { sensor_id: `s_${String(s).padStart(2, '0')}` }));
        await repo().insertMany(batch);
        const latest = await repo().latest();
        assert.equal(latest.length, 40);
        assert.ok(latest.every((r) => r.timestamp === '2026-01-26T08:00:00.000Z' && r.value === 0));
      });
    });

    describe('recent', () => {
      it('returns rows at or after now minus hours, newest first, at most limit', async () => {
        const now = Date.now();
        await repo().insertMany([
          reading({ sensor_id: 'a', value: 1, timestamp: ago(10 * MINUTE, now) }),
          reading({ sensor_id: 'a', value: 2, timestamp: ago(50 * MINUTE, now) }),
          reading({ sensor_id: 'a', value: 3, timestamp: ago(HOUR, now) }), // exactly at the edge: included
          reading({ sensor_id: 'a', value: 4, timestamp: ago(HOUR + 1, now) }),
          reading({ sensor_id: 'b', value: 5, timestamp: ago(5 * MINUTE, now) }),
          reading({ sensor_type: 'current', sensor_id: 'a', unit: 'A', value: 6, timestamp: ago(20 * MINUTE, now) }),
          reading({ sensor_id: 'a', value: 7, timestamp: ago(30 * HOUR, now) }),
        ]);
        const hour = await repo().recent({ hours: 1, limit: 100, now });
        assert.deepEqual(hour.map((r) => r.value), [5, 1, 6, 2, 3]);
        assert.deepEqual((await repo().recent({ hours: 1, limit: 2, now })).map((r) => r.value), [5, 1]);
        assert.deepEqual((await repo().recent({ hours: 1, limit: 100, sensor_type: 'ldr', sensor_id: 'a', now })).map((r) => r.value), [1, 2, 3]);
        assert.deepEqual((await repo().recent({ hours: 1, limit: 100, sensor_id: 'a', now })).map((r) => r.value), [1, 6, 2, 3]);
        assert.deepEqual((await repo().recent({ hours: 0.25, limit: 100, now })).map((r) => r.value), [5, 1]);
        assert.equal((await repo().recent({ hours: 48, limit: 100, now })).length, 7);
      });

      it('uses the repository clock when no now is given', async () => {
        await repo().insertMany([reading({ timestamp: ago(MINUTE) }), reading({ timestamp: ago(2 * HOUR) })]);
        assert.equal((await repo().recent({ hours: 1, limit: 10 })).length, 1);
      });

      it('recentJson is the JSON text of recent, to the byte (built by PostgreSQL there)', async () => {
        const now = Date.now();
        const texts = ['plain', 'quote " and back\\slash', 'tab\tnew\nline\r\u0001\u001f\u007f', 'ünïcødé ⚡ 𝄞', '</script>\u2028'];
        const values = [0, 750, -12.5, 0.1 + 0.2, 123456.789, 1 / 3, -1e-4, 99999999999999.98, 999999999999999];
        await repo().insertMany(
          values.map((value, i) => reading({ sensor_id: texts[i % texts.length], location: texts[(i + 2) % texts.length], value, timestamp: ago((i + 1) * MINUTE, now) })),
        );
        // what no reading through the API has, but a row written by hand may: -0, microseconds; empty unit and location
        const µs = new Date(now - 30 * MINUTE).toISOString().replace('Z', '789Z');
        await db().sql.execute(
          'INSERT INTO sensor_readings (sensor_type, sensor_id, value, timestamp) VALUES ($1, $2, $3, $4)',
          ['ldr', 'bare', -0, backend.name === 'postgres' ? µs : ago(30 * MINUTE, now)],
        );
        for (const options of [
          { hours: 1, limit: 100, now },
          { hours: 1, limit: 3, now },
          { hours: 0.1, limit: 100, now },
          { hours: 1, limit: 100, now, sensor_id: texts[1] },
          { hours: 1, limit: 100, now, sensor_type: 'ldr', sensor_id: 'bare' },
          { hours: 1, limit: 100, now, sensor_type: 'nothing' },
          { hours: 1, limit: 100, now, sensor_id: 'evil\u0000' },
        ]) {
          const rows = await repo().recent(options);
          assert.equal((await repo().recentJson(options)).text, JSON.stringify(rows), JSON.stringify(options));
        }
        const all = await repo().recent({ hours: 1, limit: 100, now });
        assert.equal(all.length, values.length + 1);
        assert.deepEqual(all.find((r) => r.sensor_id === 'bare'), { ...all.find((r) => r.sensor_id === 'bare'), unit: '', location: '', value: 0 });
      });

      // SQLite's recentJson is JSON.stringify of recent
      if (backend.name === 'postgres') it('recentJson writes a number JS would print without an exponent in the exponent form, the same number', async () => {
        const now = Date.now();
        const values = [1e-5, 1.5e-7, 1e15, 1234567890123456.8, Number.MAX_SAFE_INTEGER, 1e21, -2.5e300];
        await repo().insertMany(values.map((value, i) => reading({ value, timestamp: ago((i + 1) * MINUTE, now) })));
        const text = (await repo().recentJson({ hours: 1, limit: 100, now })).text;
        assert.deepEqual(JSON.parse(text), await repo().recent({ hours: 1, limit: 100, now }));
        assert.match(text, /"value":1e-05,/);
      });
    });

    describe('deleteOlderThan', () => {
      it('removes exactly the rows older than the cutoff, in batches, and keeps a row at the cutoff', async () => {
        const cutoff = '2026-01-26T07:50:00.000Z';
        await repo().insertMany([
          ...series(20, { sensor_id: 'a' }), // 08:00 down to 07:41
          ...series(20, { sensor_id: 'b' }, Date.parse('2026-01-26T07:50:00.001Z')),
        ]);
        const before = await tableCount();
        const expected = (await repo().list({ pageSize: 1000 })).rows.filter((r) => r.timestamp < cutoff).length;
        assert.ok(expected > 7, 'several batches of 3');
        const deleted = await repo().deleteOlderThan(cutoff, 3);
        assert.equal(deleted, expected);
        const left = (await repo().list({ pageSize: 1000 })).rows;
        assert.equal(left.length, before - expected);
        assert.ok(left.every((r) => r.timestamp >= cutoff));
        assert.ok(left.some((r) => r.timestamp === cutoff), 'the row at the cutoff is kept');
        assert.equal(await repo().deleteOlderThan(cutoff, 3), 0, 'nothing left to delete');
      });

      it('deletes with the default batch size and returns 0 on an empty table', async () => {
        assert.equal(await repo().deleteOlderThan('2030-01-01T00:00:00.000Z'), 0);
        await repo().insertMany(series(10));
        assert.equal(await repo().deleteOlderThan('2030-01-01T00:00:00.000Z'), 10);
        assert.equal(await tableCount(), 0);
      });
    });

    describe('REST handlers', () => {
      beforeEach(async () => {
        await repo().insertMany([
          ...series(5, { sensor_id: 'ldr_1' }),
          ...series(5, { sensor_id: 'ldr_2', location: 'kitchen' }),
        ]);
      });

      it('listReadings answers the DRF envelope with absolute next/previous links keeping other params', async () => {
        const res = await listReadings(repo(), request({ page: '2', page_size: '3', location: 'living_room', ordering: 'timestamp' }));
        assert.equal(res.status, 200);
        const body = res.body as { count: number; next: string; previous: string; results: ReadingRow[] };
        assert.equal(body.count, 5);
        assert.deepEqual(body.results.map((r) => r.value), [1, 0]);
        assert.equal(body.next, null);
        const prev = new URL(body.previous);
        assert.equal(prev.origin + prev.pathname, 'http://pi.local:1880/api/sensor-readings/');
        assert.equal(prev.searchParams.get('page'), null, 'page 1 drops the page parameter, as DRF');
        assert.equal(prev.searchParams.get('page_size'), '3');
        assert.equal(prev.searchParams.get('location'), 'living_room');
        assert.equal(prev.searchParams.get('ordering'), 'timestamp');
        for (const r of body.results) assert.deepEqual(Object.keys(r), CONTRACT_FIELDS);

        const first = (await listReadings(repo(), request({ page_size: '4' }))).body as { next: string; previous: null; count: number };
        assert.equal(first.count, 10);
        assert.equal(first.previous, null);
        assert.equal(new URL(first.next).searchParams.get('page'), '2');
        assert.equal(new URL(first.next).searchParams.get('page_size'), '4');
      });

      it('listReadings: a page past the end is 404 Invalid page., page 1 of nothing is an empty page', async () => {
        assert.deepEqual(await listReadings(repo(), request({ page: '3', page_size: '5' })), { status: 404, body: { detail: 'Invalid page.' } });
        const empty = await listReadings(repo(), request({ sensor_type: 'voltage' }));
        assert.deepEqual(empty, { status: 200, body: { count: 0, next: null, previous: null, results: [] } });
        assert.equal((await listReadings(repo(), request({ sensor_type: 'voltage', page: '2' }))).status, 404);
      });

      it('listReadings answers 400 for bad parameters, never throws', async () => {
        const cases: [Record<string, unknown>, string][] = [
          [{ page: '0' }, 'page must be a positive integer'],
          [{ page: 'abc' }, 'page must be a positive integer'],
          [{ page: '-1' }, 'page must be a positive integer'],
          [{ page: '1.5' }, 'page must be a positive integer'],
          [{ page_size: '0' }, 'page_size must be an integer from 1 to 1000'],
          [{ ordering: 'value' }, 'ordering must be one of: timestamp, -timestamp, created_at, -created_at'],
          [{ ordering: "timestamp; DROP TABLE sensor_readings" }, 'ordering must be one of: timestamp, -timestamp, created_at, -created_at'],
          [{ sensor_type: { $ne: 'x' } }, 'sensor_type must be a single value'],
        ];
        for (const [query, error] of cases) {
          assert.deepEqual(await listReadings(repo(), request(query)), { status: 400, body: { error } }, JSON.stringify(query));
        }
        // injection in a filter: just no match
        const evil = await listReadings(repo(), request({ sensor_id: "' OR 1=1 --" }));
        assert.equal(evil.status, 200);
        assert.equal((evil.body as { count: number }).count, 0);
      });

      it('getReading: the row by id; 404 Not found. for unknown, zero, negative or non-numeric ids', async () => {
        const [row] = (await repo().list({ pageSize: 1 })).rows;
        const res = await getReading(repo(), request({}, { id: String(row.id) }));
        assert.deepEqual(res, { status: 200, body: row });
        for (const id of [String(row.id + 10_000), '0', '-1', 'abc', '1.0', '', ' 1', '99999999999999999999', "1 OR 1=1"]) {
          assert.deepEqual(await getReading(repo(), request({}, { id })), { status: 404, body: { detail: 'Not found.' } }, id);
        }
      });

      it('latestReadings: one row per sensor as an array', async () => {
        const res = await latestReadings(repo(), request());
        assert.equal(res.status, 200);
        const rows = res.body as ReadingRow[];
        assert.deepEqual(rows.map((r) => [r.sensor_id, r.timestamp]).sort(), [
          ['ldr_1', '2026-01-26T08:00:00.000Z'],
          ['ldr_2', '2026-01-26T08:00:00.000Z'],
        ]);
      });

      it('recentReadings: hours defaults to 1, limit and filters apply, bad values are 400', async () => {
        const now = Date.parse('2026-01-26T08:00:30.000Z');
        const all = await recentReadings(repo(), request(), now);
        assert.equal(all.status, 200);
        assert.equal((all.body as ReadingRow[]).length, 10);
        const few = await recentReadings(repo(), request({ hours: '0.05', limit: '2', sensor_id: 'ldr_2' }), { now: () => now });
        // 0.05 h = 3 min: 08:00, 07:59, 07:58 (07:57:30 is the edge), limited to 2
        assert.deepEqual((few.body as ReadingRow[]).map((r) => [r.sensor_id, r.timestamp]), [
          ['ldr_2', '2026-01-26T08:00:00.000Z'],
          ['ldr_2', '2026-01-26T07:59:00.000Z'],
        ]);
        const later = await recentReadings(repo(), request({ hours: '1' }), now + 2 * HOUR);
        assert.deepEqual(later.body, []);
        for (const [query, error] of [
          [{ hours: '0' }, 'hours must be a positive number of at most 8760'],
          [{ hours: '-1' }, 'hours must be a positive number of at most 8760'],
          [{ hours: '8761' }, 'hours must be a positive number of at most 8760'],
          [{ hours: 'NaN' }, 'hours must be a positive number of at most 8760'],
          [{ hours: 'Infinity' }, 'hours must be a positive number of at most 8760'],
          [{ limit: '0' }, 'limit must be an integer from 1 to 10000'],
          [{ limit: 'ten' }, 'limit must be an integer from 1 to 10000'],
        ] as const) {
          assert.deepEqual(await recentReadings(repo(), request(query), now), { status: 400, body: { error } }, JSON.stringify(query));
        }
      });
    });
  });
}
