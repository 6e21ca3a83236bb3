import assert from 'assert/strict';
import { FetchError } from '../../nodes/shared/fetch/errors';
import {
  backfillDue,
  buildCarbonForecastRows,
  buildCarbonRow,
  ElectricityMapsApi,
  fetchCarbon,
  parseCarbonForecast,
  parseCarbonHistory,
  parseCarbonLatest,
  parsePowerBreakdown,
  selectBackfillPoints,
  type CarbonPoint,
} from '../../nodes/shared/fetch/electricitymaps';
import { ApiClient } from '../../nodes/shared/fetch/http-client';
import { EM_TEST_KEY, FakeElectricityMaps } from '../support/fakes/electricitymaps';

const FETCHED_AT = '2026-01-26T08:42:10.123Z';

const latestBody = {
  zone: 'IN-KA',
  carbonIntensity: 512,
  datetime: '2026-01-26T08:00:00Z',
  updatedAt: '2026-01-26T08:37:12.345Z',
  createdAt: '2026-01-23T08:00:00.000Z',
  emissionFactorType: 'lifecycle',
  isEstimated: true,
  estimationMethod: 'TIME_SLICER_AVERAGE',
};

function invalid(fn: () => unknown, field: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof FetchError && e.kind === 'invalid_response' && field.test(e.message));
}

describe('fetch Electricity Maps: rows', () => {
  it('builds the carbon_intensity row of CONTRACT section 4', () => {
    const row = buildCarbonRow(parseCarbonLatest(latestBody), parsePowerBreakdown({ fossilFreePercentage: 23.4, renewablePercentage: 21 }), 'IN-KA', FETCHED_AT);
    assert.deepEqual(row, {
      data_type: 'carbon_intensity',
      value: 512,
      unit: 'gCO2eq/kWh',
      zone: 'IN-KA',
      timestamp: '2026-01-26T08:00:00.000Z',
      metadata: {
        is_estimated: true,
        estimation_method: 'TIME_SLICER_AVERAGE',
        emission_factor_type: 'lifecycle',
        fossil_free_percentage: 23.4,
        renewable_percentage: 21,
        fetched_at: FETCHED_AT,
        source: 'electricitymaps',
      },
    });
  });

  it('takes the timestamp from the API datetime, normalised to UTC with ms, never the fetch time', () => {
    const at = (datetime: string) => buildCarbonRow(parseCarbonLatest({ ...latestBody, datetime }), null, 'IN-KA', FETCHED_AT).timestamp;
    assert.equal(at('2026-01-26T08:00:00.000Z'), '2026-01-26T08:00:00.000Z');
    assert.equal(at('2026-01-26T13:30:00+05:30'), '2026-01-26T08:00:00.000Z');
    assert.equal(at('2026-01-26T08:00Z'), '2026-01-26T08:00:00.000Z');
    assert.notEqual(at('2026-01-26T08:00:00Z'), FETCHED_AT);
  });

  it('leaves the percentages null without a power breakdown, and null for missing optional fields', () => {
    const { isEstimated: _i, estimationMethod: _m, emissionFactorType: _e, ...bare } = latestBody;
    const row = buildCarbonRow(parseCarbonLatest(bare), null, 'IN-KA', FETCHED_AT);
    assert.equal(row.metadata.fossil_free_percentage, null);
    assert.equal(row.metadata.renewable_percentage, null);
    assert.equal(row.metadata.is_estimated, null);
    assert.equal(row.metadata.estimation_method, null);
  });

  it('rejects bodies of the wrong shape instead of making a value up', () => {
    const { carbonIntensity: _c, ...noValue } = latestBody;
    invalid(() => parseCarbonLatest(noValue), /carbonIntensity/);
    invalid(() => parseCarbonLatest({ ...latestBody, carbonIntensity: null }), /carbonIntensity/);
    invalid(() => parseCarbonLatest({ ...latestBody, carbonIntensity: '512' }), /carbonIntensity/);
    invalid(() => parseCarbonLatest({ ...latestBody, datetime: 'yesterday' }), /datetime/);
    invalid(() => parseCarbonLatest({ ...latestBody, datetime: '2026-01-26' }), /datetime/);
    invalid(() => parseCarbonLatest({ ...latestBody, datetime: '2026-01-26T08:00:00' }), /datetime/);
    invalid(() => parseCarbonLatest({ ...latestBody, datetime: '2026-13-45T08:00:00Z' }), /datetime/);
    invalid(() => parseCarbonLatest({ ...latestBody, isEstimated: 'yes' }), /isEstimated/);
    invalid(() => parseCarbonLatest([latestBody]), /response/);
    invalid(() => parseCarbonLatest(null), /response/);
    invalid(() => parsePowerBreakdown({ fossilFreePercentage: 'many' }), /fossilFreePercentage/);
    invalid(() => parsePowerBreakdown({ renewablePercentage: 140 }), /renewablePercentage/);
  });

  it('builds one carbon_forecast row per forecast point, oldest first', () => {
    const forecast = parseCarbonForecast({
      zone: 'IN-KA',
      forecast: [
        { carbonIntensity: 530, datetime: '2026-01-26T10:00:00.000Z' },
        { carbonIntensity: 520, datetime: '2026-01-26T09:00:00.000Z' },
      ],
      updatedAt: '2026-01-26T08:30:00.000Z',
    });
    const rows = buildCarbonForecastRows(forecast, 'IN-KA', FETCHED_AT);
    assert.deepEqual(
      rows.map((r) => [r.data_type, r.value, r.timestamp, r.unit]),
      [
        ['carbon_forecast', 520, '2026-01-26T09:00:00.000Z', 'gCO2eq/kWh'],
        ['carbon_forecast', 530, '2026-01-26T10:00:00.000Z', 'gCO2eq/kWh'],
      ],
    );
    assert.deepEqual(rows[0].metadata, { forecast_updated_at: '2026-01-26T08:30:00.000Z', fetched_at: FETCHED_AT, source: 'electricitymaps' });
    invalid(() => parseCarbonForecast({ forecast: [{ carbonIntensity: 'high', datetime: '2026-01-26T09:00:00Z' }] }), /forecast\[0\]/);
    invalid(() => parseCarbonForecast({ zone: 'IN-KA' }), /forecast/);
  });

  it('skips history hours without a value (a gap, not a made-up value)', () => {
    const points = parseCarbonHistory({
      zone: 'IN-KA',
      history: [
        { carbonIntensity: 500, datetime: '2026-01-26T06:00:00.000Z', isEstimated: false },
        { carbonIntensity: null, datetime: '2026-01-26T05:00:00.000Z' },
        { carbonIntensity: 490, datetime: '2026-01-26T04:00:00.000Z' },
      ],
    });
    assert.deepEqual(points.map((p) => [p.datetime, p.carbonIntensity]), [
      ['2026-01-26T04:00:00.000Z', 490],
      ['2026-01-26T06:00:00.000Z', 500],
    ]);
    invalid(() => parseCarbonHistory({ history: 'unavailable' }), /history/);
  });
});

