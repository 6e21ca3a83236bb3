import assert from 'assert/strict';
import fs from 'fs';
import path from 'path';
import Redis from 'ioredis';
import helper from 'node-red-node-test-helper';
import { hooks } from '@node-red/util';
import hotWindowNode = require('../../nodes/hot-window/hot-window');
import hotStoreNode = require('../../nodes/hypervolt-hot-store/hypervolt-hot-store');
import databaseNode = require('../../nodes/hypervolt-database/hypervolt-database');
import os from 'os';
import { deleteRedisKeys, REDIS_PREFIX, REDIS_URL, requireService } from '../support/services';

helper.init(require.resolve('node-red'));

// The helper's RED._ returns the key; use the real catalogs so status texts are checked as shown.
function catalog(type: string): Record<string, unknown> {
  const file = path.join(__dirname, `../../nodes/${type}/locales/en-US/${type}.json`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}
const catalogs = { ...catalog('hot-window'), ...catalog('hypervolt-hot-store') };
function translate(key: string, subs?: Record<string, unknown>): string {
  const text = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], catalogs);
  if (typeof text !== 'string') return key;
  return text.replace(/__(\w+)__/g, (_m, name: string) => String(subs?.[name]));
}
let httpNodeApp: unknown; // where `http in` nodes register their routes
const withCatalog = (mod: (RED: any) => void) => (RED: any) => {
  RED._ = translate;
  httpNodeApp = RED.httpNode;
  return mod(RED);
};
const nodes = [withCatalog(hotStoreNode), withCatalog(hotWindowNode)];

type Msg = Record<string, any>;
const OPS = ['push', 'read', 'context', 'set-context', 'health'] as const;
const T0 = Date.parse('2026-01-26T08:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const reading = (s: number, value: number, sensor_id = 'ldr_1') => ({
  sensor_type: 'ldr', sensor_id, value, unit: 'lux', location: 'living_room', timestamp: at(s),
});
const wait = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What an `http in` node attaches, as far as apiRequestFromMsg reads it. */
function fakeReq(query: Record<string, unknown>) {
  const qs = new URLSearchParams(query as Record<string, string>).toString();
  return {
    method: 'GET',
    query,
    params: {},
    get: () => 'localhost:1880',
    protocol: 'http',
    originalUrl: `/api/sensor-readings/buffer/?${qs}`,
  };
}

