/**
 * One suite, two stores: the in-process store and the Redis store on a real Redis must behave
 * the same. Time moves by a ManualClock for the in-process store and for real with Redis.
 */
import assert from 'assert/strict';
import Redis from 'ioredis';
import type { Reading } from '../../nodes/shared/types';
import { ManualClock } from '../../nodes/shared/clock';
import type { WindowStore } from '../../nodes/hot-window/window-store';
import { MemoryWindowStore } from '../../nodes/hot-window/memory-window-store';
import { RedisWindowStore } from '../../nodes/hot-window/redis-window-store';
import { REDIS_PREFIX, REDIS_URL, requireService } from '../support/services';

interface StoreHarness {
  store: WindowStore;
  /** Lets `ms` pass for the store (a clock advance, or a real wait for Redis). */
  elapse(ms: number): Promise<void>;
}
type StoreFactory = (opts: { size?: number; ttlSeconds?: number }) => Promise<StoreHarness>;

const T0 = Date.parse('2026-01-26T08:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const reading = (s: number, value: number, sensor_id = 'ldr_1', sensor_type = 'ldr'): Reading => ({
  sensor_type, sensor_id, value, unit: 'lux', location: 'living_room', timestamp: at(s),
});
const ldr1 = { sensor_type: 'ldr', sensor_id: 'ldr_1' };
const byName = (a: { sensor_type: string; sensor_id: string }, b: { sensor_type: string; sensor_id: string }) =>
  `${a.sensor_type}:${a.sensor_id}`.localeCompare(`${b.sensor_type}:${b.sensor_id}`);

