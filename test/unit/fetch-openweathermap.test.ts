import assert from 'assert/strict';
import { FetchError } from '../../nodes/shared/fetch/errors';
import { ApiClient } from '../../nodes/shared/fetch/http-client';
import {
  buildWeatherForecastRows,
  buildWeatherRow,
  fetchWeather,
  OpenWeatherApi,
  parseCurrentWeather,
  parseWeatherForecast,
} from '../../nodes/shared/fetch/openweathermap';
import { FakeOpenWeatherMap, OWM_TEST_KEY } from '../support/fakes/openweathermap';

const FETCHED_AT = '2026-01-26T08:42:10.123Z';
const DT = Date.parse('2026-01-26T08:40:00Z') / 1000;

const currentBody = {
  coord: { lon: 77.5946, lat: 12.9716 },
  weather: [{ id: 802, main: 'Clouds', description: 'scattered clouds', icon: '03d' }],
  base: 'stations',
  main: { temp: 21.3, feels_like: 20.9, pressure: 1012, humidity: 64 },
  wind: { speed: 3.6, deg: 250 },
  clouds: { all: 40 },
  dt: DT,
  name: 'Bengaluru',
  cod: 200,
};

function invalid(fn: () => unknown, field: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof FetchError && e.kind === 'invalid_response' && field.test(e.message));
}

describe('fetch OpenWeatherMap: rows', () => {
  it('builds the weather row of CONTRACT section 4, timestamp from dt', () => {
    assert.deepEqual(buildWeatherRow(parseCurrentWeather(currentBody), 'IN-KA', FETCHED_AT), {
      data_type: 'weather',
      value: 21.3,
      unit: 'celsius',
      zone: 'IN-KA',
      timestamp: '2026-01-26T08:40:00.000Z',
      metadata: {
        humidity: 64,
        cloud_cover: 40,
        weather_condition: 'Clouds',
        description: 'scattered clouds',
        wind_speed: 3.6,
        pressure: 1012,
        fetched_at: FETCHED_AT,
        source: 'openweathermap',
      },
    });
  });

  it('accepts cod as a number or a string, and no cod at all', () => {
    assert.equal(parseCurrentWeather({ ...currentBody, cod: '200' }).temp, 21.3);
    const { cod: _c, ...noCod } = currentBody;
    assert.equal(parseCurrentWeather(noCod).temp, 21.3);
  });

  it('turns an error cod in a 200 body into the matching error, without the key', () => {
    const key = 'abcdef1234567890';
    const cases: [unknown, string][] = [
      ['401', 'auth'],
      [401, 'auth'],
      ['429', 'rate_limited'],
      ['404', 'client'],
      [500, 'server'],
    ];
    for (const [cod, kind] of cases) {
      assert.throws(
        () => parseCurrentWeather({ cod, message: `Invalid API key ${key}; see ?appid=${key}` }, [key]),
        (e: unknown) => e instanceof FetchError && e.kind === kind && e.status === Number(cod) && !e.message.includes(key),
        String(cod),
      );
    }
    invalid(() => parseCurrentWeather({ ...currentBody, cod: 'ok' }), /cod/);
  });

  it('rejects a body of the wrong shape instead of making a value up', () => {
    invalid(() => parseCurrentWeather({ ...currentBody, main: { temp: 'warm' } }), /main\.temp/);
    invalid(() => parseCurrentWeather({ ...currentBody, main: { humidity: 50 } }), /main\.temp/);
    invalid(() => parseCurrentWeather({ ...currentBody, main: undefined }), /main/);
    invalid(() => parseCurrentWeather({ ...currentBody, main: { temp: Number.NaN } }), /main\.temp/);
    invalid(() => parseCurrentWeather({ ...currentBody, dt: '2026-01-26' }), /dt/);
    invalid(() => parseCurrentWeather({ ...currentBody, dt: undefined }), /dt/);
    invalid(() => parseCurrentWeather({ ...currentBody, main: { temp: 20, humidity: 'high' } }), /humidity/);
    invalid(() => parseCurrentWeather('<html>'), /response/);
  });

  it('leaves optional values null when the API leaves them out', () => {
    const row = buildWeatherRow(parseCurrentWeather({ main: { temp: -3.5 }, dt: DT, cod: 200 }), 'IN-KA', FETCHED_AT);
    assert.equal(row.value, -3.5);
    assert.deepEqual(row.metadata, {
      humidity: null,
      cloud_cover: null,
      weather_condition: null,
      description: null,
      wind_speed: null,
      pressure: null,
      fetched_at: FETCHED_AT,
      source: 'openweathermap',
    });
  });

  it('builds one weather_forecast row per forecast entry (cod as a string)', () => {
    const body = {
      cod: '200',
      message: 0,
      cnt: 2,
      list: [
        { ...currentBody, dt: DT + 2 * 10800, main: { temp: 19 } },
        { ...currentBody, dt: DT + 10800, main: { temp: 20.5, humidity: 70 } },
      ],
    };
    const rows = buildWeatherForecastRows(parseWeatherForecast(body), 'IN-KA', FETCHED_AT);
    assert.deepEqual(rows.map((r) => [r.data_type, r.value, r.timestamp]), [
      ['weather_forecast', 20.5, '2026-01-26T11:40:00.000Z'],
      ['weather_forecast', 19, '2026-01-26T14:40:00.000Z'],
    ]);
    assert.equal(rows[0].metadata.humidity, 70);
    invalid(() => parseWeatherForecast({ cod: '200', list: [{ dt: 'tomorrow', main: { temp: 20 } }] }), /list\[0\]\.dt/);
    invalid(() => parseWeatherForecast({ cod: '200' }), /list/);
  });
});