describe('fetch Electricity Maps: backfill hours', () => {
  const hour = (h: number) => new Date(Date.UTC(2026, 0, 26, h)).toISOString();
  const history: CarbonPoint[] = Array.from({ length: 24 }, (_, i) => ({
    carbonIntensity: 400 + i,
    datetime: new Date(Date.UTC(2026, 0, 26, 8) - (23 - i) * 3_600_000).toISOString(),
    isEstimated: false,
    estimationMethod: null,
    emissionFactorType: 'lifecycle',
  }));

  it('is due on first start and after a gap of more than an hour, not in normal operation', () => {
    assert.equal(backfillDue(undefined, hour(8)), true);
    assert.equal(backfillDue(hour(7), hour(8)), false);
    assert.equal(backfillDue(hour(8), hour(8)), false);
    assert.equal(backfillDue(hour(6), hour(8)), true);
    assert.equal(backfillDue('garbage', hour(8)), true);
  });

  it('selects the hours after the last stored one and before the latest', () => {
    const picked = selectBackfillPoints(history, hour(4), hour(8));
    assert.deepEqual(picked.map((p) => p.datetime), [hour(5), hour(6), hour(7)]);
  });

  it('selects the whole day but the latest hour on first start', () => {
    const picked = selectBackfillPoints(history, undefined, hour(8));
    assert.equal(picked.length, 23);
    assert.equal(picked[0].datetime, new Date(Date.UTC(2026, 0, 25, 9)).toISOString());
    assert.ok(picked.every((p) => p.datetime < hour(8)));
  });

  it('never selects an hour twice', () => {
    const doubled = [...history, history[20]];
    assert.equal(selectBackfillPoints(doubled, hour(4), hour(8)).length, 3);
  });
});

