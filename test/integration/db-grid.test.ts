/**
 * GridDataRepository, one suite run against SQLite and PostgreSQL.
 */
import assert from 'assert/strict';
import type { GridData } from '../../nodes/shared/db';
import { ago, backends, useDatabase } from './db-support';

const CONTRACT_FIELDS = ['id', 'data_type', 'value', 'unit', 'zone', 'metadata', 'timestamp', 'created_at'];
const HOUR = 3_600_000;

function carbon(over: Partial<GridData> = {}): GridData {
  return {
    data_type: 'carbon_intensity',
    value: 650,
    unit: 'gCO2eq/kWh',
    zone: 'IN-KA',
    metadata: {
      is_estimated: true,
      estimation_method: 'TIME_SLICER_AVERAGE',
      emission_factor_type: 'lifecycle',
      fossil_free_percentage: 41.5,
      renewable_percentage: null,
      fetched_at: '2026-01-26T08:01:02.345Z',
      source: 'electricitymaps',
    },
    timestamp: '2026-01-26T08:00:00.000Z',
    ...over,
  };
}

function weather(over: Partial<GridData> = {}): GridData {
  return {
    data_type: 'weather',
    value: 24.5,
    unit: 'celsius',
    zone: 'IN-KA',
    metadata: { humidity: 60, cloud_cover: 20, weather_condition: 'Clouds', description: 'few clouds', wind_speed: 3.1, pressure: 1012, source: 'openweathermap' },
    timestamp: '2026-01-26T07:55:00.000Z',
    ...over,
  };
}

