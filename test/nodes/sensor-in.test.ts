/**
 * sensor-in against the local Mosquitto: the PUBACK is sent only after the spool commit is on disk
 * (a message whose append never commits, or whose commit is not yet synced, is redelivered to the
 * next session; the flow gets it at the commit), replay of the spool on
 * start (through sensor-validate and cold-store on SQLite: stored, dead-lettered, removed), and
 * flow control above maxPending.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import mqtt from 'mqtt';
import helper from 'node-red-node-test-helper';
import sensorInNode = require('../../nodes/sensor-in/sensor-in');
import validateNode = require('../../nodes/sensor-validate/sensor-validate');
import coldStoreNode = require('../../nodes/cold-store/cold-store');
import databaseNode = require('../../nodes/hypervolt-database/hypervolt-database');
import { DurableSubscriber } from '../../nodes/sensor-in/durable-subscriber';
import { Spool, type NewSpoolEntry, type SpoolEntry } from '../../nodes/shared/spool/spool';
import { openDatabase } from '../../nodes/shared/db';
import { waitFor } from '../support/fakes/node-utils';
import { MQTT_BROKER_URL, RUN_ID, TOPIC_PREFIX, dropMqttSession, requireService } from '../support/services';

helper.init(require.resolve('node-red'));

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = (what: string, cond: () => boolean, ms = 10_000) => waitFor(cond, what, ms);


async function publish(topic: string, payloads: string[]): Promise<void> {
  const c = await mqtt.connectAsync(MQTT_BROKER_URL, { clientId: `hvtest-pub-${RUN_ID}-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0 });
  for (const p of payloads) await c.publishAsync(topic, p, { qos: 1 });
  await c.endAsync();
}

/** A spool whose appends never commit (the process "dies" before the commit). */
class StuckSpool extends Spool {
  attempts = 0;
  override append(_e: NewSpoolEntry): Promise<number> {
    this.attempts++;
    return new Promise(() => {});
  }
}

/** A spool whose commits are never on disk (whenDurable never resolves: the process "dies" first). */
class UnsyncedSpool extends Spool {
  syncWaits = 0;
  override whenDurable(): Promise<void> {
    this.syncWaits++;
    return new Promise(() => {});
  }
}

/** A spool whose first WAL syncs fail (an I/O error), then work. */
class FailingSyncSpool extends Spool {
  constructor(
    file: string,
    public failures: number,
  ) {
    super(file);
  }
  override whenDurable(): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error('EIO: i/o error, fdatasync'));
    }
    return super.whenDurable();
  }
}

/** A spool whose first appends fail (disk full), then work. */
class FailingSpool extends Spool {
  failures: number;
  constructor(file: string, failures: number) {
    super(file);
    this.failures = failures;
  }
  override append(e: NewSpoolEntry): Promise<number> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(new Error('SQLITE_FULL: database or disk is full'));
    }
    return super.append(e);
  }
}

