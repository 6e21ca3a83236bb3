import assert from 'assert/strict';
import fs from 'fs';
import net from 'net';
import path from 'path';
import helper from 'node-red-node-test-helper';
import coldStoreNode = require('../../nodes/cold-store/cold-store');
import databaseNode = require('../../nodes/hypervolt-database/hypervolt-database');
import { openDatabase } from '../../nodes/shared/db';
import { completions } from '../../nodes/shared/spool/tracker';
import type { Database } from '../../nodes/shared/db';
import type { BatcherStats } from '../../nodes/cold-store/reading-batcher';
import { backends } from '../integration/db-support';
import { createTestDatabase, requireService } from '../support/services';

// Core nodes that prove done() (complete) and done(err) (catch).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const completeNode = require('@node-red/nodes/core/common/24-complete.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

// The test helper's RED._ returns the key: use the real catalog, so status texts are checked as
// users see them (and the keys are proven to exist).
const catalog = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../nodes/cold-store/locales/en-US/cold-store.json'), 'utf8'),
) as Record<string, unknown>;
function translate(key: string, subs?: Record<string, unknown>): string {
  const text = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], catalog);
  if (typeof text !== 'string') return key;
  return text.replace(/__(\w+)__/g, (_m, name: string) => String(subs?.[name]));
}
const coldStore = (RED: any) => {
  RED._ = translate;
  return coldStoreNode(RED);
};
const NODES = [coldStore, databaseNode, completeNode, catchNode];

type Msg = Record<string, any>;

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function reading(i: number, over: Record<string, unknown> = {}) {
  return {
    sensor_type: 'ldr',
    sensor_id: `ldr_${i % 10}`,
    value: i,
    unit: 'lux',
    location: 'living_room',
    timestamp: ago(60_000 + i * 1000),
    ...over,
  };
}

/**
 * A cold-store node `cs` on database `url`, its output `out`, and a Complete and a Catch node
 * watching `scope` (their messages arrive at `completed` and `caught`).
 */
function flow(url: string, config: Record<string, unknown> = {}, scope: string[] = ['cs']) {
  return withXY([
    { id: 'f1', type: 'tab', label: 'cold-store test' },
    { id: 'db', type: 'hypervolt-database', name: '', url },
    { id: 'cs', z: 'f1', type: 'cold-store', database: 'db', operation: 'write-readings', wires: [['out']], ...config },
    { id: 'out', z: 'f1', type: 'helper' },
    { id: 'on-complete', z: 'f1', type: 'complete', scope, uncaught: false, wires: [['completed']] },
    { id: 'completed', z: 'f1', type: 'helper' },
    { id: 'on-catch', z: 'f1', type: 'catch', scope, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ]);
}

/** Node-RED takes a node without x and y for a config node: place every flow node. */
function withXY(nodes: Record<string, unknown>[]): Record<string, unknown>[] {
  return nodes.map((n) => (n.z ? { x: 100, y: 100, ...n } : n));
}

/** Collects the messages arriving at helper nodes. */
function collect(...ids: string[]): Record<string, Msg[]> {
  const got: Record<string, Msg[]> = {};
  for (const id of ids) {
    got[id] = [];
    helper.getNode(id).on('input', (m: Msg) => got[id].push(m));
  }
  return got;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(10);
  }
}

/** What an `http in` node puts on msg.req, enough for apiRequestFromMsg. */
function req(pathname: string, query: Record<string, string> = {}, params: Record<string, string> = {}) {
  const qs = new URLSearchParams(query).toString();
  return {
    method: 'GET',
    query,
    params,
    protocol: 'http',
    originalUrl: pathname + (qs ? `?${qs}` : ''),
    headers: { host: 'localhost:1880' },
    get: (name: string) => (name.toLowerCase() === 'host' ? 'localhost:1880' : undefined),
  };
}

/** The last status a node showed (the helper spies on every node's status at once). */
function lastStatus(id: string): unknown {
  const node = helper.getNode(id);
  const calls = ((node.status as any).getCalls() as Array<{ thisValue: unknown; args: unknown[] }>).filter((c) => c.thisValue === node);
  return calls.at(-1)?.args[0];
}