describe('fetch OpenWeatherMap: one fetch (against the fake)', function () {
  this.timeout(10_000);
  const now = Date.parse('2026-01-26T08:42:00Z');
  let fake: FakeOpenWeatherMap;
  let client: ApiClient;
  let api: OpenWeatherApi;
  before(async () => {
    fake = await FakeOpenWeatherMap.start({ now: () => now });
    client = new ApiClient({ baseUrl: fake.url, apiName: 'OpenWeatherMap', secrets: [OWM_TEST_KEY] });
    api = new OpenWeatherApi(client, OWM_TEST_KEY);
  });
  after(async () => {
    client.close();
    await fake.close();
  });

  it('current: one row at the observation time, not the fetch time', async () => {
    const result = await fetchWeather(api, { lat: 12.9716, lon: 77.5946, zone: 'IN-KA', mode: 'current', fetchedAt: FETCHED_AT });
    assert.equal(result.rows.length, 1);
    assert.equal(result.rows[0].timestamp, new Date(fake.observationDt() * 1000).toISOString());
    assert.equal(result.rows[0].timestamp, '2026-01-26T08:40:00.000Z');
    assert.equal(result.rows[0].value, 21.3);
    assert.equal(result.rows[0].metadata.fetched_at, FETCHED_AT);
    assert.equal(result.headline, 21.3);
  });

  it('forecast: 40 rows from data/2.5/forecast', async () => {
    const result = await fetchWeather(api, { lat: 12.9716, lon: 77.5946, zone: 'IN-KA', mode: 'forecast', fetchedAt: FETCHED_AT });
    assert.equal(fake.requests.at(-1)?.path, '/data/2.5/forecast');
    assert.equal(result.rows.length, 40);
    assert.equal(result.rows[0].timestamp, '2026-01-26T09:00:00.000Z');
    assert.ok(result.rows.every((r) => r.data_type === 'weather_forecast' && r.unit === 'celsius'));
  });

  it('malformed answers give no rows', async () => {
    fake.next('malformed');
    await assert.rejects(
      fetchWeather(api, { lat: 1, lon: 2, zone: 'IN-KA', mode: 'current', fetchedAt: FETCHED_AT }),
      (e: FetchError) => e.kind === 'invalid_response',
    );
    fake.next('malformed', { path: '/data/2.5/forecast' });
    await assert.rejects(
      fetchWeather(api, { lat: 1, lon: 2, zone: 'IN-KA', mode: 'forecast', fetchedAt: FETCHED_AT }),
      (e: FetchError) => e.kind === 'invalid_response',
    );
  });
});
