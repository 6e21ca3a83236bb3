/**
 * The REST handlers of grid data, preferences, AI decisions, energy sources and commands,
 * against SQLite and PostgreSQL: every endpoint of CONTRACT section 4 and its errors.
 */
import assert from 'assert/strict';
import type { ApiRequest, ApiResponse } from '../../nodes/shared/http';
import type { Database, GridData } from '../../nodes/shared/db';
import { openDatabase } from '../../nodes/shared/db';
import { listGridData, latestGridData, recentGridData } from '../../nodes/shared/api/grid-data';
import { preferences } from '../../nodes/shared/api/preferences';
import { createDecision, getDecision, latestDecision, listDecisions, patchDecision, recentDecisions, recordDecision } from '../../nodes/shared/api/decisions';
import { energySources } from '../../nodes/shared/api/energy-sources';
import { acceptCommand } from '../../nodes/shared/api/commands';
import { serve } from '../../nodes/shared/api/common';
import type { ApiContext, ApiHandler } from '../../nodes/shared/api/common';
import { backends, useDatabase } from './db-support';

const T0 = Date.parse('2026-01-26T08:00:00.000Z');
const HOUR = 3_600_000;
const HOST = 'http://localhost:1880';

function req(method: string, path: string, opts: { query?: Record<string, unknown>; params?: Record<string, string>; body?: unknown } = {}): ApiRequest {
  const qs = new URLSearchParams(
    Object.entries(opts.query ?? {}).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, String(x)]) : [[k, String(v)]])),
  ).toString();
  return { method, query: opts.query ?? {}, params: opts.params ?? {}, body: opts.body, url: `${HOST}${path}${qs ? `?${qs}` : ''}` };
}

const body = (res: ApiResponse) => res.body as any;