describe('fetch Electricity Maps: one fetch (against the fake)', function () {
  this.timeout(10_000);
  let fake: FakeElectricityMaps;
  let client: ApiClient;
  let api: ElectricityMapsApi;
  let now = Date.parse('2026-01-26T08:42:00Z');

  before(async () => {
    fake = await FakeElectricityMaps.start({ now: () => now });
    client = new ApiClient({ baseUrl: fake.url, apiName: 'Electricity Maps', secrets: [EM_TEST_KEY] });
    api = new ElectricityMapsApi(client, EM_TEST_KEY);
  });
  beforeEach(() => {
    fake.requests.length = 0;
    now = Date.parse('2026-01-26T08:42:00Z');
  });
  after(async () => {
    client.close();
    await fake.close();
  });

  const opts = { zone: 'IN-KA', mode: 'latest' as const, backfill: false, fetchedAt: FETCHED_AT };

  it('reads latest and power-breakdown into one row', async () => {
    const result = await fetchCarbon(api, opts);
    assert.deepEqual(fake.requests.map((r) => r.path), ['/v3/carbon-intensity/latest', '/v3/power-breakdown/latest']);
    assert.equal(result.rows.length, 1);
    assert.equal(result.rows[0].timestamp, '2026-01-26T08:00:00.000Z');
    assert.equal(result.rows[0].metadata.fossil_free_percentage, 23);
    assert.equal(result.headline, 512);
    assert.deepEqual(result.state, { zone: 'IN-KA', lastTimestamp: '2026-01-26T08:00:00.000Z' });
  });

  it('still stores the intensity when power-breakdown fails, with null percentages and a note', async () => {
    fake.next(403, { path: '/v3/power-breakdown/latest' });
    const result = await fetchCarbon(api, opts);
    assert.equal(result.rows[0].value, 512);
    assert.equal(result.rows[0].metadata.fossil_free_percentage, null);
    assert.equal(result.rows[0].metadata.renewable_percentage, null);
    assert.match(result.notes[0], /power-breakdown/);
  });

  it('fails the whole fetch when latest fails, without asking anything else', async () => {
    fake.next(503);
    await assert.rejects(fetchCarbon(api, opts), (e: FetchError) => e.kind === 'server' && e.status === 503);
    assert.equal(fake.requests.length, 1);
  });

  it('backfills the missing hours after an outage, oldest first, the latest row last', async () => {
    const result = await fetchCarbon(api, { ...opts, backfill: true, state: { zone: 'IN-KA', lastTimestamp: '2026-01-26T04:00:00.000Z' } });
    assert.deepEqual(result.rows.map((r) => r.timestamp), [
      '2026-01-26T05:00:00.000Z',
      '2026-01-26T06:00:00.000Z',
      '2026-01-26T07:00:00.000Z',
      '2026-01-26T08:00:00.000Z',
    ]);
    assert.deepEqual(result.rows.map((r) => r.value), [fake.intensityAt(-3), fake.intensityAt(-2), fake.intensityAt(-1), 512]);
    assert.equal(result.rows[0].metadata.fossil_free_percentage, null, 'history has no breakdown');
    assert.equal(result.rows[3].metadata.fossil_free_percentage, 23);
    assert.equal(result.state?.lastTimestamp, '2026-01-26T08:00:00.000Z');
    assert.equal(fake.requestsTo('/v3/carbon-intensity/history').length, 1);
  });

  it('backfills 23 hours on first start, nothing when no hour is missing', async () => {
    const first = await fetchCarbon(api, { ...opts, backfill: true });
    assert.equal(first.rows.length, 24);
    fake.requests.length = 0;
    now += 3_600_000; // the next hour
    const next = await fetchCarbon(api, { ...opts, backfill: true, state: first.state });
    assert.equal(next.rows.length, 1);
    assert.equal(next.rows[0].timestamp, '2026-01-26T09:00:00.000Z');
    assert.equal(fake.requestsTo('/v3/carbon-intensity/history').length, 0);
  });

  it('keeps the old mark when the history fails, so the next fetch tries again', async () => {
    fake.next(500, { path: '/v3/carbon-intensity/history' });
    const state = { zone: 'IN-KA', lastTimestamp: '2026-01-26T02:00:00.000Z' };
    const result = await fetchCarbon(api, { ...opts, backfill: true, state });
    assert.equal(result.rows.length, 1);
    assert.deepEqual(result.state, state);
    assert.match(result.notes[0], /history/);
  });

  it('treats the state of another zone as none', async () => {
    const result = await fetchCarbon(api, { ...opts, zone: 'DE', backfill: true, state: { zone: 'IN-KA', lastTimestamp: '2026-01-26T07:00:00.000Z' } });
    assert.equal(result.rows.length, 24);
    assert.ok(result.rows.every((r) => r.zone === 'DE'));
  });

  it('forecast mode: one carbon_forecast row per point of the forecast call only', async () => {
    const result = await fetchCarbon(api, { ...opts, mode: 'forecast' });
    assert.deepEqual(fake.requests.map((r) => r.path), ['/v3/carbon-intensity/forecast']);
    assert.equal(result.rows.length, 24);
    assert.ok(result.rows.every((r) => r.data_type === 'carbon_forecast'));
    assert.equal(result.rows[0].timestamp, '2026-01-26T09:00:00.000Z');
    assert.equal(result.headline, fake.intensityAt(1));
    assert.equal(result.state, undefined);
  });
});
