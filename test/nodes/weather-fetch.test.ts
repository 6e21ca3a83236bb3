import assert from 'assert/strict';
import helper from 'node-red-node-test-helper';
import weatherFetchNode = require('../../nodes/weather-fetch/weather-fetch');
import accountNode = require('../../nodes/openweather-account/openweather-account');
import type { GridRow } from '../../nodes/shared/fetch/rows';
import { FakeOpenWeatherMap, OWM_TEST_KEY } from '../support/fakes/openweathermap';
import { collect, lastStatus, sleep, statusesOf, waitFor } from '../support/fakes/node-utils';

helper.init(require.resolve('node-red'));

type Msg = { topic?: string; payload: GridRow | GridRow[]; error?: { message: string; code?: string; stack?: string; source: { id: string } } };

const WEATHER = '/data/2.5/weather';

describe('weather-fetch node', function () {
  this.timeout(15_000);
  let fake: FakeOpenWeatherMap;

  before(async () => {
    fake = await FakeOpenWeatherMap.start();
    await helper.startServer();
  });
  after(async () => {
    await fake.close();
    await helper.stopServer();
  });
  beforeEach(() => {
    fake.requests.length = 0;
  });
  afterEach(async () => {
    await helper.unload();
    assert.equal(fake.pending, 0, 'every queued scenario was used');
  });

  function flow(props: Record<string, unknown> = {}) {
    return [
      { id: 'f1', type: 'tab', label: 'test' },
      { id: 'acc', type: 'openweather-account', baseUrl: fake.url },
      {
        id: 'wf',
        type: 'weather-fetch',
        z: 'f1',
        name: '',
        account: 'acc',
        lat: '12.9716',
        lon: '77.5946',
        zone: 'IN-KA',
        intervalMinutes: '15',
        mode: 'current',
        timeoutSeconds: '2',
        retrySeconds: '0.2',
        x: 100,
        y: 100,
        wires: [['out']],
        ...props,
      },
      { id: 'out', type: 'helper', z: 'f1', x: 300, y: 100, wires: [] },
      { id: 'c1', type: 'catch', z: 'f1', scope: ['wf'], uncaught: false, x: 100, y: 200, wires: [['caught']] },
      { id: 'caught', type: 'helper', z: 'f1', x: 300, y: 200, wires: [] },
      { id: 'k1', type: 'complete', z: 'f1', scope: ['wf'], x: 100, y: 300, wires: [['completed']] },
      { id: 'completed', type: 'helper', z: 'f1', x: 300, y: 300, wires: [] },
    ];
  }
  const withKey = (apiKey: string = OWM_TEST_KEY) => ({ acc: { apiKey } });

  async function load(props: Record<string, unknown> = {}, creds: Record<string, unknown> = withKey()) {
    await helper.load([accountNode, weatherFetchNode], flow(props), creds);
    return {
      node: helper.getNode('wf'),
      out: collect<Msg>(helper.getNode('out') as never),
      caught: collect<Msg>(helper.getNode('caught') as never),
      completed: collect<Msg>(helper.getNode('completed') as never),
    };
  }

  it('fetches on deploy: the weather row at the observation time, lat/lon/appid/units=metric sent', async () => {
    const { node, out } = await load();
    await waitFor(() => out.length === 1, 'the row');
    assert.equal(out[0].topic, 'weather');
    const row = out[0].payload as GridRow;
    assert.equal(row.data_type, 'weather');
    assert.equal(row.value, 21.3);
    assert.equal(row.unit, 'celsius');
    assert.equal(row.zone, 'IN-KA');
    assert.equal(row.timestamp, new Date(fake.observationDt() * 1000).toISOString());
    assert.notEqual(row.timestamp, row.metadata.fetched_at, 'the API time, not the fetch time');
    assert.equal(row.metadata.humidity, 64);
    assert.equal(row.metadata.weather_condition, 'Clouds');
    assert.equal(row.metadata.source, 'openweathermap');
    assert.equal(fake.requests.length, 1);
    assert.equal(fake.requests[0].path, WEATHER);
    assert.deepEqual(fake.requests[0].query, { lat: '12.9716', lon: '77.5946', appid: OWM_TEST_KEY, units: 'metric' });
    assert.deepEqual(lastStatus(node), { fill: 'green', shape: 'dot', text: 'weather-fetch.status.ok' });
  });

  it('an input msg fetches now and completes when that fetch is over', async () => {
    const { node, out, completed } = await load();
    await waitFor(() => out.length === 1, 'the first row');
    node.receive({ payload: '' });
    await waitFor(() => completed.length === 1, 'done()');
    assert.equal(out.length, 2);
    assert.equal(fake.requests.length, 2);
  });

  it('a rejected key (401): red status, no retry, done(err) without the key (it travels in the URL)', async () => {
    const wrong = 'wrong-owm-key-9876543210';
    const { node, out, caught } = await load({}, withKey(wrong));
    await waitFor(() => lastStatus(node)?.fill === 'red', 'red status');
    assert.deepEqual(lastStatus(node), { fill: 'red', shape: 'ring', text: 'weather-fetch.status.auth' });
    await sleep(700);
    assert.equal(fake.requests.length, 1, 'no retry after 401');
    assert.equal(fake.requests[0].query.appid, wrong);
    node.receive({});
    await waitFor(() => caught.length === 1, 'the catch node');
    assert.equal(caught[0].error?.code, 'auth');
    assert.match(caught[0].error!.message, /Invalid API key/);
    assert.ok(!JSON.stringify(caught[0]).includes(wrong), 'the key is not in the error (message or stack)');
    assert.equal(out.length, 0);
  });

  it('429: honours Retry-After, then fetches', async () => {
    fake.next(429, { retryAfter: 1 });
    const { node, out } = await load();
    await waitFor(() => lastStatus(node)?.fill === 'yellow', 'yellow status');
    await waitFor(() => out.length === 1, 'the row after the wait');
    const waited = fake.requests[1].at - fake.requests[0].at;
    assert.ok(waited >= 950, `retried after ${waited} ms`);
  });

  it('500 then 503: retried, then succeeds', async () => {
    fake.next(500).next(503);
    const { node, out } = await load();
    await waitFor(() => out.length === 1, 'the row');
    assert.equal(fake.requests.length, 3);
    assert.deepEqual(statusesOf(node).map((s) => s.fill).slice(-3), ['yellow', 'yellow', 'green']);
  });

  it('a timeout is retried', async () => {
    fake.next('timeout');
    const { out } = await load({ timeoutSeconds: '0.3' });
    await waitFor(() => out.length === 1, 'the row after the timeout');
    assert.ok(fake.requests[1].at - fake.requests[0].at >= 300);
  });

  it('a body of the wrong shape or not JSON sends nothing', async () => {
    fake.next('malformed');
    const a = await load({ retrySeconds: '30' });
    await waitFor(() => lastStatus(a.node)?.fill === 'yellow', 'the retry status');
    await helper.unload();
    fake.next('garbage');
    const b = await load({ retrySeconds: '30' });
    await waitFor(() => lastStatus(b.node)?.fill === 'yellow', 'the retry status');
    await sleep(200);
    assert.equal(a.out.length + b.out.length, 0);
    assert.equal(fake.requests.length, 2);
  });

  it('without a key: grey status and not one request', async () => {
    const { node, caught } = await load({}, {});
    await sleep(300);
    assert.deepEqual(statusesOf(node), [{ fill: 'grey', shape: 'ring', text: 'weather-fetch.status.no-key' }]);
    node.receive({});
    await waitFor(() => caught.length === 1, 'the catch node');
    assert.equal(caught[0].error?.code, 'no_key');
    assert.equal(fake.requests.length, 0);
  });

  it('keeps the key out of the flow and away from the editor', async () => {
    const { out } = await load();
    await waitFor(() => out.length === 1, 'the row');
    const { flows } = (helper as unknown as { _redNodes: { getFlows(): { flows: unknown[] } } })._redNodes.getFlows();
    assert.ok(!JSON.stringify(flows).includes(OWM_TEST_KEY));
    const RED = require('node-red');
    assert.deepEqual(await RED.runtime.flows.getNodeCredentials({ type: 'openweather-account', id: 'acc' }), { has_apiKey: true });
    assert.ok(!JSON.stringify(out).includes(OWM_TEST_KEY));
  });

  it('uses the defaults when the ${LOCATION_*} settings are not set', async () => {
    for (const v of ['LOCATION_LAT', 'LOCATION_LON', 'LOCATION_ZONE']) delete process.env[v];
    const { out } = await load({ lat: '${LOCATION_LAT}', lon: '${LOCATION_LON}', zone: '${LOCATION_ZONE}', intervalMinutes: '${WEATHER_FETCH_MINUTES}' });
    await waitFor(() => out.length === 1, 'the row');
    assert.deepEqual(fake.requests[0].query, { lat: '12.9716', lon: '77.5946', appid: OWM_TEST_KEY, units: 'metric' });
    assert.equal((out[0].payload as GridRow).zone, 'IN-KA');
  });

  it('forecast mode sends weather_forecast rows', async () => {
    const { out } = await load({ mode: 'forecast' });
    await waitFor(() => out.length === 1, 'the forecast');
    assert.equal(out[0].topic, 'weather_forecast');
    const rows = out[0].payload as GridRow[];
    assert.equal(rows.length, 40);
    assert.ok(rows.every((r) => r.data_type === 'weather_forecast'));
    assert.equal(fake.requests[0].path, '/data/2.5/forecast');
  });

  it('an invalid latitude is a red status and no request', async () => {
    const { node } = await load({ lat: '123' });
    await sleep(200);
    assert.deepEqual(lastStatus(node), { fill: 'red', shape: 'ring', text: 'weather-fetch.status.config' });
    assert.equal(fake.requests.length, 0);
  });

  it('close stops the schedule and aborts the request in flight', async () => {
    const { out } = await load({ intervalMinutes: String(1 / 60) });
    await waitFor(() => out.length === 1, 'the first row');
    fake.next('timeout');
    await fake.waitForRequests(2);
    assert.equal(fake.hanging, 1);
    await helper.unload();
    await waitFor(() => fake.hanging === 0, 'the hanging request to be aborted', 1000);
    const count = fake.requests.length;
    await sleep(1500);
    assert.equal(fake.requests.length, count, 'no request after unload');
  });

  describe('lat, lon and zone as TypedInputs (latType, lonType, zoneType)', () => {
    afterEach(() => {
      delete process.env.HV_TEST_WEATHER_LAT;
    });

    it('msg: nothing fetched on deploy; each input msg fetches the place it names (other fields from config)', async () => {
      const { node, out, completed, caught } = await load({ lat: 'lat', latType: 'msg', lon: 'place.lon', lonType: 'msg', zone: 'DE', zoneType: 'str' });
      await sleep(400);
      assert.equal(fake.requestsTo(WEATHER).length, 0, 'no place yet: no fetch');
      assert.deepEqual(lastStatus(node), { fill: 'grey', shape: 'ring', text: 'weather-fetch.status.standby' });
      node.receive({ payload: 'go', lat: 52.52, place: { lon: '13.405' } });
      await waitFor(() => completed.length === 1, 'done()');
      assert.equal(caught.length, 0);
      const q = fake.requestsTo(WEATHER)[0].query;
      assert.equal(Number(q.lat), 52.52);
      assert.equal(Number(q.lon), 13.405);
      assert.equal((out[0].payload as GridRow).zone, 'DE');
    });

    it('msg: a missing or out-of-range value fails the msg with code config and fetches nothing', async () => {
      const { node, caught } = await load({ lat: 'lat', latType: 'msg' });
      node.receive({ payload: 'go' });
      node.receive({ payload: 'go', lat: 123 });
      await waitFor(() => caught.length === 2, 'two errors');
      assert.deepEqual(
        caught.map((m) => m.error?.code),
        ['config', 'config'],
      );
      assert.match(caught[0].error!.message, /msg\.lat/);
      assert.match(caught[1].error!.message, /latitude/);
      assert.equal(fake.requests.length, 0);
    });

    it('env and str: read at deploy; a missing type keeps the old meaning (constant or ${VAR})', async () => {
      process.env.HV_TEST_WEATHER_LAT = '48.85';
      const { out } = await load({ lat: 'HV_TEST_WEATHER_LAT', latType: 'env', lon: '2.35', lonType: 'str', zone: '${HV_TEST_WEATHER_LAT_UNSET}' });
      await waitFor(() => out.length === 1, 'the row');
      const q = fake.requestsTo(WEATHER)[0].query;
      assert.equal(Number(q.lat), 48.85);
      assert.equal(Number(q.lon), 2.35);
      assert.equal((out[0].payload as GridRow).zone, 'IN-KA', 'an unset ${VAR} means the default, as before');
    });
  });
});