function flow(store: Record<string, unknown>) {
  const f: Record<string, unknown>[] = [
    { id: 'f1', type: 'tab', label: 'hot-window test' },
    { id: 'store', type: 'hypervolt-hot-store', url: '', prefix: '', size: '', ttl: '', ...store },
    { id: 'on-complete', z: 'f1', type: 'complete', scope: OPS.map((op) => `hw-${op}`), uncaught: false, wires: [['completed']] },
    { id: 'completed', z: 'f1', type: 'helper' },
    { id: 'on-catch', z: 'f1', type: 'catch', scope: OPS.map((op) => `hw-${op}`), uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
  for (const op of OPS) {
    f.push({ id: `hw-${op}`, z: 'f1', type: 'hot-window', store: 'store', operation: op, wires: [[`out-${op}`]] });
    f.push({ id: `out-${op}`, z: 'f1', type: 'helper' });
  }
  return f;
}

interface Collected {
  out: Record<(typeof OPS)[number], Msg[]>;
  completed: Msg[];
  caught: Msg[];
}

async function load(store: Record<string, unknown>): Promise<Collected> {
  await helper.load(nodes, flow(store));
  const c: Collected = {
    out: { push: [], read: [], context: [], 'set-context': [], health: [] },
    completed: [],
    caught: [],
  };
  for (const op of OPS) helper.getNode(`out-${op}`).on('input', (m: Msg) => c.out[op].push(m));
  helper.getNode('completed').on('input', (m: Msg) => c.completed.push(m));
  helper.getNode('caught').on('input', (m: Msg) => c.caught.push(m));
  return c;
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await wait(5);
  }
}

/** Sends a msg into a hot-window node and waits until it is done (Complete) or failed (Catch). */
async function run(c: Collected, op: (typeof OPS)[number], msg: Msg): Promise<Msg> {
  const before = c.completed.length + c.caught.length;
  helper.getNode(`hw-${op}`).receive(msg);
  await until(() => c.completed.length + c.caught.length > before, `${op} to finish`);
  return msg;
}

async function deleteKeys(pattern: string): Promise<void> {
  const client = new Redis(REDIS_URL);
  try {
    await deleteRedisKeys(client, pattern);
  } finally {
    await client.quit();
  }
}

const backends: Array<{ name: string; store: () => Record<string, unknown>; redis: boolean }> = [
  { name: 'in process (empty url)', store: () => ({ url: '' }), redis: false },
  { name: 'Redis', store: () => ({ url: REDIS_URL, prefix: `${REDIS_PREFIX}hw:` }), redis: true },
];

describe('hot-window node', function () {
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
  });

  for (const backend of backends) {
    describe(backend.name, function () {
      before(async function () {
        if (backend.redis) await requireService(this, 'redis');
      });
      after(async function () {
        if (backend.redis) await deleteKeys(`${REDIS_PREFIX}hw:*`);
      });
      afterEach(async () => {
        if (backend.redis) await deleteKeys(`${REDIS_PREFIX}hw:*`);
      });

      it('uses the store the url asks for', async () => {
        await load(backend.store());
        const store = helper.getNode('store');
        assert.equal(store.kind, backend.redis ? 'redis' : 'memory');
        await until(() => store.state === 'connected', 'connected');
        assert.equal(store.getStore().size, 60);
        assert.equal(store.getStore().ttlSeconds, 3600);
      });

      it('pushes readings, passes the msg on, and reads the window over HTTP', async () => {
        const c = await load(backend.store());
        await until(() => helper.getNode('store').state === 'connected', 'connected');
        const one = await run(c, 'push', { payload: reading(0, 700), topic: 'HyperVolt/sensors/living_room/ldr' });
        await run(c, 'push', { payload: [reading(2, 900), reading(1, 800), reading(1, 800)] });
        assert.equal(c.out.push.length, 2);
        assert.equal(c.out.push[0], one); // the same msg, unchanged
        assert.deepEqual(c.out.push[0].payload, reading(0, 700));

        const req = fakeReq({ sensor_type: 'ldr', sensor_id: 'ldr_1' });
        await run(c, 'read', { req, res: {}, payload: {} });
        const res = c.out.read[0];
        assert.equal(res.statusCode, 200);
        assert.match(res.headers['content-type'], /^application\/json/);
        assert.deepEqual(res.payload, {
          readings: [
            { value: 700, timestamp: at(0) }, { value: 800, timestamp: at(1) }, { value: 900, timestamp: at(2) },
          ],
          stats: {
            count: 3, is_full: false, latest_value: 900, latest_timestamp: at(2),
            min_value: 700, max_value: 900, avg_value: 800,
          },
        });
        assert.equal(res.req, req); // kept for the http response node
        assert.equal(c.completed.length, 3);
        assert.equal(c.caught.length, 0);
      });

      it('reads from msg.payload when there is no msg.req, and answers an empty window', async () => {
        const c = await load(backend.store());
        await until(() => helper.getNode('store').state === 'connected', 'connected');
        await run(c, 'read', { payload: { sensor_type: 'ldr', sensor_id: 'nobody' } });
        assert.equal(c.out.read[0].statusCode, 200);
        assert.deepEqual(c.out.read[0].payload, { readings: [], stats: { count: 0, is_full: false } });
      });

      it('answers 400 for missing, blank, repeated or odd parameters', async () => {
        const c = await load(backend.store());
        const required = { error: 'sensor_type and sensor_id are required' };
        const cases: Array<[Record<string, unknown>, boolean]> = [
          [{}, true],
          [{ sensor_type: 'ldr' }, true],
          [{ sensor_type: 'ldr', sensor_id: '  ' }, true],
          [{ sensor_type: ['ldr', 'power'], sensor_id: 'x' }, true],
          [{ sensor_type: 'ldr', sensor_id: 'x'.repeat(65) }, false],
          [{ sensor_type: 'ldr', sensor_id: 'a*' }, false],
          [{ sensor_type: 'ldr', sensor_id: 'a b' }, false],
          [{ sensor_type: 'l:dr', sensor_id: 'x' }, false],
        ];
        for (const [query] of cases) await run(c, 'read', { req: fakeReq(query), res: {} });
        assert.equal(c.out.read.length, cases.length);
        cases.forEach(([, isMissing], i) => {
          const m = c.out.read[i];
          assert.equal(m.statusCode, 400, JSON.stringify(cases[i][0]));
          assert.deepEqual(Object.keys(m.payload), ['error']);
          if (isMissing) assert.deepEqual(m.payload, required);
          else assert.match(m.payload.error, /^sensor_type and sensor_id must be 1 to 64/);
        });
        assert.equal(c.completed.length, cases.length); // a 400 is an answer, not a failure
        assert.equal(c.caught.length, 0);
        // 64 characters is still fine
        await run(c, 'read', { req: fakeReq({ sensor_type: 'ldr', sensor_id: 'x'.repeat(64) }), res: {} });
        assert.equal(c.out.read.at(-1)!.statusCode, 200);
      });

      it('stores context rows and builds the context of all active sensors', async () => {
        const c = await load(backend.store());
        await until(() => helper.getNode('store').state === 'connected', 'connected');
        await run(c, 'push', { payload: [reading(0, 10, 'a'), reading(1, 30, 'a'), reading(0, 5, 'b')] });
        const carbonTs = new Date(Date.now() - 120_000).toISOString();
        const carbon = { data_type: 'carbon_intensity', value: 512.5, unit: 'gCO2eq/kWh', zone: 'IN-KA', metadata: {}, timestamp: carbonTs };
        const setMsg = await run(c, 'set-context', { payload: carbon });
        assert.equal(c.out['set-context'][0], setMsg);

        await run(c, 'context', { payload: null });
        const payload = c.out.context[0].payload;
        assert.deepEqual(Object.keys(payload).sort(), ['carbon_intensity', 'sensors', 'weather']);
        assert.deepEqual(payload.sensors, {
          'ldr:a': { count: 2, is_full: false, latest_value: 30, latest_timestamp: at(1), min_value: 10, max_value: 30, avg_value: 20 },
          'ldr:b': { count: 1, is_full: false, latest_value: 5, latest_timestamp: at(0), min_value: 5, max_value: 5, avg_value: 5 },
        });
        const { age_seconds, ...row } = payload.carbon_intensity;
        assert.deepEqual(row, carbon);
        assert.ok(age_seconds >= 119 && age_seconds <= 125, `age ${age_seconds}`);
        assert.equal(payload.weather, null);
        assert.equal(c.out.context[0].statusCode, undefined); // not an HTTP answer without msg.req

        // an array of rows; the newer row of a type replaces the older
        const weather = { data_type: 'weather', value: 24, unit: 'celsius', timestamp: carbonTs };
        await run(c, 'set-context', { payload: [weather, { ...carbon, value: 400 }] });
        await run(c, 'context', { req: fakeReq({}), res: {} });
        const http = c.out.context[1];
        assert.equal(http.statusCode, 200);
        assert.equal(http.payload.carbon_intensity.value, 400);
        assert.equal(http.payload.weather.value, 24);
        assert.equal(c.caught.length, 0);
      });

      it('fails a set-context msg without a usable data_type', async () => {
        const c = await load(backend.store());
        await run(c, 'set-context', { payload: { value: 1 } });
        await run(c, 'set-context', { payload: 'weather' });
        assert.equal(c.out['set-context'].length, 0);
        assert.equal(c.caught.length, 2);
        assert.match(c.caught[0].error.message, /data_type/);
      });

      it('reports health, keeping what other checks put in msg.health', async () => {
        const c = await load(backend.store());
        await until(() => helper.getNode('store').state === 'connected', 'connected');
        await run(c, 'health', { payload: 'x', health: { cold_store: 'up' } });
        assert.deepEqual(c.out.health[0].health, { cold_store: 'up', hot_store: 'up' });
        assert.equal(c.out.health[0].payload, 'x');
      });

      it('fails a malformed push through done(err), sends nothing, stores nothing', async () => {
        const c = await load(backend.store());
        await until(() => helper.getNode('store').state === 'connected', 'connected');
        await run(c, 'push', { payload: [reading(0, 1), { ...reading(1, 2), value: 'high' }] });
        await run(c, 'push', { payload: 'not a reading' });
        await run(c, 'push', { payload: { ...reading(2, 3), sensor_id: '../../etc' } });
        assert.equal(c.out.push.length, 0);
        assert.equal(c.completed.length, 0);
        assert.equal(c.caught.length, 3);
        assert.match(c.caught[0].error.message, /reading 1: value/);
        assert.equal(c.caught[0].error.source.id, 'hw-push');
        await run(c, 'read', { payload: { sensor_type: 'ldr', sensor_id: 'ldr_1' } });
        assert.equal(c.out.read[0].payload.stats.count, 0);
      });

      it('handles many concurrent pushes, each done once, and shows the count', async () => {
        const c = await load(backend.store());
        await until(() => helper.getNode('store').state === 'connected', 'connected');
        const statuses: Msg[] = [];
        const node = helper.getNode('hw-push');
        const origStatus = node.status.bind(node);
        node.status = (s: Msg) => {
          statuses.push(s);
          origStatus(s);
        };
        for (let i = 0; i < 300; i++) node.receive({ payload: reading(i, i, `s${i % 3}`) });
        await until(() => c.completed.length === 300, '300 done');
        await wait(600); // the throttled status shows the final count
        assert.equal(c.out.push.length, 300);
        assert.equal(c.caught.length, 0);
        assert.deepEqual(statuses.at(-1), { fill: 'green', shape: 'dot', text: 'connected · 300 readings' });
        assert.ok(statuses.length < 10, `${statuses.length} status updates`);
        await run(c, 'read', { payload: { sensor_type: 'ldr', sensor_id: 's1' } });
        assert.equal(c.out.read[0].payload.stats.count, 60);
        assert.equal(c.out.read[0].payload.stats.latest_value, 298);
      });
    });
  }

  for (const backend of backends) {
    describe(`${backend.name}: broadcast, on-broadcast, leader-gate`, function () {
      before(async function () {
        if (backend.redis) await requireService(this, 'redis');
      });
      afterEach(async () => {
        if (backend.redis) await deleteKeys(`${REDIS_PREFIX}hw:*`);
      });

      /** Two "instances" (two store config nodes on one prefix), each with the fan-out and a gate. */
      function fanOutFlow() {
        const f: Record<string, unknown>[] = [{ id: 'f1', type: 'tab', label: 'fan-out test' }];
        for (const i of ['a', 'b']) {
          f.push(
            { id: `store-${i}`, type: 'hypervolt-hot-store', ...backend.store() },
            { id: `bc-${i}`, z: 'f1', type: 'hot-window', store: `store-${i}`, operation: 'broadcast', wires: [[]] },
            { id: `on-bc-${i}`, z: 'f1', type: 'hot-window', store: `store-${i}`, operation: 'on-broadcast', wires: [[`ws-${i}`]] },
            { id: `ws-${i}`, z: 'f1', type: 'helper' },
            { id: `gate-${i}`, z: 'f1', type: 'hot-window', store: `store-${i}`, operation: 'leader-gate', lock: 'job', ttl: '2', wires: [[`passed-${i}`]] },
            { id: `passed-${i}`, z: 'f1', type: 'helper' },
          );
        }
        const scope = ['bc-a', 'bc-b', 'on-bc-a', 'gate-a', 'gate-b'];
        f.push(
          { id: 'on-complete', z: 'f1', type: 'complete', scope, uncaught: false, wires: [['completed']] },
          { id: 'completed', z: 'f1', type: 'helper' },
          { id: 'on-catch', z: 'f1', type: 'catch', scope, uncaught: false, wires: [['caught']] },
          { id: 'caught', z: 'f1', type: 'helper' },
        );
        return f;
      }

      async function loadFanOut() {
        await helper.load(nodes, fanOutFlow());
        const got: Record<string, Msg[]> = { 'ws-a': [], 'ws-b': [], 'passed-a': [], 'passed-b': [], completed: [], caught: [] };
        for (const id of Object.keys(got)) helper.getNode(id).on('input', (m: Msg) => got[id].push(m));
        for (const i of ['a', 'b']) await until(() => helper.getNode(`store-${i}`).state === 'connected', 'connected');
        return got;
      }

      it('a message broadcast on either instance reaches each instance\'s on-broadcast once', async function () {
        const got = await loadFanOut();
        await wait(150); // the subscriptions are made when the nodes start
        const updates = Array.from({ length: 50 }, (_, i) => ({ type: 'sensor_update', data: reading(i, i) }));
        updates.forEach((u, i) => helper.getNode(i % 2 ? 'bc-b' : 'bc-a').receive({ payload: u, topic: 'x' }));
        // Redis: both instances share the channel; in process each store is its own channel.
        const perInstance = backend.redis ? 50 : 25;
        await until(() => got['ws-a'].length >= perInstance && got['ws-b'].length >= perInstance, 'broadcasts');
        await until(() => got.completed.filter((m) => m.topic === 'x').length === 50, 'each broadcast done');
        await wait(100);
        const sorted = (ms: Msg[]) => ms.map((m) => m.payload.data.value).sort((x: number, y: number) => x - y);
        if (backend.redis) {
          assert.deepEqual(sorted(got['ws-a']), updates.map((u) => u.data.value));
          assert.deepEqual(sorted(got['ws-b']), updates.map((u) => u.data.value));
        } else {
          assert.deepEqual(sorted(got['ws-a']), updates.filter((_u, i) => i % 2 === 0).map((u) => u.data.value));
          assert.deepEqual(sorted(got['ws-b']), updates.filter((_u, i) => i % 2 === 1).map((u) => u.data.value));
        }
        assert.deepEqual(got['ws-a'][0].payload, updates[0]);
        assert.deepEqual(Object.keys(got['ws-a'][0]).filter((k) => k !== '_msgid'), ['payload']);
        assert.equal(got.caught.length, 0);
      });

      it('a broadcast is done only after its messages reached the node after this instance\'s on-broadcast', async () => {
        const got = await loadFanOut();
        await wait(150);
        // Looked at the moment each broadcast calls done(): how many messages ws-a had by then. The
        // 20 are published in one tick (one batch), so each must see all 20: the spool entries of
        // readings wait for their WebSocket sends (bounded by maxPending), not only for the publish.
        const seenAtDone: number[] = [];
        hooks.add('onComplete.hvtest', (ev: { node?: { id?: string }; msg?: { topic?: string } }) => {
          if (ev.node?.id === 'bc-a' && ev.msg?.topic === 'y') seenAtDone.push(got['ws-a'].length);
        });
        try {
          const updates = Array.from({ length: 20 }, (_, i) => ({ type: 'sensor_update', data: reading(i, i) }));
          updates.forEach((u) => helper.getNode('bc-a').receive({ payload: u, topic: 'y' }));
          await until(() => seenAtDone.length === 20, 'each broadcast done');
          assert.deepEqual(seenAtDone, updates.map(() => 20));
        } finally {
          hooks.remove('onComplete.hvtest');
        }
      });

      it('fails a broadcast whose payload is no message object; on-broadcast ignores its input', async () => {
        const got = await loadFanOut();
        await wait(100);
        for (const payload of ['text', [1], { data: 1 }, { type: '' }, null]) helper.getNode('bc-a').receive({ payload });
        await until(() => got.caught.length === 5, 'five failures');
        assert.match(got.caught[0].error.message, /message object/);
        assert.match(got.caught[2].error.message, /type/);
        helper.getNode('on-bc-a').receive({ payload: { type: 'sensor_update' } });
        await until(() => got.completed.length === 1, 'on-broadcast done');
        await wait(100);
        assert.equal(got['ws-a'].length + got['ws-b'].length, 0);
      });

      it('leader-gate passes msgs on exactly one instance (in process: each its own leader)', async () => {
        const got = await loadFanOut();
        for (let i = 0; i < 3; i++) {
          helper.getNode('gate-a').receive({ payload: i });
          helper.getNode('gate-b').receive({ payload: i });
        }
        await until(() => got.completed.length === 6, 'gates done');
        const a = got['passed-a'].length;
        const b = got['passed-b'].length;
        if (backend.redis) assert.ok((a === 3 && b === 0) || (a === 0 && b === 3), `a ${a}, b ${b}`);
        else assert.deepEqual([a, b], [3, 3]);
      });
    });
  }

  for (const backend of backends) {
    describe(`${backend.name}: push (new only) → broadcast (sensor_update)`, function () {
      before(async function () {
        if (backend.redis) await requireService(this, 'redis');
      });
      afterEach(async () => {
        if (backend.redis) await deleteKeys(`${REDIS_PREFIX}hw:*`);
      });

      /** Two instances (two store config nodes on one prefix), each validate → push → broadcast. */
      function pipelineFlow() {
        const f: Record<string, unknown>[] = [{ id: 'f1', type: 'tab', label: 'exactly-once test' }];
        for (const i of ['a', 'b']) {
          f.push(
            { id: `store-${i}`, type: 'hypervolt-hot-store', ...backend.store() },
            { id: `push-${i}`, z: 'f1', type: 'hot-window', store: `store-${i}`, operation: 'push', passOn: 'new', wires: [[`bc-${i}`, `passed-${i}`]] },
            { id: `passed-${i}`, z: 'f1', type: 'helper' },
            { id: `bc-${i}`, z: 'f1', type: 'hot-window', store: `store-${i}`, operation: 'broadcast', format: 'sensor_update', wires: [[]] },
            { id: `on-bc-${i}`, z: 'f1', type: 'hot-window', store: `store-${i}`, operation: 'on-broadcast', wires: [[`ws-${i}`]] },
            { id: `ws-${i}`, z: 'f1', type: 'helper' },
          );
        }
        const scope = ['push-a', 'push-b', 'bc-a', 'bc-b'];
        f.push(
          { id: 'on-complete', z: 'f1', type: 'complete', scope, uncaught: false, wires: [['completed']] },
          { id: 'completed', z: 'f1', type: 'helper' },
          { id: 'on-catch', z: 'f1', type: 'catch', scope, uncaught: false, wires: [['caught']] },
          { id: 'caught', z: 'f1', type: 'helper' },
        );
        return f;
      }

      async function loadPipeline() {
        await helper.load(nodes, pipelineFlow());
        const got: Record<string, Msg[]> = { 'ws-a': [], 'ws-b': [], 'passed-a': [], 'passed-b': [], completed: [], caught: [] };
        for (const id of Object.keys(got)) helper.getNode(id).on('input', (m: Msg) => got[id].push(m));
        for (const i of ['a', 'b']) await until(() => helper.getNode(`store-${i}`).state === 'connected', 'connected');
        await wait(150); // the subscriptions are made when the nodes start
        return got;
      }

      it('passes on and broadcasts each reading once, in the sensor_update shape; a redelivery is done but goes no further', async () => {
        const got = await loadPipeline();
        const r0 = { ...reading(0, 750), extra: 'not broadcast' };
        helper.getNode('push-a').receive({ payload: r0, topic: 't' });
        helper.getNode('push-a').receive({ payload: reading(0, 750), topic: 't' }); // a redelivery
        await until(() => got.completed.filter((m) => m.topic === 't').length >= 2, 'both pushes done');
        // An array: only its new readings go on (a corrected value is new).
        helper.getNode('push-a').receive({ payload: [reading(0, 750), reading(1, 751), reading(0, 760)], topic: 'arr' });
        helper.getNode('push-a').receive({ payload: [reading(1, 751)], topic: 'dup-arr' });
        await until(() => got['ws-a'].length >= 3, 'three broadcasts');
        await until(() => got.completed.filter((m) => m.topic === 'dup-arr').length === 1, 'the repeated array done');
        await wait(100);
        assert.equal(got.caught.length, 0);
        assert.deepEqual(got['passed-a'].map((m) => m.topic), ['t', 'arr']);
        assert.deepEqual(got['passed-a'][1].payload.map((r: Msg) => r.value), [751, 760]);
        assert.deepEqual(got['ws-a'][0].payload, {
          type: 'sensor_update',
          data: { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 750, unit: 'lux', location: 'living_room', timestamp: at(0) },
        });
        assert.deepEqual(got['ws-a'].map((m) => m.payload.data.value), [750, 751, 760]);
        if (!backend.redis) assert.equal(got['ws-b'].length, 0, 'in process each instance is its own channel');
      });

      it(backend.redis
        ? 'the same reading pushed on two instances is broadcast once to each instance'
        : 'each in-process instance broadcasts what it pushes', async () => {
        const got = await loadPipeline();
        const rs = Array.from({ length: 20 }, (_, i) => reading(i, i, 'ldr_x'));
        for (const r of rs) {
          helper.getNode('push-a').receive({ payload: { ...r } });
          helper.getNode('push-b').receive({ payload: { ...r } });
        }
        await until(() => got['ws-a'].length >= 20 && got['ws-b'].length >= 20, 'broadcasts');
        await wait(200);
        const values = (ms: Msg[]) => ms.map((m) => m.payload.data.value).sort((x: number, y: number) => x - y);
        assert.deepEqual(values(got['ws-a']), rs.map((r) => r.value));
        assert.deepEqual(values(got['ws-b']), rs.map((r) => r.value));
        if (backend.redis) assert.equal(got['passed-a'].length + got['passed-b'].length, 20, 'one instance passes each on');
        else assert.equal(got['passed-a'].length + got['passed-b'].length, 40);
      });

      it('fails a sensor_update broadcast whose payload is not a reading', async () => {
        const got = await loadPipeline();
        helper.getNode('bc-a').receive({ payload: { type: 'sensor_update', data: {} } });
        await until(() => got.caught.length === 1, 'the failure');
        assert.match(got.caught[0].error.message, /reading 0/);
      });
    });
  }

  describe('leader-gate takeover on Redis', function () {
    before(async function () {
      await requireService(this, 'redis');
    });
    after(async () => deleteKeys(`${REDIS_PREFIX}hwlead:*`));

    it('a standby takes over once the leader stops renewing (removed without a clean store close)', async function () {
      this.timeout(15_000);
      const store = { url: REDIS_URL, prefix: `${REDIS_PREFIX}hwlead:` };
      await helper.load(nodes, [
        { id: 'f1', type: 'tab' },
        { id: 'store-a', type: 'hypervolt-hot-store', ...store },
        { id: 'store-b', type: 'hypervolt-hot-store', ...store },
        { id: 'gate-a', z: 'f1', type: 'hot-window', store: 'store-a', operation: 'leader-gate', lock: 'job', ttl: '1', wires: [['out-a']] },
        { id: 'out-a', z: 'f1', type: 'helper' },
        { id: 'gate-b', z: 'f1', type: 'hot-window', store: 'store-b', operation: 'leader-gate', lock: 'job', ttl: '1', wires: [['out-b']] },
        { id: 'out-b', z: 'f1', type: 'helper' },
      ]);
      const gateA = helper.getNode('gate-a');
      const gateB = helper.getNode('gate-b');
      const statusB: string[] = [];
      (gateB as unknown as { on(e: string, f: (c: { args: [{ text: string }] }) => void): void }).on('call:status', (call) =>
        statusB.push(call.args[0].text),
      );
      const passed = { a: 0, b: 0 };
      helper.getNode('out-a').on('input', () => passed.a++);
      helper.getNode('out-b').on('input', () => passed.b++);
      const redis = new Redis(REDIS_URL);
      try {
        const key = `${REDIS_PREFIX}hwlead:leader:job`;
        await until(() => passed.a + passed.b === 0, 'start');
        const end = Date.now() + 3000;
        while (!(await redis.get(key)) && Date.now() < end) await wait(20);
        await wait(1500); // longer than the TTL: the leader keeps its lock by renewing
        gateA.receive({});
        gateB.receive({});
        await until(() => passed.a + passed.b === 1, 'one passed');
        const leaderIsA = passed.a === 1;
        // The leader's node stops renewing (as if its instance froze or died); the lock expires.
        const [leader, standby] = leaderIsA ? [gateA, gateB] : [gateB, gateA];
        (leader as unknown as { close: () => Promise<void> }).close();
        const t0 = Date.now();
        const before = leaderIsA ? passed.b : passed.a;
        while (Date.now() - t0 < 4000) {
          standby.receive({});
          await wait(100);
          if ((leaderIsA ? passed.b : passed.a) > before) break;
        }
        assert.ok((leaderIsA ? passed.b : passed.a) > before, 'the standby leads after the TTL');
        assert.ok(Date.now() - t0 < 2500, `took over in ${Date.now() - t0} ms`);
        assert.ok(statusB.some((t) => t === 'leader (job)'), statusB.join());
        if (leaderIsA) assert.ok(statusB.some((t) => t === 'standby (job)'), statusB.join());
      } finally {
        await redis.quit();
      }
    });
  });

  describe('configuration', function () {
    afterEach(() => {
      delete process.env.HV_TEST_REDIS_URL;
      delete process.env.HV_TEST_SIZE;
    });

    it('takes ${ENV_VAR} values; unset or invalid ones fall back to the defaults', async function () {
      await requireService(this, 'redis');
      process.env.HV_TEST_REDIS_URL = REDIS_URL;
      process.env.HV_TEST_SIZE = '5';
      await load({ url: '${HV_TEST_REDIS_URL}', prefix: `${REDIS_PREFIX}hwenv:`, size: '${HV_TEST_SIZE}', ttl: '${HV_TEST_UNSET}' });
      const store = helper.getNode('store');
      assert.equal(store.kind, 'redis');
      assert.equal(store.getStore().size, 5);
      assert.equal(store.getStore().ttlSeconds, 3600);
      await helper.unload();
      await load({ url: '${HV_TEST_UNSET_URL}', size: 'lots', ttl: '-1' });
      const mem = helper.getNode('store');
      assert.equal(mem.kind, 'memory');
      assert.equal(mem.getStore().size, 60);
      assert.equal(mem.getStore().ttlSeconds, 3600);
    });

    it('fails every msg clearly when no store is configured', async () => {
      await helper.load(nodes, [
        { id: 'f1', type: 'tab' },
        { id: 'hw-push', z: 'f1', type: 'hot-window', store: '', operation: 'push', wires: [['out']] },
        { id: 'out', z: 'f1', type: 'helper' },
        { id: 'on-catch', z: 'f1', type: 'catch', scope: ['hw-push'], uncaught: false, wires: [['caught']] },
        { id: 'caught', z: 'f1', type: 'helper' },
      ]);
      const caught: Msg[] = [];
      helper.getNode('caught').on('input', (m: Msg) => caught.push(m));
      helper.getNode('hw-push').receive({ payload: reading(0, 1) });
      await until(() => caught.length === 1, 'catch');
      assert.match(caught[0].error.message, /no hot store configured/);
    });
  });

  describe('the example flow', function () {
    it('pushes, then answers the buffer and context endpoints over real HTTP', async () => {
      const core = (p: string) => require(require.resolve(`@node-red/nodes/core/${p}`, { paths: [require.resolve('node-red')] }));
      const example = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../examples/hot-window.json'), 'utf8')) as Msg[];
      // The in-process store whatever REDIS_URL says: the example's prefix is a real user's.
      const testFlow: Msg[] = example.map((n) => (n.type === 'hypervolt-hot-store' ? { ...n, url: '' } : { ...n, z: 'f1' }));
      testFlow.push({ id: 'f1', type: 'tab' });
      await helper.load(
        [...nodes, core('common/20-inject.js'), core('common/21-debug.js'), core('common/90-comment.js'), core('network/21-httpin.js')],
        testFlow,
      );
      const hot = example.filter((n) => n.type === 'hot-window');
      const pushId = hot.find((n) => n.operation === 'push')!.id;
      const setId = hot.find((n) => n.operation === 'set-context')!.id;
      const injectOf = (target: string) => example.find((n) => n.type === 'inject' && n.wires[0].includes(target))!.id;
      // helper.request() targets the admin app; the routes of `http in` are on RED.httpNode.
      const supertest = require(require.resolve('supertest', { paths: [require.resolve('node-red-node-test-helper')] }));
      const request = () => supertest(httpNodeApp);
      const stored: Msg[] = [];
      helper.getNode(example.find((n) => n.name === 'stored')!.id).on('input', (m: Msg) => stored.push(m));
      helper.getNode(injectOf(pushId)).receive({});
      helper.getNode(injectOf(setId)).receive({});
      await wait(50);
      assert.equal(stored.length, 1);

      const buffer = await request().get('/api/sensor-readings/buffer/?sensor_type=ldr&sensor_id=ldr_1').expect(200);
      assert.deepEqual(buffer.body.readings, [
        { value: 750, timestamp: '2026-01-26T08:00:00.000Z' },
        { value: 720, timestamp: '2026-01-26T08:00:10.000Z' },
      ]);
      assert.equal(buffer.body.stats.avg_value, 735);
      assert.match(buffer.headers['content-type'], /application\/json/);
      const bad = await request().get('/api/sensor-readings/buffer?sensor_type=ldr').expect(400);
      assert.deepEqual(bad.body, { error: 'sensor_type and sensor_id are required' });
      const context = await request().get('/api/context').expect(200);
      assert.deepEqual(Object.keys(context.body.sensors), ['ldr:ldr_1']);
      assert.equal(context.body.carbon_intensity.value, 512.5);
      assert.equal(typeof context.body.carbon_intensity.age_seconds, 'number');
    });
  });

  describe('Redis down', function () {
    it('fails pushes fast, answers reads with 503, reports health down, shows disconnected', async function () {
      this.timeout(15_000);
      const c = await load({ url: 'redis://127.0.0.1:1/0' });
      const node = helper.getNode('hw-push');
      const statuses: Msg[] = [];
      const origStatus = node.status.bind(node);
      node.status = (s: Msg) => {
        statuses.push(s);
        origStatus(s);
      };
      await until(() => helper.getNode('store').state === 'disconnected', 'disconnected');

      const t0 = Date.now();
      await run(c, 'push', { payload: reading(0, 1) });
      assert.ok(Date.now() - t0 < 1000, 'a push fails at once');
      assert.equal(c.out.push.length, 0);
      assert.equal(c.caught.length, 1);

      await run(c, 'read', { req: fakeReq({ sensor_type: 'ldr', sensor_id: 'ldr_1' }), res: {} });
      assert.equal(c.out.read[0].statusCode, 503);
      assert.deepEqual(c.out.read[0].payload, { detail: 'hot store unavailable' });
      assert.equal(c.caught.length, 2); // answered, and failed

      await run(c, 'context', { req: fakeReq({}), res: {} });
      assert.equal(c.out.context[0].statusCode, 503);
      assert.equal(c.caught.length, 3);

      await run(c, 'health', { payload: 1 });
      assert.deepEqual(c.out.health[0].health, { hot_store: 'down' });
      assert.equal(c.caught.length, 3); // a down store is an answer for health

      await wait(600);
      const last = statuses.at(-1)!;
      assert.equal(last.fill, 'red');
      assert.equal(last.shape, 'ring');
      assert.equal(c.completed.length, 1); // only health completed
    });
  });

  describe('push with a database: rebuild from the cold store (SQLite, in process)', function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-hw-rebuild-'));
    const dbFile = path.join(dir, 'cold.db');
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    async function loadRebuild(): Promise<{ completed: Msg[]; caught: Msg[]; queries: () => number }> {
      const scope = ['hw-push', 'hw-plain'];
      await helper.load([...nodes, withCatalog(databaseNode)], [
        { id: 'f1', type: 'tab' },
        { id: 'store', type: 'hypervolt-hot-store', url: '', prefix: '', size: '5', ttl: '' },
        { id: 'db', type: 'hypervolt-database', url: `sqlite:${dbFile}` },
        { id: 'hw-push', z: 'f1', type: 'hot-window', store: 'store', database: 'db', operation: 'push', wires: [[]] },
        { id: 'hw-plain', z: 'f1', type: 'hot-window', store: 'store', operation: 'push', wires: [[]] },
        { id: 'on-complete', z: 'f1', type: 'complete', scope, uncaught: false, wires: [['completed']] },
        { id: 'completed', z: 'f1', type: 'helper' },
        { id: 'on-catch', z: 'f1', type: 'catch', scope, uncaught: false, wires: [['caught']] },
        { id: 'caught', z: 'f1', type: 'helper' },
      ]);
      const c = { completed: [] as Msg[], caught: [] as Msg[] };
      helper.getNode('completed').on('input', (m: Msg) => c.completed.push(m));
      helper.getNode('caught').on('input', (m: Msg) => c.caught.push(m));
      // Count the rebuild queries: the node asks the config node for the database each time.
      const dbNode = helper.getNode('db');
      const getDatabase = dbNode.getDatabase.bind(dbNode);
      let queries = 0;
      dbNode.getDatabase = (...args: unknown[]) => {
        queries++;
        return getDatabase(...args);
      };
      return { ...c, queries: () => queries };
    }
    const windowOf = async (sensor_id: string) =>
      (await helper.getNode('store').getStore().read({ sensor_type: 'ldr', sensor_id })).readings.map(
        (r: { timestamp: string }) => r.timestamp,
      );
    async function eventually(cond: () => Promise<boolean>, what: string): Promise<void> {
      const end = Date.now() + 3000;
      while (!(await cond())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await wait(10);
      }
    }

    it('after a restart of the flow the first push of a sensor refills its window from the database, once', async () => {
      // The readings the cold store kept before the restart.
      let c = await loadRebuild();
      const db = await helper.getNode('db').getDatabase();
      await db.readings.insertMany([...Array.from({ length: 8 }, (_, s) => reading(s, s)), ...Array.from({ length: 8 }, (_, s) => reading(s, s, 'ldr_2'))]);
      await helper.unload(); // the app restarts: the in-process windows are gone

      c = await loadRebuild();
      assert.deepEqual(await windowOf('ldr_1'), []);
      helper.getNode('hw-push').receive({ payload: reading(8, 8) });
      await until(() => c.completed.length === 1, 'push done');
      await eventually(async () => (await windowOf('ldr_1')).length === 5, 'the rebuilt window');
      assert.deepEqual(await windowOf('ldr_1'), [4, 5, 6, 7, 8].map(at));
      assert.equal(c.queries(), 1);

      helper.getNode('hw-push').receive({ payload: [reading(9, 9), reading(10, 10)] });
      await until(() => c.completed.length === 2, 'second push done');
      await wait(50);
      assert.equal(c.queries(), 1, 'no query for a sensor already rebuilt');
      assert.deepEqual(await windowOf('ldr_1'), [6, 7, 8, 9, 10].map(at));

      // Without a database a push only stores what it gets.
      helper.getNode('hw-plain').receive({ payload: reading(8, 8, 'ldr_2') });
      await until(() => c.completed.length === 3, 'plain push done');
      await wait(50);
      assert.deepEqual(await windowOf('ldr_2'), [at(8)]);
      assert.equal(c.caught.length, 0);
    });
  });
});