describe('sensor-in', function () {
  this.timeout(60_000);
  let dir: string;
  const sessions: string[] = [];
  const closers: Array<() => Promise<void>> = [];
  let n = 0;
  let serverStarted = false;
  const ids = () => {
    n++;
    const clientId = `hvtest-sensorin-${RUN_ID}-${n}`;
    sessions.push(clientId);
    return { clientId, topic: `${TOPIC_PREFIX}/t${n}/sensors/+/+`, base: `${TOPIC_PREFIX}/t${n}` };
  };

  before(async function () {
    await requireService(this, 'mqtt');
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-sensorin-'));
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c().catch(() => {});
    if (serverStarted) {
      // Only the node tests start the helper's server; stopping a stopped one throws.
      serverStarted = false;
      await helper.unload();
      await helper.stopServer();
    }
    for (const s of sessions.splice(0)) await dropMqttSession(s).catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A next session of `clientId` gets again the one message the last did not acknowledge, and acknowledges it. */
  async function redeliveredToNextSession(clientId: string, topic: string, file: string, payload: string): Promise<Spool> {
    const spool = new Spool(file);
    const got: string[] = [];
    const next = new DurableSubscriber({ url: MQTT_BROKER_URL, clientId, topic, spool, onMessage: (e) => got.push(e.payload.toString()) });
    closers.push(async () => {
      await next.close();
      spool.close();
    });
    await next.start();
    await until('the redelivery', () => got.length === 1);
    assert.deepEqual(got, [payload]);
    await until('the PUBACK', () => next.acked === 1);
    return spool;
  }

  it('acknowledges only after the spool commit: an uncommitted message is redelivered to the next session', async () => {
    const { clientId, topic, base } = ids();
    const stuck = new StuckSpool(path.join(dir, 'a.db'));
    const first = new DurableSubscriber({ url: MQTT_BROKER_URL, clientId, topic, spool: stuck, onMessage: () => {} });
    await first.start();
    await until('connected', () => first.connected);
    await wait(200); // the SUBACK
    await publish(`${base}/sensors/room/ldr`, ['{"n":1}']);
    await until('the append attempt', () => stuck.attempts === 1);
    await first.close(); // like a crash: the append never committed, no PUBACK went out
    assert.equal(first.acked, 0);

    const spool = await redeliveredToNextSession(clientId, topic, path.join(dir, 'b.db'), '{"n":1}');
    assert.equal(spool.count, 1, 'spooled before it was passed on');
    stuck.close();
  });

  it('passes a message on once committed but acknowledges it only once on disk: one not yet synced is redelivered to the next session', async () => {
    const { clientId, topic, base } = ids();
    const unsynced = new UnsyncedSpool(path.join(dir, 'u.db'));
    const early: string[] = [];
    const first = new DurableSubscriber({ url: MQTT_BROKER_URL, clientId, topic, spool: unsynced, onMessage: (e) => early.push(e.payload.toString()) });
    await first.start();
    await until('connected', () => first.connected);
    await wait(200); // the SUBACK
    await publish(`${base}/sensors/room/ldr`, ['{"n":3}']);
    await until('the message in the flow', () => early.length === 1);
    assert.equal(unsynced.count, 1, 'committed before it was passed on');
    assert.equal(unsynced.syncWaits, 1);
    await wait(300);
    assert.equal(first.acked, 0, 'no PUBACK before the sync');
    await first.close(); // like a crash before the disk had it
    unsynced.close();

    await redeliveredToNextSession(clientId, topic, path.join(dir, 'v.db'), '{"n":3}');
  });

  /** A subscriber on `spool` (closed after the test), connected, and one message published to it. */
  async function subscribeAndPublish(spool: Spool, payload: string) {
    const { clientId, topic, base } = ids();
    const got: string[] = [];
    const states: string[] = [];
    const sub = new DurableSubscriber({ url: MQTT_BROKER_URL, clientId, topic, spool, onMessage: (e) => got.push(e.payload.toString()), onState: (s) => states.push(s) });
    closers.push(async () => {
      await sub.close();
      spool.close();
    });
    await sub.start();
    await until('connected', () => sub.connected);
    await wait(200); // the SUBACK
    await publish(`${base}/sensors/room/ldr`, [payload]);
    return { sub, got, states };
  }

  it('does not acknowledge a message whose sync failed: spool-error, and the broker sends it again', async () => {
    const { sub, got, states } = await subscribeAndPublish(new FailingSyncSpool(path.join(dir, 's.db'), 1), '{"n":4}');
    await until('the delivery again after the failed sync', () => got.length === 2, 15_000);
    assert.ok(states.includes('spool-error'));
    assert.deepEqual(got, ['{"n":4}', '{"n":4}'], 'passed on twice (stored once downstream by its key)');
    await until('the PUBACK of the second delivery', () => sub.acked === 1);
    assert.ok(states.lastIndexOf('connected') > states.indexOf('spool-error'), 'the status recovers');
  });

  it('does not acknowledge a message whose append failed; the broker sends it again', async () => {
    const spool = new FailingSpool(path.join(dir, 'f.db'), 1);
    const { got, states } = await subscribeAndPublish(spool, '{"n":2}');
    await until('the delivery after the failure', () => got.length === 1, 15_000);
    assert.ok(states.includes('spool-error'));
    assert.deepEqual(got, ['{"n":2}']);
    assert.equal(spool.count, 1);
  });

  it('stops acknowledging and reading above maxPending (the broker keeps the rest), goes on below it', async () => {
    const { clientId, topic, base } = ids();
    const spool = new Spool(path.join(dir, 'p.db'));
    const old = spool.appendNow([1, 2, 3, 4, 5].map((i) => ({ topic: 'x', payload: Buffer.from(String(i)), receivedAt: i })));
    const got: string[] = [];
    // The flow is done with a new message at once (its entry goes): only the old five keep it paused.
    const onMessage = (e: SpoolEntry, replayed: boolean) => {
      if (replayed) return;
      got.push(e.payload.toString());
      spool.removeSoon(e.id);
    };
    const sub = new DurableSubscriber({ url: MQTT_BROKER_URL, clientId, topic, spool, maxPending: 5, onMessage });
    closers.push(async () => {
      await sub.close();
      spool.close();
    });
    await sub.start();
    await until('connected', () => sub.connected);
    await wait(200);
    const sent = Array.from({ length: 60 }, (_, i) => `m${i}`);
    await publish(`${base}/sensors/room/ldr`, sent);
    await until('held', () => sub.heldCount === 1);
    await wait(300);
    // One message held; mqtt.js was not told it was handled, so it took no further packet: the
    // other 59 stay with the broker (or in the socket's buffers), not in this process's memory.
    assert.equal(sub.heldCount, 1);
    assert.equal(sub.received, 1);
    assert.ok(sub.isPaused);
    assert.equal(sub.acked, 0);
    assert.equal(spool.count, 5, 'nothing spooled while paused');
    spool.remove(old.slice(0, 2));
    await until('resumed', () => got.length === sent.length);
    assert.deepEqual(got, sent, 'all of them, in order');
    assert.equal(sub.isPaused, false);
    await until('acked', () => sub.acked === sent.length);
  });

  for (const output of ['message', 'batch'] as const) {
    it(`replays the spool on start through validate and cold-store: stored, dead-lettered, removed (output: ${output})`, async () => {
      const { clientId, base } = ids();
      const spoolFile = path.join(dir, 'spool.db');
      const dbFile = path.join(dir, 'readings.db');
      const ts = new Date(Date.now() - 60_000).toISOString();
      const pre = new Spool(spoolFile);
      pre.appendNow([
        { topic: `${base}/sensors/room/ldr`, payload: Buffer.from(JSON.stringify({ sensor_type: 'ldr', sensor_id: 'l1', value: 5, timestamp: ts })), receivedAt: Date.now() },
        { topic: `${base}/sensors/room/ldr`, payload: Buffer.from('{broken'), receivedAt: Date.now() },
        {
          topic: `${base}/sensors/room/ldr`,
          payload: Buffer.from(JSON.stringify([{ sensor_type: 'ldr', sensor_id: 'l2', value: 6, timestamp: ts }, { sensor_type: 'ldr', sensor_id: 'l3', value: -1, timestamp: ts }])),
          receivedAt: Date.now(),
        },
      ]);
      pre.close();
      const flow = [
        { id: 'in', type: 'sensor-in', url: MQTT_BROKER_URL, clientId, topic: `${base}/sensors/+/+`, qos: '1', protocolVersion: '5', spoolPath: spoolFile, output, wires: [['v', 'seen']] },
        { id: 'seen', type: 'helper' },
        { id: 'v', type: 'sensor-validate', mode: 'split', retentionDays: 7, wires: [['cs'], []] },
        { id: 'cs', type: 'cold-store', database: 'db', operation: 'write-readings', flushMs: 20, wires: [[]] },
        { id: 'db', type: 'hypervolt-database', url: `sqlite:${dbFile}` },
      ];
      await helper.startServer();
      serverStarted = true;
      await helper.load([sensorInNode, validateNode, coldStoreNode, databaseNode], flow);
      const seen: Array<Record<string, unknown>> = [];
      helper.getNode('seen').on('input', (m: Record<string, unknown>) => seen.push(m));
      // The spool file is shared with the node: read it through a second connection.
      const check = new Spool(spoolFile);
      closers.push(async () => check.close());
      await until('the spool drained', () => check.pending().length === 0);
      if (output === 'batch') {
        // The replayed entries went on together: one msg, each entry with its topic, payload and id.
        assert.equal(seen.length, 1);
        assert.equal(seen[0].batch, 'mqtt');
        const items = seen[0].payload as Array<{ topic: string; payload: Buffer; spoolId: number; receivedAt: number }>;
        assert.deepEqual(items.map((m) => m.payload.toString().slice(0, 7)), ['{"senso', '{broken', '[{"sens']);
        assert.ok(items.every((m) => m.topic === `${base}/sensors/room/ldr` && m.spoolId > 0 && m.receivedAt > 0));
      } else {
        assert.equal(seen.length, 3);
      }
      const letters = check.deadLetters();
      assert.equal(letters.length, 2);
      assert.match(letters.map((l) => l.reason).join('|'), /JSON/);
      assert.match(letters.map((l) => l.reason).join('|'), /RANGE|value/i);
      await helper.unload();
      const db = await openDatabase(`sqlite:${dbFile}`);
      try {
        const page = await db.readings.list({ page: 1, pageSize: 10 });
        const ids2 = page.rows.map((r) => r.sensor_id).sort();
        assert.deepEqual(ids2, ['l1', 'l2']);
      } finally {
        await db.close();
      }
    });
  }
});