function describeWindowStore(name: string, factory: StoreFactory) {
  describe(`WindowStore contract: ${name}`, function () {
    let open: WindowStore[] = [];
    const make = async (opts: { size?: number; ttlSeconds?: number } = {}) => {
      const h = await factory(opts);
      open.push(h.store);
      return h;
    };
    afterEach(async () => {
      await Promise.all(open.map((s) => s.close()));
      open = [];
    });

    it('reads an empty window as {readings: [], stats: {count: 0, is_full: false}}', async () => {
      const { store } = await make();
      assert.deepEqual(await store.read(ldr1), { readings: [], stats: { count: 0, is_full: false } });
    });

    it('keeps readings oldest first with value and timestamp only', async () => {
      const { store } = await make();
      await store.pushMany([reading(0, 1), reading(1, 2)]);
      await store.pushMany([reading(2, 3)]);
      const snap = await store.read(ldr1);
      assert.deepEqual(snap.readings, [
        { value: 1, timestamp: at(0) },
        { value: 2, timestamp: at(1) },
        { value: 3, timestamp: at(2) },
      ]);
    });

    it('trims to the newest N: 75 pushed, the last 60 kept', async () => {
      const { store } = await make();
      assert.equal(store.size, 60);
      const all = Array.from({ length: 75 }, (_, i) => reading(i, i * 10));
      await store.pushMany(all);
      const snap = await store.read(ldr1);
      assert.equal(snap.readings.length, 60);
      assert.deepEqual(snap.readings, all.slice(15).map((r) => ({ value: r.value, timestamp: r.timestamp })));
      assert.equal(snap.stats.count, 60);
      assert.equal(snap.stats.is_full, true);
    });

    it('trims the same way when readings come one message at a time', async () => {
      const { store } = await make({ size: 5 });
      for (let i = 0; i < 8; i++) await store.pushMany([reading(i, i)]);
      const snap = await store.read(ldr1);
      assert.deepEqual(snap.readings.map((e) => e.value), [3, 4, 5, 6, 7]);
    });

    it('stores a redelivered reading (same sensor and timestamp) once', async () => {
      const { store } = await make();
      await store.pushMany([reading(0, 750)]);
      await store.pushMany([reading(0, 750)]);
      await store.pushMany([reading(0, 750), reading(0, 750)]);
      const snap = await store.read(ldr1);
      assert.deepEqual(snap.readings, [{ value: 750, timestamp: at(0) }]);
      assert.equal(snap.stats.count, 1);
    });

    it('replaces the value of an entry when the same timestamp comes with a new value', async () => {
      const { store } = await make();
      await store.pushMany([reading(0, 1), reading(1, 2), reading(2, 3)]);
      await store.pushMany([reading(1, 20)]);
      const snap = await store.read(ldr1);
      assert.deepEqual(snap.readings.map((e) => e.value), [1, 20, 3]);
      assert.equal(snap.stats.max_value, 20);
    });

    it('treats the same instant in another notation as the same timestamp', async () => {
      const { store } = await make();
      await store.pushMany([{ ...reading(0, 1), timestamp: '2026-01-26T08:00:00Z' }]);
      await store.pushMany([{ ...reading(0, 2), timestamp: '2026-01-26T09:00:00.000+01:00' }]);
      const snap = await store.read(ldr1);
      assert.deepEqual(snap.readings, [{ value: 2, timestamp: '2026-01-26T08:00:00.000Z' }]);
    });

    it('inserts a late reading in timestamp order', async () => {
      const { store } = await make();
      await store.pushMany([reading(3, 3)]);
      await store.pushMany([reading(1, 1)]);
      await store.pushMany([reading(2, 2), reading(0, 0)]);
      const snap = await store.read(ldr1);
      assert.deepEqual(snap.readings.map((e) => e.timestamp), [at(0), at(1), at(2), at(3)]);
      assert.equal(snap.stats.latest_value, 3);
      assert.equal(snap.stats.latest_timestamp, at(3));
    });

    it('drops a reading older than the oldest of a full window, keeps a late one inside it', async () => {
      const { store } = await make({ size: 3 });
      await store.pushMany([reading(2, 2), reading(4, 4), reading(5, 5)]);
      await store.pushMany([reading(1, 1)]); // older than the oldest: dropped
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), [2, 4, 5]);
      await store.pushMany([reading(3, 3)]); // inside: goes in, the oldest goes out
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), [3, 4, 5]);
    });

    it('gives exact stats', async () => {
      const { store } = await make({ size: 4 });
      await store.pushMany([reading(0, 10), reading(1, 20), reading(2, 30)]);
      assert.deepEqual((await store.read(ldr1)).stats, {
        count: 3, is_full: false, latest_value: 30, latest_timestamp: at(2),
        min_value: 10, max_value: 30, avg_value: 20,
      });
      await store.pushMany([reading(3, 5.5)]);
      assert.deepEqual(await store.read(ldr1), {
        readings: [
          { value: 10, timestamp: at(0) }, { value: 20, timestamp: at(1) },
          { value: 30, timestamp: at(2) }, { value: 5.5, timestamp: at(3) },
        ],
        stats: {
          count: 4, is_full: true, latest_value: 5.5, latest_timestamp: at(3),
          min_value: 5.5, max_value: 30, avg_value: 16.375,
        },
      });
    });

    it('keeps values exactly (fractions, negatives, large numbers)', async () => {
      const { store } = await make();
      const values = [0.1, -273.15, 1e21, 123456789.123456, 0];
      await store.pushMany(values.map((v, i) => reading(i, v)));
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), values);
    });

    it('keeps sensors apart, by type and by id (ids may hold a colon)', async () => {
      const { store } = await make();
      await store.pushMany([
        reading(0, 1, 'ldr_1'), reading(0, 2, 'ldr_2'), reading(0, 3, 'ldr_1', 'power'), reading(0, 4, 'pi:ldr_1'),
      ]);
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), [1]);
      assert.deepEqual((await store.read({ sensor_type: 'ldr', sensor_id: 'ldr_2' })).readings.map((e) => e.value), [2]);
      assert.deepEqual((await store.read({ sensor_type: 'power', sensor_id: 'ldr_1' })).readings.map((e) => e.value), [3]);
      assert.deepEqual((await store.read({ sensor_type: 'ldr', sensor_id: 'pi:ldr_1' })).readings.map((e) => e.value), [4]);
    });

    it('rejects a batch with a malformed reading and stores none of it', async () => {
      const { store } = await make();
      const bad = [
        reading(0, 1),
        { ...reading(1, 2), value: Number.NaN },
      ];
      await assert.rejects(store.pushMany(bad), /reading 1: value/);
      await assert.rejects(store.pushMany([{ ...reading(0, 1), timestamp: 'yesterday' }]), /timestamp/);
      await assert.rejects(store.pushMany([{ ...reading(0, 1), sensor_id: 'a b' }]), /sensor_id/);
      await assert.rejects(store.pushMany([{ ...reading(0, 1), sensor_type: 'x:y' }]), /sensor_type/);
      await assert.rejects(store.pushMany([null as unknown as Reading]), /not an object/);
      assert.equal((await store.read(ldr1)).stats.count, 0);
      assert.deepEqual(await store.activeSensors(), []);
    });

    it('rejects a read of an invalid sensor key', async () => {
      const { store } = await make();
      await assert.rejects(store.read({ sensor_type: 'ldr', sensor_id: 'x'.repeat(65) }));
      await assert.rejects(store.read({ sensor_type: 'ldr', sensor_id: '*' }));
    });

    it('lists the active sensors', async () => {
      const { store } = await make();
      assert.deepEqual(await store.activeSensors(), []);
      await store.pushMany([reading(0, 1, 'a'), reading(0, 1, 'b'), reading(1, 1, 'a'), reading(0, 1, 'c', 'power')]);
      assert.deepEqual((await store.activeSensors()).sort(byName), [
        { sensor_type: 'ldr', sensor_id: 'a' },
        { sensor_type: 'ldr', sensor_id: 'b' },
        { sensor_type: 'power', sensor_id: 'c' },
      ]);
    });

    it('expires an idle window and drops its sensor from the active list', async function () {
      this.timeout(10_000);
      const { store, elapse } = await make({ ttlSeconds: 1 });
      assert.equal(store.ttlSeconds, 1);
      await store.pushMany([reading(0, 1, 'a'), reading(0, 1, 'b')]);
      await elapse(600);
      await store.pushMany([reading(1, 2, 'b')]); // b stays active
      assert.equal((await store.activeSensors()).length, 2);
      await elapse(600);
      assert.equal((await store.read({ sensor_type: 'ldr', sensor_id: 'a' })).stats.count, 0);
      assert.deepEqual((await store.read({ sensor_type: 'ldr', sensor_id: 'b' })).readings.map((e) => e.value), [1, 2]);
      assert.deepEqual(await store.activeSensors(), [{ sensor_type: 'ldr', sensor_id: 'b' }]);
      await elapse(600);
      assert.deepEqual(await store.read({ sensor_type: 'ldr', sensor_id: 'b' }), {
        readings: [], stats: { count: 0, is_full: false },
      });
      assert.deepEqual(await store.activeSensors(), []);
      // A push after expiry starts a new window.
      await store.pushMany([reading(5, 5, 'a')]);
      assert.deepEqual((await store.read({ sensor_type: 'ldr', sensor_id: 'a' })).readings.map((e) => e.value), [5]);
    });

    it('stores and returns named context values beside the windows', async () => {
      const { store } = await make();
      assert.equal(await store.getContext('carbon_intensity'), null);
      const row = { data_type: 'carbon_intensity', value: 512.5, unit: 'gCO2eq/kWh', zone: 'IN-KA',
        metadata: { is_estimated: true, renewable_percentage: null }, timestamp: at(0) };
      await store.setContext('carbon_intensity', row);
      await store.setContext('weather', { data_type: 'weather', value: 24 });
      assert.deepEqual(await store.getContext('carbon_intensity'), row);
      await store.setContext('carbon_intensity', { ...row, value: 400 });
      assert.equal((await store.getContext('carbon_intensity') as { value: number }).value, 400);
      assert.deepEqual(await store.getContext('weather'), { data_type: 'weather', value: 24 });
      assert.deepEqual(await store.activeSensors(), []); // context is not a sensor
      await assert.rejects(store.setContext('bad name', 1));
    });

    it('pushMany of 1000 readings over 100 sensors in one go is exact', async () => {
      const { store } = await make({ size: 8 });
      const batch: Reading[] = [];
      for (let i = 0; i < 10; i++) {
        for (let s = 0; s < 100; s++) batch.push(reading(i, s * 100 + i, `s${s}`));
      }
      await store.pushMany(batch);
      const active = (await store.activeSensors()).sort(byName);
      assert.equal(active.length, 100);
      const keys = Array.from({ length: 100 }, (_, s) => ({ sensor_type: 'ldr', sensor_id: `s${s}` }));
      const snaps = await store.readMany(keys);
      snaps.forEach((snap, s) => {
        assert.deepEqual(snap.readings, Array.from({ length: 8 }, (_, j) => ({ value: s * 100 + j + 2, timestamp: at(j + 2) })));
        assert.equal(snap.stats.is_full, true);
      });
    });

    it('readMany answers in the order asked, empty windows included', async () => {
      const { store } = await make();
      await store.pushMany([reading(0, 1, 'a'), reading(0, 2, 'b')]);
      const snaps = await store.readMany([
        { sensor_type: 'ldr', sensor_id: 'b' }, { sensor_type: 'ldr', sensor_id: 'none' }, { sensor_type: 'ldr', sensor_id: 'a' },
      ]);
      assert.deepEqual(snaps.map((s) => s.stats.count), [1, 0, 1]);
      assert.equal(snaps[0].stats.latest_value, 2);
      assert.deepEqual(await store.readMany([]), []);
    });

    it('pings while open; rejects every call once closed', async () => {
      const { store } = await make();
      await store.ping();
      assert.equal(store.state, 'connected');
      const states: string[] = [];
      store.onStateChange((s) => states.push(s));
      await store.close();
      assert.equal(store.state, 'closed');
      assert.deepEqual(states, ['closed']);
      await assert.rejects(store.ping());
      await assert.rejects(store.pushMany([reading(0, 1)]));
      await assert.rejects(store.read(ldr1));
      await store.close(); // twice is harmless
    });
  });
}

