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
import { deleteRedisKeys, REDIS_PREFIX, REDIS_URL, requireService } from '../support/services';

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

    it('tells per reading whether it was new: false only for the same timestamp and value again', async () => {
      const { store } = await make({ size: 3 });
      assert.deepEqual(await store.pushMany([reading(0, 1), reading(1, 2)]), [true, true]);
      assert.deepEqual(await store.pushMany([reading(1, 2)]), [false], 'a redelivery');
      assert.deepEqual(
        await store.pushMany([reading(0, 1), reading(2, 3), reading(2, 3), reading(1, 20)]),
        [false, true, false, true],
        'repeats inside one call, and a corrected value (same timestamp, new value) is new',
      );
      assert.deepEqual(await store.pushMany([{ ...reading(0, 1), timestamp: '2026-01-26T08:00:00+00:00' }]), [false]);
      assert.deepEqual(await store.pushMany([reading(0, 1, 'ldr_2')]), [true], 'another sensor');
      assert.deepEqual(await store.pushMany([]), []);
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), [1, 20, 3]);
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

    it('restoreMany puts stored readings back, leaves what a window holds, trims to the size, reads them like pushed ones', async () => {
      const { store } = await make({ size: 4 });
      await store.pushMany([reading(3, 30), reading(5, 50)]);
      await store.restoreMany([reading(1, 10), reading(2, 20), reading(3, 99), reading(4, 40.25), reading(0, 0)]);
      assert.deepEqual(await store.read(ldr1), {
        readings: [
          { value: 20, timestamp: at(2) }, { value: 30, timestamp: at(3) },
          { value: 40.25, timestamp: at(4) }, { value: 50, timestamp: at(5) },
        ],
        stats: {
          count: 4, is_full: true, latest_value: 50, latest_timestamp: at(5),
          min_value: 20, max_value: 50, avg_value: 35.0625,
        },
      }, 'the pushed 3 kept its value; 0 and 1 trimmed as the oldest of a full window');
      await store.restoreMany([reading(1, 10)]);
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), [20, 30, 40.25, 50], 'older than the oldest of a full window: left out');
      await assert.rejects(store.restoreMany([reading(6, 6), { ...reading(7, 7), value: NaN }]), /reading 1: value/);
      assert.equal((await store.read(ldr1)).stats.count, 4, 'a bad batch restores nothing');
      await store.restoreMany([]);
    });

    it('a restored reading is new to its own later push (and only to the first), a pushed one is not made new by a restore', async () => {
      const { store } = await make({ size: 10 });
      await store.pushMany([reading(1, 1)]);
      await store.restoreMany([reading(0, 0), reading(1, 1), reading(2, 2)]);
      assert.deepEqual(await store.pushMany([reading(0, 0), reading(1, 1), reading(2, 2)]), [true, false, true]);
      assert.deepEqual(await store.pushMany([reading(0, 0), reading(2, 2)]), [false, false], 'pushed now: redeliveries');
      await store.restoreMany([reading(3, 3)]);
      assert.deepEqual(await store.pushMany([reading(3, 4)]), [true], 'a corrected value over a restored entry');
      assert.deepEqual((await store.read(ldr1)).readings.map((e) => e.value), [0, 1, 2, 4]);
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

    describe('broadcast channel', () => {
      it('delivers each published message once to a subscriber, in order, as a copy', async () => {
        const { store } = await make();
        const got: unknown[] = [];
        const unsubscribe = store.subscribe((m) => got.push(m));
        await unsubscribe.ready;
        const sent = [
          { type: 'sensor_update', data: reading(0, 1) },
          { type: 'grid_update', data: { data_type: 'weather', value: 24.5, metadata: { humidity: 60 } } },
        ];
        await store.publish(sent.slice(0, 1));
        await store.publish(sent.slice(1));
        await until(() => got.length >= 2);
        await sleep(50); // nothing more arrives
        assert.deepEqual(got, sent);
        assert.notEqual(got[0], sent[0], 'a copy, not the publisher\'s object');
        unsubscribe();
      });

      it('sends the messages of one tick together and reaches every subscriber', async () => {
        const { store } = await make();
        const a: unknown[] = [];
        const b: unknown[] = [];
        const offA = store.subscribe((m) => a.push(m));
        const offB = store.subscribe((m) => b.push(m));
        await Promise.all([offA.ready, offB.ready]);
        const messages = Array.from({ length: 2500 }, (_, i) => ({ type: 'sensor_update', data: { i } }));
        // 2500 single-message publishes in one tick: more than one batch's worth.
        await Promise.all(messages.map((m) => store.publish([m])));
        await until(() => a.length >= 2500 && b.length >= 2500);
        assert.deepEqual(a, messages);
        assert.deepEqual(b, messages);
        offA();
        offB();
      });

      it('stops delivering after unsubscribe; other subscribers go on', async () => {
        const { store } = await make();
        const a: unknown[] = [];
        const b: unknown[] = [];
        const offA = store.subscribe((m) => a.push(m));
        const offB = store.subscribe((m) => b.push(m));
        await Promise.all([offA.ready, offB.ready]);
        await store.publish([1]);
        await until(() => a.length === 1 && b.length === 1);
        offA();
        offA(); // twice is harmless
        await store.publish([2]);
        await until(() => b.length === 2);
        await sleep(50);
        assert.deepEqual(a, [1]);
        assert.deepEqual(b, [1, 2]);
        offB();
      });

      it('a listener that throws does not stop the others', async () => {
        const { store } = await make();
        const got: unknown[] = [];
        const offBad = store.subscribe(() => {
          throw new Error('listener failed');
        });
        const offGood = store.subscribe((m) => got.push(m));
        await Promise.all([offBad.ready, offGood.ready]);
        await store.publish(['x', 'y']);
        await until(() => got.length === 2);
        assert.deepEqual(got, ['x', 'y']);
        offBad();
        offGood();
      });

      it('publish resolves only once this instance\'s listeners handed their messages on (flow control)', async () => {
        const { store } = await make();
        // One listener passes the messages of a batch on later (as the on-broadcast node does: one
        // promise for the batch); another is synchronous; a third's promise fails.
        const handed: unknown[] = [];
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let pendingBatch: Promise<void> | null = null;
        const offSlow = store.subscribe((m) => {
          pendingBatch ??= gate.then(() => {
            pendingBatch = null;
          });
          const p = pendingBatch;
          void p.then(() => handed.push(m));
          return p;
        });
        const sync: unknown[] = [];
        const offSync = store.subscribe((m) => sync.push(m));
        const offFailing = store.subscribe(() => Promise.reject(new Error('could not hand on')));
        await Promise.all([offSlow.ready, offSync.ready, offFailing.ready]);
        let published = false;
        const p = store.publish(['a', 'b', 'c']).then(() => (published = true));
        await until(() => sync.length === 3);
        await sleep(100);
        assert.equal(published, false, 'waits for the slow listener');
        assert.deepEqual(handed, []);
        release();
        await p; // a listener's failure is reported, not passed to the publisher
        assert.deepEqual(handed, ['a', 'b', 'c']);
        offSlow();
        offSync();
        offFailing();
      });

      it('rejects a message that cannot be serialised and sends nothing of that call', async () => {
        const { store } = await make();
        const got: unknown[] = [];
        const off = store.subscribe((m) => got.push(m));
        await off.ready;
        await assert.rejects(store.publish([{ ok: 1 }, { n: BigInt(1) }]), TypeError);
        await assert.rejects(store.publish([undefined]), TypeError);
        await store.publish([]);
        await store.publish(['after']);
        await until(() => got.length >= 1);
        await sleep(50);
        assert.deepEqual(got, ['after']);
        off();
      });
    });

    describe('leadership', () => {
      it('takes a free lock and keeps it on every later call', async () => {
        const { store } = await make();
        assert.equal(await store.tryLead('carbon-fetch', 5000), true);
        assert.equal(await store.tryLead('carbon-fetch', 5000), true);
        assert.equal(await store.tryLead('cleanup', 5000), true);
      });

      it('rejects a bad lock name or ttl', async () => {
        const { store } = await make();
        await assert.rejects(store.tryLead('', 1000), TypeError);
        await assert.rejects(store.tryLead('a b', 1000), TypeError);
        await assert.rejects(store.tryLead('x'.repeat(65), 1000), TypeError);
        await assert.rejects(store.tryLead('ok', 0), RangeError);
        await assert.rejects(store.tryLead('ok', 1.5), RangeError);
        await assert.rejects(store.tryLead('ok', 25 * 3600 * 1000), RangeError);
      });
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
      await assert.rejects(store.publish([1]));
      await assert.rejects(store.tryLead('carbon-fetch', 1000));
      assert.throws(() => store.subscribe(() => undefined));
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
    await deleteRedisKeys(admin, `${SUITE_PREFIX}*`);
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
      await store.pushMany([reading(0, 1), reading(0, 7, 'ldr_2'), reading(1, 2)]);
      await store.setContext('weather', { value: 24 });
      const p = `${SUITE_PREFIX}layout:`;
      assert.equal(await admin.type(`${p}window:ldr:ldr_1`), 'zset');
      assert.equal(await admin.zcard(`${p}window:ldr:ldr_1`), 2);
      assert.equal(await admin.zcard(`${p}window:ldr:ldr_2`), 1);
      for (const key of [`${p}window:ldr:ldr_1`, `${p}window:ldr:ldr_2`, `${p}sensors`]) {
        const pttl = await admin.pttl(key);
        assert.ok(pttl > 25_000 && pttl <= 30_000, `pttl of ${key}: ${pttl}`);
      }
      assert.deepEqual((await admin.zrange(`${p}sensors`, 0, -1)).sort(), ['ldr:ldr_1', 'ldr:ldr_2']);
      assert.equal(await admin.type(`${p}context`), 'hash');
      assert.equal(await admin.pttl(`${p}context`), -1); // context never expires
      assert.deepEqual((await admin.keys(`${p}*`)).sort(), [`${p}context`, `${p}sensors`, `${p}window:ldr:ldr_1`, `${p}window:ldr:ldr_2`]);
    });

    it('the pushes of one tick are one script call: the client sends nothing else', async () => {
      const store = await make('mon');
      await store.pushMany([reading(0, 1)]); // loads the script on this connection first
      const seen: Array<{ source: string; command: string }> = [];
      const monitor = await admin.monitor();
      try {
        monitor.on('monitor', (_time: string, args: string[], source: string) => {
          if (args.some((a) => a.startsWith(`${SUITE_PREFIX}mon:`))) seen.push({ source, command: args[0].toLowerCase() });
        });
        // Two messages in one tick (three readings, then one), then a message in a later tick.
        const [first, second] = await Promise.all([store.pushMany([reading(1, 2), reading(2, 3), reading(3, 4, 'other')]), store.pushMany([reading(4, 5)])]);
        assert.deepEqual(first, [true, true, true]);
        assert.deepEqual(second, [true]);
        assert.deepEqual(await store.pushMany([reading(4, 5), reading(5, 6)]), [false, true], 'each message learns which of its readings were new');
        await until(() => seen.filter((s) => s.source !== 'lua').length >= 2);
        await sleep(100);
      } finally {
        monitor.disconnect();
      }
      const fromClient = seen.filter((s) => s.source !== 'lua').map((s) => s.command);
      assert.deepEqual(fromClient, ['evalsha', 'evalsha']);
      const inScript = seen.filter((s) => s.source === 'lua').map((s) => s.command);
      assert.ok(inScript.includes('zadd') && inScript.includes('zremrangebyrank') && inScript.includes('pexpire'));
    });

    it('a tick with more readings than one call takes is sent in several calls, results in order', async () => {
      const store = await make('big-tick');
      const rs = Array.from({ length: 1234 }, (_, i) => reading(i, i, `s${i % 7}`));
      const flags = await store.pushMany(rs);
      assert.equal(flags.length, 1234);
      assert.ok(flags.every((f) => f === true));
      const again = await store.pushMany([rs[1232], rs[1233], reading(5000, 1, 's0')]);
      assert.deepEqual(again, [false, false, true]);
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

    it('two stores on one prefix (two instances): of concurrent pushes of one reading exactly one is new', async () => {
      const a = await make('shared-new');
      const b = await make('shared-new');
      const rs = Array.from({ length: 50 }, (_, i) => reading(i, i));
      const [fa, fb] = await Promise.all([a.pushMany(rs), b.pushMany(rs)]);
      rs.forEach((_, i) => assert.equal(Number(fa[i]) + Number(fb[i]), 1, `reading ${i}`));
    });

    it('two stores on one prefix (two instances) share the windows', async () => {
      const a = await make('shared');
      const b = await make('shared');
      await a.pushMany([reading(0, 1)]);
      await b.pushMany([reading(1, 2)]);
      assert.deepEqual((await a.read(ldr1)).readings.map((e) => e.value), [1, 2]);
      assert.deepEqual((await b.activeSensors()), [ldr1]);
    });

    it('two stores on one prefix (two instances): each subscriber gets what either publishes, once', async () => {
      const a = await make('bc-shared');
      const b = await make('bc-shared');
      const other = await make('bc-other');
      const gotA: unknown[] = [];
      const gotB: unknown[] = [];
      const gotOther: unknown[] = [];
      const subs = [a.subscribe((m) => gotA.push(m)), b.subscribe((m) => gotB.push(m)), other.subscribe((m) => gotOther.push(m))];
      await Promise.all(subs.map((u) => u.ready));
      await Promise.all([a.publish([{ from: 'a', n: 1 }]), b.publish([{ from: 'b', n: 1 }])]);
      await a.publish([{ from: 'a', n: 2 }]);
      await until(() => gotA.length >= 3 && gotB.length >= 3);
      await sleep(100);
      const sorted = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).sort();
      const expected = sorted([{ from: 'a', n: 1 }, { from: 'b', n: 1 }, { from: 'a', n: 2 }]);
      assert.deepEqual(sorted(gotA), expected);
      assert.deepEqual(sorted(gotB), expected);
      assert.deepEqual(gotOther, [], 'another prefix is another channel');
      subs.forEach((u) => u());
    });

    it("a store's own messages reach its own listeners at once (not through Redis), once; a plain JSON array from elsewhere is delivered too", async () => {
      const a = await make('bc-local');
      const b = await make('bc-local');
      const gotA: unknown[] = [];
      const gotB: unknown[] = [];
      const offA = a.subscribe((m) => gotA.push(m));
      // Not waiting for the subscription: a's own message is delivered to a's listener anyway.
      await a.publish([{ n: 1 }]);
      assert.deepEqual(gotA, [{ n: 1 }], 'delivered when published');
      await offA.ready;
      const offB = b.subscribe((m) => gotB.push(m));
      await offB.ready;
      await a.publish([{ n: 2 }]);
      await admin.publish(a.broadcastChannel, JSON.stringify([{ n: 3 }]));
      await until(() => gotB.length >= 2 && gotA.length >= 3);
      await sleep(100);
      assert.deepEqual(gotA, [{ n: 1 }, { n: 2 }, { n: 3 }], 'its own once (skipped when they come back from Redis)');
      assert.deepEqual(gotB, [{ n: 2 }, { n: 3 }]);
      offA();
      offB();
    });

    it('the messages of one tick are one PUBLISH of a JSON array (at most 1000 per PUBLISH)', async () => {
      const store = await make('bc-batch');
      const raw = admin.duplicate();
      try {
        const batches: unknown[][] = [];
        const origins = new Set<string>();
        raw.on('message', (_channel: string, text: string) => {
          const eol = text.indexOf('\n');
          origins.add(text.slice(0, eol)); // `@{origin}`: the store that sent it
          batches.push(JSON.parse(text.slice(eol + 1)));
        });
        await raw.subscribe(store.broadcastChannel);
        assert.equal(store.broadcastChannel, `${SUITE_PREFIX}bc-batch:broadcast`);
        await Promise.all(Array.from({ length: 500 }, (_, i) => store.publish([{ i }])));
        await until(() => batches.length >= 1);
        await sleep(50);
        assert.equal(batches.length, 1);
        assert.equal(batches[0].length, 500);
        batches.length = 0;
        await Promise.all(Array.from({ length: 2500 }, (_, i) => store.publish([{ i }])));
        await until(() => batches.length >= 3);
        await sleep(50);
        assert.deepEqual(batches.map((b) => b.length), [1000, 1000, 500]);
        assert.deepEqual(batches.flat(), Array.from({ length: 2500 }, (_, i) => ({ i })));
        assert.equal(origins.size, 1);
        assert.match([...origins][0], /^@[0-9a-f-]{36}$/);
      } finally {
        raw.disconnect();
      }
    });

    it('the subscriber resubscribes after its connection is lost', async function () {
      this.timeout(10_000);
      const name = `hvtest-${SUITE_PREFIX.replace(/\W/g, '')}-sub`;
      const store = new RedisWindowStore({ url: REDIS_URL, prefix: `${SUITE_PREFIX}bc-kill:`, redisOptions: { connectionName: name } });
      stores.push(store);
      await store.connect();
      const got: unknown[] = [];
      const off = store.subscribe((m) => got.push(m));
      await off.ready;
      const list = (await admin.client('LIST')) as string;
      const subLine = list.split('\n').find((l) => l.includes(`name=${name} `) && /\bsub=1\b/.test(l));
      const id = subLine?.match(/^id=(\d+)/)?.[1];
      assert.ok(id, 'found the subscribed connection');
      await admin.client('KILL', 'ID', id);
      // Published until one arrives: the resubscribe happens in the background.
      const end = Date.now() + 5000;
      let n = 0;
      while (got.length === 0 && Date.now() < end) {
        await store.publish([++n]);
        await sleep(100);
      }
      assert.ok(got.length > 0, 'messages arrive again after the reconnect');
      off();
    });

    it('holds its subscribed connection only while someone listens', async () => {
      const name = `hvtest-${SUITE_PREFIX.replace(/\W/g, '')}-subs`;
      const store = new RedisWindowStore({ url: REDIS_URL, prefix: `${SUITE_PREFIX}bc-conn:`, redisOptions: { connectionName: name } });
      stores.push(store);
      await store.connect();
      const count = async () => ((await admin.client('LIST')) as string).split('\n').filter((l) => l.includes(`name=${name} `)).length;
      assert.equal(await count(), 1);
      const off1 = store.subscribe(() => undefined);
      const off2 = store.subscribe(() => undefined);
      await Promise.all([off1.ready, off2.ready]);
      assert.equal(await count(), 2, 'one subscriber connection for all listeners');
      off1();
      assert.equal(await count(), 2);
      off2();
      const end = Date.now() + 2000;
      while ((await count()) !== 1 && Date.now() < end) await sleep(20);
      assert.equal(await count(), 1, 'closed with the last listener');
      store.subscribe(() => undefined);
      await store.close();
      const end2 = Date.now() + 2000;
      while ((await count()) !== 0 && Date.now() < end2) await sleep(20);
      assert.equal(await count(), 0, 'close releases both connections');
    });

    it('leadership: one of two stores leads; the other takes over after the TTL, or at once after a clean close', async function () {
      this.timeout(10_000);
      const a = await make('lead');
      const b = await make('lead');
      const key = `${SUITE_PREFIX}lead:leader:carbon-fetch`;
      assert.equal(a.lockKey('carbon-fetch'), key);
      assert.equal(await a.tryLead('carbon-fetch', 1000), true);
      assert.equal(await b.tryLead('carbon-fetch', 1000), false);
      assert.equal(await b.tryLead('weather-fetch', 1000), true, 'locks are per name');
      const pttl = await admin.pttl(key);
      assert.ok(pttl > 0 && pttl <= 1000, `pttl ${pttl}`);
      // The leader extends: the lock stays with it past the first TTL.
      let lastExtend = 0;
      for (let i = 0; i < 4; i++) {
        await sleep(300);
        assert.equal(await a.tryLead('carbon-fetch', 1000), true);
        lastExtend = Date.now();
        assert.equal(await b.tryLead('carbon-fetch', 1000), false);
      }
      // The leader stops (dies): the other takes over once the lock expired, not before.
      let takenAt = 0;
      const end = Date.now() + 3000;
      while (Date.now() < end) {
        if (await b.tryLead('carbon-fetch', 1000)) {
          takenAt = Date.now();
          break;
        }
        await sleep(25);
      }
      assert.ok(takenAt > 0, 'taken over');
      assert.ok(takenAt - lastExtend >= 900, `taken over ${takenAt - lastExtend} ms after the last extension`);
      assert.equal(await a.tryLead('carbon-fetch', 1000), false);
      // A clean close hands over at once.
      assert.equal(await b.tryLead('cleanup', 60_000), true);
      await b.close();
      assert.equal(await admin.exists(`${SUITE_PREFIX}lead:leader:cleanup`), 0);
      assert.equal(await a.tryLead('cleanup', 60_000), true);
    });

    it('concurrent pushes of many messages all land (gathered per tick)', async () => {
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
