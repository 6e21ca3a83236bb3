/**
 * Scale out, end to end: two instances of the app (as `npm start` runs them) with one
 * HYPERVOLT_GROUP on this machine's Mosquitto (MQTT 5 shared subscription), Redis (hot windows,
 * WebSocket fan-out, schedule leadership) and PostgreSQL. Then one instance is killed mid-stream.
 *
 * What it measures is printed (`[scale-out] ...`) so the README's sizing note can quote it.
 */
import assert from 'assert/strict';
import os from 'os';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import { Client } from 'pg';
import WebSocket from 'ws';
import { startApp, type RunningApp } from '../support/app';
import { eventually, getJson, mqttConnect } from '../support/e2e';
import { EM_TEST_KEY, FakeElectricityMaps } from '../support/fakes/electricitymaps';
import { createTestDatabase, REDIS_PREFIX, REDIS_URL, requireService, RUN_ID, TOPIC_PREFIX } from '../support/services';

const LATEST = '/v3/carbon-intensity/latest';
const CARBON_INTERVAL_S = 3; // CARBON_FETCH_MINUTES=0.05
const LEADER_TTL_S = 2;
const PUBLISHERS = 4;
const FIRST_BATCH = 20_000;
const SECOND_BATCH = 10_000;

const report = (line: string) => console.log(`      [scale-out] ${line}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Counts a WebSocket client's sensor_update messages by reading key, and everything else. */
class UpdateCounter {
  readonly seen = new Map<string, number>();
  updates = 0;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type: string; data: { sensor_id: string; timestamp: string } };
      if (m.type !== 'sensor_update') return;
      this.updates++;
      const key = `${m.data.sensor_id}|${m.data.timestamp}`;
      this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
    });
  }
  static async open(url: string): Promise<UpdateCounter> {
    const ws = new WebSocket(url);
    ws.on('error', () => undefined); // the instance may be killed under it
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new UpdateCounter(ws);
  }
  duplicates(): number {
    let d = 0;
    for (const n of this.seen.values()) if (n > 1) d += n - 1;
    return d;
  }
}

/** Reading number `i` of the test: unique (sensor_id, timestamp), a valid power value. */
function readingOf(i: number, base: number): { topic: string; payload: string; key: string } {
  const sensor_id = `p${i % 250}`;
  const timestamp = new Date(base + i).toISOString();
  return {
    topic: 'lab/power',
    payload: JSON.stringify({ sensor_type: 'power', sensor_id, value: i % 5000, location: 'lab', timestamp }),
    key: `${sensor_id}|${timestamp}`,
  };
}

async function accepted(app: RunningApp): Promise<number> {
  const r = await fetch(`${app.url}/metrics`, { signal: AbortSignal.timeout(3000) });
  const text = await r.text();
  const line = text.split('\n').find((l) => l.startsWith('hypervolt_readings_accepted_total'));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('e2e: scale out (two instances, one group)', function () {
  this.timeout(600_000);
  const group = `hvtest${RUN_ID}`;
  const prefix = `${TOPIC_PREFIX}_scale`;
  const redisPrefix = `${REDIS_PREFIX}scale:`;
  let db: { url: string; drop: () => Promise<void> } | undefined;
  let em: FakeElectricityMaps | undefined;
  let pg: Client | undefined;
  let a: RunningApp | undefined;
  let b: RunningApp | undefined;
  let a2: RunningApp | undefined;
  const clientIds: string[] = [];
  const publishers: mqtt.MqttClient[] = [];
  const sockets: UpdateCounter[] = [];
  let env: Record<string, string>;
  const base = Date.now() - 3600_000; // an hour ago: inside retention, never in the future

  before(async function () {
    await requireService(this, 'postgres');
    await requireService(this, 'redis');
    await requireService(this, 'mqtt');
    db = await createTestDatabase('scale');
    em = await FakeElectricityMaps.start();
    env = {
      MQTT_URL: 'mqtt://127.0.0.1:1883',
      MQTT_TOPIC_PREFIX: prefix,
      HYPERVOLT_GROUP: group,
      REDIS_URL,
      REDIS_KEY_PREFIX: redisPrefix,
      DATABASE_URL: db.url,
      ELECTRICITY_MAPS_BASE_URL: em.url,
      ELECTRICITY_MAPS_API_KEY: EM_TEST_KEY,
      CARBON_FETCH_MINUTES: String(CARBON_INTERVAL_S / 60),
      HYPERVOLT_LEADER_TTL_SECONDS: String(LEADER_TTL_S),
    };
    [a, b] = await Promise.all([startApp(env), startApp(env)]);
    pg = new Client({ connectionString: db.url });
    await pg.connect();
    for (let p = 0; p < PUBLISHERS; p++) publishers.push(await mqttConnect({ clientId: `hvtest-${RUN_ID}-pub${p}` }));
  });

  after(async () => {
    for (const s of sockets) s.ws.terminate();
    for (const p of publishers) await p.endAsync(true).catch(() => undefined);
    await Promise.all([a, b, a2].map((x) => x?.stop().catch(() => undefined)));
    // Forget the instances' persistent sessions on Mosquitto.
    for (const clientId of clientIds) {
      const s = await mqttConnect({ clientId, clean: true, properties: { sessionExpiryInterval: 0 } }).catch(() => undefined);
      await s?.endAsync(true);
    }
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    } catch {
      // Redis gone: nothing to clean
    } finally {
      redis.disconnect();
    }
    await pg?.end().catch(() => undefined);
    await db?.drop();
    await em?.close();
  });

  async function stored(): Promise<{ rows: number; distinct: number }> {
    const r = await pg!.query<{ rows: string; distinct: string }>(
      'SELECT count(*) AS rows, count(DISTINCT (sensor_id, timestamp)) AS distinct FROM sensor_readings',
    );
    return { rows: Number(r.rows[0].rows), distinct: Number(r.rows[0].distinct) };
  }

  /**
   * Publishes readings [from, to) spread over the publishers, QoS 1; resolves when all are acked.
   * Paced by what is stored: Mosquitto queues at most `max_queued_messages` (1000 by default) per
   * subscriber and DROPS QoS 1 messages beyond that (a broker setting, not a failure of ours), so
   * a publisher far faster than the pipeline would lose readings at the broker. Real devices
   * publish slowly; the test keeps at most MAX_OUTSTANDING published-but-not-stored readings, and
   * waits at most 2 s per step (messages held for a dead member would otherwise stall it).
   */
  async function publish(from: number, to: number, onProgress?: (sent: number) => void): Promise<void> {
    const MAX_OUTSTANDING = 800;
    let sent = 0;
    let storedNow = (await stored()).rows;
    const baseline = storedNow - from; // rows stored before this call (from earlier batches)
    let polling = true;
    const poller = (async () => {
      while (polling) {
        storedNow = (await stored()).rows;
        await sleep(100);
      }
    })();
    try {
      await Promise.all(
        publishers.map(async (client, p) => {
          const window: Promise<unknown>[] = [];
          for (let i = from + p; i < to; i += PUBLISHERS) {
            if (window.length === 0) {
              const waitUntil = Date.now() + 2000;
              while (from + sent - (storedNow - baseline) > MAX_OUTSTANDING && Date.now() < waitUntil) await sleep(20);
            }
            const r = readingOf(i, base);
            window.push(client.publishAsync(`${prefix}/sensors/${r.topic}`, r.payload, { qos: 1 }));
            if (window.length >= 100) {
              await Promise.all(window.splice(0));
              sent += 100;
              onProgress?.(sent);
            }
          }
          await Promise.all(window);
        }),
      );
    } finally {
      polling = false;
      await poller;
    }
  }

  /** Waits until the stored count stops growing (or reaches `target`); returns it. */
  async function settleStored(target: number, ms: number): Promise<{ rows: number; distinct: number }> {
    const deadline = Date.now() + ms;
    let last = -1;
    let stableSince = Date.now();
    for (;;) {
      const s = await stored();
      if (s.rows >= target) return s;
      if (s.rows !== last) {
        last = s.rows;
        stableSince = Date.now();
      } else if (Date.now() - stableSince > 5000) return s;
      if (Date.now() > deadline) return s;
      await sleep(250);
    }
  }

  it('each instance has its own client id (group, host, port) and a shared subscription', async () => {
    const host = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '_');
    for (const app of [a!, b!]) {
      const id = `hypervolt-${group}-${host}-${app.port}`;
      clientIds.push(id);
      await eventually(`${id} connected`, async () => (app.logs().includes(id) ? true : undefined), 15_000);
      const h = await eventually('healthy', async () => {
        const r = await getJson(`${app.url}/api/health/`);
        return r.status === 200 ? r.body : undefined;
      }, 15_000);
      assert.equal(h.mqtt, 'up');
    }
    assert.notEqual(clientIds[0], clientIds[1]);
  });

  it(`${FIRST_BATCH} readings: stored once, split between the instances, every WebSocket client gets all exactly once; one carbon fetch per interval`, async () => {
    sockets.push(await UpdateCounter.open(`${a!.wsUrl}/ws/sensors/`), await UpdateCounter.open(`${b!.wsUrl}/ws/sensors/`));
    const fetchWindowStart = Date.now();
    const fetchesBefore = em!.requestsTo(LATEST).length;
    const t0 = Date.now();
    await publish(0, FIRST_BATCH);
    const publishedMs = Date.now() - t0;
    const s = await settleStored(FIRST_BATCH, 120_000);
    const storedMs = Date.now() - t0;
    await eventually('every update on both sockets', async () =>
      sockets.every((c) => c.seen.size >= FIRST_BATCH) ? true : undefined, 30_000).catch(() => undefined);
    await sleep(500); // a late duplicate would show now
    const [accA, accB] = await Promise.all([accepted(a!), accepted(b!)]);
    const fetchWindowS = (Date.now() - fetchWindowStart) / 1000;
    const fetches = em!.requestsTo(LATEST).length - fetchesBefore;
    report(`published ${FIRST_BATCH} in ${publishedMs} ms; stored ${s.rows} (${s.distinct} distinct) after ${storedMs} ms ` +
      `(${Math.round((FIRST_BATCH / storedMs) * 1000)} readings/s end to end)`);
    report(`accepted: instance A ${accA}, instance B ${accB}`);
    report(`WebSocket A: ${sockets[0].updates} updates, ${sockets[0].seen.size} distinct, ${sockets[0].duplicates()} duplicates; ` +
      `B: ${sockets[1].updates} updates, ${sockets[1].seen.size} distinct, ${sockets[1].duplicates()} duplicates`);
    report(`carbon fetches in ${fetchWindowS.toFixed(1)} s at one per ${CARBON_INTERVAL_S} s: ${fetches}`);

    assert.deepEqual(s, { rows: FIRST_BATCH, distinct: FIRST_BATCH });
    assert.ok(accA > 0 && accB > 0, `both did part of the work (A ${accA}, B ${accB})`);
    assert.ok(accA + accB >= FIRST_BATCH, `every reading accepted by one of them (A ${accA} + B ${accB})`);
    for (const c of sockets) {
      assert.equal(c.seen.size, FIRST_BATCH, 'every reading reached the client');
      assert.equal(c.updates, FIRST_BATCH, 'exactly once');
    }
    const expected = fetchWindowS / CARBON_INTERVAL_S;
    assert.ok(fetches <= Math.floor(expected) + 1, `at most one fetch per interval across both: ${fetches} in ${fetchWindowS.toFixed(1)} s`);
    assert.ok(fetches >= Math.floor(expected) - 1, `the schedule runs: ${fetches} in ${fetchWindowS.toFixed(1)} s`);
  });

  it('one instance killed mid-stream: the other goes on storing and takes over the schedules; the dead one gets what the broker held when back (losses measured)', async () => {
    // Kill the instance that runs the schedules (its log says so), so the takeover is what is seen.
    const leads = (app: RunningApp) => /leader of "carbon-fetch"/.test(app.logs());
    assert.ok(leads(a!) !== leads(b!), 'exactly one instance leads the carbon fetch');
    const [victim, survivor] = leads(a!) ? [a!, b!] : [b!, a!];
    const victimId = clientIds[victim === a ? 0 : 1];
    const victimName = victim === a ? 'A' : 'B';
    const from = FIRST_BATCH;
    const to = FIRST_BATCH + SECOND_BATCH;
    const acceptedBefore = await accepted(survivor);
    let killedAt = 0;
    let killing: Promise<void> | undefined;
    const t0 = Date.now();
    await publish(from, to, (sent) => {
      if (!killing && sent >= SECOND_BATCH / 4) { // a quarter of the way
        killedAt = Date.now();
        killing = victim.kill();
      }
    });
    await killing;
    const s = await settleStored(to, 30_000);
    const afterKillMs = Date.now() - t0;
    const survivorAccepted = (await accepted(survivor)) - acceptedBefore;
    const missing = to - s.distinct;
    report(`killed instance ${victimName} (the leader; SIGKILL) ${killedAt - t0} ms into ${SECOND_BATCH} more readings; ` +
      `the other accepted ${survivorAccepted} of them; stored ${s.distinct - from} of ${SECOND_BATCH} after ${afterKillMs} ms; ` +
      `${missing} not yet stored (held for the dead instance's session, or lost)`);
    assert.equal(s.rows, s.distinct, 'nothing stored twice');
    assert.ok(survivorAccepted > 0, 'the survivor kept taking readings');
    assert.ok(survivorAccepted >= SECOND_BATCH / 2 - 200, `the survivor took at least its share (${survivorAccepted})`);

    // The schedule: fetches go on (by the survivor) once the dead leader's lock has expired.
    const fetchesAfter = () => em!.requestsTo(LATEST).filter((r) => r.at > killedAt + LEADER_TTL_S * 1000);
    await eventually('a carbon fetch after the takeover', async () => (fetchesAfter().length > 0 ? true : undefined), 20_000);
    const gap = fetchesAfter()[0].at - killedAt;
    const windowStart = Date.now();
    const before = em!.requestsTo(LATEST).length;
    await sleep(4 * CARBON_INTERVAL_S * 1000);
    const fetches = em!.requestsTo(LATEST).length - before;
    const windowS = (Date.now() - windowStart) / 1000;
    report(`first carbon fetch after the kill: ${gap} ms later; then ${fetches} fetches in ${windowS.toFixed(1)} s`);
    assert.ok(fetches >= Math.floor(windowS / CARBON_INTERVAL_S) - 1 && fetches <= Math.floor(windowS / CARBON_INTERVAL_S) + 1);

    // The dead instance comes back with its client id: the broker hands it what it held for it.
    // Mosquitto keeps giving a dead member of a share group its share (its persistent session
    // stays subscribed), queues at most max_queued_messages (1000 by default) of it and drops the
    // rest: a broker property, measured and reported here rather than hidden.
    a2 = await startApp({ ...env, MQTT_CLIENT_ID: victimId });
    if (victim === a) a = undefined;
    else b = undefined;
    const t1 = Date.now();
    await eventually('the restarted instance connected to the broker', async () => {
      const r = await getJson(`${a2!.url}/api/health/`);
      return r.body?.mqtt === 'up' ? true : undefined;
    }, 30_000);
    const s2 = await settleStored(to, 60_000);
    const delivered = s2.distinct - s.distinct;
    report(`instance ${victimName} restarted with its client id: ${delivered} more stored within ${Date.now() - t1} ms ` +
      `(held by the broker for its session); total ${s2.distinct} of ${to}, ${s2.rows - s2.distinct} stored twice, ` +
      `${to - s2.distinct} lost (the dead member's share beyond the broker's queue limit, plus what it had taken but not stored)`);
    assert.equal(s2.rows, s2.distinct, 'nothing stored twice');
    assert.ok(delivered > 0, `the restarted instance received what the broker held for its session; its log:\n${a2.logs()}`);
  });
});

