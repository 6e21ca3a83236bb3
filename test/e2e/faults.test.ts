/**
 * Fault suite (npm run test:faults): the app with sensor-in on PostgreSQL, Redis and the local
 * Mosquitto. The app is killed with SIGKILL mid-stream and restarted on the same DATA_DIR and
 * client id: every acknowledged reading is stored exactly once. Then bad payloads interleaved 1:1
 * with good ones: every bad one is dead-lettered with a reason, every good one stored, no crash.
 *
 * The second suite simulates PostgreSQL / Redis restarts and hangs with a TCP fault proxy
 * (test/support/fault-proxy.ts) instead of `pg_ctlcluster ... restart -m immediate` /
 * `redis-cli shutdown nosave`, which would break the other suites sharing these services on this
 * machine (a Redis restart's data loss is simulated by deleting this run's keys). The hang lasts
 * HV_FAULT_HANG_SECONDS (default 15; the figure is 60). Note Mosquitto's default `max_queued_messages` (1000) per offline session: the test
 * publishes fewer than that while the app is down, as the broker, not the app, would drop the rest.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import Database from 'better-sqlite3';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import { Client } from 'pg';
import WebSocket from 'ws';
import { startBroker, type Broker } from '../../bench/broker';
import { startApp, type RunningApp } from '../support/app';
import { postJson } from '../support/e2e';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy';
import { canRunPrivatePostgres, startPrivatePostgres, startPrivateRedis, type PrivatePostgres, type PrivateRedis } from '../support/private-services';
import { createTestDatabase, dropMqttSession, REDIS_PREFIX, REDIS_URL, requireService, RUN_ID, TOPIC_PREFIX } from '../support/services';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 250 ms; on time-out the error ends with the app's last log lines. */
async function pollUntil(what: string, cond: () => Promise<boolean>, ms: number, app: () => RunningApp | null): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}\n${app()?.logs().slice(-3000)}`);
    await wait(250);
  }
}

interface Counters {
  acked: number;
  ackTimes: number[];
}

/** A WebSocket client of `url`, open. */
async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** How many of `times` fall in each second from `t0` to now. */
function perSecond(times: readonly number[], t0: number): number[] {
  return Array.from({ length: Math.ceil((Date.now() - t0) / 1000) }, (_, k) => times.filter((t) => t >= t0 + k * 1000 && t < t0 + (k + 1) * 1000).length);
}

/** Publishes QoS 1 at `rate` per second (ticks of 50 ms); resolves when every PUBACK is in. */
async function publishAt(client: mqtt.MqttClient, items: Array<[string, string]>, rate: number, counters: Counters): Promise<void> {
  const perTick = Math.max(1, Math.round(rate / 20));
  const acks: Array<Promise<unknown>> = [];
  const t0 = Date.now();
  for (let i = 0, tick = 0; i < items.length; i += perTick, tick++) {
    for (const [t, p] of items.slice(i, i + perTick)) {
      acks.push(
        client.publishAsync(t, p, { qos: 1 }).then(() => {
          counters.acked++;
          counters.ackTimes.push(Date.now());
        }),
      );
    }
    const due = t0 + (tick + 1) * 50 - Date.now();
    if (due > 0) await wait(due);
  }
  await Promise.all(acks);
}

/** The pid of the app started on `dataDir` (our own child: found by its DATA_DIR). */
function appPid(dataDir: string): number {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8');
      const status = fs.readFileSync(`/proc/${d}/status`, 'utf8');
      const ppid = Number(/PPid:\s+(\d+)/.exec(status)?.[1]);
      if (ppid === process.pid && env.split('\0').includes(`DATA_DIR=${dataDir}`)) return Number(d);
    } catch {
      // gone or not ours
    }
  }
  throw new Error('app process not found');
}

/** Dead letters in the spool of `dataDir` (0 before the spool exists). */
function deadLettersIn(dataDir: string): number {
  const file = path.join(dataDir, 'spool.db');
  if (!fs.existsSync(file)) return 0;
  const s = new Database(file, { readonly: true });
  try {
    return (s.prepare('SELECT count(*) AS n FROM dead_letters').get() as { n: number }).n;
  } finally {
    s.close();
  }
}

function memoryPeakKb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

describe('faults: durable ingest (sensor-in)', function () {
  this.timeout(180_000);
  let db: { url: string; drop: () => Promise<void> } | null = null;
  let pg: Client;
  let app: RunningApp | null = null;
  let pub: mqtt.MqttClient;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-faults-'));
  const clientId = `hvtest-faults-${RUN_ID}`;
  const base = new Date(Date.now() - 10 * 60_000).getTime();
  let env: Record<string, string>;

  before(async function () {
    await requireService(this, 'postgres');
    await requireService(this, 'redis');
    await requireService(this, 'mqtt');
    db = await createTestDatabase('faults');
    pg = new Client({ connectionString: db.url });
    await pg.connect();
    env = {
      MQTT_URL: 'mqtt://127.0.0.1:1883',
      MQTT_CLIENT_ID: clientId,
      MQTT_TOPIC_PREFIX: TOPIC_PREFIX,
      DATABASE_URL: db.url,
      REDIS_URL,
      REDIS_KEY_PREFIX: REDIS_PREFIX + 'faults:',
      LOG_LEVEL: 'warn',
    };
    pub = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { clientId: `hvtest-faults-pub-${RUN_ID}`, reconnectPeriod: 1000 });
  });

  after(async () => {
    await app?.stop({ keepData: true }).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await pg?.end().catch(() => {});
    await db?.drop().catch(() => {});
    // End the broker sessions the app left (persistent by design).
    for (const id of [clientId, `${clientId}-sensors`]) await dropMqttSession(id, 'mqtt://127.0.0.1:1883').catch(() => {});
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const topic = (location: string, type = 'ldr') => `${TOPIC_PREFIX}/sensors/${location}/${type}`;
  const good = (key: string, i: number) =>
    JSON.stringify({ sensor_type: 'ldr', sensor_id: key, value: i, unit: 'lux', timestamp: new Date(base + i).toISOString() });

  async function publishAll(items: Array<[string, string | Buffer]>, counters: { acked: number }): Promise<void> {
    const window = 50;
    for (let i = 0; i < items.length; i += window) {
      await Promise.all(
        items.slice(i, i + window).map(([t, p]) => pub.publishAsync(t, p, { qos: 1 }).then(() => counters.acked++)),
      );
    }
  }

  async function storedCount(prefix: string): Promise<{ rows: number; distinct: number }> {
    const r = await pg.query(
      `SELECT count(*)::int AS rows, count(DISTINCT (sensor_type, sensor_id, timestamp))::int AS distinct
         FROM sensor_readings WHERE sensor_id LIKE $1`,
      [`${prefix}%`],
    );
    return r.rows[0] as { rows: number; distinct: number };
  }

  function deadLetters(): Array<{ topic: string; reason: string }> {
    const file = path.join(dataDir, 'spool.db');
    const s = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return s.prepare('SELECT topic, reason FROM dead_letters').all() as Array<{ topic: string; reason: string }>;
    } finally {
      s.close();
    }
  }

  const waitFor = (what: string, cond: () => Promise<boolean>, ms: number) => pollUntil(what, cond, ms, () => app);

  it('kill -9 mid-stream and restart: 5 000 QoS 1 readings, lost 0, duplicates 0', async () => {
    app = await startApp(env, { dataDir });
    await wait(1000); // subscribed
    assert.ok(fs.existsSync(path.join(dataDir, 'spool.db')), 'the spool lives in DATA_DIR');
    const N = 5000;
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('kill_room'), good(`k${i % 50}`, i)]);
    const counters = { acked: 0 };
    const t0 = Date.now();
    await publishAll(items.slice(0, 2000), counters);
    const pid = appPid(dataDir);
    const peakBefore = memoryPeakKb(pid);
    process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    await app.stop({ keepData: true });
    // The broker keeps these for the session (fewer than its max_queued_messages).
    await publishAll(items.slice(2000, 2600), counters);
    app = await startApp(env, { dataDir });
    const upAt = Date.now();
    await publishAll(items.slice(2600), counters);
    await waitFor('every reading stored', async () => (await storedCount('k')).rows >= N, 90_000);
    const recoveredAt = Date.now();
    const s = await storedCount('k');
    const pending = () => {
      const sp = new Database(path.join(dataDir, 'spool.db'), { readonly: true });
      try {
        return (sp.prepare('SELECT count(*) AS n FROM spool').get() as { n: number }).n;
      } finally {
        sp.close();
      }
    };
    await waitFor('the spool drained', async () => pending() === 0, 10_000);
    const peak = Math.max(peakBefore, memoryPeakKb(appPid(dataDir)));
    // eslint-disable-next-line no-console
    console.log(
      `      kill -9: attempted ${N}, acknowledged ${counters.acked}, stored ${s.distinct}, lost ${N - s.distinct}, ` +
        `duplicates ${s.rows - s.distinct}, dead-lettered ${deadLetters().length}, spool pending ${pending()}, ` +
        `restart ${upAt - killedAt} ms, all stored ${recoveredAt - t0} ms after the first publish, peak RSS ${Math.round(peak / 1024)} MiB`,
    );
    assert.equal(counters.acked, N);
    assert.equal(s.distinct, N, 'lost 0');
    assert.equal(s.rows, s.distinct, 'duplicates 0');
  });

  it('300 bad payloads interleaved 1:1 with good ones: every bad one dead-lettered with a reason, every good one stored', async () => {
    assert.ok(app, 'the app from the previous test');
    const lettersBefore = deadLetters().length;
    const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${appPid(dataDir)}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
    const rssBefore = rssMiB();
    const now = Date.now();
    const deep = (d: number): unknown => (d === 0 ? 1 : { a: deep(d - 1) });
    const bads: Array<(loc: string) => [string, string | Buffer]> = [
      (l) => [topic(l), '{"sensor_type": "ldr", "sensor_id": '],
      (l) => [topic(l), Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80])],
      (l) => [topic(l), '{"sensor_type": "ldr", "sensor_id": "x", "value": NaN}'],
      (l) => [topic(l), '{"sensor_type": "ldr", "sensor_id": "x", "value": 1e999}'],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: true })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: 1, timestamp: '1970-01-01T00:00:00Z' })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: 1, timestamp: '2100-01-01T00:00:00Z' })],
      (l) => [topic(l), '{"sensor_type": "ldr", "sensor_id": "x", "value": 1, "__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}, "sensor_idx": {"__proto__": {"a": 1}}, "timestamp": 5}'],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'a/b+#', value: 1 })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'nul\u0000id', value: 1 })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'ctl\u0007\u001b', value: 1 })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'zw\u200bsp', value: 1 })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x'.repeat(70_000), value: 1 })],
      (l) => [topic(l), JSON.stringify(deep(200))],
      (l) => [topic(l, 'humidity'), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: 1 })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: 1, location: 'elsewhere' })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: -5 })],
      (l) => [topic(l), JSON.stringify({ sensor_type: 'ldr', sensor_id: 'x', value: '12abc' })],
      (l) => [topic(l), JSON.stringify([])],
      (l) => [topic(l), 'null'],
    ];
    const items: Array<[string, string | Buffer]> = [];
    for (let i = 0; i < 300; i++) {
      items.push(bads[i % bads.length](`bad_${i}`));
      items.push([topic('good_room'), JSON.stringify({ sensor_type: 'ldr', sensor_id: `g${i}`, value: i, timestamp: new Date(now - 60_000 + i).toISOString() })]);
    }
    // Poison rows: valid for the contract, refused by PostgreSQL (NUL in text): isolated from their
    // batch (bisect) and dead-lettered with the database's error.
    for (let i = 0; i < 10; i++) {
      items.splice(i * 60, 0, [topic(`poison_${i}`), JSON.stringify({ sensor_type: 'ldr', sensor_id: `p${i}`, value: 1, unit: 'lu\u0000x' })]);
    }
    const counters = { acked: 0 };
    await publishAll(items, counters);
    await waitFor('every good reading stored', async () => (await storedCount('g')).rows >= 300, 60_000);
    const badTopics = () => new Set(deadLetters().slice(lettersBefore).map((l) => l.topic).filter((t) => t.includes('/bad_')));
    await waitFor('every bad payload dead-lettered', async () => badTopics().size >= 300, 30_000);
    const poison = () => deadLetters().slice(lettersBefore).filter((l) => l.topic.includes('/poison_'));
    await waitFor('every poison row dead-lettered', async () => poison().length >= 10, 30_000);
    const letters = deadLetters().slice(lettersBefore);
    const s = await storedCount('g');
    await wait(2000);
    const rssAfter = rssMiB();
    const health = await fetch(`${app!.url}/api/health/`).then((r) => r.status);
    // eslint-disable-next-line no-console
    console.log(
      `      bad payloads: attempted ${items.length} (300 bad, 10 poison, 300 good), acknowledged ${counters.acked}, stored ${s.distinct}, ` +
        `lost ${300 - s.distinct}, duplicates ${s.rows - s.distinct}, dead-lettered ${letters.length} (${badTopics().size} bad messages, ` +
        `${poison().length} poison rows refused by PostgreSQL: "${poison()[0]?.reason}"), health ${health}; ` +
        `RSS ${Math.round(rssBefore)} MiB before, ${Math.round(rssAfter)} MiB after`,
    );
    // Nothing of the bad input is kept: memory back to where it was, give or take what V8 has not
    // collected yet (the payloads themselves are about 1.2 MB).
    assert.ok(rssAfter - rssBefore < 64, `memory back to baseline (${Math.round(rssBefore)} → ${Math.round(rssAfter)} MiB)`);
    assert.equal(counters.acked, 610);
    assert.equal((await storedCount('p')).rows, 0, 'poison rows are not stored');
    for (const l of poison()) assert.match(l.reason, /0x00|null|invalid byte/i, 'with the database error');
    assert.equal(s.distinct, 300);
    assert.equal(s.rows, 300);
    assert.equal(badTopics().size, 300, 'every bad message has a dead letter');
    for (const l of letters) assert.ok(l.reason.length > 0, 'with a reason');
    assert.equal(health, 200, 'no crash, still healthy');
  });
});

/**
 * Dependencies failing under load: PostgreSQL and Redis behind TCP fault proxies
 * (test/support/fault-proxy.ts: the services are shared with other runs on this machine, so they
 * are never restarted; a cut + refuse is a restart as the app sees it, a stall is a hang), the
 * broker a private Mosquitto that queues without limit (bench/broker.ts), so a reading is lost
 * only if the pipeline loses it.
 */
describe('faults: dependencies down, kills and redeploys (fault proxies, private broker)', function () {
  this.timeout(180_000);
  const HANG_SECONDS = Number(process.env.HV_FAULT_HANG_SECONDS) || 15;
  // The full run: HV_FAULT_READINGS=100000 HV_FAULT_HANG_SECONDS=60 (README, Guarantees).
  const READINGS = Number(process.env.HV_FAULT_READINGS) || 20_000;
  let db: { url: string; drop: () => Promise<void> } | null = null;
  let pg: Client;
  let redis: Redis;
  let broker: Broker | null = null;
  let pgProxy: FaultProxy | null = null;
  let redisProxy: FaultProxy | null = null;
  let app: RunningApp | null = null;
  let pub: mqtt.MqttClient;
  let peakKb = 0;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-faults2-'));
  const dataDir = path.join(tmp, 'data');
  const clientId = `hvtest-faults2-${RUN_ID}`;
  const redisPrefix = REDIS_PREFIX + 'faults2:';
  const base = Date.now() - 20 * 60_000;
  let env: Record<string, string>;

  before(async function () {
    await requireService(this, 'postgres');
    await requireService(this, 'redis');
    fs.mkdirSync(dataDir);
    db = await createTestDatabase('faults2');
    pg = new Client({ connectionString: db.url });
    await pg.connect();
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
    await redis.connect();
    broker = await startBroker(tmp, { maxInflight: 100, persistence: true });
    pgProxy = await startFaultProxy(db.url, 5432);
    redisProxy = await startFaultProxy(REDIS_URL, 6379);
    env = {
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: clientId,
      MQTT_TOPIC_PREFIX: TOPIC_PREFIX,
      DATABASE_URL: pgProxy.url(db.url),
      REDIS_URL: redisProxy.url(REDIS_URL),
      REDIS_KEY_PREFIX: redisPrefix,
      LOG_LEVEL: 'warn',
    };
    pub = await mqtt.connectAsync(broker.url, { clientId: `hvtest-faults2-pub-${RUN_ID}`, reconnectPeriod: 1000 });
    app = await startApp(env, { dataDir });
    await wait(1000); // subscribed
  });

  after(async () => {
    await app?.stop({ keepData: true }).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await pgProxy?.close();
    await redisProxy?.close();
    await broker?.stop().catch(() => {});
    await pg?.end().catch(() => {});
    await db?.drop().catch(() => {});
    if (redis) {
      await deleteAppKeys().catch(() => {});
      redis.disconnect();
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Deletes the app's hot windows (only this run's prefix): what a `shutdown nosave` restart loses. */
  async function deleteAppKeys(): Promise<number> {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await redis.del(...keys);
    } while (cursor !== '0');
    return n;
  }

  const topic = (location: string) => `${TOPIC_PREFIX}/sensors/${location}/ldr`;
  const reading = (id: string, i: number) =>
    JSON.stringify({ sensor_type: 'ldr', sensor_id: id, value: i % 1000, unit: 'lux', timestamp: new Date(base + i).toISOString() });

  /** `publishAt` on this describe's publisher. */
  const publishPaced = (items: Array<[string, string]>, rate: number, counters: Counters) => publishAt(pub, items, rate, counters);

  async function stored(prefix: string): Promise<{ rows: number; distinct: number }> {
    const r = await pg.query(
      `SELECT count(*)::int AS rows, count(DISTINCT (sensor_type, sensor_id, timestamp))::int AS distinct
         FROM sensor_readings WHERE starts_with(sensor_id, $1)`,
      [prefix],
    );
    return r.rows[0] as { rows: number; distinct: number };
  }

  const waitFor = (what: string, cond: () => Promise<boolean>, ms: number) => pollUntil(what, cond, ms, () => app);

  function samplePeak(): number {
    try {
      peakKb = Math.max(peakKb, memoryPeakKb(appPid(dataDir)));
    } catch {
      // between a kill and a restart
    }
    return peakKb;
  }

  type HealthSample = { t: number; status: number; cold_store?: string; hot_store?: string; mqtt?: string };
  /** Polls GET /api/health/ every 200 ms (each request bounded at 3 s) until stopped. */
  function healthPoller(): { samples: HealthSample[]; stop: () => Promise<void> } {
    const samples: HealthSample[] = [];
    let running = true;
    const loop = (async () => {
      while (running) {
        const t = Date.now();
        try {
          const r = await fetch(`${app!.url}/api/health/`, { signal: AbortSignal.timeout(3000) });
          const body = (await r.json()) as Record<string, string>;
          samples.push({ t, status: r.status, cold_store: body.cold_store, hot_store: body.hot_store, mqtt: body.mqtt });
        } catch {
          samples.push({ t, status: 0 });
        }
        samplePeak();
        await wait(200);
      }
    })();
    return {
      samples,
      stop: async () => {
        running = false;
        await loop;
      },
    };
  }

  /** First sample at or after `from` with `part` up: the recovery time of a fault restored at `from`. */
  function recoveredAfter(samples: HealthSample[], part: 'cold_store' | 'hot_store', from: number): number {
    const s = samples.find((x) => x.t >= from && x[part] === 'up');
    return s ? s.t - from : NaN;
  }
  const downBetween = (samples: HealthSample[], part: 'cold_store' | 'hot_store', a: number, b: number) =>
    samples.some((x) => x.t >= a && x.t <= b && x[part] === 'down');

  async function bufferOf(id: string): Promise<string[]> {
    const r = await fetch(`${app!.url}/api/sensor-readings/buffer/?sensor_type=ldr&sensor_id=${id}`);
    const body = (await r.json()) as { readings: Array<{ timestamp: string }> };
    return body.readings.map((x) => x.timestamp);
  }
  async function lastStored(id: string, n: number): Promise<string[]> {
    const r = await pg.query('SELECT timestamp FROM sensor_readings WHERE sensor_id = $1 ORDER BY timestamp DESC LIMIT $2', [id, n]);
    return r.rows.map((x: { timestamp: Date | string }) => new Date(x.timestamp).toISOString()).reverse();
  }

  it(`${READINGS} QoS 1 readings (HV_FAULT_READINGS) at 2 000/s while PostgreSQL restarts twice and Redis once: lost 0, duplicates 0, hot windows whole, health follows`, async () => {
    const N = READINGS;
    const streamMs = (N / 2000) * 1000;
    const sensors = 50;
    // The main stream, and 5 "late" sensors: 30 readings before the Redis restart, 5 after it. Their
    // windows are whole only if the hot windows are rebuilt from the cold store after the restart.
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('fault_room'), reading(`ra${i % sensors}`, i)]);
    const late = ['rl0', 'rl1', 'rl2', 'rl3', 'rl4'];
    const lateBefore: Array<[string, string]> = [];
    const lateAfter: Array<[string, string]> = [];
    for (const id of late) {
      for (let i = 0; i < 30; i++) lateBefore.push([topic('late_room'), reading(id, i)]);
      for (let i = 30; i < 35; i++) lateAfter.push([topic('late_room'), reading(id, i)]);
    }
    const counters: Counters = { acked: 0, ackTimes: [] };
    await publishPaced(lateBefore, 2000, counters);
    await waitFor('the late sensors stored', async () => (await stored('rl')).rows >= lateBefore.length, 30_000);
    const health = healthPoller();
    const faults: Array<{ what: string; part: 'cold_store' | 'hot_store'; at: number; back: number }> = [];
    const outage = async (what: string, part: 'cold_store' | 'hot_store', proxy: FaultProxy, startMs: number, t0: number, during?: () => Promise<unknown>) => {
      await wait(t0 + startMs - Date.now());
      const at = Date.now();
      proxy.refuse();
      await during?.();
      await wait(at + 2000 - Date.now());
      proxy.restore();
      faults.push({ what, part, at, back: Date.now() });
    };
    const t0 = Date.now();
    let deletedKeys = 0;
    const stream = publishPaced(items, 2000, counters);
    const injected = (async () => {
      await outage('PostgreSQL restart 1', 'cold_store', pgProxy!, streamMs * 0.15, t0);
      await outage('Redis restart', 'hot_store', redisProxy!, streamMs * 0.45, t0, async () => (deletedKeys = await deleteAppKeys()));
      await outage('PostgreSQL restart 2', 'cold_store', pgProxy!, streamMs * 0.75, t0);
    })();
    await Promise.all([stream, injected]);
    await publishPaced(lateAfter, 2000, counters);
    await waitFor('every reading stored', async () => (await stored('ra')).distinct >= N && (await stored('rl')).distinct >= 175, 90_000);
    const allStored = Date.now();
    await wait(2000); // the health poller sees the end state
    await health.stop();
    const s = await stored('ra');
    const sl = await stored('rl');
    const buffersWhole: string[] = [];
    for (const id of [...late, 'ra0', 'ra17', 'ra49']) {
      const [buf, want] = [await bufferOf(id), await lastStored(id, 60)];
      if (JSON.stringify(buf) === JSON.stringify(want)) buffersWhole.push(id);
      else buffersWhole.push(`${id}: ${buf.length} of ${want.length}`);
    }
    const last = health.samples[health.samples.length - 1];
    const recovery = faults.map((f) => `${f.what} ${recoveredAfter(health.samples, f.part, f.back)} ms`).join(', ');
    // eslint-disable-next-line no-console
    console.log(
      `      PG x2 + Redis x1 restarts: attempted ${N + 175}, acknowledged ${counters.acked}, stored ${s.distinct + sl.distinct}, ` +
        `lost ${N + 175 - s.distinct - sl.distinct}, duplicates ${s.rows - s.distinct + sl.rows - sl.distinct}, dead-lettered ${deadLettersIn(dataDir)}, ` +
        `recovery (health up after restore): ${recovery}; all stored ${allStored - t0} ms after the first publish; ` +
        `proxy refused ${pgProxy!.stats.refused} PG / ${redisProxy!.stats.refused} Redis connects; ${deletedKeys} Redis keys lost in the restart; ` +
        `hot windows: ${buffersWhole.join(', ')}; peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.equal(counters.acked, N + 175);
    assert.equal(s.distinct + sl.distinct, N + 175, 'lost 0');
    assert.equal(s.rows + sl.rows, s.distinct + sl.distinct, 'duplicates 0');
    for (const f of faults) {
      assert.ok(downBetween(health.samples, f.part, f.at, f.back + 200), `health showed ${f.part} down during ${f.what}`);
    }
    assert.deepEqual([last.status, last.cold_store, last.hot_store], [200, 'up', 'up'], 'health up after');
    for (const id of ['ra0', 'ra17', 'ra49']) assert.deepEqual(await bufferOf(id), await lastStored(id, 60), `hot window of ${id} whole`);
    lateWindows = await Promise.all(late.map(async (id) => ({ id, buffer: await bufferOf(id), stored: await lastStored(id, 60) })));
  });

  let lateWindows: Array<{ id: string; buffer: string[]; stored: string[] }> = [];
  // Issue 7 item 3: the push nodes rebuild a window from the cold store on the first push of its
  // sensor after the store reconnects, so a sensor with fewer than a window's readings after the
  // restart still has them all (without the rebuild: "rl0: 5 of 35" above).
  it('after the Redis restart, hot windows of sensors with few new readings are rebuilt from the cold store', () => {
    assert.ok(lateWindows.length > 0, 'the previous test ran');
    for (const w of lateWindows) assert.deepEqual(w.buffer, w.stored, `hot window of ${w.id} rebuilt from the cold store`);
  });

  it(`PostgreSQL hung for ${HANG_SECONDS} s (HV_FAULT_HANG_SECONDS): ingest keeps going (WebSocket rate measured), lost 0 after it resumes`, async () => {
    const rate = 1000;
    const N = rate * (HANG_SECONDS + 6);
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('hang_room'), reading(`rh${i % 20}`, i)]);
    const ws = await openWs(`${app!.wsUrl}/ws/sensors/`);
    const wsTimes: number[] = [];
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type?: string; data?: { sensor_id?: string } };
      if (m.type === 'sensor_update' && m.data?.sensor_id?.startsWith('rh')) wsTimes.push(Date.now());
    });
    const counters: Counters = { acked: 0, ackTimes: [] };
    const health = healthPoller();
    const t0 = Date.now();
    const stream = publishPaced(items, rate, counters);
    await wait(2000);
    const stalledAt = Date.now();
    pgProxy!.stall();
    await wait(HANG_SECONDS * 1000);
    const resumedAt = Date.now();
    pgProxy!.resume();
    await stream;
    await waitFor('every reading stored', async () => (await stored('rh')).distinct >= N, 90_000);
    const allStored = Date.now();
    await wait(1000);
    await health.stop();
    ws.terminate();
    const s = await stored('rh');
    const secs = (resumedAt - stalledAt) / 1000;
    const inHang = (times: number[]) => times.filter((t) => t >= stalledAt && t < resumedAt).length;
    const wsRate = Math.round(inHang(wsTimes) / secs);
    const ackRate = Math.round(inHang(counters.ackTimes) / secs);
    // eslint-disable-next-line no-console
    console.log(`      per second from the first publish (hang from ${Math.round((stalledAt - t0) / 1000)} s to ${Math.round((resumedAt - t0) / 1000)} s): WebSocket [${perSecond(wsTimes, t0).join(' ')}], acks [${perSecond(counters.ackTimes, t0).join(' ')}]`);
    const coldDown = health.samples.filter((x) => x.t >= stalledAt && x.t < resumedAt && x.cold_store !== 'up').length;
    const during = health.samples.filter((x) => x.t >= stalledAt && x.t < resumedAt).length;
    // eslint-disable-next-line no-console
    console.log(
      `      PG hung ${HANG_SECONDS} s: attempted ${N}, acknowledged ${counters.acked}, stored ${s.distinct}, lost ${N - s.distinct}, ` +
        `duplicates ${s.rows - s.distinct}, dead-lettered ${deadLettersIn(dataDir)}; during the hang: acks ${ackRate}/s, ` +
        `WebSocket ${wsRate}/s (published ${rate}/s), health cold_store not up in ${coldDown} of ${during} samples; ` +
        `recovery: all stored ${allStored - resumedAt} ms after resume (${allStored - t0} ms after the first publish), ` +
        `health up ${recoveredAfter(health.samples, 'cold_store', resumedAt)} ms after resume; peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.equal(counters.acked, N);
    assert.equal(s.distinct, N, 'lost 0');
    assert.equal(s.rows, s.distinct, 'duplicates 0');
    assert.ok(ackRate >= rate * 0.8, `ingest goes on during the hang (${ackRate}/s acknowledged)`);
    hangWs = { wsRate, rate };
    assert.ok(coldDown > 0, 'health showed the cold store down during the hang');
    assert.equal(health.samples[health.samples.length - 1].cold_store, 'up', 'and up after');
  });

  let hangWs: { wsRate: number; rate: number } | null = null;
  // The WebSocket path (validate → hot-window push → broadcast) does not touch PostgreSQL; what
  // once held it up was sensor-in's bound on unsettled spool entries: the cold store now spills
  // what it cannot write to its local file, so those entries settle during the hang.
  it('the WebSocket goes on at the publish rate during the PostgreSQL hang', () => {
    assert.ok(hangWs, 'the previous test ran');
    assert.ok(hangWs.wsRate >= hangWs.rate * 0.8, `the WebSocket goes on during the hang (${hangWs.wsRate}/s)`);
  });

  it('Redis hung for 10 s: the cold path goes on storing at the publish rate and the WebSocket gets every reading, lost 0, hot windows whole again after it resumes', async () => {
    const rate = 1000;
    const HANG = 10;
    const N = rate * (HANG + 6);
    const sensors = 20;
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('rhang_room'), reading(`rr${i % sensors}`, i)]);
    // A push that fails (the hot store hung: command time-out) still broadcasts its readings (the
    // shipped flow's catch "push failed: broadcast anyway"); this instance's own clients get them
    // at once, without Redis.
    const ws = await openWs(`${app!.wsUrl}/ws/sensors/`);
    const wsSeen = new Set<string>();
    const wsTimes: number[] = [];
    /** Reading i is published about i ms after t0 (publishAt: 50 per 50 ms): its delay to the client. */
    const wsLag = new Map<number, number>();
    let postedOnWs = 0;
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type?: string; data?: { sensor_id?: string; timestamp?: string } };
      if (m.type === 'sensor_update' && m.data?.sensor_id === 'rpost') postedOnWs++;
      if (m.type !== 'sensor_update' || !m.data?.sensor_id?.startsWith('rr')) return;
      wsSeen.add(`${m.data.sensor_id}|${m.data.timestamp}`);
      wsTimes.push(Date.now());
      const i = Date.parse(m.data.timestamp ?? '') - base;
      wsLag.set(i, Date.now() - (t0 + i));
    });
    const counters: Counters = { acked: 0, ackTimes: [] };
    const health = healthPoller();
    const t0 = Date.now();
    const stream = publishPaced(items, rate, counters);
    await wait(2000);
    const storedBefore = (await stored('rr')).distinct;
    const stalledAt = Date.now();
    redisProxy!.stall();
    await wait((HANG * 1000) / 2);
    // The REST way in, in the middle of the hang: the row is stored, so 201 (the hot push fails
    // after the command time-out; the flow's catch answers and broadcasts anyway), not 503.
    const posted = { sensor_type: 'ldr', sensor_id: 'rpost', value: 5, unit: 'lux', location: 'lab', timestamp: new Date(base + N).toISOString() };
    const posting = postJson(`${app!.url}/api/sensor-readings/`, JSON.stringify(posted)).then((r) => ({ ...r, at: Date.now() }));
    await wait((HANG * 1000) / 2);
    const storedDuring = (await stored('rr')).distinct - storedBefore;
    const resumedAt = Date.now();
    redisProxy!.resume();
    const post = await posting;
    await stream;
    await waitFor('every reading stored', async () => (await stored('rr')).distinct >= N, 90_000);
    const allStored = Date.now();
    // The hot windows: each sensor's buffer is its newest stored readings again.
    const whole = async () => {
      for (let k = 0; k < sensors; k++) {
        const id = `rr${k}`;
        const buf = await bufferOf(id);
        const want = await lastStored(id, buf.length || 1);
        if (buf.length === 0 || JSON.stringify(buf) !== JSON.stringify(want)) return false;
      }
      return true;
    };
    await waitFor('hot windows whole', whole, 30_000);
    const windowsWhole = Date.now();
    await waitFor('every reading on the WebSocket', async () => wsSeen.size >= N, 10_000).catch(() => undefined);
    ws.terminate();
    await health.stop();
    const s = await stored('rr');
    const secs = (resumedAt - stalledAt) / 1000;
    const wsRate = Math.round(wsTimes.filter((t) => t >= stalledAt && t < resumedAt).length / secs);
    let wsLagMax = 0; // of the readings published during the hang
    for (const [i, lag] of wsLag) if (t0 + i >= stalledAt && t0 + i < resumedAt) wsLagMax = Math.max(wsLagMax, lag);
    // eslint-disable-next-line no-console
    console.log(`      per second from the first publish (hang from ${Math.round((stalledAt - t0) / 1000)} s to ${Math.round((resumedAt - t0) / 1000)} s): WebSocket [${perSecond(wsTimes, t0).join(' ')}]`);
    const hotDown = health.samples.filter((x) => x.t >= stalledAt + 3000 && x.t < resumedAt && x.hot_store !== 'up').length;
    // eslint-disable-next-line no-console
    console.log(
      `      Redis hung ${HANG} s: attempted ${N}, acknowledged ${counters.acked}, stored ${s.distinct}, lost ${N - s.distinct}, duplicates ${s.rows - s.distinct}; ` +
        `stored during the hang ${Math.round(storedDuring / secs)}/s (published ${rate}/s); WebSocket ${wsSeen.size} of ${N} ` +
        `(${wsTimes.length - wsSeen.size} twice), ${wsRate}/s during the hang, at most ${wsLagMax} ms after their publish; health hot_store not up in ${hotDown} samples from 3 s into the hang; ` +
        `all stored ${allStored - resumedAt} ms after resume, hot windows whole ${windowsWhole - resumedAt} ms after resume (${allStored - t0} ms after the first publish); ` +
        `peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.equal(s.distinct, N, 'lost 0');
    assert.equal(s.rows, s.distinct, 'duplicates 0');
    assert.ok(storedDuring / secs >= rate * 0.8, `the cold path goes on during the Redis hang (${Math.round(storedDuring / secs)}/s)`);
    assert.equal(wsSeen.size, N, 'every reading reached the WebSocket client');
    assert.equal(post.status, 201, `POST during the hang: ${JSON.stringify(post.body)}`);
    assert.ok(post.at < resumedAt, 'answered during the hang');
    assert.deepEqual({ ...post.body, id: undefined, created_at: undefined }, { ...posted, id: undefined, created_at: undefined });
    assert.equal((await stored('rpost')).rows, 1, 'the posted reading stored once');
    assert.equal(postedOnWs, 1, 'the posted reading broadcast once');
    // A failed push is known after the command time-out (1.5 s), and ioredis sends the next
    // pipeline of a connection only when the one before it has settled: up to two time-outs.
    assert.ok(wsLagMax > 0 && wsLagMax < 6000, `the WebSocket goes on during the Redis hang (readings at most ${wsLagMax} ms late)`);
    assert.ok(hotDown > 0, 'health showed the hot store down during the hang');
  });

  it('the pipeline killed with kill -9 three times mid-stream and restarted (same DATA_DIR and client id): lost 0', async () => {
    const rate = 1000;
    const N = 8000;
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('kill_room'), reading(`rk${i % 40}`, i)]);
    const counters: Counters = { acked: 0, ackTimes: [] };
    const t0 = Date.now();
    const stream = publishPaced(items, rate, counters);
    const restarts: number[] = [];
    for (let k = 0; k < 3; k++) {
      await wait(1200);
      samplePeak();
      const killedAt = Date.now();
      await app!.kill();
      app = await startApp(env, { dataDir });
      restarts.push(Date.now() - killedAt);
    }
    await stream;
    await waitFor('every reading stored', async () => (await stored('rk')).distinct >= N, 90_000);
    const allStored = Date.now();
    const s = await stored('rk');
    // eslint-disable-next-line no-console
    console.log(
      `      kill -9 x3: attempted ${N}, acknowledged ${counters.acked} (by the broker), stored ${s.distinct}, lost ${N - s.distinct}, ` +
        `duplicates ${s.rows - s.distinct}, dead-lettered ${deadLettersIn(dataDir)}; recovery (kill to health answering): ${restarts.join(', ')} ms; ` +
        `all stored ${allStored - t0} ms after the first publish; broker dropped ${broker!.sys().dropped}; peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.equal(counters.acked, N);
    assert.equal(s.distinct, N, 'lost 0');
    assert.equal(s.rows, s.distinct, 'duplicates 0');
  });

  it('the broker restarted mid-stream (a clean stop with persistence, down 2 s): nothing lost but in the instant of its stop, duplicates 0, health follows', async () => {
    // What the broker saved survives it (sessions, subscriptions, queued and in-flight QoS 1
    // messages), and what it had not acknowledged is sent again by its publisher. Mosquitto 2.0
    // may still drop, per subscriber, a message it acknowledged to the publisher in the instant of
    // its stop: seen with two plain mqtt.js subscribers (one got message 3001, the other did not,
    // in 6 of 8 runs; up to 12 consecutive ones here, 88 in one CI run, up to 89 with two busy
    // loops beside it). So readings published from 50 ms before to 300 ms after the stop began are counted apart.
    const rate = 1000;
    const N = 10_000;
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('broker_room'), reading(`rb${i % 40}`, i)]);
    const counters: Counters = { acked: 0, ackTimes: [] };
    const health = healthPoller();
    const t0 = Date.now();
    const stream = publishPaced(items, rate, counters);
    await wait(3000);
    const stoppedAt = Date.now();
    await broker!.restart('SIGTERM', 2000);
    const backAt = Date.now();
    await stream;
    const storedSet = async () =>
      new Set(
        (await pg.query("SELECT timestamp FROM sensor_readings WHERE starts_with(sensor_id, 'rb')")).rows.map((r: { timestamp: Date | string }) =>
          new Date(r.timestamp).getTime() - base,
        ),
      );
    // Index i is published about i ms after t0 (ticks of 50 ms at 1 000/s).
    const atStop = (i: number) => t0 + i >= stoppedAt - 50 && t0 + i <= stoppedAt + 300;
    const missing = async () => {
      const have = await storedSet();
      return items.map((_, i) => i).filter((i) => !have.has(i));
    };
    const end = Date.now() + 60_000;
    let lost = await missing();
    while (Date.now() < end && lost.some((i) => !atStop(i))) {
      await wait(250);
      lost = await missing();
    }
    await wait(1000);
    lost = await missing();
    const allStored = Date.now();
    await health.stop();
    const s = await stored('rb');
    const lostAtStop = lost.filter(atStop);
    const lostElsewhere = lost.filter((i) => !atStop(i));
    const mqttDown = health.samples.filter((x) => x.t >= stoppedAt && x.t < backAt && x.mqtt !== undefined && x.mqtt !== 'up').length;
    const upAfter = health.samples.find((x) => x.t >= backAt && x.mqtt === 'up');
    // eslint-disable-next-line no-console
    console.log(
      `      broker restart: attempted ${N}, acknowledged ${counters.acked} (by the broker), stored ${s.distinct}, ` +
        `lost ${lostElsewhere.length} + ${lostAtStop.length} in the broker's stop instant [${lostAtStop.join(', ')}], duplicates ${s.rows - s.distinct}, ` +
        `dead-lettered ${deadLettersIn(dataDir)}; broker down ${backAt - stoppedAt} ms; health mqtt not up in ${mqttDown} samples while down, ` +
        `up ${upAfter ? upAfter.t - backAt : NaN} ms after the broker was back; settled ${allStored - t0} ms after the first publish; peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.equal(counters.acked, N);
    // The broker's log tells whether it restored the sessions (a lost session loses seconds, not an instant).
    assert.deepEqual(lostElsewhere, [], `lost 0 outside the instant of the stop; broker log:\n${broker!.logs()}`);
    // How many the broker drops in that instant grows with load (0-12 on a quiet machine, 88 in
    // one CI run): it is counted and printed above, not bounded here; the window itself is 350 ms.
    assert.equal(s.rows, s.distinct, 'duplicates 0');
    assert.ok(mqttDown > 0, 'health showed the broker connection down');
    assert.ok(upAfter, 'health shows the broker connection up again');
  });

  it('the pipeline process stopped (kill -STOP) for 5 s mid-stream, then continued (kill -CONT): lost 0, duplicates 0', async () => {
    const rate = 1000;
    const N = 10_000;
    const items: Array<[string, string]> = Array.from({ length: N }, (_, i) => [topic('stop_room'), reading(`rs${i % 40}`, i)]);
    const counters: Counters = { acked: 0, ackTimes: [] };
    const t0 = Date.now();
    const stream = publishPaced(items, rate, counters);
    await wait(2000);
    const pid = appPid(dataDir);
    process.kill(pid, 'SIGSTOP');
    const stoppedAt = Date.now();
    await wait(5000);
    process.kill(pid, 'SIGCONT');
    const continuedAt = Date.now();
    await stream;
    await waitFor('every reading stored', async () => (await stored('rs')).distinct >= N, 90_000);
    const allStored = Date.now();
    const s = await stored('rs');
    // eslint-disable-next-line no-console
    console.log(
      `      kill -STOP ${continuedAt - stoppedAt} ms: attempted ${N}, acknowledged ${counters.acked} (by the broker), stored ${s.distinct}, lost ${N - s.distinct}, ` +
        `duplicates ${s.rows - s.distinct}, dead-lettered ${deadLettersIn(dataDir)}; all stored ${allStored - continuedAt} ms after -CONT ` +
        `(${allStored - t0} ms after the first publish); broker dropped ${broker!.sys().dropped}; peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.equal(counters.acked, N);
    assert.equal(s.distinct, N, 'lost 0');
    assert.equal(s.rows, s.distinct, 'duplicates 0');
  });

  it('100 redeploys in a row leave no extra connection to PostgreSQL, Redis or the broker', async () => {
    const sysClients = { connected: NaN };
    const sys = await mqtt.connectAsync(broker!.url, { clientId: `hvtest-faults2-sys-${RUN_ID}`, reconnectPeriod: 0 });
    sys.on('message', (_t, p) => (sysClients.connected = Number(p.toString())));
    await sys.subscribeAsync('$SYS/broker/clients/connected', { qos: 0 });
    let seq = 0;
    /** The same light use before each count (so lazily opened pool connections exist both times). */
    const exercise = async () => {
      const items: Array<[string, string]> = Array.from({ length: 20 }, () => [topic('deploy_room'), reading(`rd${seq % 5}`, seq++)]);
      await publishPaced(items, 1000, { acked: 0, ackTimes: [] });
      await waitFor('stored', async () => (await stored('rd')).distinct >= seq, 20_000);
      await fetch(`${app!.url}/api/health/`).then((r) => r.arrayBuffer());
      await fetch(`${app!.url}/api/sensor-readings/buffer/?sensor_type=ldr&sensor_id=rd0`).then((r) => r.arrayBuffer());
      await fetch(`${app!.url}/api/sensor-readings/?limit=5`).then((r) => r.arrayBuffer());
    };
    // PostgreSQL: a pool opens connections as its load asks (up to its max of 10), so its count
    // after depends on the moment; a leak is a connection of an older deployment still open.
    const PG_POOL_MAX = 10;
    const pgKeys = new Set(['pg', 'pgProxy', 'pgFromOlderDeploys']);
    const noMoreThan = (a: Record<string, number>, b: Record<string, number>) =>
      a.pgFromOlderDeploys === 0 && a.pg <= PG_POOL_MAX && a.pgProxy <= PG_POOL_MAX && Object.keys(b).every((k) => pgKeys.has(k) || a[k] <= b[k]);
    let lastDeployAt = new Date(0);
    const count = async () => {
      const ports = new Set(redisProxy!.upstreamPorts());
      const list = (await redis.client('LIST')) as string;
      const redisClients = list.split('\n').filter((l) => {
        const m = /addr=[^ ]*:(\d+) /.exec(l);
        return m && ports.has(Number(m[1]));
      }).length;
      const r = await pg.query(
        "SELECT count(*)::int AS n, count(*) FILTER (WHERE backend_start < $1)::int AS old FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'hypervolt'",
        [lastDeployAt],
      );
      await wait(1100); // $SYS is published every second
      return {
        pg: r.rows[0].n as number,
        pgFromOlderDeploys: r.rows[0].old as number,
        pgProxy: pgProxy!.active,
        redis: redisClients,
        redisProxy: redisProxy!.active,
        broker: sysClients.connected,
      };
    };
    await exercise();
    await wait(1500);
    const before = await count();
    const flows = await fetch(`${app!.url}/admin/flows`).then((r) => r.json());
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) {
      if (i === 99) lastDeployAt = (await pg.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0].now;
      const r = await fetch(`${app!.url}/admin/flows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
        body: JSON.stringify(flows),
      });
      await r.arrayBuffer();
      assert.ok(r.status === 200 || r.status === 204, `deploy ${i}: ${r.status}`);
      if (i % 10 === 0) samplePeak();
    }
    const deployMs = Date.now() - t0;
    let after = await count();
    const settleEnd = Date.now() + 15_000;
    for (;;) {
      await exercise();
      await wait(1500);
      after = await count();
      if (noMoreThan(after, before) || Date.now() > settleEnd) break;
    }
    await sys.endAsync();
    // eslint-disable-next-line no-console
    console.log(
      `      100 redeploys (${deployMs} ms): connections before ${JSON.stringify(before)}, after ${JSON.stringify(after)}; ` +
        `stored ${(await stored('rd')).distinct} of ${seq}; peak RSS ${Math.round(samplePeak() / 1024)} MiB`,
    );
    assert.ok(before.pg > 0 && before.redis > 0 && before.broker > 0, 'the counts see the app');
    // A leak shows as more connections after; pools open lazily and close idle ones, so fewer is fine.
    assert.ok(noMoreThan(after, before), `no extra connection: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  });
});

