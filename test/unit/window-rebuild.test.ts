import assert from 'assert/strict';
import { MemoryWindowStore } from '../../nodes/hot-window/memory-window-store';
import { StoreStateHolder } from '../../nodes/hot-window/store-state';
import { WindowRebuilder, type RebuildRequest, type RebuildTarget } from '../../nodes/hot-window/window-rebuild';
import type { StoreState } from '../../nodes/hot-window/window-store';
import type { Reading } from '../../nodes/shared/types';

const T0 = Date.parse('2026-01-26T08:00:00.000Z');
const reading = (sensor_id: string, s: number): Reading => ({
  sensor_type: 'ldr', sensor_id, value: s, unit: 'lux', location: 'x', timestamp: new Date(T0 + s * 1000).toISOString(),
});

/** A real in-process store whose connection state the test drives (as a Redis client's would change). */
function target(size = 5): RebuildTarget & { memory: MemoryWindowStore; set(state: StoreState): void } {
  const holder = new StoreStateHolder('connected');
  const t = {
    memory: new MemoryWindowStore({ size }),
    size,
    get state() {
      return holder.state;
    },
    onStateChange: (l: Parameters<RebuildTarget['onStateChange']>[0]) => holder.on(l),
    restoreMany: (r: readonly Reading[]) => (holder.state === 'connected' ? t.memory.restoreMany(r) : Promise.reject(new Error('store down'))),
    set: (s: StoreState) => holder.set(s),
  };
  return t;
}

/**
 * The cold store: every reading of seconds 0..stored-1 per sensor; a query answers, for each
 * sensor asked, its newest `limit` readings older than its `before` (as newestBefore does).
 */
function coldStore(stored: number) {
  const calls: Array<{ sensors: string[]; limit: number }> = [];
  let failing = false;
  let gate: Promise<void> = Promise.resolve();
  let running = 0;
  let peak = 0;
  return {
    calls,
    get peak() {
      return peak;
    },
    fail: (on: boolean) => (failing = on),
    hold: (p: Promise<void>) => (gate = p),
    recent: async (sensors: readonly RebuildRequest[], limit: number) => {
      calls.push({ sensors: sensors.map((s) => s.key.sensor_id), limit });
      running++;
      peak = Math.max(peak, running);
      try {
        await gate;
        if (failing) throw new Error('database unavailable');
        return sensors.flatMap(({ key, before }) =>
          Array.from({ length: stored }, (_, i) => reading(key.sensor_id, i))
            .filter((r) => Date.parse(r.timestamp) < Date.parse(before))
            .reverse()
            .slice(0, limit),
        );
      } finally {
        running--;
      }
    },
  };
}

const quiet = () => {
  const warnings: string[] = [];
  return { warnings, logger: { log: () => undefined, warn: (m: string) => warnings.push(m) } };
};
const timestamps = async (t: ReturnType<typeof target>, id: string) =>
  (await t.memory.read({ sensor_type: 'ldr', sensor_id: id })).readings.map((r) => (Date.parse(r.timestamp) - T0) / 1000);