async function count(db: Database, table: string): Promise<number> {
  const rows = await db.sql.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${table}`);
  return Number(rows[0].n);
}

describe('cold-store node', function () {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  for (const backend of backends()) {
    describe(`on ${backend.name}`, function () {
      let url: string;
      let db: Database;
      before(async function () {
        url = await backend.create(this, 'coldstore');
        db = await openDatabase(url);
      });
      beforeEach(async () => {
        await db.sql.execute('DELETE FROM sensor_readings');
        await db.sql.execute('DELETE FROM grid_data');
      });
      after(async () => {
        await helper.unload();
        await db?.close();
        await backend.destroy();
      });

      it('stores 1200 readings sent as messages in at most 3 flushes and completes every message', async () => {
        await helper.load(NODES, flow(url));
        const got = collect('out', 'completed', 'caught');
        const cs = helper.getNode('cs');
        const base = Date.now() - HOUR / 2;
        for (let i = 0; i < 1200; i++) {
          cs.receive({ payload: reading(i, { timestamp: new Date(base + i * 1000).toISOString() }), seq: i });
        }
        await until(() => got.completed.length === 1200, '1200 completions');
        assert.equal(got.caught.length, 0);
        const stats = (cs.stats as () => BatcherStats)();
        assert.ok(stats.batches <= 3, `${stats.batches} flushes`);
        assert.equal(stats.written, 1200);
        assert.equal(await count(db, 'sensor_readings'), 1200);
        // Each output carries its own stored row with an id.
        assert.equal(got.out.length, 1200);
        const ids = new Set<number>();
        for (const m of got.out) {
          assert.equal(typeof m.payload.id, 'number');
          assert.equal(m.payload.value, m.seq, 'a message gets the row of its own reading');
          ids.add(m.payload.id);
        }
        assert.equal(ids.size, 1200);
        await wait(600);
        assert.deepEqual(lastStatus('cs'), { fill: 'green', shape: 'dot', text: 'stored 1200 · queued 0' });
      });

      it('stores a duplicate once and still completes its messages with the existing row', async () => {
        await helper.load(NODES, flow(url));
        const got = collect('out', 'completed', 'caught');
        const cs = helper.getNode('cs');
        const r = reading(1, { timestamp: ago(60_000) });
        cs.receive({ payload: r });
        cs.receive({ payload: { ...r } }); // same batch
        cs.receive({ payload: [r, reading(2, { timestamp: ago(30_000) }), r] }); // repeats inside an array
        await until(() => got.completed.length === 3, '3 completions');
        cs.receive({ payload: r }); // a later batch: all duplicates
        await until(() => got.completed.length === 4, '4 completions');
        assert.equal(got.caught.length, 0);
        assert.equal(await count(db, 'sensor_readings'), 2);
        const id = got.out[0].payload.id;
        assert.equal(typeof id, 'number');
        assert.equal(got.out[1].payload.id, id);
        assert.ok(Array.isArray(got.out[2].payload), 'an array in, an array out');
        assert.deepEqual(
          got.out[2].payload.map((row: Msg) => row.id === id),
          [true, false, true],
        );
        assert.equal(got.out[3].payload.id, id);
        assert.equal(got.out[3].payload.timestamp, r.timestamp);
      });

      it('writes a lone message at once (no wait for the timer) and batches what arrives during a flush', async () => {
        await helper.load(NODES, flow(url, { flushMs: 5000 }));
        await until(() => helper.getNode('db').state === 'up', 'the database to open');
        const got = collect('out', 'completed', 'caught');
        const cs = helper.getNode('cs');
        const started = Date.now();
        cs.receive({ payload: reading(1, { timestamp: ago(1000) }) });
        await until(() => got.completed.length === 1, 'the first message stored');
        assert.ok(Date.now() - started < 2000, 'long before the 5 s timer');
        for (let i = 0; i < 300; i++) cs.receive({ payload: reading(i, { sensor_id: 'burst', timestamp: ago(10_000 + i) }) });
        await until(() => got.completed.length === 301, 'the burst stored');
        const stats = (cs.stats as () => BatcherStats)();
        assert.ok(stats.batches <= 3, `${stats.batches} flushes for 301 messages`);
        assert.equal(got.caught.length, 0);
      });

      it('with output "none" stores the readings and passes the msg on as it came (no rows built)', async () => {
        await helper.load(NODES, flow(url, { output: 'none' }));
        const got = collect('out', 'completed', 'caught');
        const cs = helper.getNode('cs');
        const r = reading(7, { timestamp: ago(5000) });
        cs.receive({ payload: r });
        cs.receive({ payload: [r, reading(8, { timestamp: ago(6000) })] }); // a duplicate inside
        await until(() => got.completed.length === 2, '2 completions');
        assert.equal(got.caught.length, 0);
        assert.equal(await count(db, 'sensor_readings'), 2);
        assert.deepEqual(got.out[0].payload, r, 'the reading, not a row');
        assert.equal((got.out[0].payload as Msg).id, undefined);
        assert.equal((cs.stats as () => BatcherStats)().duplicates, 1);
      });

      it('with its output not wired stores the readings and completes each message', async () => {
        await helper.load(NODES, flow(url, { wires: [[]] }));
        const got = collect('completed', 'caught');
        const cs = helper.getNode('cs');
        for (let i = 0; i < 20; i++) cs.receive({ payload: reading(i, { sensor_id: 'unwired', timestamp: ago(i * 1000) }) });
        await until(() => got.completed.length === 20, '20 completions');
        assert.equal(got.caught.length, 0);
        assert.equal(await count(db, 'sensor_readings'), 20);
      });

      it('writes what is pending when the flow stops before the flush timer fires', async () => {
        await helper.load(NODES, flow(url, { flushMs: 5000 }));
        await until(() => helper.getNode('db').state === 'up', 'the database to open');
        const cs = helper.getNode('cs');
        for (let i = 0; i < 25; i++) cs.receive({ payload: reading(i, { timestamp: ago(i * 1000) }) });
        assert.equal((cs.stats as () => BatcherStats)().queued, 25, 'still waiting for the timer');
        await helper.unload();
        assert.equal(await count(db, 'sensor_readings'), 25);
      });

      it('rejects a message that is not a reading through done(err), without losing the others', async () => {
        await helper.load(NODES, flow(url));
        const got = collect('out', 'completed', 'caught');
        const cs = helper.getNode('cs');
        cs.receive({ payload: reading(1, { timestamp: ago(1000) }) });
        cs.receive({ payload: 'hello' });
        cs.receive({ payload: [reading(2, { timestamp: ago(2000) }), { sensor_type: 'ldr', sensor_id: 'x', value: 'high' }] });
        cs.receive({ payload: reading(3, { sensor_id: 'x'.repeat(65), timestamp: ago(3000) }) });
        cs.receive({ payload: reading(4, { timestamp: ago(4000) }) });
        await until(() => got.completed.length === 2 && got.caught.length === 3, 'completions and errors');
        const errors = got.caught.map((m) => m.error.message);
        assert.match(errors[0], /msg\.payload must be a reading object or an array/);
        assert.match(errors[1], /msg\.payload\[1\]\.value must be a finite number/);
        assert.match(errors[2], /sensor_id is longer than 64/);
        assert.equal(await count(db, 'sensor_readings'), 2);
      });

      // A NUL in text is refused by PostgreSQL only (SQLite stores it).
      if (backend.name === 'postgres') it('a msg of many readings with one the database refuses for good: that one dead-lettered, the others stored', async () => {
        await helper.load(NODES, flow(url));
        const got = collect('out', 'completed', 'caught');
        const removed: number[] = [];
        const letters: Array<{ topic: string; reason: string; payload: Buffer | string }> = [];
        const sink = { removeSoon: (id: number) => removed.push(id), deadLetterSoon: (l: (typeof letters)[0]) => letters.push(l) };
        // As sensor-in's batch output leaves it: one msg, two spool entries, five readings.
        completions.track('poison-batch', [
          { sink, id: 41, topic: 'HyperVolt/sensors/living_room/ldr', payload: Buffer.from('a') },
          { sink, id: 42, topic: 'HyperVolt/sensors/attic/ldr', payload: Buffer.from('b') },
        ]);
        completions.expect('poison-batch', 5);
        const payload = [0, 1, 2, 3].map((i) => reading(i, { timestamp: ago(1000 + i * 1000) }));
        payload.splice(2, 0, reading(9, { location: 'attic', unit: 'lux\u0000', timestamp: ago(9000) }));
        helper.getNode('cs').receive({ _msgid: 'poison-batch', payload });
        await until(() => got.caught.length === 1, 'the msg fails once');
        assert.match(got.caught[0].error.message, /0x00/);
        assert.equal(got.completed.length, 0);
        assert.equal(await count(db, 'sensor_readings'), 4, 'the four good readings are stored');
        assert.deepEqual(removed.sort(), [41, 42], 'both spool entries settled');
        assert.equal(letters.length, 1);
        assert.equal(letters[0].topic, 'HyperVolt/sensors/attic/ldr', 'under the topic of the entry it came from');
        assert.match(letters[0].reason, /0x00/);
      });

      it('answers the REST operations: list with pagination, get, 404, latest, recent', async () => {
        const seeded = await db.readings.saveMany([
          reading(1, { sensor_id: 'a', timestamp: ago(3 * HOUR) }),
          reading(2, { sensor_id: 'a', timestamp: ago(30 * 60_000) }),
          reading(3, { sensor_id: 'b', timestamp: ago(20 * 60_000) }),
          reading(4, { sensor_id: 'b', timestamp: ago(10 * 60_000) }),
          reading(5, { sensor_id: 'c', timestamp: ago(2 * HOUR) }),
        ]);
        const byValue = (v: number) => seeded.rows.find((r) => r.value === v)!;
        await helper.load(NODES, withXY([
          ...flow(url, { operation: 'list-readings' }, ['cs', 'get', 'latest', 'recent']),
          { id: 'get', z: 'f1', type: 'cold-store', database: 'db', operation: 'get-reading', wires: [['out']] },
          { id: 'latest', z: 'f1', type: 'cold-store', database: 'db', operation: 'latest-readings', wires: [['out']] },
          { id: 'recent', z: 'f1', type: 'cold-store', database: 'db', operation: 'recent-readings', wires: [['out']] },
        ]));
        const got = collect('out', 'completed', 'caught');
        const ask = async (id: string, r: Msg): Promise<Msg> => {
          const before = got.out.length;
          helper.getNode(id).receive({ req: r, res: {} });
          await until(() => got.out.length > before, `an answer from ${id}`);
          return got.out[before];
        };

        const page2 = await ask('cs', req('/api/sensor-readings/', { page: '2', page_size: '2' }));
        assert.equal(page2.statusCode, 200);
        assert.equal(page2.payload.count, 5);
        assert.deepEqual(
          page2.payload.results.map((r: Msg) => r.value),
          [2, 5],
          'newest first: 4, 3 | 2, 5 | 1',
        );
        assert.match(page2.payload.next, /^http:\/\/localhost:1880\/api\/sensor-readings\/\?.*page=3/);
        assert.ok(page2.payload.previous.startsWith('http://localhost:1880/api/sensor-readings/'));
        assert.match(page2.headers['content-type'], /application\/json/);
        const filtered = await ask('cs', req('/api/sensor-readings/', { sensor_id: 'b', ordering: 'timestamp' }));
        assert.deepEqual(filtered.payload.results.map((r: Msg) => r.value), [3, 4]);
        const pastEnd = await ask('cs', req('/api/sensor-readings/', { page: '9' }));
        assert.deepEqual([pastEnd.statusCode, pastEnd.payload], [404, { detail: 'Invalid page.' }]);

        const one = await ask('get', req(`/api/sensor-readings/${byValue(3).id}/`, {}, { id: String(byValue(3).id) }));
        assert.equal(one.statusCode, 200);
        assert.deepEqual(one.payload, byValue(3));
        const missing = await ask('get', req('/api/sensor-readings/999999/', {}, { id: '999999' }));
        assert.deepEqual([missing.statusCode, missing.payload], [404, { detail: 'Not found.' }]);

        const latest = await ask('latest', req('/api/sensor-readings/latest/'));
        assert.equal(latest.statusCode, 200);
        assert.deepEqual(latest.payload.map((r: Msg) => r.value).sort(), [2, 4, 5]);

        const recent = await ask('recent', req('/api/sensor-readings/recent/', { hours: '1' }));
        assert.deepEqual(recent.payload.map((r: Msg) => r.value), [4, 3, 2]);
        const recentB = await ask('recent', req('/api/sensor-readings/recent/', { hours: '1', sensor_id: 'b', limit: '1' }));
        assert.deepEqual(recentB.payload.map((r: Msg) => r.value), [4]);
        const badHours = await ask('recent', req('/api/sensor-readings/recent/', { hours: 'soon' }));
        assert.equal(badHours.statusCode, 400);

        assert.equal(got.completed.length, 9, 'done() once per request');
        assert.equal(got.caught.length, 0);
      });

      it('with HTTP answer "json": the same answers as JSON bytes, one Buffer shared by identical concurrent reads', async () => {
        await db.readings.saveMany([0, 1, 2, 3, 4, 5].map((i) => reading(i, { sensor_id: `j${i % 2}`, timestamp: ago((i + 1) * 60_000) })));
        await helper.load(NODES, withXY([
          ...flow(url, { operation: 'recent-readings', body: 'json' }, ['cs', 'plain', 'list']),
          { id: 'plain', z: 'f1', type: 'cold-store', database: 'db', operation: 'recent-readings', wires: [['out']] },
          { id: 'list', z: 'f1', type: 'cold-store', database: 'db', operation: 'list-readings', body: 'json', wires: [['out']] },
        ]));
        const got = collect('out', 'completed', 'caught');
        const asked = (id: string, r: Msg, tag: string) => helper.getNode(id).receive({ req: r, res: {}, tag });
        const query = { hours: '1' };
        for (let k = 0; k < 5; k++) asked('cs', req('/api/sensor-readings/recent/', query), `json${k}`);
        asked('plain', req('/api/sensor-readings/recent/', query), 'plain');
        asked('cs', req('/api/sensor-readings/recent/', { hours: '1', sensor_id: 'j1' }), 'j1');
        asked('list', req('/api/sensor-readings/', { page_size: '2' }), 'list');
        asked('cs', req('/api/sensor-readings/recent/', { hours: 'soon' }), 'bad');
        await until(() => got.completed.length === 9, 'nine answers');
        const by = (tag: string) => got.out.find((m) => m.tag === tag)!;
        const plain = by('plain');
        assert.ok(Array.isArray(plain.payload) && plain.payload.length === 6, 'object mode is unchanged');
        const json = [0, 1, 2, 3, 4].map((k) => by(`json${k}`));
        for (const m of json) {
          assert.ok(Buffer.isBuffer(m.payload));
          // to the byte: on PostgreSQL the database builds this text (recentJson)
          assert.equal(m.payload.toString('utf8'), JSON.stringify(plain.payload));
          assert.equal(m.statusCode, 200);
          assert.match(m.headers['content-type'], /application\/json/);
        }
        assert.equal(new Set(json.map((m) => m.payload)).size, 1, 'the five identical reads share one serialisation');
        assert.deepEqual(JSON.parse(by('j1').payload.toString()).map((r: Msg) => r.sensor_id), ['j1', 'j1', 'j1']);
        const list = JSON.parse(by('list').payload.toString());
        assert.deepEqual([list.count, list.results.length], [6, 2]);
        assert.match(list.next, /page=2/);
        assert.deepEqual([by('bad').statusCode, Object.keys(JSON.parse(by('bad').payload.toString()))], [400, ['error']]);
        assert.equal(got.caught.length, 0);
      });

      it('reports health up and keeps the other parts of msg.health', async () => {
        await helper.load(NODES, flow(url, { operation: 'health' }));
        const got = collect('out', 'completed');
        helper.getNode('cs').receive({ payload: 'x', health: { mqtt: 'up' } });
        await until(() => got.completed.length === 1, 'completion');
        assert.deepEqual(got.out[0].health, { mqtt: 'up', cold_store: 'up' });
      });

      it('cleanup deletes exactly the rows older than the retention period', async () => {
        await db.readings.saveMany([
          reading(1, { timestamp: ago(8 * DAY) }),
          reading(2, { timestamp: ago(7 * DAY + 60_000) }),
          reading(3, { timestamp: ago(7 * DAY - 60_000) }),
          reading(4, { timestamp: ago(HOUR) }),
        ]);
        const grid = (t: string, value: number) => ({ data_type: 'carbon_intensity', value, unit: 'gCO2eq/kWh', zone: 'IN-KA', metadata: {}, timestamp: t });
        await db.gridData.upsertMany([grid(ago(10 * DAY), 1), grid(ago(6 * DAY), 2), grid(ago(DAY), 3)]);
        await helper.load(NODES, flow(url, { operation: 'cleanup', retentionDays: '7' }));
        const got = collect('out', 'completed', 'caught');
        helper.getNode('cs').receive({ payload: '' });
        await until(() => got.completed.length === 1, 'completion');
        assert.deepEqual(got.out[0].payload, { deleted: { sensor_readings: 2, grid_data: 1 } });
        const left = await db.readings.recent({ hours: 30 * 24, limit: 100 });
        assert.deepEqual(left.map((r) => r.value).sort(), [3, 4]);
        assert.deepEqual((await db.gridData.latest()).map((r) => r.value), [3]);

        // As the answer to POST /api/maintenance/cleanup/.
        helper.getNode('cs').receive({ req: { ...req('/api/maintenance/cleanup/'), method: 'POST' }, res: {} });
        await until(() => got.completed.length === 2, 'second completion');
        assert.equal(got.out[1].statusCode, 200);
        assert.deepEqual(got.out[1].payload, { deleted: { sensor_readings: 0, grid_data: 0 } });
      });

      it('cleanup takes ${RETENTION_DAYS}, and keeps 7 days when it is unset', async () => {
        const saved = process.env.RETENTION_DAYS;
        try {
          await db.readings.saveMany([
            reading(1, { timestamp: ago(4 * DAY) }),
            reading(2, { timestamp: ago(6 * DAY) }),
            reading(3, { timestamp: ago(8 * DAY) }),
          ]);
          delete process.env.RETENTION_DAYS;
          await helper.load(NODES, flow(url, { operation: 'cleanup', retentionDays: '${RETENTION_DAYS}' }));
          let got = collect('out', 'completed');
          helper.getNode('cs').receive({ payload: '' });
          await until(() => got.completed.length === 1, 'completion');
          assert.deepEqual(got.out[0].payload, { deleted: { sensor_readings: 1, grid_data: 0 } });
          await helper.unload();

          process.env.RETENTION_DAYS = '5';
          await helper.load(NODES, flow(url, { operation: 'cleanup', retentionDays: '${RETENTION_DAYS}' }));
          got = collect('out', 'completed');
          helper.getNode('cs').receive({ payload: '' });
          await until(() => got.completed.length === 1, 'completion');
          assert.deepEqual(got.out[0].payload, { deleted: { sensor_readings: 1, grid_data: 0 } });
          assert.equal(await count(db, 'sensor_readings'), 1);
        } finally {
          if (saved === undefined) delete process.env.RETENTION_DAYS;
          else process.env.RETENTION_DAYS = saved;
        }
      });

      it('write-grid-data upserts on (data_type, zone, timestamp) and outputs the stored rows', async () => {
        await helper.load(NODES, flow(url, { operation: 'write-grid-data' }));
        const got = collect('out', 'completed', 'caught');
        const cs = helper.getNode('cs');
        const t = '2026-01-26T08:00:00Z';
        const row = { data_type: 'carbon_intensity', value: 500, unit: 'gCO2eq/kWh', zone: 'IN-KA', metadata: { is_estimated: true }, timestamp: t };
        cs.receive({ payload: row });
        await until(() => got.completed.length === 1, 'first completion');
        cs.receive({
          payload: [
            { ...row, value: 480, metadata: { is_estimated: false } },
            { data_type: 'weather', value: 24.5, unit: 'celsius', zone: 'IN-KA', metadata: { humidity: 60 }, timestamp: t },
          ],
        });
        await until(() => got.completed.length === 2, 'second completion');
        cs.receive({ payload: { ...row, data_type: 'gold_price' } });
        await until(() => got.caught.length === 1, 'an error');
        assert.match(got.caught[0].error.message, /data_type must be one of/);

        const first = got.out[0].payload;
        assert.equal(typeof first.id, 'number');
        assert.equal(first.timestamp, '2026-01-26T08:00:00.000Z');
        const second = got.out[1].payload;
        assert.ok(Array.isArray(second));
        assert.equal(second[0].id, first.id, 'the same row, updated');
        assert.equal(second[0].value, 480);
        assert.deepEqual(second[0].metadata, { is_estimated: false });
        assert.equal(await count(db, 'grid_data'), 2);
      });
    });
  }

  describe('when PostgreSQL goes away and comes back', function () {
    let pg: { url: string; drop: () => Promise<void> };
    let proxy: TcpProxy;
    before(async function () {
      await requireService(this, 'postgres');
      pg = await createTestDatabase('coldstore_outage');
      proxy = new TcpProxy(new URL(pg.url));
      await proxy.start();
    });
    after(async () => {
      await helper.unload();
      await proxy?.stop();
      await pg?.drop();
    });

    it('keeps the readings while it is down and writes them when it is back, each message once', async () => {
      const url = new URL(pg.url);
      url.host = `127.0.0.1:${proxy.port}`;
      await helper.load(NODES, flow(url.toString()));
      const got = collect('out', 'completed', 'caught');
      const cs = helper.getNode('cs');
      cs.receive({ payload: reading(0, { timestamp: ago(10_000) }) });
      await until(() => got.completed.length === 1, 'the first write');

      await proxy.stop(); // every connection cut, new ones refused
      for (let i = 1; i <= 5; i++) cs.receive({ payload: reading(i, { timestamp: ago(10_000 - i) }) });
      await until(() => (cs.stats as () => BatcherStats)().retries >= 2, 'failed attempts');
      const during = (cs.stats as () => BatcherStats)();
      assert.equal(during.connected, false);
      assert.equal(during.queued + during.inFlight, 5);
      assert.equal(got.completed.length, 1, 'messages wait, they are not failed');
      assert.equal(got.caught.length, 0);
      await wait(600);
      assert.deepEqual(lastStatus('cs'), { fill: 'yellow', shape: 'ring', text: 'database down · 5 waiting' });

      await proxy.start();
      await until(() => got.completed.length === 6, 'the backlog to be written', 15_000);
      assert.equal(got.caught.length, 0);
      assert.deepEqual(got.out.map((m) => m.payload.value), [0, 1, 2, 3, 4, 5]);
      const check = await openDatabase(pg.url);
      try {
        assert.equal(await count(check, 'sensor_readings'), 6);
      } finally {
        await check.close();
      }
      const logged = JSON.stringify(helper.log().args);
      assert.match(logged, /database down, 5 readings waiting/);
      assert.match(logged, /database back after \d+ s, wrote 5 readings/);
    });
  });

  describe('without a reachable database', function () {
    const URL_DOWN = 'postgres://hv:s3cretPassw0rd@127.0.0.1:1/hypervolt';

    it('keeps retrying, shows disconnected, answers 503, reports health down and never logs the password', async () => {
      await helper.load(NODES, withXY([
        ...flow(URL_DOWN, { operation: 'list-readings' }, ['cs', 'health', 'writer']),
        { id: 'health', z: 'f1', type: 'cold-store', database: 'db', operation: 'health', wires: [['out']] },
        { id: 'writer', z: 'f1', type: 'cold-store', database: 'db', operation: 'write-readings', maxQueued: 3, wires: [['out']] },
      ]));
      const got = collect('out', 'completed', 'caught');
      const db = helper.getNode('db');
      await until(() => db.state === 'down', 'the database to be down');
      helper.getNode('cs').receive({ req: req('/api/sensor-readings/'), res: {} });
      await until(() => got.caught.length === 1, 'the error');
      assert.equal(got.out.length, 1, 'the 503 is sent to the http response');
      assert.equal(got.out[0].statusCode, 503);
      assert.deepEqual(got.out[0].payload, { detail: 'database unavailable' });

      helper.getNode('health').receive({ payload: '' });
      await until(() => got.completed.length === 1, 'health to complete');
      assert.equal(got.out[1].health.cold_store, 'down');

      // Readings wait (not failed) while the database is down.
      const writer = helper.getNode('writer');
      writer.receive({ payload: reading(1, { timestamp: ago(1000) }) });
      await wait(700);
      const stats = (writer.stats as () => BatcherStats)();
      assert.equal(stats.queued + stats.inFlight, 1);
      assert.equal(stats.connected, false);
      assert.equal(got.caught.length, 1);
      assert.deepEqual(lastStatus('writer'), { fill: 'yellow', shape: 'ring', text: 'database down · 1 waiting' });
      assert.deepEqual(lastStatus('cs'), { fill: 'yellow', shape: 'ring', text: 'disconnected' });

      // Beyond maxQueued a message is refused at once, with a clear error and a red status.
      writer.receive({ payload: [reading(2, { timestamp: ago(2000) }), reading(3, { timestamp: ago(3000) }), reading(4, { timestamp: ago(4000) })] });
      await until(() => got.caught.length === 2, 'the refusal');
      assert.match(got.caught[1].error.message, /queue full \(3 readings waiting\).*3 reading\(s\) refused/);
      await wait(600);
      assert.deepEqual(lastStatus('writer'), { fill: 'red', shape: 'dot', text: 'refused 1 · queued 1' });

      const logged = JSON.stringify(helper.log().args);
      assert.ok(logged.includes('cannot open postgres://hv:***@127.0.0.1:1/hypervolt'), 'the failure is logged, masked');
      assert.ok(!logged.includes('s3cretPassw0rd'), 'no password in the log');
    });

    it('spills readings beyond spillAfter to its file (done, not sent on); an HTTP request is never spilled: it waits', async () => {
      const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'hv-cs-spill-'));
      const spillPath = path.join(dir, 'spill.db');
      try {
        await helper.load(NODES, withXY([
          ...flow(URL_DOWN, { operation: 'list-readings' }, ['writer']),
          { id: 'writer', z: 'f1', type: 'cold-store', database: 'db', operation: 'write-readings', spillPath, spillAfter: 2, wires: [['out']] },
        ]));
        const got = collect('out', 'completed', 'caught');
        const db = helper.getNode('db');
        await until(() => db.state === 'down', 'the database to be down');
        const writer = helper.getNode('writer');
        writer.receive({ payload: reading(1, { timestamp: ago(1000) }) }); // its failed flush tells the writer
        await until(() => !(writer.stats as () => BatcherStats)().connected, 'the writer to see the outage');
        writer.receive({ payload: reading(2, { timestamp: ago(2000) }) });
        writer.receive({ payload: reading(3, { timestamp: ago(3000) }) }); // beyond spillAfter: spilled
        writer.receive({ payload: reading(4, { timestamp: ago(4000) }) }); // spilled
        writer.receive({ payload: reading(5, { timestamp: ago(5000) }), req: req('/api/sensor-readings/'), res: {} }); // waits
        await until(() => got.completed.length === 2, 'the spilled messages to complete');
        await wait(300);
        assert.equal(got.completed.length, 2, 'only the spilled ones completed');
        assert.equal(got.out.length, 0, 'nothing sent on: not stored yet');
        assert.equal(got.caught.length, 0, 'no error');
        const stats = (writer.stats as () => BatcherStats & { spilled: number })();
        assert.equal(stats.spilled, 2);
        assert.equal(stats.queued + stats.inFlight, 3, 'the first two and the HTTP request wait in memory');
        const shown = () => lastStatus('writer') as { fill?: string; text?: string } | undefined;
        await until(() => shown()?.text === 'database down · 3 waiting · 2 spilled to disk', 'the status to show the spill');
        assert.equal(shown()?.fill, 'yellow');
        assert.ok(fs.existsSync(spillPath));
      } finally {
        await helper.unload();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('answers 503 when no database is configured', async () => {
      const f = flow('').map((n) => (n.id === 'cs' ? { ...n, database: '', operation: 'latest-readings' } : n));
      await helper.load(NODES, f.filter((n) => n.id !== 'db'));
      const got = collect('out', 'caught');
      helper.getNode('cs').receive({ req: req('/api/sensor-readings/latest/'), res: {} });
      await until(() => got.caught.length === 1, 'the error');
      assert.equal(got.out[0].statusCode, 503);
      assert.match(got.caught[0].error.message, /no database configured/);
    });
  });
});

/** A TCP proxy in front of PostgreSQL that a test can cut (every connection) and restore, on the same port. */
class TcpProxy {
  port = 0;
  private server: net.Server | null = null;
  private sockets = new Set<net.Socket>();
  constructor(private readonly target: URL) {}

  start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(Number(this.target.port) || 5432, this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise((resolve) =>
      server.listen(this.port, '127.0.0.1', () => {
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      }),
    );
  }

  stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}