// ---- the in-process store ----

describeWindowStore('MemoryWindowStore', async ({ size, ttlSeconds }) => {
  const clock = new ManualClock(T0);
  const store = new MemoryWindowStore({ size, ttlSeconds, clock });
  return { store, elapse: async (ms) => clock.advance(ms) };
});

// ---- the Redis store, on a real Redis ----

let storeCount = 0;
const SUITE_PREFIX = `${REDIS_PREFIX}ws:`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

async function deleteKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

async function redisStore(opts: { size?: number; ttlSeconds?: number }): Promise<StoreHarness> {
  // Each store its own prefix: no test sees another's keys.
  const store = new RedisWindowStore({ url: REDIS_URL, prefix: `${SUITE_PREFIX}${++storeCount}:`, ...opts });
  await store.connect();
  return { store, elapse: sleep };
}

describe('on a real Redis', function () {
  let admin: Redis;

  before(async function () {
    await requireService(this, 'redis');
    admin = new Redis(REDIS_URL);
  });
  after(async () => {
    if (!admin) return;
    await deleteKeys(admin, `${SUITE_PREFIX}*`);
    assert.deepEqual(await admin.keys(`${SUITE_PREFIX}*`), []);
    await admin.quit();
  });

  describeWindowStore('RedisWindowStore', redisStore);

  describe('RedisWindowStore specifics', function () {
    const stores: RedisWindowStore[] = [];
    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
    });

    const make = async (prefix: string, opts: { size?: number; ttlSeconds?: number } = {}) => {
      const store = new RedisWindowStore({ url: REDIS_URL, prefix: `${SUITE_PREFIX}${prefix}:`, ...opts });
      stores.push(store);
      await store.connect();
      return store;
    };

    it('keeps one sorted set per sensor with the idle TTL, a registry and a context hash', async () => {
      const store = await make('layout', { size: 5, ttlSeconds: 30 });
      await store.pushMany([reading(0, 1), reading(1, 2)]);
      await store.setContext('weather', { value: 24 });
      const p = `${SUITE_PREFIX}layout:`;
      assert.equal(await admin.type(`${p}window:ldr:ldr_1`), 'zset');
      assert.equal(await admin.zcard(`${p}window:ldr:ldr_1`), 2);
      const pttl = await admin.pttl(`${p}window:ldr:ldr_1`);
      assert.ok(pttl > 25_000 && pttl <= 30_000, `pttl ${pttl}`);
      assert.deepEqual(await admin.zrange(`${p}sensors`, 0, -1), ['ldr:ldr_1']);
      assert.equal(await admin.type(`${p}context`), 'hash');
      assert.equal(await admin.pttl(`${p}context`), -1); // context never expires
      assert.deepEqual((await admin.keys(`${p}*`)).sort(), [`${p}context`, `${p}sensors`, `${p}window:ldr:ldr_1`]);
    });

    it('a push is one script call per reading: the client sends nothing else', async () => {
      const store = await make('mon');
      await store.pushMany([reading(0, 1)]); // loads the script on this connection first
      const seen: Array<{ source: string; command: string }> = [];
      const monitor = await admin.monitor();
      try {
        monitor.on('monitor', (_time: string, args: string[], source: string) => {
          if (args.some((a) => a.startsWith(`${SUITE_PREFIX}mon:`))) seen.push({ source, command: args[0].toLowerCase() });
        });
        await store.pushMany([reading(1, 2), reading(2, 3), reading(3, 4, 'other')]);
        await store.pushMany([reading(4, 5)]);
        await until(() => seen.filter((s) => s.source !== 'lua').length >= 4);
        await sleep(100);
      } finally {
        monitor.disconnect();
      }
      const fromClient = seen.filter((s) => s.source !== 'lua').map((s) => s.command);
      assert.deepEqual(fromClient, ['evalsha', 'evalsha', 'evalsha', 'evalsha']);
      const inScript = seen.filter((s) => s.source === 'lua').map((s) => s.command);
      assert.ok(inScript.includes('zadd') && inScript.includes('zremrangebyrank') && inScript.includes('pexpire'));
    });

    it('a push sent while the first connection is being made waits for it', async () => {
      const store = new RedisWindowStore({ url: REDIS_URL, prefix: `${SUITE_PREFIX}early:` });
      stores.push(store);
      assert.equal(store.state, 'disconnected');
      const connecting = store.connect();
      assert.equal(store.state, 'connecting');
      await store.pushMany([reading(0, 1)]);
      await connecting;
      assert.equal(store.state, 'connected');
      assert.equal((await store.read(ldr1)).stats.count, 1);
    });

    it('two stores on one prefix (two instances) share the windows', async () => {
      const a = await make('shared');
      const b = await make('shared');
      await a.pushMany([reading(0, 1)]);
      await b.pushMany([reading(1, 2)]);
      assert.deepEqual((await a.read(ldr1)).readings.map((e) => e.value), [1, 2]);
      assert.deepEqual((await b.activeSensors()), [ldr1]);
    });

    it('concurrent pushes of many messages all land (auto-pipelined)', async () => {
      const store = await make('concurrent');
      await Promise.all(Array.from({ length: 200 }, (_, i) => store.pushMany([reading(i, i, `c${i % 4}`)])));
      const snaps = await store.readMany([0, 1, 2, 3].map((k) => ({ sensor_type: 'ldr', sensor_id: `c${k}` })));
      assert.deepEqual(snaps.map((s) => s.stats.count), [50, 50, 50, 50]);
    });

    it('uses a client it is given and leaves it open on close', async () => {
      const client = new Redis(REDIS_URL);
      try {
        const store = new RedisWindowStore({ client, prefix: `${SUITE_PREFIX}given:` });
        await store.pushMany([reading(0, 1)]);
        assert.equal((await store.read(ldr1)).stats.count, 1);
        await store.close();
        assert.equal(await client.ping(), 'PONG');
        assert.equal(client.listenerCount('ready'), 0);
      } finally {
        await client.quit();
      }
    });

    it('fails fast when Redis is unreachable, reports the state, and closes cleanly', async function () {
      this.timeout(10_000);
      const warnings: string[] = [];
      const store = new RedisWindowStore({
        url: 'redis://127.0.0.1:1/0', prefix: `${SUITE_PREFIX}down:`,
        logger: { log: () => undefined, warn: (m) => warnings.push(m) },
      });
      const states: string[] = [];
      store.onStateChange((s) => states.push(s));
      const t0 = Date.now();
      await assert.rejects(store.connect());
      await assert.rejects(store.ping());
      await assert.rejects(store.pushMany([reading(0, 1)]), /redis not connected/);
      await assert.rejects(store.read(ldr1), /redis not connected/);
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
      assert.equal(store.state, 'disconnected');
      assert.ok(states.includes('connecting') && states.includes('disconnected'), states.join());
      assert.equal(warnings.length, 1, 'the same error is logged once');
      assert.match(warnings[0], /ECONNREFUSED/);
      await sleep(600); // let it try to reconnect at least once more
      assert.equal(warnings.length, 1);
      await store.close();
      assert.equal(store.state, 'closed');
    });

    it('follows a lost connection: disconnected, then connected again after the reconnect', async function () {
      this.timeout(10_000);
      const name = `hvtest-${SUITE_PREFIX.replace(/\W/g, '')}-kill`;
      const store = new RedisWindowStore({ url: REDIS_URL, prefix: `${SUITE_PREFIX}kill:`, redisOptions: { connectionName: name } });
      stores.push(store);
      await store.connect();
      const states: string[] = [];
      store.onStateChange((s) => states.push(s));
      const list = (await admin.client('LIST')) as string;
      const id = list.split('\n').find((l) => l.includes(`name=${name} `))?.match(/^id=(\d+)/)?.[1];
      assert.ok(id, 'found the store connection');
      await admin.client('KILL', 'ID', id);
      await until(() => states.includes('connected'), 5000);
      assert.deepEqual(states, ['disconnected', 'connected']);
      await store.pushMany([reading(0, 1)]);
      assert.equal((await store.read(ldr1)).stats.count, 1);
    });

    it('ping rejects within its timeout when the server does not answer', async function () {
      this.timeout(10_000);
      const client = new Redis(REDIS_URL, { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
      try {
        await client.ping();
        const store = new RedisWindowStore({ client, prefix: `${SUITE_PREFIX}slow:`, pingTimeoutMs: 300 });
        // CLIENT PAUSE would stall every client of the shared server: block only this connection.
        const blocked = client.blpop(`${SUITE_PREFIX}never`, 2).catch(() => null);
        const t0 = Date.now();
        await assert.rejects(store.ping(), /timed out/);
        assert.ok(Date.now() - t0 < 1000);
        await blocked;
        await store.close();
      } finally {
        client.disconnect();
      }
    });
  });
});