for (const backend of backends()) {
  describe(`REST handlers on ${backend.name}`, function () {
    let now = T0;
    const db = useDatabase(backend, 'api', ['grid_data', 'user_preferences', 'ai_decisions', 'energy_sources'], { clock: { now: () => now } });
    const ctx = (): ApiContext => ({ now, topicPrefix: 'hvtest' });
    const call = (h: ApiHandler, r: ApiRequest) => h(db(), r, ctx());
    beforeEach(() => {
      now = T0;
    });

    describe('grid data', () => {
      async function seed(): Promise<void> {
        const rows: GridData[] = [];
        for (let i = 0; i < 30; i++) {
          rows.push({ data_type: 'carbon_intensity', value: 600 + i, unit: 'gCO2eq/kWh', zone: i % 2 ? 'IN-KA' : 'DE', metadata: { i }, timestamp: new Date(T0 - i * HOUR).toISOString() });
        }
        rows.push({ data_type: 'weather', value: 24.5, unit: 'celsius', zone: 'IN-KA', metadata: { humidity: 60 }, timestamp: new Date(T0 - 30 * 60_000).toISOString() });
        rows.push({ data_type: 'weather', value: 20, unit: 'celsius', zone: 'IN-KA', metadata: {}, timestamp: new Date(T0 - 30 * HOUR).toISOString() });
        await db().gridData.upsertMany(rows);
      }

      it('lists paginated with absolute next/previous links that keep the other parameters', async () => {
        await seed();
        const r1 = await call(listGridData, req('GET', '/api/grid-data/', { query: { page_size: '10', data_type: 'carbon_intensity' } }));
        assert.equal(r1.status, 200);
        assert.equal(body(r1).count, 30);
        assert.equal(body(r1).results.length, 10);
        assert.equal(body(r1).previous, null);
        assert.equal(body(r1).next, `${HOST}/api/grid-data/?page_size=10&data_type=carbon_intensity&page=2`);
        assert.deepEqual(Object.keys(body(r1).results[0]), ['id', 'data_type', 'value', 'unit', 'zone', 'metadata', 'timestamp', 'created_at']);
        const r3 = await call(listGridData, req('GET', '/api/grid-data/', { query: { page_size: '10', data_type: 'carbon_intensity', page: '3' } }));
        assert.equal(body(r3).next, null);
        assert.equal(body(r3).previous, `${HOST}/api/grid-data/?page_size=10&data_type=carbon_intensity&page=2`);
        const r2 = await call(listGridData, req('GET', '/api/grid-data/', { query: { page_size: '10', data_type: 'carbon_intensity', page: '2' } }));
        assert.equal(body(r2).previous, `${HOST}/api/grid-data/?page_size=10&data_type=carbon_intensity`, 'page 1 has no page parameter');
        const past = await call(listGridData, req('GET', '/api/grid-data/', { query: { page: '4', page_size: '10', data_type: 'carbon_intensity' } }));
        assert.deepEqual([past.status, past.body], [404, { detail: 'Invalid page.' }]);
        const huge = await call(listGridData, req('GET', '/api/grid-data/', { query: { page: '99999999999999999999' } }));
        assert.deepEqual([huge.status, huge.body], [404, { detail: 'Invalid page.' }]);
      });

      it('filters by data_type and zone (combined), orders by the whitelist only', async () => {
        await seed();
        const de = await call(listGridData, req('GET', '/api/grid-data/', { query: { zone: 'DE', data_type: 'carbon_intensity' } }));
        assert.equal(body(de).count, 15);
        assert.ok(body(de).results.every((r: any) => r.zone === 'DE'));
        const asc = await call(listGridData, req('GET', '/api/grid-data/', { query: { ordering: 'timestamp', page_size: '1' } }));
        assert.equal(body(asc).results[0].timestamp, new Date(T0 - 30 * HOUR).toISOString());
        const desc = await call(listGridData, req('GET', '/api/grid-data/', { query: { page_size: '1' } }));
        assert.equal(body(desc).results[0].timestamp, new Date(T0).toISOString(), 'newest first by default');
        for (const ordering of ['value', '-metadata', 'timestamp; DROP TABLE grid_data', '']) {
          const res = await call(listGridData, req('GET', '/api/grid-data/', { query: { ordering } }));
          if (ordering === '') assert.equal(res.status, 200);
          else assert.deepEqual([res.status, Object.keys(body(res))], [400, ['error']], ordering);
        }
        const sql = await call(listGridData, req('GET', '/api/grid-data/', { query: { zone: "DE' OR '1'='1" } }));
        assert.equal(body(sql).count, 0);
      });

      it('latest: the newest row of each data_type, or of one', async () => {
        await seed();
        const all = await call(latestGridData, req('GET', '/api/grid-data/latest/'));
        assert.deepEqual(body(all).map((r: any) => [r.data_type, r.timestamp]), [
          ['carbon_intensity', new Date(T0).toISOString()],
          ['weather', new Date(T0 - 30 * 60_000).toISOString()],
        ]);
        const one = await call(latestGridData, req('GET', '/api/grid-data/latest/', { query: { data_type: 'weather' } }));
        assert.deepEqual(body(one).map((r: any) => r.value), [24.5]);
        assert.deepEqual(body(await call(latestGridData, req('GET', '/', { query: { data_type: 'nope' } }))), []);
      });

      it('carbon_intensity and weather: ?hours= default 24, bounds, limit', async () => {
        await seed();
        const carbon = recentGridData('carbon_intensity');
        const def = await call(carbon, req('GET', '/api/grid-data/carbon_intensity/'));
        assert.equal(body(def).length, 25, 'hours 0..24 inclusive');
        assert.equal(body(def)[0].timestamp, new Date(T0).toISOString());
        assert.equal(body(await call(carbon, req('GET', '/', { query: { hours: '2.5' } }))).length, 3);
        assert.equal(body(await call(carbon, req('GET', '/', { query: { hours: '8760', limit: '4' } }))).length, 4);
        assert.equal(body(await call(carbon, req('GET', '/', { query: { limit: '999999' } }))).length, 25, 'limit cut to 10000');
        for (const hours of ['0', '-1', '8761', 'abc', '1e9', 'NaN', 'Infinity']) {
          const res = await call(carbon, req('GET', '/', { query: { hours } }));
          assert.deepEqual(res, { status: 400, body: { error: 'hours must be a positive number of at most 8760' } }, hours);
        }
        for (const limit of ['0', '-5', '1.5', 'x']) {
          assert.equal((await call(carbon, req('GET', '/', { query: { limit } }))).status, 400, limit);
        }
        const weather = await call(recentGridData('weather'), req('GET', '/api/grid-data/weather/'));
        assert.deepEqual(body(weather).map((r: any) => r.value), [24.5]);
      });
    });

    describe('preferences', () => {
      const post = (b: unknown) => call(preferences, req('POST', '/api/preferences/', { body: b }));
      const detail = (method: string, key: string, b?: unknown) =>
        call(preferences, req(method, `/api/preferences/${encodeURIComponent(key)}/`, { params: { key }, body: b }));

      it('POST 201 ignores read-only and unknown fields; a duplicate key is 400 with DRF\'s message', async () => {
        const res = await post({ preference_key: 'brightness_threshold', preference_value: 300, id: 777, created_at: '2000-01-01T00:00:00Z', updated_at: 'x', junk: true });
        assert.equal(res.status, 201);
        assert.notEqual(body(res).id, 777);
        assert.equal(body(res).created_at, '2026-01-26T08:00:00.000Z');
        assert.deepEqual(Object.keys(body(res)), ['id', 'preference_key', 'preference_value', 'description', 'created_at', 'updated_at']);
        const dup = await post({ preference_key: 'brightness_threshold', preference_value: 1 });
        assert.deepEqual(dup, { status: 400, body: { preference_key: ['user preference with this preference key already exists.'] } });
        const bad = await post({ preference_value: 1 });
        assert.deepEqual(bad, { status: 400, body: { preference_key: ['This field is required.'] } });
        assert.deepEqual(await post([{ preference_key: 'a' }]), { status: 400, body: { non_field_errors: ['Invalid data. Expected a dictionary, but got list.'] } });
      });

      it('get_preference: 400 without key, 404 shape, the row; by route param or by path', async () => {
        await post({ preference_key: 'theme', preference_value: 'dark', description: 'UI theme' });
        const noKey = await call(preferences, req('GET', '/api/preferences/get_preference/', { params: { key: 'get_preference' } }));
        assert.deepEqual(noKey, { status: 400, body: { error: 'key is required' } });
        const empty = await call(preferences, req('GET', '/api/preferences/get_preference/', { query: { key: '' } }));
        assert.deepEqual(empty, { status: 400, body: { error: 'key is required' } }, 'a route without :key is recognised by its path');
        const missing = await call(preferences, req('GET', '/api/preferences/get_preference/', { query: { key: 'nope' } }));
        assert.deepEqual(missing, { status: 404, body: { error: 'Preference not found' } });
        const found = await call(preferences, req('GET', '/api/preferences/get_preference', { query: { key: 'theme' } }));
        assert.equal(found.status, 200);
        assert.equal(body(found).preference_value, 'dark');
        const post405 = await call(preferences, req('POST', '/api/preferences/get_preference/', { params: { key: 'get_preference' }, body: {} }));
        assert.equal(post405.status, 405);
      });

      it('GET, PUT (replace, may rename), PATCH (merge), DELETE 204 by key; 404 for unknown keys', async () => {
        await post({ preference_key: 'a', preference_value: { x: 1 }, description: 'keep?' });
        await post({ preference_key: 'b', preference_value: 2 });
        assert.equal(body(await detail('GET', 'a')).description, 'keep?');
        now = T0 + 60_000;
        const patched = await detail('PATCH', 'a', { description: 'patched', id: 5, created_at: '1999-01-01T00:00:00Z' });
        assert.equal(patched.status, 200);
        assert.deepEqual(body(patched).preference_value, { x: 1 });
        assert.equal(body(patched).description, 'patched');
        assert.equal(body(patched).created_at, '2026-01-26T08:00:00.000Z');
        assert.equal(body(patched).updated_at, '2026-01-26T08:01:00.000Z');
        const emptyPatch = await detail('PATCH', 'a', {});
        assert.equal(body(emptyPatch).description, 'patched');
        const put = await detail('PUT', 'a', { preference_key: 'a', preference_value: [1, 2] });
        assert.deepEqual([body(put).preference_value, body(put).description], [[1, 2], ''], 'PUT resets what it omits');
        assert.deepEqual(await detail('PUT', 'a', { preference_value: 1 }), { status: 400, body: { preference_key: ['This field is required.'] } });
        assert.deepEqual(await detail('PUT', 'a', { preference_key: 'b', preference_value: 1 }), {
          status: 400,
          body: { preference_key: ['user preference with this preference key already exists.'] },
        });
        const renamed = await detail('PUT', 'a', { preference_key: 'c', preference_value: null });
        assert.equal(body(renamed).preference_key, 'c');
        assert.equal(body(renamed).preference_value, null);
        assert.deepEqual(await detail('GET', 'a'), { status: 404, body: { detail: 'Not found.' } });
        assert.deepEqual(await detail('PATCH', 'zzz', { description: 'x' }), { status: 404, body: { detail: 'Not found.' } });
        assert.deepEqual(await detail('DELETE', 'c'), { status: 204, body: '' });
        assert.deepEqual(await detail('DELETE', 'c'), { status: 404, body: { detail: 'Not found.' } });
        assert.equal((await detail('POST', 'b', {})).status, 405);
        assert.deepEqual((await detail('POST', 'b', {})).headers, { allow: 'GET, PUT, PATCH, DELETE, OPTIONS' });
        for (const key of ["b' OR '1'='1", 'a\u0000', 'k'.repeat(500), '../b', '%ZZ']) {
          assert.equal((await detail('GET', key)).status, 404, key);
        }
      });

      it('lists paginated, newest first; page_size bounds; 405 for PUT on the collection', async () => {
        for (let i = 0; i < 3; i++) {
          now = T0 + i;
          await post({ preference_key: `p${i}`, preference_value: i });
        }
        const list = await call(preferences, req('GET', '/api/preferences/', { query: { page_size: '2' } }));
        assert.deepEqual(body(list).results.map((r: any) => r.preference_key), ['p2', 'p1']);
        assert.equal(body(list).count, 3);
        assert.equal(body(list).next, `${HOST}/api/preferences/?page_size=2&page=2`);
        assert.equal((await call(preferences, req('GET', '/api/preferences/', { query: { page_size: '0' } }))).status, 400);
        assert.equal((await call(preferences, req('GET', '/api/preferences/', { query: { page: '-1' } }))).status, 400);
        assert.equal((await call(preferences, req('GET', '/api/preferences/', { query: { page: ['1', '2'] } }))).status, 404, 'the last of a repeated parameter wins');
        assert.equal((await call(preferences, req('GET', '/api/preferences/', { query: { page: { $gt: 1 } } }))).status, 400);
        assert.equal((await call(preferences, req('PUT', '/api/preferences/', { body: {} }))).status, 405);
      });
    });

    describe('AI decisions', () => {
      const base = { decision_type: 'light_dim', decision: { brightness: 60 }, confidence: 0.8 };
      const record = (over: Record<string, unknown> = {}) => call(createDecision, req('POST', '/api/ai-decisions/', { body: { ...base, ...over } }));

      it('POST 201: defaults, commands stored in decision.commands and returned as messages', async () => {
        const res = await record({ id: 9, created_at: '2000-01-01T00:00:00Z', extra: 1 });
        assert.equal(res.status, 201);
        assert.deepEqual({ ...body(res), id: 0 }, {
          id: 0,
          decision_type: 'light_dim',
          decision: { brightness: 60 },
          confidence: 0.8,
          reasoning: '',
          applied: false,
          timestamp: '2026-01-26T08:00:00.000Z',
          created_at: '2026-01-26T08:00:00.000Z',
        });
        const withCommands = await recordDecision(db(), { ...base, decision: { brightness: 60, commands: 'overwritten' }, commands: [{ device_id: 'light_1', command: 'set_brightness', value: 60 }, { device_id: 'fan', command: 'off' }] }, ctx());
        assert.deepEqual(withCommands.row!.decision, {
          brightness: 60,
          commands: [
            { device_id: 'light_1', command: 'set_brightness', value: 60 },
            { device_id: 'fan', command: 'off', value: null },
          ],
        });
        assert.deepEqual(withCommands.messages, [
          { topic: 'hvtest/commands/light_1', payload: { command: 'set_brightness', value: 60, timestamp: '2026-01-26T08:00:00.000Z' }, qos: 1, retain: false },
          { topic: 'hvtest/commands/fan', payload: { command: 'off', value: null, timestamp: '2026-01-26T08:00:00.000Z' }, qos: 1, retain: false },
        ]);
        const stored = await call(getDecision, req('GET', '/', { params: { id: String(withCommands.row!.id) } }));
        assert.deepEqual(stored.body, withCommands.row);
        const invalid = await recordDecision(db(), { ...base, commands: [{ device_id: 'a/b', command: 'x' }] }, ctx());
        assert.equal(invalid.response.status, 400);
        assert.deepEqual(invalid.messages, []);
        assert.equal((await db().decisions.list({})).count, 2, 'nothing stored for an invalid body');
      });

      it('lists with filters applied and decision_type, orderings, and rejects others', async () => {
        await record({ confidence: 0.5, timestamp: new Date(T0 - 3 * HOUR).toISOString() });
        await record({ decision_type: 'power_source', confidence: 0.9, applied: true, timestamp: new Date(T0 - HOUR).toISOString() });
        await record({ confidence: 0.7, applied: 'true', timestamp: new Date(T0 - 2 * HOUR).toISOString() });
        const list = (query: Record<string, unknown>) => call(listDecisions, req('GET', '/api/ai-decisions/', { query }));
        assert.deepEqual(body(await list({})).results.map((r: any) => r.confidence), [0.9, 0.7, 0.5]);
        assert.deepEqual(body(await list({ applied: 'true' })).results.map((r: any) => r.confidence), [0.9, 0.7]);
        assert.deepEqual(body(await list({ applied: 'false', decision_type: 'light_dim' })).results.map((r: any) => r.confidence), [0.5]);
        assert.deepEqual(body(await list({ ordering: 'confidence' })).results.map((r: any) => r.confidence), [0.5, 0.7, 0.9]);
        assert.deepEqual(body(await list({ ordering: '-created_at' })).results.map((r: any) => r.confidence), [0.7, 0.9, 0.5]);
        assert.deepEqual(await list({ applied: 'maybe' }), { status: 400, body: { error: 'applied must be true or false' } });
        assert.equal((await list({ ordering: 'reasoning' })).status, 400);
        assert.equal((await list({ ordering: '-decision' })).status, 400);
      });

      it('recent (default 24 h), latest (404 when none), GET by id', async () => {
        assert.deepEqual(await call(latestDecision, req('GET', '/api/ai-decisions/latest/')), { status: 404, body: { detail: 'Not found.' } });
        for (const [h, type] of [[1, 'general'], [23, 'light_dim'], [25, 'general']] as const) {
          await record({ decision_type: type, reasoning: `${h}h`, timestamp: new Date(T0 - h * HOUR).toISOString() });
        }
        const recent = await call(recentDecisions, req('GET', '/api/ai-decisions/recent/'));
        assert.deepEqual(body(recent).map((r: any) => r.reasoning), ['1h', '23h']);
        const typed = await call(recentDecisions, req('GET', '/', { query: { hours: '48', decision_type: 'general' } }));
        assert.deepEqual(body(typed).map((r: any) => r.reasoning), ['1h', '25h']);
        assert.equal((await call(recentDecisions, req('GET', '/', { query: { hours: '-1' } }))).status, 400);
        assert.equal(body(await call(latestDecision, req('GET', '/'))).reasoning, '1h');
        assert.equal(body(await call(latestDecision, req('GET', '/', { query: { decision_type: 'light_dim' } }))).reasoning, '23h');
        assert.deepEqual(await call(latestDecision, req('GET', '/', { query: { decision_type: 'load_shift' } })), { status: 404, body: { detail: 'Not found.' } });
        assert.deepEqual(await call(getDecision, req('GET', '/', { params: { id: '99999' } })), { status: 404, body: { detail: 'Not found.' } });
        assert.deepEqual(await call(getDecision, req('GET', '/', { params: { id: 'abc' } })), { status: 404, body: { detail: 'Not found.' } });
      });

      it('PATCH changes only applied; any other decision field is a 400; unknown and read-only fields are ignored', async () => {
        const row = body(await record({ reasoning: 'r' }));
        const patch = (b: unknown, id = String(row.id)) => call(patchDecision, req('PATCH', `/api/ai-decisions/${id}/`, { params: { id }, body: b }));
        const res = await patch({ applied: true, id: 1234, created_at: '1999-01-01T00:00:00Z', note: 'ignored' });
        assert.deepEqual(res, { status: 200, body: { ...row, applied: true } });
        const refused = await patch({ applied: false, reasoning: 'changed', confidence: 0.1 });
        assert.deepEqual(refused, {
          status: 400,
          body: {
            confidence: ['Only "applied" may be changed: AI decisions are an audit trail.'],
            reasoning: ['Only "applied" may be changed: AI decisions are an audit trail.'],
          },
        });
        assert.deepEqual(await patch({}), { status: 400, body: { applied: ['This field is required.'] } });
        assert.deepEqual(await patch({ applied: 'perhaps' }), { status: 400, body: { applied: ['Must be a valid boolean.'] } });
        assert.deepEqual(await patch({ applied: true }, '99999'), { status: 404, body: { detail: 'Not found.' } });
        assert.equal((await call(patchDecision, req('PUT', '/', { params: { id: String(row.id) }, body: {} }))).status, 405);
        assert.equal((await call(patchDecision, req('DELETE', '/', { params: { id: String(row.id) } }))).status, 405);
        const stored = await db().decisions.get(row.id);
        assert.deepEqual(stored, { ...row, applied: true }, 'the refused PATCH changed nothing');
      });
    });

    describe('energy sources', () => {
      const es = (method: string, path: string, opts: Parameters<typeof req>[2] = {}) => call(energySources, req(method, path, opts));

      it('POST, list by priority, available as an array, GET/PUT/PATCH by id, 404 and 405', async () => {
        const solar = await es('POST', '/api/energy-sources/', { body: { source_type: 'solar', capacity: 5000, priority: 10, updated_at: '2000-01-01T00:00:00Z' } });
        assert.equal(solar.status, 201);
        assert.deepEqual({ ...body(solar), id: 0 }, { id: 0, source_type: 'solar', is_available: true, capacity: 5000, current_output: 0, priority: 10, updated_at: '2026-01-26T08:00:00.000Z' });
        await es('POST', '/api/energy-sources/', { body: { source_type: 'grid', priority: 1 } });
        await es('POST', '/api/energy-sources/', { body: { source_type: 'battery', priority: 5, is_available: false } });
        assert.deepEqual(await es('POST', '/api/energy-sources/', { body: { source_type: 'solar' } }), {
          status: 400,
          body: { source_type: ['energy source with this source type already exists.'] },
        });
        const list = await es('GET', '/api/energy-sources/');
        assert.deepEqual(body(list).results.map((r: any) => r.source_type), ['solar', 'battery', 'grid']);
        const available = await es('GET', '/api/energy-sources/available/', { params: { id: 'available' } });
        assert.deepEqual(body(available).map((r: any) => r.source_type), ['solar', 'grid']);
        const byPath = await es('GET', '/api/energy-sources/available');
        assert.deepEqual(body(byPath).map((r: any) => r.source_type), ['solar', 'grid'], 'a route without :id is recognised by its path');
        const id = String(body(solar).id);
        assert.equal(body(await es('GET', `/api/energy-sources/${id}/`, { params: { id } })).source_type, 'solar');
        now = T0 + HOUR;
        const patched = await es('PATCH', `/api/energy-sources/${id}/`, { params: { id }, body: { current_output: '1500.5', id: 77 } });
        assert.deepEqual([body(patched).id, body(patched).current_output, body(patched).capacity, body(patched).updated_at], [body(solar).id, 1500.5, 5000, '2026-01-26T09:00:00.000Z']);
        const put = await es('PUT', `/api/energy-sources/${id}/`, { params: { id }, body: { source_type: 'solar' } });
        assert.deepEqual([body(put).capacity, body(put).current_output, body(put).priority], [null, 0, 0], 'PUT resets omitted fields to defaults');
        assert.deepEqual(await es('PATCH', `/api/energy-sources/${id}/`, { params: { id }, body: { source_type: 'grid' } }), {
          status: 400,
          body: { source_type: ['energy source with this source type already exists.'] },
        });
        assert.deepEqual(await es('PATCH', `/api/energy-sources/${id}/`, { params: { id }, body: { priority: 'high' } }), { status: 400, body: { priority: ['A valid integer is required.'] } });
        assert.deepEqual(await es('GET', '/api/energy-sources/9999/', { params: { id: '9999' } }), { status: 404, body: { detail: 'Not found.' } });
        assert.deepEqual(await es('GET', '/x', { params: { id: 'abc' } }), { status: 404, body: { detail: 'Not found.' } });
        assert.equal((await es('DELETE', `/api/energy-sources/${id}/`, { params: { id } })).status, 405);
        assert.equal((await es('POST', '/api/energy-sources/available/', { params: { id: 'available' }, body: {} })).status, 405);
      });
    });

    describe('database failures', () => {
      it('any failure below a handler is 503 {"detail": "database unavailable"} with the cause, never a throw', async () => {
        const down = await serve(preferences, () => Promise.reject(new Error('connection refused')), req('GET', '/api/preferences/'), ctx());
        assert.deepEqual(down.response, { status: 503, body: { detail: 'database unavailable' } });
        assert.match(down.error!.message, /connection refused/);
        // A real database that closed under the handler.
        const url = backend.name === 'sqlite' ? `sqlite:${require('os').tmpdir()}/hv-closed-${process.pid}.db` : undefined;
        if (url) {
          const closed: Database = await openDatabase(url);
          await closed.close();
          for (const h of [preferences, energySources, listDecisions, listGridData] as ApiHandler[]) {
            const res = await serve(h, async () => closed, req('GET', '/api/x/'), ctx());
            assert.equal(res.response.status, 503);
            assert.ok(res.error);
          }
          require('fs').rmSync(url.slice('sqlite:'.length), { force: true });
        }
      });
    });
  });
}

describe('POST /api/commands/ (no database)', () => {
  it('202 with the topic, or 400 with field errors', () => {
    const res = acceptCommand({ body: { device_id: 'light_1', command: 'on', value: { level: 3 }, extra: 1 } }, { now: T0, topicPrefix: '' });
    assert.deepEqual(res.response, { status: 202, body: { status: 'accepted', device_id: 'light_1', command: 'on', topic: 'HyperVolt/commands/light_1' } });
    assert.deepEqual(res.message, { topic: 'HyperVolt/commands/light_1', payload: { command: 'on', value: { level: 3 }, timestamp: '2026-01-26T08:00:00.000Z' }, qos: 1, retain: false });
    const bad = acceptCommand({ body: { device_id: 'light/#', command: 5 } }, { now: T0 });
    assert.equal(bad.response.status, 400);
    assert.deepEqual(Object.keys(bad.response.body as object), ['device_id']);
    assert.equal(bad.message, undefined);
  });
});