for (const backend of backends()) {
  describe(`GridDataRepository on ${backend.name}`, function () {
    const db = useDatabase(backend, 'grid', ['grid_data']);
    const repo = () => db().gridData;
    const tableCount = async () => Number((await db().sql.query<{ n: number }>('SELECT COUNT(*) AS n FROM grid_data'))[0].n);

    describe('upsertMany', () => {
      it('stores rows with exactly the contract fields and metadata as an object', async () => {
        const [row] = await repo().upsertMany([carbon()]);
        assert.deepEqual(Object.keys(row), CONTRACT_FIELDS);
        assert.equal(typeof row.id, 'number');
        assert.equal(row.value, 650);
        assert.equal(row.timestamp, '2026-01-26T08:00:00.000Z');
        assert.match(row.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.deepEqual(row.metadata, carbon().metadata);
        assert.deepEqual(await repo().get(row.id), row);
        const tricky = { description: 'say "hi", {brace} \\ back', emoji: '☁️', nested: { list: [1, 'two', null, true] }, empty: {} };
        const [other] = await repo().upsertMany([weather({ metadata: tricky })]);
        assert.deepEqual(other.metadata, tricky);
        assert.deepEqual((await repo().get(other.id))!.metadata, tricky);
      });

      it('replaces value, unit and metadata of the same (data_type, zone, timestamp), keeping id and created_at', async () => {
        const [first] = await repo().upsertMany([carbon()]);
        const [second] = await repo().upsertMany([
          carbon({ value: 610, unit: 'g/kWh', metadata: { is_estimated: false, source: 'electricitymaps' }, timestamp: '2026-01-26T13:30:00+05:30' }),
        ]);
        assert.equal(second.id, first.id);
        assert.equal(second.created_at, first.created_at);
        assert.equal(second.value, 610);
        assert.equal(second.unit, 'g/kWh');
        assert.deepEqual(second.metadata, { is_estimated: false, source: 'electricitymaps' });
        assert.equal(await tableCount(), 1);
        assert.deepEqual(await repo().get(first.id), second);
      });

      it('keeps separate rows for another zone, data_type or timestamp', async () => {
        const rows = await repo().upsertMany([
          carbon(),
          carbon({ zone: 'DE' }),
          carbon({ timestamp: '2026-01-26T08:15:00.000Z' }),
          weather({ timestamp: '2026-01-26T08:00:00.000Z' }),
        ]);
        assert.equal(rows.length, 4);
        assert.equal(await tableCount(), 4);
      });

      it('takes the last of a key repeated inside one batch', async () => {
        const rows = await repo().upsertMany([carbon({ value: 1 }), weather(), carbon({ value: 2 })]);
        assert.equal(rows.length, 2);
        assert.equal(await tableCount(), 2);
        assert.equal(rows.find((r) => r.data_type === 'carbon_intensity')!.value, 2);
      });

      it('stores an empty metadata object when none is given and rejects a non-object', async () => {
        const [row] = await repo().upsertMany([{ ...weather(), metadata: undefined as unknown as Record<string, unknown> }]);
        assert.deepEqual(row.metadata, {});
        await assert.rejects(repo().upsertMany([weather({ metadata: [1, 2] as unknown as Record<string, unknown> })]), /metadata must be an object/);
        await assert.rejects(repo().upsertMany([weather({ timestamp: 'soon' })]), /invalid timestamp/);
        assert.equal(await tableCount(), 1);
      });

      it('does nothing for an empty batch', async () => {
        assert.deepEqual(await repo().upsertMany([]), []);
      });
    });

    describe('list and get', () => {
      beforeEach(async () => {
        await repo().upsertMany([
          carbon({ timestamp: '2026-01-26T08:00:00.000Z' }),
          carbon({ timestamp: '2026-01-26T07:45:00.000Z' }),
          carbon({ zone: 'DE', timestamp: '2026-01-26T07:30:00.000Z' }),
          weather({ timestamp: '2026-01-26T07:55:00.000Z' }),
          weather({ timestamp: '2026-01-26T07:40:00.000Z' }),
        ]);
      });

      it('filters by data_type and zone, newest first, with count and pages', async () => {
        const all = await repo().list({});
        assert.equal(all.count, 5);
        assert.deepEqual(all.rows.map((r) => r.timestamp), [
          '2026-01-26T08:00:00.000Z',
          '2026-01-26T07:55:00.000Z',
          '2026-01-26T07:45:00.000Z',
          '2026-01-26T07:40:00.000Z',
          '2026-01-26T07:30:00.000Z',
        ]);
        assert.equal((await repo().list({ filters: { data_type: 'carbon_intensity' } })).count, 3);
        assert.equal((await repo().list({ filters: { zone: 'DE' } })).count, 1);
        assert.equal((await repo().list({ filters: { data_type: 'weather', zone: 'DE' } })).count, 0);
        const page2 = await repo().list({ page: 2, pageSize: 2, ordering: 'timestamp' });
        assert.deepEqual(page2.rows.map((r) => r.timestamp), ['2026-01-26T07:45:00.000Z', '2026-01-26T07:55:00.000Z']);
        assert.equal(page2.count, 5);
        assert.equal(page2.hasNext, true);
      });

      it('treats SQL injection strings in filters as plain values', async () => {
        for (const evil of ["carbon_intensity' OR '1'='1", "'; DROP TABLE grid_data; --", '\u0000', '$1']) {
          assert.equal((await repo().list({ filters: { data_type: evil } })).count, 0);
          assert.equal((await repo().list({ filters: { zone: evil } })).count, 0);
          assert.deepEqual(await repo().latest(evil), []);
          assert.deepEqual(await repo().recent(evil, 8760, 10), []);
        }
        assert.equal(await tableCount(), 5);
      });

      it('get returns undefined for an unknown id', async () => {
        assert.equal(await repo().get(123456), undefined);
        assert.equal(await repo().get(0), undefined);
      });
    });

    describe('latest', () => {
      it('returns the newest row of each data_type, or of the one asked for', async () => {
        await repo().upsertMany([
          weather({ value: 30, timestamp: '2026-01-26T09:00:00.000Z' }),
          carbon({ value: 1, timestamp: '2026-01-26T07:00:00.000Z' }),
        ]);
        await repo().upsertMany([
          carbon({ value: 2, timestamp: '2026-01-26T08:00:00.000Z', zone: 'DE' }),
          carbon({ value: 3, timestamp: '2026-01-26T06:00:00.000Z' }),
          weather({ value: 20, timestamp: '2026-01-26T08:59:59.999Z' }),
        ]);
        const latest = await repo().latest();
        assert.deepEqual(latest.map((r) => [r.data_type, r.value]).sort(), [
          ['carbon_intensity', 2],
          ['weather', 30],
        ]);
        assert.deepEqual((await repo().latest('weather')).map((r) => r.value), [30]);
        assert.deepEqual(await repo().latest('electricity_price'), []);
      });

      it('returns an empty array for an empty table', async () => {
        assert.deepEqual(await repo().latest(), []);
      });
    });

    describe('recent', () => {
      it('returns rows of one data_type in the hours window, newest first, at most limit', async () => {
        const now = Date.now();
        await repo().upsertMany([
          carbon({ value: 1, timestamp: ago(HOUR, now) }),
          carbon({ value: 2, timestamp: ago(23 * HOUR, now) }),
          carbon({ value: 3, timestamp: ago(24 * HOUR, now) }),
          carbon({ value: 4, timestamp: ago(24 * HOUR + 1, now) }),
          weather({ value: 5, timestamp: ago(HOUR, now) }),
        ]);
        assert.deepEqual((await repo().recent('carbon_intensity', 24, 100, now)).map((r) => r.value), [1, 2, 3]);
        assert.deepEqual((await repo().recent('carbon_intensity', 24, 2, now)).map((r) => r.value), [1, 2]);
        assert.deepEqual((await repo().recent('weather', 24, 100)).map((r) => r.value), [5]);
      });
    });

    describe('deleteOlderThan', () => {
      it('removes exactly the rows older than the cutoff and keeps the row at the cutoff', async () => {
        await repo().upsertMany([
          carbon({ timestamp: '2026-01-19T07:59:59.999Z' }),
          carbon({ timestamp: '2026-01-19T08:00:00.000Z' }),
          carbon({ timestamp: '2026-01-20T08:00:00.000Z' }),
          weather({ timestamp: '2026-01-10T00:00:00.000Z' }),
          weather({ timestamp: '2026-01-11T00:00:00.000Z' }),
        ]);
        assert.equal(await repo().deleteOlderThan('2026-01-19T08:00:00.000Z', 1), 3);
        assert.deepEqual((await repo().list({ ordering: 'timestamp' })).rows.map((r) => r.timestamp), [
          '2026-01-19T08:00:00.000Z',
          '2026-01-20T08:00:00.000Z',
        ]);
      });
    });
  });
}
