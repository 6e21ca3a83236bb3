/**
 * The app end to end, started as `npm start` starts it: MQTT in, WebSocket out, the REST API and
 * the stores, on this machine's Mosquitto, Redis and PostgreSQL, and on the embedded defaults.
 */
import assert from 'assert/strict';
import fs from 'fs';
import net from 'net';
import path from 'path';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import { Client } from 'pg';
import WebSocket from 'ws';
import { decryptCredentials } from '../../app/credentials';
import { freePort, runAppToExit, startApp, type RunningApp } from '../support/app';
import { eventually, getJson, mqttConnect, postJson, WsInbox } from '../support/e2e';
import { EM_TEST_KEY, FakeElectricityMaps } from '../support/fakes/electricitymaps';
import { FakeOpenWeatherMap, OWM_TEST_KEY } from '../support/fakes/openweathermap';
import { createTestDatabase, REDIS_DB, REDIS_PREFIX, REDIS_URL, requireService, RUN_ID, TOPIC_PREFIX } from '../support/services';

/** The editor login of the tests: bcrypt (cost 8) of ADMIN_PASSWORD. */
const ADMIN_PASSWORD = 'hv-admin-pass';
const ADMIN_HASH = '$2b$08$uSWiLCZ.S5Xj9qAbiT/UA.2hVfbNe2ChKJy8udD2ZcxSD7evNQ8AS';

/** A timestamp `secondsAgo` in the past, whole seconds, as a Pi sends it (no milliseconds). */
function pastSecond(secondsAgo: number): { sent: string; stored: string } {
  const d = new Date(Math.floor(Date.now() / 1000) * 1000 - secondsAgo * 1000);
  return { sent: d.toISOString().replace('.000Z', 'Z'), stored: d.toISOString() };
}

async function waitHealthy(app: RunningApp, headers: Record<string, string> = {}): Promise<any> {
  return eventually('health 200', async () => {
    const h = await getJson(`${app.url}/api/health/`, headers);
    return h.status === 200 ? h.body : undefined;
  }, 15_000);
}

