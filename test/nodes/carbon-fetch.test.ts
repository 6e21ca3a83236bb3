import assert from 'assert/strict';
import helper from 'node-red-node-test-helper';
import carbonFetchNode = require('../../nodes/carbon-fetch/carbon-fetch');
import accountNode = require('../../nodes/electricitymaps-account/electricitymaps-account');
import { getFetchMetrics } from '../../nodes/shared/fetch/metrics';
import type { GridRow } from '../../nodes/shared/fetch/rows';
import { EM_TEST_KEY, FakeElectricityMaps } from '../support/fakes/electricitymaps';
import { collect, lastStatus, sleep, statusesOf, waitFor } from '../support/fakes/node-utils';

helper.init(require.resolve('node-red'));

type Msg = { topic?: string; payload: GridRow | GridRow[]; error?: { message: string; code?: string; source: { id: string } } };

const LATEST = '/v3/carbon-intensity/latest';

describe('carbon-fetch node', function () {
  this.timeout(15_000);
  let fake: FakeElectricityMaps;

  before(async () => {
    fake = await FakeElectricityMaps.start();
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

  function flow(props: Record<string, unknown> = {}, account: Record<string, unknown> = {}) {
    return [
      { id: 'f1', type: 'tab', label: 'test' },
      { id: 'acc', type: 'electricitymaps-account', baseUrl: fake.url, ...account },
      {
        id: 'cf',
        type: 'carbon-fetch',
        z: 'f1',
        name: '',
        account: 'acc',
        zone: 'IN-KA',
        intervalMinutes: '15',
        mode: 'latest',
        backfill: false,
        timeoutSeconds: '2',
        retrySeconds: '0.2',
        x: 100,
        y: 100,
        wires: [['out']],
        ...props,
      },
      { id: 'out', type: 'helper', z: 'f1', x: 300, y: 100, wires: [] },
      { id: 'c1', type: 'catch', z: 'f1', scope: ['cf'], uncaught: false, x: 100, y: 200, wires: [['caught']] },
      { id: 'caught', type: 'helper', z: 'f1', x: 300, y: 200, wires: [] },
      { id: 'k1', type: 'complete', z: 'f1', scope: ['cf'], x: 100, y: 300, wires: [['completed']] },
      { id: 'completed', type: 'helper', z: 'f1', x: 300, y: 300, wires: [] },
    ];
  }
  const withKey = (apiKey: string = EM_TEST_KEY) => ({ acc: { apiKey } });

  async function load(props: Record<string, unknown> = {}, creds: Record<string, unknown> = withKey(), account: Record<string, unknown> = {}) {
    await helper.load([accountNode, carbonFetchNode], flow(props, account), creds);
    return {
      node: helper.getNode('cf'),
      out: collect<Msg>(helper.getNode('out') as never),
      caught: collect<Msg>(helper.getNode('caught') as never),
      completed: collect<Msg>(helper.getNode('completed') as never),
    };
  }

  it('fetches on deploy: the row of the API hour, with the key in the auth-token header and the zone', async () => {
    const { node, out } = await load();
    await waitFor(() => out.length === 1, 'the row');
    const msg = out[0];
    assert.equal(msg.topic, 'carbon_intensity');
    const row = msg.payload as GridRow;
    assert.equal(row.data_type, 'carbon_intensity');
    assert.equal(row.value, 512);
    assert.equal(row.unit, 'gCO2eq/kWh');
    assert.equal(row.zone, 'IN-KA');
    assert.equal(row.timestamp, fake.currentHour());
    assert.equal(row.metadata.source, 'electricitymaps');
    assert.equal(row.metadata.renewable_percentage, 21);
    const latest = fake.requestsTo(LATEST);
    assert.equal(latest.length, 1);
    assert.equal(latest[0].headers['auth-token'], EM_TEST_KEY);
    assert.deepEqual(latest[0].query, { zone: 'IN-KA' });
    assert.deepEqual(lastStatus(node), { fill: 'green', shape: 'dot', text: 'carbon-fetch.status.ok' });
  });

  it('an input msg fetches now and completes when that fetch is over', async () => {
    const { node, out, completed } = await load();
    await waitFor(() => out.length === 1, 'the first row');
    fake.carbonIntensity = 430;
    node.receive({ payload: 'go' });
    await waitFor(() => completed.length === 1, 'done()');
    assert.equal(out.length, 2, 'the row is sent before done');
    assert.equal((out[1].payload as GridRow).value, 430);
    assert.equal(fake.requestsTo(LATEST).length, 2);
    fake.carbonIntensity = 512;
  });

  it('schedule "input": nothing on deploy or on the interval, one fetch per input msg', async () => {
    const { node, out, completed } = await load({ schedule: 'input', intervalMinutes: String(0.5 / 60) });
    await new Promise((r) => setTimeout(r, 1200)); // more than two intervals
    assert.equal(fake.requestsTo(LATEST).length, 0);
    assert.equal(out.length, 0);
    assert.deepEqual(lastStatus(node), { fill: 'grey', shape: 'ring', text: 'carbon-fetch.status.standby' });
    node.receive({ payload: 'go' });
    await waitFor(() => completed.length === 1, 'done()');
    assert.equal(out.length, 1);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(fake.requestsTo(LATEST).length, 1, 'no schedule after the fetch either');
  });

  it('a rejected key (401): red status, no retry, and an input msg ends in done(err) without the key', async () => {
    const wrong = 'wrong-em-key-0123456789';
    const { node, out, caught } = await load({}, withKey(wrong));
    await waitFor(() => lastStatus(node)?.fill === 'red', 'red status');
    assert.deepEqual(lastStatus(node), { fill: 'red', shape: 'ring', text: 'carbon-fetch.status.auth' });
    await sleep(700); // retrySeconds is 0.2: a retry would have happened
    assert.equal(fake.requests.length, 1, 'no retry after 401');
    node.receive({ payload: 'again' });
    await waitFor(() => caught.length === 1, 'the catch node');
    const error = caught[0].error!;
    assert.equal(error.code, 'auth');
    assert.equal(error.source.id, 'cf');
    assert.match(error.message, /API key rejected \(HTTP 401\)/);
    assert.ok(!JSON.stringify(caught[0]).includes(wrong), 'the key is not in the error');
    assert.equal(out.length, 0);
    assert.equal(fake.requests.length, 2, 'the manual trigger asked once more');
  });

  it('429: shows the wait, honours Retry-After, then fetches', async () => {
    fake.next(429, { retryAfter: 1 });
    const { node, out } = await load();
    await waitFor(() => lastStatus(node)?.fill === 'yellow', 'yellow status');
    assert.deepEqual(lastStatus(node), { fill: 'yellow', shape: 'ring', text: 'carbon-fetch.status.retrying' });
    await waitFor(() => out.length === 1, 'the row after the wait');
    const [first, second] = fake.requestsTo(LATEST);
    const waited = second.at - first.at;
    assert.ok(waited >= 950, `retried after ${waited} ms, not after Retry-After`);
  });

  it('500: retried with backoff, then succeeds', async () => {
    fake.next(500).next(503);
    const { node, out } = await load();
    await waitFor(() => out.length === 1, 'the row after two retries');
    assert.equal(fake.requestsTo(LATEST).length, 3);
    const fills = statusesOf(node).map((s) => s.fill);
    assert.deepEqual(fills.slice(-3), ['yellow', 'yellow', 'green']);
    const m = getFetchMetrics().find((x) => x.node_id === 'cf');
    assert.ok(m && m.fetches_failed.server >= 2 && m.fetches_ok >= 1);
  });

  it('a timeout is retried', async () => {
    fake.next('timeout');
    const { out } = await load({ timeoutSeconds: '0.3' });
    await waitFor(() => out.length === 1, 'the row after the timeout');
    const [first, second] = fake.requestsTo(LATEST);
    assert.ok(second.at - first.at >= 300, 'the retry came after the timeout');
  });

  it('a body of the wrong shape sends nothing', async () => {
    fake.next('malformed');
    const { node, out } = await load({ retrySeconds: '30' });
    await waitFor(() => lastStatus(node)?.fill === 'yellow', 'the retry status');
    await sleep(300);
    assert.equal(out.length, 0);
    assert.equal(fake.requests.length, 1);
  });

  it('without a key: grey status, not one request, and an input msg gets a clear error', async () => {
    const { node, caught } = await load({}, {});
    await sleep(300);
    assert.deepEqual(statusesOf(node), [{ fill: 'grey', shape: 'ring', text: 'carbon-fetch.status.no-key' }]);
    node.receive({ payload: 1 });
    await waitFor(() => caught.length === 1, 'the catch node');
    assert.equal(caught[0].error?.code, 'no_key');
    assert.equal(fake.requests.length, 0);
  });

  it('reads the key from the environment when the credential is ${ELECTRICITY_MAPS_API_KEY}', async () => {
    process.env.HV_TEST_EM_KEY = EM_TEST_KEY;
    try {
      const { out } = await load({}, withKey('${HV_TEST_EM_KEY}'));
      await waitFor(() => out.length === 1, 'the row');
      assert.equal(fake.requests[0].headers['auth-token'], EM_TEST_KEY);
    } finally {
      delete process.env.HV_TEST_EM_KEY;
    }
  });

  it('reads the key from the variable named in apiKeyEnv when the credential is empty; the credential wins', async () => {
    process.env.HV_TEST_EM_KEY_ENV = EM_TEST_KEY;
    try {
      const a = await load({}, {}, { apiKeyEnv: 'HV_TEST_EM_KEY_ENV' });
      await waitFor(() => a.out.length === 1, 'the row');
      assert.equal(fake.requests[0].headers['auth-token'], EM_TEST_KEY);
      await helper.unload();
      fake.requests.length = 0;
      const b = await load({}, withKey('credential-key-000111'), { apiKeyEnv: 'HV_TEST_EM_KEY_ENV' });
      await waitFor(() => lastStatus(b.node)?.fill === 'red', 'the 401 of the credential key');
      assert.equal(fake.requests[0].headers['auth-token'], 'credential-key-000111');
    } finally {
      delete process.env.HV_TEST_EM_KEY_ENV;
    }
  });

  it('an unset ${VAR} credential counts as no key', async () => {
    delete process.env.HV_TEST_EM_KEY_UNSET;
    const { node } = await load({}, withKey('${HV_TEST_EM_KEY_UNSET}'));
    await sleep(200);
    assert.deepEqual(lastStatus(node), { fill: 'grey', shape: 'ring', text: 'carbon-fetch.status.no-key' });
    assert.equal(fake.requests.length, 0);
  });

  it('keeps the key out of the flow: a password credential the editor never gets back', async () => {
    const { out } = await load();
    await waitFor(() => out.length === 1, 'the row');
    // What Node-RED would save as the flow file:
    const { flows } = (helper as unknown as { _redNodes: { getFlows(): { flows: unknown[] } } })._redNodes.getFlows();
    assert.ok(!JSON.stringify(flows).includes(EM_TEST_KEY));
    const credentials = (helper as unknown as { credentials: { getDefinition(type: string): unknown } }).credentials;
    assert.deepEqual(credentials.getDefinition('electricitymaps-account'), { apiKey: { type: 'password' } });
    // What the editor's GET /credentials/electricitymaps-account/acc answers:
    const RED = require('node-red');
    const sent = await RED.runtime.flows.getNodeCredentials({ type: 'electricitymaps-account', id: 'acc' });
    assert.deepEqual(sent, { has_apiKey: true });
    // Nor is it in what the node outputs.
    assert.ok(!JSON.stringify(out).includes(EM_TEST_KEY));
  });

  it('backfills the day on first start as one array, then sends single rows', async () => {
    const { node, out, completed } = await load({ backfill: true });
    await waitFor(() => out.length === 1, 'the backfill');
    const rows = out[0].payload as GridRow[];
    assert.ok(Array.isArray(rows));
    assert.equal(rows.length, 24);
    assert.equal(rows.at(-1)?.timestamp, fake.currentHour());
    assert.ok(rows.every((r, i) => i === 0 || r.timestamp > rows[i - 1].timestamp));
    assert.deepEqual(node.context().get('carbonFetchState'), { zone: 'IN-KA', lastTimestamp: fake.currentHour() });
    node.receive({});
    await waitFor(() => completed.length === 1, 'done()');
    assert.equal((out[1].payload as GridRow).timestamp, fake.currentHour(), 'no gap: a single row');
    assert.equal(fake.requestsTo('/v3/carbon-intensity/history').length, 1);
  });

  it('forecast mode sends carbon_forecast rows', async () => {
    const { out } = await load({ mode: 'forecast' });
    await waitFor(() => out.length === 1, 'the forecast');
    assert.equal(out[0].topic, 'carbon_forecast');
    const rows = out[0].payload as GridRow[];
    assert.equal(rows.length, 24);
    assert.ok(rows.every((r) => r.data_type === 'carbon_forecast'));
    assert.deepEqual(fake.requests.map((r) => r.path), ['/v3/carbon-intensity/forecast']);
  });

  it('an invalid zone is a red status and no request', async () => {
    const { node } = await load({ zone: 'no zone!' });
    await sleep(200);
    assert.deepEqual(lastStatus(node), { fill: 'red', shape: 'ring', text: 'carbon-fetch.status.config' });
    assert.equal(fake.requests.length, 0);
  });

  it('close stops the schedule and aborts the request in flight', async () => {
    const { out } = await load({ intervalMinutes: String(1 / 60) });
    await waitFor(() => out.length === 1, 'the first row');
    fake.next('timeout');
    await fake.waitForRequests(3); // latest + breakdown, then the hanging latest a second later
    assert.equal(fake.hanging, 1);
    await helper.unload();
    await waitFor(() => fake.hanging === 0, 'the hanging request to be aborted', 1000);
    const count = fake.requests.length;
    await sleep(1500);
    assert.equal(fake.requests.length, count, 'no request after unload');
  });

  describe('zone as a TypedInput (zoneType)', () => {
    afterEach(() => {
      delete process.env.HV_TEST_CARBON_ZONE;
    });

    it('msg: nothing fetched on deploy (even with the self schedule); each input msg fetches the zone it names', async () => {
      const { node, out, completed, caught } = await load({ zone: 'grid.zone', zoneType: 'msg', schedule: 'self' });
      await sleep(400);
      assert.equal(fake.requestsTo(LATEST).length, 0, 'no zone yet: no fetch');
      assert.deepEqual(lastStatus(node), { fill: 'grey', shape: 'ring', text: 'carbon-fetch.status.standby' });
      node.receive({ payload: 'go', grid: { zone: 'DE' } });
      await waitFor(() => completed.length === 1, 'done() of the DE msg');
      node.receive({ payload: 'go', grid: { zone: 'FR' } });
      await waitFor(() => completed.length === 2, 'done() of the FR msg');
      assert.deepEqual(
        fake.requestsTo(LATEST).map((r) => r.query.zone),
        ['DE', 'FR'],
      );
      assert.deepEqual(
        out.map((m) => (m.payload as GridRow).zone),
        ['DE', 'FR'],
      );
      assert.equal(caught.length, 0);
    });

    it('msg: a msg without a zone, or with a malformed one, fails with code config and fetches nothing', async () => {
      const { node, caught, completed } = await load({ zone: 'grid.zone', zoneType: 'msg' });
      node.receive({ payload: 'go' });
      node.receive({ payload: 'go', grid: {} });
      node.receive({ payload: 'go', grid: { zone: 'no zone!' } });
      await waitFor(() => caught.length === 3, 'three errors');
      assert.deepEqual(
        caught.map((m) => m.error?.code),
        ['config', 'config', 'config'],
      );
      assert.match(caught[0].error!.message, /msg\.grid\.zone/);
      assert.match(caught[2].error!.message, /not a zone key/);
      assert.equal(completed.length, 0);
      assert.equal(fake.requests.length, 0);
    });

    it('str: the configured zone, whatever the msg says', async () => {
      const { node, out, completed } = await load({ zone: 'DE', zoneType: 'str' });
      await waitFor(() => out.length === 1, 'the row of the deploy fetch');
      node.receive({ payload: 'go', zone: 'FR' });
      await waitFor(() => completed.length === 1, 'done()');
      assert.deepEqual(
        fake.requestsTo(LATEST).map((r) => r.query.zone),
        ['DE', 'DE'],
      );
    });

    it('env: the zone from the environment variable named in the field, read at deploy', async () => {
      process.env.HV_TEST_CARBON_ZONE = 'FR';
      const { out } = await load({ zone: 'HV_TEST_CARBON_ZONE', zoneType: 'env' });
      await waitFor(() => out.length === 1, 'the row');
      assert.equal((out[0].payload as GridRow).zone, 'FR');
      assert.deepEqual(fake.requestsTo(LATEST)[0].query, { zone: 'FR' });
    });

    it('no zoneType (flows saved before it existed): a constant, and a whole-value ${VAR} still substituted', async () => {
      process.env.HV_TEST_CARBON_ZONE = 'DE';
      const { out } = await load({ zone: '${HV_TEST_CARBON_ZONE}' });
      await waitFor(() => out.length === 1, 'the row');
      assert.equal((out[0].payload as GridRow).zone, 'DE');
      assert.deepEqual(fake.requestsTo(LATEST)[0].query, { zone: 'DE' });
    });
  });
});
