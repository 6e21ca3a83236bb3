/** The hot-window operations on a real (in-process) store. */
import assert from 'assert/strict';
import { MemoryWindowStore } from '../../nodes/hot-window/memory-window-store';
import {
  broadcastMessageFromPayload, buildContext, checkHealth, contextRowsFromPayload, leaderGateSettings, parseOperation,
  pushPayload, readBuffer, sensorKeyFromMsg, withAge, withHealth,
} from '../../nodes/hot-window/hot-window-ops';
import { LeaderGate } from '../../nodes/hot-window/leadership';
import type { WindowStore } from '../../nodes/hot-window/window-store';

const reading = (sensor_id: string, s: number, value: number) => ({
  sensor_type: 'ldr', sensor_id, value, unit: 'lux', location: 'x',
  timestamp: new Date(Date.parse('2026-01-26T08:00:00Z') + s * 1000).toISOString(),
});

describe('hot-window operations', () => {
  let store: MemoryWindowStore;
  beforeEach(() => {
    store = new MemoryWindowStore();
  });
  afterEach(() => store.close());

  it('parseOperation defaults to push and refuses unknown ones', () => {
    assert.equal(parseOperation(undefined), 'push');
    assert.equal(parseOperation(''), 'push');
    assert.equal(parseOperation('set-context'), 'set-context');
    assert.throws(() => parseOperation('drop'), /unknown operation/);
  });

  it('pushPayload takes one reading or an array', async () => {
    assert.equal((await pushPayload(store, reading('a', 0, 1))).count, 1);
    const two = await pushPayload(store, [reading('a', 1, 2), reading('b', 0, 3)]);
    assert.equal(two.count, 2);
    assert.deepEqual(two.readings, [reading('a', 1, 2), reading('b', 0, 3)]);
    assert.deepEqual((await pushPayload(store, reading('a', 0, 1))).fresh, [], 'a redelivery is not fresh');
    assert.equal((await pushPayload(store, [])).count, 0);
    assert.equal((await store.read({ sensor_type: 'ldr', sensor_id: 'a' })).stats.count, 2);
    await assert.rejects(pushPayload(store, undefined), /not an object/);
    await assert.rejects(pushPayload(store, { ...reading('a', 2, 1), value: '5' }), /value/);
  });

  it('sensorKeyFromMsg prefers msg.req.query over msg.payload', () => {
    const req = { query: { sensor_type: 'ldr', sensor_id: 'q' } };
    assert.deepEqual(sensorKeyFromMsg({ req, payload: { sensor_type: 'ldr', sensor_id: 'p' } }), { sensor_type: 'ldr', sensor_id: 'q' });
    assert.deepEqual(sensorKeyFromMsg({ payload: { sensor_type: 'ldr', sensor_id: 'p' } }), { sensor_type: 'ldr', sensor_id: 'p' });
    // an HTTP request without the parameters does not fall back to the body
    const r = sensorKeyFromMsg({ req: { query: {} }, payload: { sensor_type: 'ldr', sensor_id: 'p' } });
    assert.deepEqual(r, { status: 400, body: { error: 'sensor_type and sensor_id are required' } });
    assert.deepEqual(sensorKeyFromMsg({ payload: 'ldr' }), { status: 400, body: { error: 'sensor_type and sensor_id are required' } });
    assert.deepEqual(sensorKeyFromMsg({ payload: { sensor_type: 1, sensor_id: 2 } }), { status: 400, body: { error: 'sensor_type and sensor_id are required' } });
    for (const id of ['a/b', 'a\nb', '__proto__ ', '*', 'é', 'x'.repeat(65)]) {
      const res = sensorKeyFromMsg({ payload: { sensor_type: 'ldr', sensor_id: id } }) as { status: number };
      assert.equal(res.status, 400, JSON.stringify(id));
    }
  });

  it('readBuffer answers 503 and reports the error when the store fails', async () => {
    const broken = { read: () => Promise.reject(new Error('down')) } as unknown as WindowStore;
    const { response, error } = await readBuffer(broken, { payload: { sensor_type: 'ldr', sensor_id: 'a' } });
    assert.deepEqual(response, { status: 503, body: { detail: 'hot store unavailable' } });
    assert.equal(error?.message, 'down');
  });

  it('withAge adds whole seconds since the row timestamp, leaves the rest alone', () => {
    const now = Date.parse('2026-01-26T08:01:30.900Z');
    assert.deepEqual(withAge({ value: 1, timestamp: '2026-01-26T08:00:00Z' }, now), { value: 1, timestamp: '2026-01-26T08:00:00Z', age_seconds: 90 });
    assert.equal(withAge(null, now), null);
    assert.deepEqual(withAge({ value: 1 }, now), { value: 1 });
    assert.equal((withAge({ timestamp: '2026-01-26T09:00:00Z' }, now) as { age_seconds: number }).age_seconds, 0);
  });

  it('buildContext lists every active sensor by type:id with the context rows', async () => {
    await pushPayload(store, [reading('a', 0, 1), reading('a', 1, 3), reading('b:2', 0, 7)]);
    await store.setContext('weather', { data_type: 'weather', value: 20, timestamp: '2026-01-26T08:00:00Z' });
    const ctx = await buildContext(store, Date.parse('2026-01-26T08:00:10Z'));
    assert.deepEqual(Object.keys(ctx.sensors).sort(), ['ldr:a', 'ldr:b:2']);
    assert.equal(ctx.sensors['ldr:a'].avg_value, 2);
    assert.equal(ctx.carbon_intensity, null);
    assert.deepEqual(ctx.weather, { data_type: 'weather', value: 20, timestamp: '2026-01-26T08:00:00Z', age_seconds: 10 });
  });

  it('contextRowsFromPayload needs objects with a data_type', () => {
    assert.deepEqual(contextRowsFromPayload({ data_type: 'weather', value: 1 }), [{ name: 'weather', row: { data_type: 'weather', value: 1 } }]);
    assert.equal(contextRowsFromPayload([]).length, 0);
    assert.throws(() => contextRowsFromPayload([{ data_type: 'weather' }, { value: 1 }]), /row 1: data_type/);
    assert.throws(() => contextRowsFromPayload({ data_type: 'a b' }), /data_type/);
    assert.throws(() => contextRowsFromPayload(null), /row 0/);
  });

  it('checkHealth is up, down on a failing ping, down on a hanging one', async () => {
    assert.equal(await checkHealth(store), 'up');
    const failing = { ping: () => Promise.reject(new Error('no')) } as unknown as WindowStore;
    assert.equal(await checkHealth(failing), 'down');
    const hanging = { ping: () => new Promise(() => undefined) } as unknown as WindowStore;
    const t0 = Date.now();
    assert.equal(await checkHealth(hanging, 50), 'down');
    assert.ok(Date.now() - t0 < 500);
  });

  it('withHealth keeps other checks and ignores a non-object', () => {
    assert.deepEqual(withHealth({ mqtt: 'up' }, 'down'), { mqtt: 'up', hot_store: 'down' });
    assert.deepEqual(withHealth('x', 'up'), { hot_store: 'up' });
    assert.deepEqual(withHealth(undefined, 'up'), { hot_store: 'up' });
  });

  it('broadcastMessageFromPayload takes a message object with a type, nothing else', () => {
    const m = { type: 'sensor_update', data: { value: 1 } };
    assert.equal(broadcastMessageFromPayload(m), m);
    for (const bad of [null, 'x', 1, [m], {}, { type: '' }, { type: 5 }, { type: 'a b' }]) {
      assert.throws(() => broadcastMessageFromPayload(bad), /broadcast/);
    }
  });

  it('leaderGateSettings: a lock name and a ttl of 1 to 3600 s (default 15)', () => {
    assert.deepEqual(leaderGateSettings('carbon-fetch', ''), { lock: 'carbon-fetch', ttlMs: 15_000 });
    assert.deepEqual(leaderGateSettings('cleanup', '2.5'), { lock: 'cleanup', ttlMs: 2500 });
    assert.deepEqual(leaderGateSettings('x', '${UNSET}'), { lock: 'x', ttlMs: 15_000 });
    assert.throws(() => leaderGateSettings('', '15'), /lock name/);
    assert.throws(() => leaderGateSettings('a b', '15'), /lock name/);
    assert.throws(() => leaderGateSettings('x', '0.5'), /ttl/);
    assert.throws(() => leaderGateSettings('x', 'soon'), /ttl/);
  });

  it('parseOperation knows the fan-out and gate operations', () => {
    for (const op of ['broadcast', 'on-broadcast', 'leader-gate']) assert.equal(parseOperation(op), op);
  });

  it('LeaderGate asks at start and every third of the TTL, reports changes and failures, not leading on failure', async () => {
    const answers: Array<boolean | Error> = [true, true, false, new Error('down'), false, true];
    const calls: Array<[string, number]> = [];
    const fake = {
      tryLead: async (name: string, ttl: number) => {
        calls.push([name, ttl]);
        const a = answers.shift() ?? true;
        if (a instanceof Error) throw a;
        return a;
      },
    };
    const changes: string[] = [];
    const gate = new LeaderGate(fake, 'job', 300, (leading, err) => changes.push(err ? `error:${err.message}` : String(leading)));
    gate.start();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(gate.isLeader, true);
    assert.equal(await gate.check(), true);
    assert.equal(await gate.check(), false);
    await assert.rejects(gate.check(), /down/);
    assert.equal(gate.isLeader, false);
    assert.equal(await gate.check(), false); // recovered: reported although still not leading
    await new Promise((r) => setTimeout(r, 130)); // one renewal (every 100 ms)
    gate.stop();
    const n = calls.length;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(calls.length, n, 'no renewal after stop');
    assert.deepEqual(calls[0], ['job', 300]);
    assert.equal(gate.isLeader, true);
    assert.deepEqual(changes, ['true', 'false', 'error:down', 'false', 'true']);
  });
});
