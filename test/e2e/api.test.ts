/**
 * The REST resources of CONTRACT section 4 through the shipped flow, as `npm start` runs it:
 * preferences, energy sources, AI decisions (with their commands on MQTT and `ai_decision` on the
 * WebSocket), decisions arriving over MQTT, device commands, grid data, OpenAPI and metrics.
 * Run on PostgreSQL + Redis and on SQLite + the in-process window.
 */
import assert from 'assert/strict';
import type mqtt from 'mqtt';
import { startApp, type RunningApp } from '../support/app';
import { eventually, getJson, mqttConnect, postJson, WsInbox } from '../support/e2e';
import { EM_TEST_KEY, FakeElectricityMaps } from '../support/fakes/electricitymaps';
import { createTestDatabase, REDIS_PREFIX, REDIS_URL, requireService, RUN_ID, TOPIC_PREFIX } from '../support/services';

async function send(url: string, method: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

/** Collects MQTT messages by topic. */
function collect(client: mqtt.MqttClient): Array<{ topic: string; payload: any }> {
  const got: Array<{ topic: string; payload: any }> = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: JSON.parse(payload.toString()) }));
  return got;
}

for (const backend of ['postgres', 'sqlite'] as const) {
  describe(`e2e: the REST resources on ${backend}`, function () {
    this.timeout(60_000);
    const prefix = `${TOPIC_PREFIX}_api_${backend}`;
    const clientId = `hvtest-${RUN_ID}-api-${backend}`;
    let app: RunningApp | undefined;
    let drop: (() => Promise<void>) | undefined;
    let em: FakeElectricityMaps | undefined;
    let device: mqtt.MqttClient | undefined;
    let inbox: WsInbox | undefined;
    let received: Array<{ topic: string; payload: any }> = [];
    let api = '';

    before(async function () {
      await requireService(this, 'mqtt');
      const env: Record<string, string> = { MQTT_URL: 'mqtt://127.0.0.1:1883', MQTT_TOPIC_PREFIX: prefix, MQTT_CLIENT_ID: clientId };
      if (backend === 'postgres') {
        await requireService(this, 'postgres');
        await requireService(this, 'redis');
        const db = await createTestDatabase('api');
        drop = db.drop;
        Object.assign(env, { DATABASE_URL: db.url, REDIS_URL, REDIS_KEY_PREFIX: `${REDIS_PREFIX}api:` });
      }
      em = await FakeElectricityMaps.start();
      Object.assign(env, { ELECTRICITY_MAPS_BASE_URL: em.url, ELECTRICITY_MAPS_API_KEY: EM_TEST_KEY, LOCATION_ZONE: 'IN-KA' });
      app = await startApp(env);
      api = `${app.url}/api`;
      device = await mqttConnect({ clientId: `${clientId}-device` });
      received = collect(device);
      await device.subscribeAsync(`${prefix}/commands/#`, { qos: 1 });
      inbox = await WsInbox.open(`${app.wsUrl}/ws/sensors/`);
    });

    after(async () => {
      inbox?.close();
      await device?.endAsync(true).catch(() => undefined);
      await app?.stop();
      const session = await mqttConnect({ clientId, clean: true, properties: { sessionExpiryInterval: 0 } }).catch(() => undefined);
      await session?.endAsync(true);
      await em?.close();
      await drop?.();
    });

    it('preferences: create, duplicate, get_preference, PATCH, PUT, DELETE', async () => {
      const created = await send(`${api}/preferences/`, 'POST', { preference_key: 'brightness_threshold', preference_value: 300, description: 'lux', id: 99 });
      assert.equal(created.status, 201);
      assert.equal(created.body.preference_key, 'brightness_threshold');
      assert.equal(created.body.preference_value, 300);
      assert.notEqual(created.body.id, 99, 'id is read-only');
      const dup = await send(`${api}/preferences/`, 'POST', { preference_key: 'brightness_threshold', preference_value: 1 });
      assert.equal(dup.status, 400);
      assert.ok(Array.isArray(dup.body.preference_key));
      assert.deepEqual((await getJson(`${api}/preferences/get_preference/?key=brightness_threshold`)).body.preference_value, 300);
      assert.equal((await getJson(`${api}/preferences/get_preference/`)).status, 400);
      assert.deepEqual(await getJson(`${api}/preferences/get_preference/?key=nope`), { status: 404, body: { error: 'Preference not found' } });
      const patched = await send(`${api}/preferences/brightness_threshold/`, 'PATCH', { preference_value: { day: 250, night: 50 } });
      assert.equal(patched.status, 200);
      assert.deepEqual(patched.body.preference_value, { day: 250, night: 50 });
      assert.equal(patched.body.description, 'lux', 'PATCH keeps the other fields');
      const put = await send(`${api}/preferences/brightness_threshold/`, 'PUT', { preference_key: 'brightness_threshold', preference_value: 'dark' });
      assert.equal(put.status, 200);
      assert.equal(put.body.preference_value, 'dark');
      const list = await getJson(`${api}/preferences/`);
      assert.equal(list.body.count, 1);
      assert.equal((await send(`${api}/preferences/brightness_threshold/`, 'DELETE')).status, 204);
      assert.equal((await getJson(`${api}/preferences/brightness_threshold/`)).status, 404);
    });

    it('energy sources: ordered by priority, available only, PATCH', async () => {
      const grid = await send(`${api}/energy-sources/`, 'POST', { source_type: 'grid', is_available: true, capacity: null, current_output: 1200, priority: 1 });
      assert.equal(grid.status, 201);
      const solar = await send(`${api}/energy-sources/`, 'POST', { source_type: 'solar', is_available: false, capacity: 3000, current_output: 0, priority: 5 });
      assert.equal(solar.status, 201);
      assert.equal((await send(`${api}/energy-sources/`, 'POST', { source_type: 'grid' })).status, 400, 'source_type is unique');
      assert.equal((await send(`${api}/energy-sources/`, 'POST', { source_type: 'nuclear' })).status, 400);
      const list = await getJson(`${api}/energy-sources/`);
      assert.deepEqual(list.body.results.map((r: any) => r.source_type), ['solar', 'grid']);
      assert.deepEqual((await getJson(`${api}/energy-sources/available/`)).body.map((r: any) => r.source_type), ['grid']);
      const patched = await send(`${api}/energy-sources/${solar.body.id}/`, 'PATCH', { is_available: true, current_output: 850.5 });
      assert.equal(patched.status, 200);
      assert.equal(patched.body.current_output, 850.5);
      assert.equal((await getJson(`${api}/energy-sources/available/`)).body.length, 2);
      assert.equal((await send(`${api}/energy-sources/${solar.body.id}/`, 'DELETE')).status, 405);
    });

    it('AI decisions: recorded, commands published over MQTT, ai_decision on the WebSocket, only applied may change', async () => {
      const body = {
        decision_type: 'light_dim',
        decision: { target: 'living_room' },
        confidence: 0.82,
        reasoning: 'bright daylight',
        commands: [{ device_id: 'lamp_1', command: 'set_brightness', value: 40 }],
      };
      const r = await postJson(`${api}/ai-decisions/`, JSON.stringify(body));
      assert.equal(r.status, 201);
      assert.equal(r.body.applied, false);
      assert.deepEqual(r.body.decision.commands, body.commands);
      const cmd = await eventually('the command on MQTT', async () => received.find((m) => m.topic === `${prefix}/commands/lamp_1`));
      assert.equal(cmd.payload.command, 'set_brightness');
      assert.equal(cmd.payload.value, 40);
      assert.match(cmd.payload.timestamp, /Z$/);
      const ws = (await inbox!.next(5000, 'ai_decision')) as { data: { id: number } };
      assert.equal(ws.data.id, r.body.id);

      assert.equal((await getJson(`${api}/ai-decisions/latest/?decision_type=light_dim`)).body.id, r.body.id);
      assert.deepEqual(await getJson(`${api}/ai-decisions/latest/?decision_type=load_shift`), { status: 404, body: { detail: 'Not found.' } });
      assert.equal((await getJson(`${api}/ai-decisions/recent/?hours=1`)).body.length, 1);
      assert.equal((await send(`${api}/ai-decisions/${r.body.id}/`, 'PATCH', { confidence: 0.1 })).status, 400);
      const applied = await send(`${api}/ai-decisions/${r.body.id}/`, 'PATCH', { applied: true });
      assert.equal(applied.status, 200);
      assert.equal(applied.body.applied, true);
      assert.equal(applied.body.confidence, 0.82);
      assert.equal((await getJson(`${api}/ai-decisions/?applied=true`)).body.count, 1);
      assert.equal((await postJson(`${api}/ai-decisions/`, JSON.stringify({ ...body, confidence: 2 }))).status, 400);
    });

    it('a decision published on {prefix}/ai/decisions is recorded the same way', async () => {
      await device!.publishAsync(
        `${prefix}/ai/decisions`,
        JSON.stringify({ decision_type: 'load_shift', decision: { shift: 'dishwasher' }, confidence: 0.6, reasoning: 'via mqtt', commands: [{ device_id: 'dishwasher', command: 'delay', value: 120 }] }),
        { qos: 1 },
      );
      const row = await eventually('the MQTT decision stored', async () => {
        const r = await getJson(`${api}/ai-decisions/latest/?decision_type=load_shift`);
        return r.status === 200 ? r.body : undefined;
      });
      assert.equal(row.reasoning, 'via mqtt');
      await eventually('its command on MQTT', async () => received.find((m) => m.topic === `${prefix}/commands/dishwasher`));
    });

    it('POST /api/commands/: 202 and published; a wildcard device id is refused', async () => {
      const r = await postJson(`${api}/commands/`, JSON.stringify({ device_id: 'fan_2', command: 'off', value: null }));
      assert.equal(r.status, 202);
      const m = await eventually('the command', async () => received.find((x) => x.topic === `${prefix}/commands/fan_2`));
      assert.equal(m.payload.command, 'off');
      const bad = await postJson(`${api}/commands/`, JSON.stringify({ device_id: 'fan/#', command: 'off', value: 1 }));
      assert.equal(bad.status, 400);
      assert.ok(bad.body.device_id);
    });

    it('grid data: the fetched carbon row in the list, latest and carbon_intensity; invalid hours 400', async () => {
      const row = await eventually('a carbon row', async () => {
        const r = await getJson(`${api}/grid-data/latest/?data_type=carbon_intensity`);
        return r.status === 200 && r.body.length === 1 ? r.body[0] : undefined;
      });
      assert.equal(row.unit, 'gCO2eq/kWh');
      assert.equal(row.zone, 'IN-KA');
      assert.equal(row.metadata.source, 'electricitymaps');
      const list = await getJson(`${api}/grid-data/?data_type=carbon_intensity`);
      assert.equal(list.body.results[0].id, row.id);
      const recent = await getJson(`${api}/grid-data/carbon_intensity/?hours=8760`);
      assert.ok(recent.body.some((r: any) => r.id === row.id));
      assert.equal((await getJson(`${api}/grid-data/weather/?hours=-1`)).status, 400);
    });

    it('GET /api/openapi.json describes every contract path; GET /metrics is Prometheus text', async () => {
      const doc = await getJson(`${api}/openapi.json`);
      assert.match(doc.body.openapi, /^3\.1\./);
      for (const p of ['/api/sensor-readings/', '/api/grid-data/', '/api/preferences/', '/api/ai-decisions/', '/api/energy-sources/', '/api/context/', '/api/commands/', '/api/health/']) {
        assert.ok(doc.body.paths[p], `${p} documented`);
      }
      const m = await fetch(`${app!.url}/metrics`);
      assert.match(m.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await m.text();
      assert.match(text, /# TYPE \S+ counter/);
      assert.match(text, /hypervolt_/);
    });
  });
}