describe('WindowRebuilder', () => {
  it('the first push of a sensor asks for its newest N stored readings older than the push once, and fills the window with them', async () => {
    const t = target(5);
    const cold = coldStore(20);
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger: quiet().logger });
    await t.memory.pushMany([reading('a', 20)]);
    r.notice([reading('a', 20)]);
    await r.idle();
    assert.deepEqual(cold.calls, [{ sensors: ['a'], limit: 5 }]);
    assert.deepEqual(await timestamps(t, 'a'), [16, 17, 18, 19, 20]);
    // later pushes: no query
    for (let s = 21; s < 25; s++) r.notice([reading('a', s)]);
    await r.idle();
    assert.equal(cold.calls.length, 1);
    await r.close();
  });

  it('leaves out stored readings not older than the push that found the sensor (they come through pushes)', async () => {
    const t = target(10);
    const cold = coldStore(8); // seconds 0..7 stored already
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger: quiet().logger });
    r.notice([reading('a', 5)]); // found at second 5 (before its own push lands)
    await r.idle();
    assert.deepEqual(await timestamps(t, 'a'), [0, 1, 2, 3, 4]);
    // So the push of second 5 is still new to the store (broadcast as such).
    assert.deepEqual(await t.memory.pushMany([reading('a', 5)]), [true]);
    await r.close();
  });

  it('an older reading stored before its own push ran (another instance, a slow hot path) is restored, and its push is still new', async () => {
    const t = target(10);
    const cold = coldStore(8); // seconds 0..7 stored; the pushes of 3 and 4 have not run yet
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger: quiet().logger });
    assert.deepEqual(await t.memory.pushMany([reading('a', 0), reading('a', 1), reading('a', 2)]), [true, true, true]);
    await t.memory.pushMany([reading('a', 7)]);
    r.notice([reading('a', 7)]);
    await r.idle();
    assert.deepEqual(await timestamps(t, 'a'), [0, 1, 2, 3, 4, 5, 6, 7], 'the window is whole at once');
    // The late pushes: each new (so broadcast); a real redelivery of one already pushed is not.
    assert.deepEqual(await t.memory.pushMany([reading('a', 3), reading('a', 4), reading('a', 2)]), [true, true, false]);
    assert.deepEqual(await t.memory.pushMany([reading('a', 3)]), [false], 'pushed once, then a redelivery');
    await r.close();
  });

  it('one query for every new sensor of a push, and a reconnect of the store makes every sensor rebuild again', async () => {
    const t = target(5);
    const cold = coldStore(3);
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger: quiet().logger });
    r.notice([reading('a', 9), reading('b', 9), reading('a', 10)]);
    await r.idle();
    assert.deepEqual(cold.calls.map((c) => c.sensors), [['a', 'b']]);
    t.set('disconnected');
    r.notice([reading('a', 11)]); // still the old connection's Set: nothing
    await r.idle();
    assert.equal(cold.calls.length, 1);
    t.set('connected');
    await t.memory.close(); // the windows are gone with the restart
    t.memory = new MemoryWindowStore({ size: 5 });
    r.notice([reading('a', 12)]);
    r.notice([reading('a', 13)]);
    await r.idle();
    assert.deepEqual(cold.calls.map((c) => c.sensors), [['a', 'b'], ['a']]);
    assert.deepEqual(await timestamps(t, 'a'), [0, 1, 2]);
    await r.close();
  });

  it('asks for at most `batch` sensors per query, runs at most `concurrency` queries at once and queues the rest', async () => {
    const t = target(5);
    const cold = coldStore(2);
    let open!: () => void;
    cold.hold(new Promise<void>((res) => (open = res)));
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger: quiet().logger, concurrency: 2, batch: 3 });
    r.notice(Array.from({ length: 10 }, (_, i) => reading(`s${i}`, 5)));
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(cold.calls.map((c) => c.sensors), [['s0', 's1', 's2'], ['s3', 's4', 's5']]);
    r.notice([reading('s10', 6)]); // queued behind the others
    open();
    await r.idle();
    assert.deepEqual(cold.calls.slice(2).map((c) => c.sensors), [['s6', 's7', 's8'], ['s9', 's10']]);
    assert.equal(cold.peak, 2);
    for (let i = 0; i < 10; i++) assert.deepEqual(await timestamps(t, `s${i}`), [0, 1]);
    await r.close();
  });

  it('a failed rebuild is logged once and retried on a later push of the sensor', async () => {
    const t = target(5);
    const cold = coldStore(3);
    const { warnings, logger } = quiet();
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger });
    cold.fail(true);
    r.notice([reading('a', 9), reading('b', 9)]);
    await r.idle();
    r.notice([reading('a', 10)]);
    await r.idle();
    assert.deepEqual(cold.calls.map((c) => c.sensors), [['a', 'b'], ['a']]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /ldr:a and 1 more\): database unavailable/);
    cold.fail(false);
    r.notice([reading('a', 11), reading('b', 11)]);
    await r.idle();
    assert.deepEqual(await timestamps(t, 'a'), [0, 1, 2]);
    assert.deepEqual(await timestamps(t, 'b'), [0, 1, 2]);
    r.notice([reading('a', 12)]);
    await r.idle();
    assert.equal(cold.calls.length, 3);
    await r.close();
  });

  it('a bounded queue: a sensor that finds it full is left for a later push', async () => {
    const t = target(5);
    const cold = coldStore(1);
    let open!: () => void;
    cold.hold(new Promise<void>((res) => (open = res)));
    const r = new WindowRebuilder({ store: t, recent: cold.recent, logger: quiet().logger, concurrency: 1, batch: 1, maxQueued: 2 });
    r.notice([reading('a', 5), reading('b', 5), reading('c', 5), reading('d', 5)]);
    assert.equal(r.tracked, 2); // a and b queued (then a started), c and d refused
    open();
    await r.idle();
    r.notice([reading('c', 6), reading('d', 6)]);
    await r.idle();
    assert.deepEqual(cold.calls.map((c) => c.sensors), [['a'], ['b'], ['c'], ['d']]);
    await r.close();
  });
});
