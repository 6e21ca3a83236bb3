/**
 * Fault suite (npm run test:faults): the app with sensor-in on PostgreSQL, Redis and the local
 * Mosquitto. The app is killed with SIGKILL mid-stream and restarted on the same DATA_DIR and
 * client id: every acknowledged reading is stored exactly once. Then bad payloads interleaved 1:1
 * with good ones: every bad one is dead-lettered with a reason, every good one stored, no crash.
 *
 * Not run here: PostgreSQL / Redis restarts (`pg_ctlcluster ... restart -m immediate`,
 * `redis-cli shutdown nosave`), which would break the other suites sharing these services on this
 * machine. Note Mosquitto's default `max_queued_messages` (1000) per offline session: the test
 * publishes fewer than that while the app is down, as the broker, not the app, would drop the rest.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { Client } from 'pg';
import { startApp, type RunningApp } from '../support/app';
import { createTestDatabase, REDIS_PREFIX, REDIS_URL, requireService, RUN_ID, TOPIC_PREFIX } from '../support/services';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    for (const id of [clientId, `${clientId}-sensors`]) {
      const c = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { clientId: id, clean: true, protocolVersion: 5, properties: { sessionExpiryInterval: 0 }, reconnectPeriod: 0 }).catch(() => null);
      await c?.endAsync().catch(() => {});
    }
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

  async function waitFor(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out: ${what}\n${app?.logs().slice(-3000)}`);
      await wait(250);
    }
  }

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
    const health = await fetch(`${app!.url}/api/health/`).then((r) => r.status);
    // eslint-disable-next-line no-console
    console.log(
      `      bad payloads: attempted ${items.length} (300 bad, 10 poison, 300 good), acknowledged ${counters.acked}, stored ${s.distinct}, ` +
        `lost ${300 - s.distinct}, duplicates ${s.rows - s.distinct}, dead-lettered ${letters.length} (${badTopics().size} bad messages, ` +
        `${poison().length} poison rows refused by PostgreSQL: "${poison()[0]?.reason}"), health ${health}`,
    );
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
