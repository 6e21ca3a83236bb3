/** What only the in-process store has: its memory bounds. The shared behaviour is in test/integration/window-store.test.ts. */
import assert from 'assert/strict';
import { ManualClock } from '../../nodes/shared/clock';
import { MemoryWindowStore } from '../../nodes/hot-window/memory-window-store';

const reading = (sensor_id: string, s = 0) => ({
  sensor_type: 'ldr', sensor_id, value: s, unit: 'lux', location: 'x',
  timestamp: new Date(Date.parse('2026-01-26T08:00:00Z') + s * 1000).toISOString(),
});

describe('MemoryWindowStore bounds', () => {
  it('evicts the least recently pushed window beyond maxSensors, and says so once', async () => {
    const warnings: string[] = [];
    const store = new MemoryWindowStore({ maxSensors: 3, logger: { log: () => undefined, warn: (m) => warnings.push(m) } });
    try {
      await store.pushMany([reading('a'), reading('b'), reading('c')]);
      await store.pushMany([reading('a', 1)]); // a is now the most recent
      await store.pushMany([reading('d')]);
      await store.pushMany([reading('e')]);
      const names = (await store.activeSensors()).map((k) => k.sensor_id);
      assert.deepEqual(names, ['a', 'd', 'e']);
      assert.equal((await store.read({ sensor_type: 'ldr', sensor_id: 'b' })).stats.count, 0);
      assert.equal((await store.read({ sensor_type: 'ldr', sensor_id: 'a' })).stats.count, 2);
      assert.equal(warnings.length, 1);
    } finally {
      await store.close();
    }
  });

  it('frees expired windows before evicting live ones', async () => {
    const clock = new ManualClock();
    const store = new MemoryWindowStore({ maxSensors: 2, ttlSeconds: 10, clock });
    try {
      await store.pushMany([reading('old')]);
      clock.advance(5_000);
      await store.pushMany([reading('live')]);
      clock.advance(6_000); // old has expired, live has not
      await store.pushMany([reading('new')]);
      assert.deepEqual((await store.activeSensors()).map((k) => k.sensor_id), ['live', 'new']);
    } finally {
      await store.close();
    }
  });

  it('sweep() drops expired windows nobody reads again', async () => {
    const clock = new ManualClock();
    const store = new MemoryWindowStore({ ttlSeconds: 1, clock });
    try {
      await store.pushMany([reading('a')]);
      clock.advance(1000);
      store.sweep();
      assert.equal((await store.activeSensors()).length, 1, 'exactly the TTL is not yet expired');
      clock.advance(1);
      store.sweep();
      assert.equal((await store.activeSensors()).length, 0);
    } finally {
      await store.close();
    }
  });

  it('refuses a size or TTL that makes no sense', () => {
    assert.throws(() => new MemoryWindowStore({ size: 0 }), RangeError);
    assert.throws(() => new MemoryWindowStore({ size: 1.5 }), RangeError);
    assert.throws(() => new MemoryWindowStore({ ttlSeconds: 0 }), RangeError);
  });

  it('hands out copies of context values', async () => {
    const store = new MemoryWindowStore();
    try {
      const row = { data_type: 'weather', metadata: { humidity: 40 } };
      await store.setContext('weather', row);
      row.metadata.humidity = 99;
      const got = (await store.getContext('weather')) as typeof row;
      assert.equal(got.metadata.humidity, 40);
      got.metadata.humidity = 1;
      assert.equal(((await store.getContext('weather')) as typeof row).metadata.humidity, 40);
      await assert.rejects(store.setContext('fn', () => 1), /JSON/);
    } finally {
      await store.close();
    }
  });
});