describe('faults: real restarts of a private PostgreSQL cluster and Redis server', function () {
  this.timeout(180_000);
  let pgServer: PrivatePostgres | null = null;
  let redisServer: PrivateRedis | null = null;
  let broker: Broker | null = null;
  let app: RunningApp | null = null;
  let pub: mqtt.MqttClient | null = null;
  let pg: Client | null = null;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-faults3-'));
  const dataDir = path.join(tmp, 'data');
  const base = Date.now() - 30 * 60_000;
  const topic = `${TOPIC_PREFIX}/sensors/real_room/ldr`;
  const reading = (id: string, i: number) =>
    JSON.stringify({ sensor_type: 'ldr', sensor_id: id, value: i % 1000, unit: 'lux', timestamp: new Date(base + i).toISOString() });

  before(async function () {
    if (!canRunPrivatePostgres()) {
      if (process.env.CI) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) are needed for this test under CI');
      this.skip();
    }
    await requireService(this, 'redis'); // redis-server and redis-cli come with it
    fs.mkdirSync(dataDir);
    [pgServer, redisServer, broker] = await Promise.all([startPrivatePostgres(), startPrivateRedis(), startBroker(tmp, { maxInflight: 100 })]);
    pg = new Client({ connectionString: pgServer.url });
    pg.on('error', () => undefined); // the restarts end this connection: reconnected below
    await pg.connect();
    pub = await mqtt.connectAsync(broker.url, { clientId: `hvtest-faults3-pub-${RUN_ID}`, reconnectPeriod: 1000 });
    app = await startApp(
      { MQTT_URL: broker.url, MQTT_CLIENT_ID: `hvtest-faults3-${RUN_ID}`, MQTT_TOPIC_PREFIX: TOPIC_PREFIX, DATABASE_URL: pgServer.url, REDIS_URL: redisServer.url, LOG_LEVEL: 'warn' },
      { dataDir },
    );
    await wait(1000); // subscribed
  });

  after(async () => {
    await app?.stop({ keepData: true }).catch(() => {});
    await pub?.endAsync().catch(() => {});
    await pg?.end().catch(() => {});
    await broker?.stop().catch(() => {});
    await pgServer?.stop().catch(() => {});
    await redisServer?.stop().catch(() => {});
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A query on a fresh connection: the test's own connection does not survive the restarts. */
  async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const c = new Client({ connectionString: pgServer!.url });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query(sql, params)).rows as T[];
    } finally {
      await c.end().catch(() => {});
    }
  }

  it('10 000 QoS 1 readings at 1 000/s while PostgreSQL restarts twice (pg_ctl -m immediate) and Redis once (SHUTDOWN NOSAVE): lost 0, duplicates 0, hot windows whole', async () => {
    const rate = 1000;
    const N = 10_000;
    const sensors = 20;
    const counters: Counters = { acked: 0, ackTimes: [] };
    const t0 = Date.now();
    const faults: string[] = [];
    const injected = (async () => {
      await wait(t0 + 2000 - Date.now());
      let at = Date.now();
      await pgServer!.restartImmediate();
      faults.push(`PostgreSQL immediate restart ${Date.now() - at} ms`);
      await wait(t0 + 4500 - Date.now());
      at = Date.now();
      await redisServer!.shutdownNosaveAndRestart(1000);
      faults.push(`Redis SHUTDOWN NOSAVE and start ${Date.now() - at} ms`);
      await wait(t0 + 7000 - Date.now());
      at = Date.now();
      await pgServer!.restartImmediate();
      faults.push(`PostgreSQL immediate restart ${Date.now() - at} ms`);
    })();
    const items: Array<[string, string]> = Array.from({ length: N }, (_, j) => [topic, reading(`rp${j % sensors}`, j)]);
    await Promise.all([publishAt(pub!, items, rate, counters), injected]);
    const count = async () =>
      (await query<{ rows: number; distinct: number }>(
        "SELECT count(*)::int AS rows, count(DISTINCT (sensor_type, sensor_id, timestamp))::int AS distinct FROM sensor_readings WHERE starts_with(sensor_id, 'rp')",
      ))[0];
    const end = Date.now() + 90_000;
    let s = await count().catch(() => ({ rows: 0, distinct: 0 }));
    while (s.distinct < N && Date.now() < end) {
      await wait(500);
      s = await count().catch(() => s);
    }
    const allStored = Date.now();
    // Hot windows: every sensor's buffer is its newest stored readings (rebuilt after Redis lost them).
    const whole = async () => {
      for (let k = 0; k < sensors; k++) {
        const id = `rp${k}`;
        const r = await fetch(`${app!.url}/api/sensor-readings/buffer/?sensor_type=ldr&sensor_id=${id}`);
        const buf = ((await r.json()) as { readings?: Array<{ timestamp: string }> }).readings?.map((x) => x.timestamp) ?? [];
        const want = (await query<{ timestamp: Date }>('SELECT timestamp FROM sensor_readings WHERE sensor_id = $1 ORDER BY timestamp DESC LIMIT $2', [id, Math.max(1, buf.length)]))
          .map((x) => new Date(x.timestamp).toISOString())
          .reverse();
        if (buf.length < 10 || JSON.stringify(buf) !== JSON.stringify(want)) return false;
      }
      return true;
    };
    let windowsWhole = false;
    const wEnd = Date.now() + 30_000;
    while (!(windowsWhole = await whole().catch(() => false)) && Date.now() < wEnd) await wait(500);
    // eslint-disable-next-line no-console
    console.log(
      `      real restarts (${faults.join(', ')}): attempted ${N}, acknowledged ${counters.acked}, stored ${s.distinct}, lost ${N - s.distinct}, ` +
        `duplicates ${s.rows - s.distinct}, dead-lettered ${deadLettersIn(dataDir)}; all stored ${allStored - t0} ms after the first publish; hot windows whole: ${windowsWhole}`,
    );
    assert.equal(counters.acked, N);
    assert.equal(s.distinct, N, `lost 0\n${app!.logs().slice(-3000)}`);
    assert.equal(s.rows, s.distinct, 'duplicates 0');
    assert.ok(windowsWhole, 'hot windows whole again');
  });
});