describe('e2e: the app', function () {
  this.timeout(90_000);

  describe('on Mosquitto, Redis and PostgreSQL', () => {
    let app: RunningApp | undefined;
    let db: { url: string; drop: () => Promise<void> } | undefined;
    let client: mqtt.MqttClient | undefined;
    const inboxes: WsInbox[] = [];
    const prefix = `${TOPIC_PREFIX}_e2e`;
    const clientId = `hvtest-${RUN_ID}-e2e`;
    let env: Record<string, string>;

    before(async function () {
      await requireService(this, 'postgres');
      await requireService(this, 'redis');
      await requireService(this, 'mqtt');
      db = await createTestDatabase('e2e');
      env = {
        MQTT_URL: 'mqtt://127.0.0.1:1883',
        MQTT_TOPIC_PREFIX: prefix,
        MQTT_CLIENT_ID: clientId,
        REDIS_URL,
        REDIS_KEY_PREFIX: REDIS_PREFIX,
        DATABASE_URL: db.url,
      };
      app = await startApp(env);
      client = await mqttConnect({ clientId: `${clientId}-device` });
      await client.subscribeAsync(`${prefix}/errors/#`, { qos: 1 });
    });

    after(async () => {
      for (const i of inboxes) i.close();
      await client?.endAsync(true).catch(() => undefined);
      await app?.stop();
      // Forget the pipeline's persistent session on Mosquitto.
      const session = await mqttConnect({ clientId, clean: true, properties: { sessionExpiryInterval: 0 } }).catch(() => undefined);
      await session?.endAsync(true);
      try {
        const keys = await redisKeys();
        if (keys.length > 0) await withRedis((r) => r.del(...keys));
      } catch {
        // Redis gone: nothing to clean
      }
      await db?.drop();
    });

    async function withRedis<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        return await fn(redis);
      } finally {
        redis.disconnect();
      }
    }

    /** Every key of this run's prefix (SCAN, never KEYS). */
    function redisKeys(): Promise<string[]> {
      return withRedis(async (r) => {
        const keys: string[] = [];
        let cursor = '0';
        do {
          const [next, batch] = await r.scan(cursor, 'MATCH', `${REDIS_PREFIX}*`, 'COUNT', 500);
          cursor = next;
          keys.push(...batch);
        } while (cursor !== '0');
        return keys;
      });
    }

    it('says which broker and stores it uses', () => {
      assert.match(app!.logs(), /MQTT broker: mqtt:\/\/127\.0\.0\.1:1883 \(MQTT_URL\)/);
      assert.match(app!.logs(), new RegExp(`hot window store: redis://127\\.0\\.0\\.1:6379/${REDIS_DB}`));
      assert.match(app!.logs(), /database: postgres(ql)?:\/\//);
    });

    it('is healthy once connected: 200 with every part up; the trailing slash is optional', async () => {
      const body = await waitHealthy(app!);
      assert.deepEqual(body, { status: 'ok', mqtt: 'up', hot_store: 'up', cold_store: 'up' });
      assert.equal((await getJson(`${app!.url}/api/health`)).status, 200);
    });

    it('MQTT reading → WebSocket sensor_update, hot window and stored row', async () => {
      await waitHealthy(app!);
      const ws = await WsInbox.open(`${app!.wsUrl}/ws/sensors/`);
      inboxes.push(ws);
      const t = pastSecond(60);
      const reading = { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 750, unit: 'lux', location: 'living_room', timestamp: t.sent };
      await client!.publishAsync(`${prefix}/sensors/living_room/ldr`, JSON.stringify(reading), { qos: 1 });

      assert.deepEqual(await ws.next(), {
        type: 'sensor_update',
        data: { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 750, unit: 'lux', location: 'living_room', timestamp: t.stored },
      });

      const buffer = await getJson(`${app!.url}/api/sensor-readings/buffer/?sensor_type=ldr&sensor_id=ldr_1`);
      assert.equal(buffer.status, 200);
      assert.deepEqual(buffer.body.readings, [{ value: 750, timestamp: t.stored }]);
      assert.equal(buffer.body.stats.count, 1);
      assert.equal(buffer.body.stats.latest_value, 750);
      assert.ok((await redisKeys()).length > 0, 'the hot window is in Redis, under REDIS_KEY_PREFIX');

      const list = await eventually('the stored row', async () => {
        const r = await getJson(`${app!.url}/api/sensor-readings/?sensor_id=ldr_1`);
        return r.body?.count === 1 ? r.body : undefined;
      });
      const row = list.results[0];
      assert.equal(typeof row.id, 'number');
      assert.match(row.created_at, /Z$/);
      assert.deepEqual(
        { sensor_type: row.sensor_type, sensor_id: row.sensor_id, value: row.value, unit: row.unit, location: row.location, timestamp: row.timestamp },
        { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 750, unit: 'lux', location: 'living_room', timestamp: t.stored },
      );
      const one = await getJson(`${app!.url}/api/sensor-readings/${row.id}/`);
      assert.equal(one.status, 200);
      assert.equal(one.body.id, row.id);
    });

    it('a reading delivered twice is stored and broadcast once', async () => {
      const ws = await WsInbox.open(`${app!.wsUrl}/ws/sensors/`);
      inboxes.push(ws);
      const t = pastSecond(50);
      const reading = { sensor_type: 'ldr', sensor_id: 'ldr_dup', value: 10, timestamp: t.sent };
      for (let i = 0; i < 2; i++) {
        await client!.publishAsync(`${prefix}/sensors/living_room/ldr`, JSON.stringify(reading), { qos: 1 });
      }
      // A later, different reading marks the point where both copies have been processed.
      const after = pastSecond(40);
      await client!.publishAsync(
        `${prefix}/sensors/living_room/ldr`,
        JSON.stringify({ ...reading, value: 11, timestamp: after.sent }),
        { qos: 1 },
      );
      assert.equal(((await ws.next()) as any).data.value, 10);
      assert.equal(((await ws.next()) as any).data.value, 11, 'the duplicate was not broadcast');
      const list = await eventually('both rows', async () => {
        const r = await getJson(`${app!.url}/api/sensor-readings/?sensor_id=ldr_dup`);
        return r.body?.count >= 2 ? r.body : undefined;
      });
      await new Promise((r) => setTimeout(r, 300)); // any late duplicate write would land by now
      const again = await getJson(`${app!.url}/api/sensor-readings/?sensor_id=ldr_dup`);
      assert.equal(again.body.count, 2);
      assert.deepEqual(list.results.map((r: any) => r.value).sort(), [10, 11]);
    });

    it('a bad reading is rejected on the errors topic and the pipeline keeps going', async () => {
      const ws = await WsInbox.open(`${app!.wsUrl}/ws/sensors/`);
      inboxes.push(ws);
      const errorTopic = `${prefix}/errors/living_room/ldr`;
      const rejected = new Promise<{ topic: string; payload: any }>((resolve) => {
        const onMessage = (topic: string, payload: Buffer) => {
          if (topic !== errorTopic) return;
          client!.removeListener('message', onMessage);
          resolve({ topic, payload: JSON.parse(payload.toString()) });
        };
        client!.on('message', onMessage);
      });
      await client!.publishAsync(`${prefix}/sensors/living_room/ldr`, JSON.stringify({ sensor_type: 'ldr', sensor_id: 'ldr_1', value: 'bright' }), { qos: 1 });
      const got = await rejected;
      assert.equal(got.payload.error.field, 'value');
      assert.equal(typeof got.payload.error.code, 'string');
      assert.match(got.payload.error.message, /value/);
      assert.deepEqual(got.payload.reading, { sensor_type: 'ldr', sensor_id: 'ldr_1', value: 'bright' });

      const t = pastSecond(30);
      await client!.publishAsync(`${prefix}/sensors/living_room/ldr`, JSON.stringify({ sensor_type: 'ldr', sensor_id: 'ldr_1', value: 900, timestamp: t.sent }), { qos: 1 });
      assert.deepEqual(((await ws.next()) as any).data, {
        sensor_type: 'ldr', sensor_id: 'ldr_1', value: 900, unit: 'lux', location: 'living_room', timestamp: t.stored,
      });
      const latest = await eventually('latest shows 900', async () => {
        const r = await getJson(`${app!.url}/api/sensor-readings/latest/`);
        return r.body?.find?.((x: any) => x.sensor_id === 'ldr_1' && x.value === 900) ? r.body : undefined;
      });
      assert.ok(Array.isArray(latest));
      const recent = await getJson(`${app!.url}/api/sensor-readings/recent/?hours=1&sensor_id=ldr_1`);
      assert.equal(recent.status, 200);
      assert.deepEqual(recent.body.map((r: any) => r.value), [900, 750]);
    });

    it('invalid JSON on the WebSocket: an error to that client only', async () => {
      const a = await WsInbox.open(`${app!.wsUrl}/ws/sensors`); // no trailing slash: same endpoint
      const b = await WsInbox.open(`${app!.wsUrl}/ws/sensors/`);
      inboxes.push(a, b);
      a.ws.send('{not json');
      assert.deepEqual(await a.next(), { type: 'error', message: 'Invalid JSON' });
      a.ws.send('{"type": "hello"}'); // valid JSON: no answer
      await a.nothingWithin(300);
      await b.nothingWithin(0);
    });

    it('POST /api/sensor-readings/: 201 with the row, broadcast; invalid: 400 by field', async () => {
      const ws = await WsInbox.open(`${app!.wsUrl}/ws/sensors/`);
      inboxes.push(ws);
      const t = pastSecond(20);
      const created = await postJson(
        `${app!.url}/api/sensor-readings/`,
        JSON.stringify({ sensor_type: 'temperature', sensor_id: 't_1', value: '21.5', location: 'kitchen', timestamp: t.sent, extra: 'dropped' }),
      );
      assert.equal(created.status, 201);
      assert.equal(typeof created.body.id, 'number');
      assert.equal(created.body.value, 21.5);
      assert.equal(created.body.unit, 'celsius');
      assert.equal(created.body.extra, undefined);
      assert.deepEqual(await ws.next(), {
        type: 'sensor_update',
        data: { sensor_type: 'temperature', sensor_id: 't_1', value: 21.5, unit: 'celsius', location: 'kitchen', timestamp: t.stored },
      });

      const bad = await postJson(`${app!.url}/api/sensor-readings/`, JSON.stringify({ sensor_type: 'humidity', sensor_id: 'h_1', value: 140 }));
      assert.equal(bad.status, 400);
      assert.deepEqual(Object.keys(bad.body), ['value']);
      assert.ok(Array.isArray(bad.body.value) && typeof bad.body.value[0] === 'string');

      const many = await postJson(
        `${app!.url}/api/sensor-readings/`,
        JSON.stringify([{ sensor_type: 'humidity', sensor_id: 'h_1', value: 40 }, { sensor_type: 'humidity', sensor_id: 'h_1', value: -1 }]),
      );
      assert.equal(many.status, 400);
      assert.deepEqual(many.body[0], {});
      assert.deepEqual(Object.keys(many.body[1]), ['value']);
      await ws.nothingWithin(200);
    });

    it('HTTP errors are JSON: invalid JSON 400, unknown path 404, wrong method 405, too large 413', async () => {
      const parse = await postJson(`${app!.url}/api/sensor-readings/`, '{"sensor_type": ');
      assert.equal(parse.status, 400);
      assert.match(parse.body.detail, /^JSON parse error - /);

      const unknown = await getJson(`${app!.url}/api/nope/`);
      assert.deepEqual(unknown, { status: 404, body: { detail: 'Not found.' } });
      assert.equal((await getJson(`${app!.url}/api/sensor-readings/abc/`)).status, 404);
      assert.deepEqual((await getJson(`${app!.url}/api/sensor-readings/999999999/`)).body, { detail: 'Not found.' });

      const r = await fetch(`${app!.url}/api/health/`, { method: 'DELETE' });
      assert.equal(r.status, 405);
      assert.deepEqual(await r.json(), { detail: 'Method "DELETE" not allowed.' });

      const big = await postJson(`${app!.url}/api/sensor-readings/`, JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 10) }));
      assert.equal(big.status, 413);
      assert.match(big.body.detail, /too large/);
    });

    it('POST /api/maintenance/cleanup/ deletes only rows older than RETENTION_DAYS', async () => {
      // The pipeline rejects such readings on arrival, so one is put straight into the table.
      const pg = new Client({ connectionString: db!.url });
      await pg.connect();
      try {
        await pg.query(
          `INSERT INTO sensor_readings (sensor_type, sensor_id, value, unit, location, timestamp)
           VALUES ('ldr', 'ldr_old', 1, 'lux', 'attic', now() - interval '8 days')`,
        );
      } finally {
        await pg.end();
      }
      const before = (await getJson(`${app!.url}/api/sensor-readings/`)).body.count;
      const r = await postJson(`${app!.url}/api/maintenance/cleanup/`, '');
      assert.deepEqual(r, { status: 200, body: { deleted: { sensor_readings: 1, grid_data: 0 } } });
      assert.equal((await getJson(`${app!.url}/api/sensor-readings/`)).body.count, before - 1);
      assert.equal((await getJson(`${app!.url}/api/sensor-readings/?sensor_id=ldr_old`)).body.count, 0);
    });

    it('readings published while the app is down arrive when it is back (persistent session)', async () => {
      await app!.stop({ keepData: true });
      const t = pastSecond(10);
      await client!.publishAsync(
        `${prefix}/sensors/garage/power`,
        JSON.stringify({ sensor_type: 'power', sensor_id: 'p_offline', value: 42, timestamp: t.sent }),
        { qos: 1 },
      );
      const dataDir = app!.dataDir;
      app = await startApp(env, { dataDir });
      try {
        const row = await eventually('the reading sent while down', async () => {
          const r = await getJson(`${app!.url}/api/sensor-readings/?sensor_id=p_offline`);
          return r.body?.count === 1 ? r.body.results[0] : undefined;
        });
        assert.equal(row.value, 42);
        assert.equal(row.location, 'garage');
        assert.equal(row.timestamp, t.stored);
      } finally {
        await app.stop();
        fs.rmSync(dataDir, { recursive: true, force: true });
        app = undefined;
      }
    });
  });

  describe('on the embedded defaults (no MQTT_URL, REDIS_URL, DATABASE_URL)', () => {
    let app: RunningApp | undefined;
    let client: mqtt.MqttClient | undefined;
    let ws: WsInbox | undefined;
    const prefix = `${TOPIC_PREFIX}_emb`;
    const clientId = `hvtest-${RUN_ID}-emb`;
    let brokerWasRunning = false;
    let em: FakeElectricityMaps | undefined;
    let owm: FakeOpenWeatherMap | undefined;

    before(async () => {
      em = await FakeElectricityMaps.start();
      owm = await FakeOpenWeatherMap.start();
      brokerWasRunning = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: 1883 });
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      app = await startApp({
        MQTT_TOPIC_PREFIX: prefix,
        MQTT_CLIENT_ID: clientId,
        API_TOKEN: 'write-token',
        API_READ_TOKEN: 'read-token',
        ELECTRICITY_MAPS_BASE_URL: em.url,
        ELECTRICITY_MAPS_API_KEY: EM_TEST_KEY,
        OPENWEATHER_BASE_URL: owm.url,
        OPENWEATHER_API_KEY: OWM_TEST_KEY,
        LOCATION_ZONE: 'IN-KA',
        CORS_ORIGIN: 'http://twin.example',
        ADMIN_USER: 'admin',
        ADMIN_PASSWORD_HASH: ADMIN_HASH,
      });
    });

    after(async () => {
      ws?.close();
      await client?.endAsync(true).catch(() => undefined);
      await app?.stop();
      await em?.close();
      await owm?.close();
      if (brokerWasRunning) {
        const session = await mqttConnect({ clientId, clean: true, properties: { sessionExpiryInterval: 0 } }).catch(() => undefined);
        await session?.endAsync(true);
      }
    });

    const auth = { authorization: 'Bearer read-token' };

    it('the editor needs its login (ADMIN_USER, ADMIN_PASSWORD_HASH)', async () => {
      assert.equal((await fetch(`${app!.url}/admin/flows`)).status, 401);
      const login = (password: string) =>
        fetch(`${app!.url}/admin/auth/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password }),
        });
      assert.equal((await login('wrong')).status, 403);
      const ok = await login(ADMIN_PASSWORD);
      assert.equal(ok.status, 200);
      const { access_token } = (await ok.json()) as { access_token: string };
      const flows = await fetch(`${app!.url}/admin/flows`, { headers: { authorization: `Bearer ${access_token}` } });
      assert.equal(flows.status, 200);
    });

    it('says which broker it uses', () => {
      if (brokerWasRunning) {
        assert.match(app!.logs(), /MQTT broker: mqtt:\/\/127\.0\.0\.1:1883 \(a broker is already listening there/);
      } else {
        assert.match(app!.logs(), /MQTT broker: embedded aedes at mqtt:\/\/127\.0\.0\.1:1883/);
      }
      assert.match(app!.logs(), /hot window store: in-process/);
      assert.match(app!.logs(), /V8 heap flags: --max-semi-space-size=32 --heap-growing-percent=25\n/, 'as npm start runs it');
      assert.doesNotMatch(app!.logs(), /read-token|write-token/, 'no secrets in the log');
    });

    it('needs the tokens: reads with the read token, writes with the write token', async () => {
      assert.equal((await getJson(`${app!.url}/api/health/`)).status, 401);
      assert.equal((await postJson(`${app!.url}/api/sensor-readings/`, '{}', auth)).status, 403);
      const denied = await new Promise<number>((resolve) => {
        const c = new WebSocket(`${app!.wsUrl}/ws/sensors/`);
        c.once('unexpected-response', (req, res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        });
        c.once('open', () => (c.terminate(), resolve(101)));
        c.once('error', () => undefined);
      });
      assert.equal(denied, 401);
    });

    it('CORS_ORIGIN: CORS headers for that origin; WebSocket upgrades from others refused', async () => {
      const r = await fetch(`${app!.url}/api/health/`, { headers: { ...auth, origin: 'http://twin.example' } });
      assert.equal(r.headers.get('access-control-allow-origin'), 'http://twin.example');
      const other = await fetch(`${app!.url}/api/health/`, { headers: { ...auth, origin: 'http://evil.example' } });
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      const upgrade = (origin: string) =>
        new Promise<number>((resolve) => {
          const c = new WebSocket(`${app!.wsUrl}/ws/sensors/?token=read-token`, { origin });
          c.once('unexpected-response', (req, res) => {
            resolve(res.statusCode ?? 0);
            req.destroy();
          });
          c.once('open', () => (c.terminate(), resolve(101)));
          c.once('error', () => undefined);
        });
      assert.equal(await upgrade('http://evil.example'), 403);
      assert.equal(await upgrade('http://twin.example'), 101);
    });

    it('SQLite and the in-process hot window work end to end', async () => {
      const health = await waitHealthy(app!, auth);
      assert.deepEqual(health, { status: 'ok', mqtt: 'up', hot_store: 'up', cold_store: 'up' });
      assert.ok(fs.existsSync(path.join(app!.dataDir, 'hypervolt.db')), 'SQLite file in DATA_DIR');

      ws = await WsInbox.open(`${app!.wsUrl}/ws/sensors/?token=read-token`);
      client = await mqttConnect({ clientId: `${clientId}-device`, protocolVersion: brokerWasRunning ? 5 : 4 });
      const t = pastSecond(5);
      await client.publishAsync(
        `${prefix}/sensors/living_room/ldr`,
        JSON.stringify({ sensor_type: 'ldr', sensor_id: 'ldr_9', value: 321, timestamp: t.sent }),
        { qos: 1 },
      );
      assert.deepEqual(await ws.next(5000, 'sensor_update'), {
        type: 'sensor_update',
        data: { sensor_type: 'ldr', sensor_id: 'ldr_9', value: 321, unit: 'lux', location: 'living_room', timestamp: t.stored },
      });
      const buffer = await getJson(`${app!.url}/api/sensor-readings/buffer/?sensor_type=ldr&sensor_id=ldr_9`, auth);
      assert.deepEqual(buffer.body.readings, [{ value: 321, timestamp: t.stored }]);
      const row = await eventually('the row in SQLite', async () => {
        const r = await getJson(`${app!.url}/api/sensor-readings/?sensor_id=ldr_9`, auth);
        return r.body?.count === 1 ? r.body.results[0] : undefined;
      });
      assert.equal(row.value, 321);
    });

    it('grid data: refresh → rows, grid_update on the WebSocket, the AI context; keys only as credentials', async () => {
      const grid = await WsInbox.open(`${app!.wsUrl}/ws/sensors/?token=read-token`);
      try {
        const refresh = await postJson(`${app!.url}/api/grid-data/refresh/`, '', { authorization: 'Bearer write-token' });
        assert.equal(refresh.status, 202);
        const updates = [await grid.next(10_000, 'grid_update'), await grid.next(10_000, 'grid_update')] as any[];
        const byType = Object.fromEntries(updates.map((u) => [u.data.data_type, u.data]));
        assert.equal(byType.carbon_intensity.value, em!.carbonIntensity);
        assert.equal(byType.carbon_intensity.zone, 'IN-KA');
        assert.equal(byType.weather.value, owm!.temp);
        assert.equal(typeof byType.weather.id, 'number');
      } finally {
        grid.close();
      }
      const context = await getJson(`${app!.url}/api/context/`, auth);
      assert.equal(context.status, 200);
      assert.equal(context.body.carbon_intensity.value, em!.carbonIntensity);
      assert.equal(typeof context.body.carbon_intensity.age_seconds, 'number');
      assert.equal(context.body.weather.value, owm!.temp);
      assert.deepEqual(context.body.sensors['ldr:ldr_9'].latest_value, 321);
      // The fakes saw the keys, which reached the nodes only through the credentials placeholders.
      const secret = fs.readFileSync(path.join(app!.dataDir, 'credential-secret'), 'utf8').trim();
      const credFile = path.join(app!.dataDir, 'node-red', 'hypervolt_cred.json');
      const stored = fs.readFileSync(credFile, 'utf8');
      assert.ok(!stored.includes(EM_TEST_KEY) && !stored.includes(OWM_TEST_KEY));
      const creds = decryptCredentials(secret, JSON.parse(stored));
      assert.deepEqual(Object.values(creds).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [
        { apiKey: '${ELECTRICITY_MAPS_API_KEY}' },
        { apiKey: '${OPENWEATHER_API_KEY}' },
      ]);
      assert.doesNotMatch(app!.logs(), new RegExp(`${EM_TEST_KEY}|${OWM_TEST_KEY}`));
    });
  });

  describe('on the embedded aedes broker (nothing listening on the local broker port)', () => {
    let app: RunningApp | undefined;
    let client: mqtt.MqttClient | undefined;
    let ws: WsInbox | undefined;
    let brokerPort = 0;

    before(async () => {
      brokerPort = await freePort();
      app = await startApp({
        HYPERVOLT_LOCAL_MQTT_PORT: String(brokerPort),
        MQTT_CLIENT_ID: `hvtest-${RUN_ID}-aedes`,
        MQTT_USERNAME: 'hv-device',
        MQTT_PASSWORD: 'broker-pass-7d2',
      });
    });
    after(async () => {
      ws?.close();
      await client?.endAsync(true).catch(() => undefined);
      await app?.stop();
    });

    it('starts it, says so, and runs the pipeline on MQTT 3.1.1 with the broker login', async () => {
      assert.match(app!.logs(), new RegExp(`MQTT broker: embedded aedes at mqtt://127\\.0\\.0\\.1:${brokerPort}`));
      await waitHealthy(app!); // mqtt up: the flow logged in with MQTT_USERNAME/MQTT_PASSWORD
      assert.doesNotMatch(app!.logs(), /broker-pass-7d2/);
      const anonymous = mqtt.connect(`mqtt://127.0.0.1:${brokerPort}`, { protocolVersion: 4, reconnectPeriod: 0 });
      await assert.rejects(
        new Promise((resolve, reject) => {
          anonymous.once('connect', resolve);
          anonymous.once('error', reject);
        }),
        /Bad username or password|Not authorized/i,
      );
      anonymous.end(true);
      ws = await WsInbox.open(`${app!.wsUrl}/ws/sensors/`);
      client = await new Promise<mqtt.MqttClient>((resolve, reject) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${brokerPort}`, {
          protocolVersion: 4,
          reconnectPeriod: 0,
          username: 'hv-device',
          password: 'broker-pass-7d2',
        });
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
      const t = pastSecond(3);
      await client.publishAsync('HyperVolt/sensors/hall/voltage', JSON.stringify({ sensor_type: 'voltage', sensor_id: 'v_1', value: 229.5, timestamp: t.sent }), { qos: 1 });
      assert.deepEqual(await ws.next(5000, 'sensor_update'), {
        type: 'sensor_update',
        data: { sensor_type: 'voltage', sensor_id: 'v_1', value: 229.5, unit: 'V', location: 'hall', timestamp: t.stored },
      });
    });

    it('closes the broker on stop', async () => {
      const code = await app!.stop();
      app = undefined;
      assert.equal(code, 0);
      const open = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: brokerPort });
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      assert.equal(open, false);
    });
  });

  describe('refusing to start', () => {
    it('HOST=0.0.0.0 without an editor login: exits non-zero, saying why', async () => {
      const { code, logs } = await runAppToExit({ HOST: '0.0.0.0', MQTT_URL: 'mqtt://127.0.0.1:1' });
      assert.notEqual(code, 0);
      assert.match(logs, /refusing to listen on HOST=0\.0\.0\.0 without an editor login/);
      assert.doesNotMatch(logs, /Welcome to Node-RED/);
    });

    it('a port in use: exits non-zero, saying so', async () => {
      const port = await freePort();
      const blocker = net.createServer();
      await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
      try {
        const { code, logs } = await runAppToExit({ PORT: String(port), MQTT_URL: 'mqtt://127.0.0.1:1' });
        assert.notEqual(code, 0);
        assert.match(logs, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
      } finally {
        await new Promise<void>((r) => blocker.close(() => r()));
      }
    });
  });
});
