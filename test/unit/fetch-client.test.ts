import assert from 'assert/strict';
import http from 'http';
import type { AddressInfo } from 'net';
import { FetchError } from '../../nodes/shared/fetch/errors';
import { ApiClient } from '../../nodes/shared/fetch/http-client';
import { OpenWeatherApi } from '../../nodes/shared/fetch/openweathermap';
import { ElectricityMapsApi } from '../../nodes/shared/fetch/electricitymaps';
import { EM_TEST_KEY, FakeElectricityMaps } from '../support/fakes/electricitymaps';
import { FakeOpenWeatherMap, OWM_401_MESSAGE, OWM_TEST_KEY } from '../support/fakes/openweathermap';

async function failure(p: Promise<unknown>): Promise<FetchError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FetchError, `not a FetchError: ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

function assertNoKey(err: FetchError, key: string): void {
  const everything = `${err.message} ${err.stack ?? ''} ${JSON.stringify(err)} ${String(err)}`;
  assert.ok(!everything.includes(key), `the key leaked: ${everything}`);
  // Nothing of axios (config, request, headers) travels with our errors.
  assert.equal((err as unknown as Record<string, unknown>).config, undefined);
  assert.equal((err as unknown as Record<string, unknown>).request, undefined);
}

describe('fetch client (against the local fakes)', function () {
  this.timeout(10_000);
  let em: FakeElectricityMaps;
  let owm: FakeOpenWeatherMap;
  let emClient: ApiClient;
  let owmClient: ApiClient;

  before(async () => {
    em = await FakeElectricityMaps.start();
    owm = await FakeOpenWeatherMap.start();
  });
  beforeEach(() => {
    emClient = new ApiClient({ baseUrl: em.url, apiName: 'Electricity Maps', secrets: [EM_TEST_KEY] });
    owmClient = new ApiClient({ baseUrl: `${owm.url}/`, apiName: 'OpenWeatherMap', secrets: [OWM_TEST_KEY] });
    em.requests.length = 0;
    owm.requests.length = 0;
  });
  afterEach(() => {
    emClient.close();
    owmClient.close();
    assert.equal(em.pending + owm.pending, 0, 'every queued scenario was used');
  });
  after(async () => {
    await em.close();
    await owm.close();
  });

  it('sends the Electricity Maps key as the auth-token header and the zone as a parameter', async () => {
    const latest = await new ElectricityMapsApi(emClient, EM_TEST_KEY).latest('IN-KA');
    assert.equal(latest.carbonIntensity, 512);
    assert.equal(em.requests.length, 1);
    const r = em.requests[0];
    assert.equal(r.path, '/v3/carbon-intensity/latest');
    assert.deepEqual(r.query, { zone: 'IN-KA' });
    assert.equal(r.headers['auth-token'], EM_TEST_KEY);
  });

  it('sends lat, lon, appid and units=metric to OpenWeatherMap (base URL with a trailing slash)', async () => {
    const sample = await new OpenWeatherApi(owmClient, OWM_TEST_KEY).current(12.9716, 77.5946);
    assert.equal(sample.temp, 21.3, 'metric units asked for: the fake would answer in Kelvin otherwise');
    assert.deepEqual(owm.requests[0].query, { lat: '12.9716', lon: '77.5946', appid: OWM_TEST_KEY, units: 'metric' });
    assert.equal(owm.requests[0].path, '/data/2.5/weather');
  });

  it('a rejected key is an auth error with the API message and without the key', async () => {
    owm.next(401);
    const e1 = await failure(new OpenWeatherApi(owmClient, OWM_TEST_KEY).current(1, 2));
    assert.equal(e1.kind, 'auth');
    assert.equal(e1.status, 401);
    assert.ok(e1.message.includes(OWM_401_MESSAGE), e1.message);
    assertNoKey(e1, OWM_TEST_KEY);

    const wrongKey = 'wrong-key-123456789';
    const client = new ApiClient({ baseUrl: em.url, apiName: 'Electricity Maps', secrets: [wrongKey] });
    const e2 = await failure(new ElectricityMapsApi(client, wrongKey).latest('IN-KA'));
    client.close();
    assert.equal(e2.kind, 'auth');
    assert.match(e2.message, /Invalid authentication token/);
    assertNoKey(e2, wrongKey);
  });

  it('classifies 429 (with Retry-After), 500, 503 (a text body) and 404', async () => {
    const api = new OpenWeatherApi(owmClient, OWM_TEST_KEY);
    owm.next(429, { retryAfter: 7 });
    const rate = await failure(api.current(1, 2));
    assert.equal(rate.kind, 'rate_limited');
    assert.equal(rate.retryAfterMs, 7000);
    owm.next(500);
    assert.equal((await failure(api.current(1, 2))).kind, 'server');
    owm.next(503);
    const unavailable = await failure(api.current(1, 2));
    assert.equal(unavailable.kind, 'server');
    assert.equal(unavailable.status, 503);
    owm.next(404);
    assert.equal((await failure(api.current(1, 2))).kind, 'client');
    for (const e of [rate, unavailable]) assertNoKey(e, OWM_TEST_KEY);
  });

  it('a body that is not JSON or of the wrong shape is invalid_response', async () => {
    const api = new ElectricityMapsApi(emClient, EM_TEST_KEY);
    em.next('garbage');
    const garbage = await failure(api.latest('IN-KA'));
    assert.equal(garbage.kind, 'invalid_response');
    em.next('malformed');
    const malformed = await failure(api.latest('IN-KA'));
    assert.equal(malformed.kind, 'invalid_response');
    assert.match(malformed.message, /carbonIntensity/);
  });

  it('gives up after the timeout, and says so without the key', async () => {
    owm.next('timeout');
    const started = Date.now();
    const e = await failure(new OpenWeatherApi(owmClient, OWM_TEST_KEY).current(1, 2, { timeoutMs: 200 }));
    const took = Date.now() - started;
    assert.equal(e.kind, 'timeout');
    assert.ok(took >= 190 && took < 2000, `took ${took} ms`);
    assertNoKey(e, OWM_TEST_KEY);
  });

  it('an abort (the node closing) ends the request at once as aborted', async () => {
    em.next('timeout');
    const controller = new AbortController();
    const p = failure(new ElectricityMapsApi(emClient, EM_TEST_KEY).latest('IN-KA', { signal: controller.signal, timeoutMs: 5000 }));
    await em.waitForRequests(1);
    const started = Date.now();
    controller.abort();
    const e = await p;
    assert.equal(e.kind, 'aborted');
    assert.ok(Date.now() - started < 1000);
  });

  it('a closed port is a network error', async () => {
    const server = http.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((r) => server.close(() => r()));
    const client = new ApiClient({ baseUrl: `http://127.0.0.1:${port}`, apiName: 'OpenWeatherMap', secrets: [OWM_TEST_KEY] });
    const e = await failure(new OpenWeatherApi(client, OWM_TEST_KEY).current(1, 2));
    client.close();
    assert.equal(e.kind, 'network');
    assert.match(e.message, /ECONNREFUSED/);
    assertNoKey(e, OWM_TEST_KEY);
  });

  it('does not follow a redirect (it could carry the key elsewhere)', async () => {
    em.next({ status: 302, headers: { location: 'http://127.0.0.1:9/steal' }, body: '' });
    const e = await failure(new ElectricityMapsApi(emClient, EM_TEST_KEY).latest('IN-KA'));
    assert.equal(e.kind, 'client');
    assert.equal(e.status, 302);
  });

  it('refuses a base URL that is not http(s)', () => {
    assert.throws(() => new ApiClient({ baseUrl: 'ftp://x', apiName: 'X' }), (e: FetchError) => e.kind === 'config');
    assert.throws(() => new ApiClient({ baseUrl: 'not a url', apiName: 'X' }), (e: FetchError) => e.kind === 'config');
  });
});
