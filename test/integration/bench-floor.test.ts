/**
 * The bench's floor (bench/floor-pipeline.ts) must do the work it stands in for, or the bench's
 * comparison means nothing: every reading into PostgreSQL, into its Redis window (trimmed to the
 * window size, oldest first) and to each WebSocket client as a sensor_update; a payload that is
 * not a reading is dropped without stopping the rest. Runs the compiled script on the real services.
 */
import assert from 'assert/strict';
import { spawn, type ChildProcess } from 'child_process';
import path from 'path';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import { Pool } from 'pg';
import WebSocket from 'ws';
import { openDatabase } from '../../nodes/shared/db';
import { freePort } from '../support/app';
import { createTestDatabase, deleteRedisKeys, dropMqttSession, MQTT_BROKER_URL, REDIS_PREFIX, REDIS_URL, RUN_ID, TOPIC_PREFIX, requireService } from '../support/services';

const SCRIPT = path.resolve(__dirname, '..', '..', 'bench', 'floor-pipeline.js');

describe('bench floor pipeline (real PostgreSQL, Redis, Mosquitto)', function () {
  this.timeout(60_000);
  const prefix = `${REDIS_PREFIX}floor:`;
  const topicPrefix = `${TOPIC_PREFIX}_floor`;
  const clientId = `hvtest-${RUN_ID}-floor`;
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let child: ChildProcess | undefined;
  let output = '';
  let port = 0;
  let redis: Redis | undefined;

  before(async function () {
    await requireService(this, 'postgres');
    await requireService(this, 'redis');
    await requireService(this, 'mqtt');
    db = await createTestDatabase('floor');
    await (await openDatabase(db.url)).close();
    redis = new Redis(REDIS_URL);
    port = await freePort();
    child = spawn(process.execPath, [SCRIPT], {
      env: {
        ...process.env,
        HVB_MQTT_PORT: String(Number(new URL(MQTT_BROKER_URL).port) || 1883),
        HVB_CLIENT_ID: clientId,
        HVB_TOPIC: `${topicPrefix}/sensors/+/+`,
        HVB_REDIS_URL: REDIS_URL,
        HVB_REDIS_PREFIX: prefix,
        HVB_WINDOW_SIZE: '2',
        HVB_DATABASE_URL: db.url,
        HVB_PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      assert.equal(child.exitCode, null, `the floor exited: ${output}`);
      const ready = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status === 200, () => false);
      if (ready) break;
      assert.ok(Date.now() < deadline, `the floor was not ready within 30 s: ${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await dropMqttSession(clientId).catch(() => undefined);
    if (redis) {
      await deleteRedisKeys(redis, `${prefix}*`);
      redis.disconnect();
    }
    await db?.drop();
  });

  it('stores, windows and broadcasts every reading, and drops what is not one', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/sensors/`);
    const got: { type: string; data: { sensor_id: string; value: number; timestamp: string } }[] = [];
    ws.on('message', (d: Buffer) => got.push(JSON.parse(d.toString())));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const pub = await mqtt.connectAsync(MQTT_BROKER_URL, { clientId: `${clientId}-pub` });
    const t0 = Date.parse('2026-11-27T10:00:00.000Z');
    const topic = `${topicPrefix}/sensors/lab/power`;
    const reading = (id: string, value: number, k: number) =>
      JSON.stringify({ sensor_type: 'power', sensor_id: id, value, unit: 'W', location: 'lab', timestamp: new Date(t0 + k * 1000).toISOString() });
    await pub.publishAsync(topic, reading('a', 1, 0), { qos: 1 });
    await pub.publishAsync(topic, 'not json', { qos: 1 });
    await pub.publishAsync(topic, JSON.stringify({ sensor_type: 'power', sensor_id: 'a', value: 'x', timestamp: 'soon' }), { qos: 1 });
    await pub.publishAsync(topic, reading('a', 2, 1), { qos: 1 });
    await pub.publishAsync(topic, reading('b', 7, 0), { qos: 1 });
    await pub.publishAsync(topic, reading('a', 3, 2), { qos: 1 });
    await pub.endAsync();

    const pool = new Pool({ connectionString: db!.url });
    try {
      const deadline = Date.now() + 10_000;
      let rows: { sensor_id: string; value: number }[] = [];
      while (Date.now() < deadline && (rows.length < 4 || got.length < 4)) {
        await new Promise((r) => setTimeout(r, 100));
        rows = (await pool.query<{ sensor_id: string; value: number }>('SELECT sensor_id, value FROM sensor_readings ORDER BY sensor_id, timestamp')).rows;
      }
      assert.deepEqual(rows, [
        { sensor_id: 'a', value: 1 },
        { sensor_id: 'a', value: 2 },
        { sensor_id: 'a', value: 3 },
        { sensor_id: 'b', value: 7 },
      ]);
      assert.deepEqual(
        got.map((m) => [m.type, m.data.sensor_id, m.data.value, m.data.timestamp]),
        [
          ['sensor_update', 'a', 1, '2026-11-27T10:00:00.000Z'],
          ['sensor_update', 'a', 2, '2026-11-27T10:00:01.000Z'],
          ['sensor_update', 'b', 7, '2026-11-27T10:00:00.000Z'],
          ['sensor_update', 'a', 3, '2026-11-27T10:00:02.000Z'],
        ],
      );
      // The window of a: the newest 2 (HVB_WINDOW_SIZE), oldest first; b: its one reading.
      const window = async (id: string) => (await redis!.lrange(`${prefix}window:power:${id}`, 0, -1)).map((s) => JSON.parse(s));
      assert.deepEqual(await window('a'), [
        { value: 2, timestamp: '2026-11-27T10:00:01.000Z' },
        { value: 3, timestamp: '2026-11-27T10:00:02.000Z' },
      ]);
      assert.deepEqual(await window('b'), [{ value: 7, timestamp: '2026-11-27T10:00:00.000Z' }]);
      assert.equal(child!.exitCode, null, 'the floor still runs');
    } finally {
      ws.terminate();
      await pool.end();
    }
  });
});
