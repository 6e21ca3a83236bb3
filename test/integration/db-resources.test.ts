/**
 * PreferencesRepository, DecisionRepository and EnergySourceRepository: one suite run against
 * SQLite and PostgreSQL.
 */
import assert from 'assert/strict';
import { ConflictError } from '../../nodes/shared/db';
import type { AiDecision, EnergySource } from '../../nodes/shared/db';
import { backends, useDatabase } from './db-support';

const T0 = Date.parse('2026-01-26T08:00:00.000Z');
const HOUR = 3_600_000;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function decision(over: Partial<AiDecision> = {}): AiDecision {
  return {
    decision_type: 'light_dim',
    decision: { target: 'living_room', brightness: 60 },
    confidence: 0.8,
    reasoning: '',
    applied: false,
    timestamp: new Date(T0).toISOString(),
    ...over,
  };
}

function source(over: Partial<EnergySource> = {}): EnergySource {
  return { source_type: 'solar', is_available: true, capacity: 5000, current_output: 1200, priority: 10, ...over };
}

for (const backend of backends()) {
  describe(`resource repositories on ${backend.name}`, function () {
    let now = T0;
    const db = useDatabase(backend, 'resources', ['user_preferences', 'ai_decisions', 'energy_sources'], { clock: { now: () => now } });
    beforeEach(() => {
      now = T0;
    });

    describe('PreferencesRepository', () => {
      const repo = () => db().preferences;

      it('creates a row with every contract field, JSON values of any kind, and finds it by key', async () => {
        const values: unknown[] = [300, 'text', true, null, [1, 'two', { three: 3 }], { nested: { deep: [null] }, quote: 'say "hi" \\ ☀️' }, 0.5];
        for (const [i, value] of values.entries()) {
          const row = await repo().create({ preference_key: `k${i}`, preference_value: value, description: `d${i}` });
          assert.deepEqual(Object.keys(row), ['id', 'preference_key', 'preference_value', 'description', 'created_at', 'updated_at']);
          assert.deepEqual(row.preference_value, value, `value ${i}`);
          assert.equal(row.created_at, '2026-01-26T08:00:00.000Z');
          assert.equal(row.updated_at, row.created_at);
          assert.deepEqual(await repo().getByKey(`k${i}`), row);
        }
        assert.equal(await repo().getByKey('nope'), undefined);
        assert.equal(await repo().getByKey(''), undefined);
        assert.equal(await repo().getByKey('a\u0000b'), undefined);
        assert.equal(await repo().getByKey('k'.repeat(101)), undefined);
      });

      it('refuses a second row with the same key with a ConflictError, and stores nothing', async () => {
        await repo().create({ preference_key: 'theme', preference_value: 'dark', description: '' });
        await assert.rejects(
          repo().create({ preference_key: 'theme', preference_value: 'light', description: '' }),
          (err: unknown) => err instanceof ConflictError && err.field === 'preference_key',
        );
        assert.equal((await repo().getByKey('theme'))!.preference_value, 'dark');
        assert.equal((await repo().list({})).count, 1);
      });

      it('replace sets every field and updated_at; may rename the key, not onto a taken one', async () => {
        const a = await repo().create({ preference_key: 'a', preference_value: 1, description: 'first' });
        await repo().create({ preference_key: 'b', preference_value: 2, description: '' });
        now = T0 + 60_000;
        const replaced = await repo().replace('a', { preference_key: 'a2', preference_value: { x: 1 }, description: '' });
        assert.equal(replaced!.id, a.id);
        assert.equal(replaced!.preference_key, 'a2');
        assert.deepEqual(replaced!.preference_value, { x: 1 });
        assert.equal(replaced!.description, '');
        assert.equal(replaced!.created_at, a.created_at);
        assert.equal(replaced!.updated_at, '2026-01-26T08:01:00.000Z');
        assert.equal(await repo().getByKey('a'), undefined);
        await assert.rejects(repo().replace('a2', { preference_key: 'b', preference_value: 3, description: '' }), ConflictError);
        assert.deepEqual((await repo().getByKey('a2'))!.preference_value, { x: 1 });
        assert.equal(await repo().replace('missing', { preference_key: 'm', preference_value: 1, description: '' }), undefined);
      });

      it('patch changes only the given fields (null is a value) and updated_at', async () => {
        const a = await repo().create({ preference_key: 'a', preference_value: { keep: true }, description: 'desc' });
        now = T0 + 1000;
        const p1 = await repo().patch('a', { description: 'new' });
        assert.deepEqual(p1!.preference_value, { keep: true });
        assert.equal(p1!.description, 'new');
        assert.equal(p1!.updated_at, '2026-01-26T08:00:01.000Z');
        const p2 = await repo().patch('a', { preference_value: null });
        assert.equal(p2!.preference_value, null);
        assert.equal(p2!.description, 'new');
        assert.equal(p2!.created_at, a.created_at);
        assert.equal(await repo().patch('zzz', { description: 'x' }), undefined);
      });

      it('delete removes by key once', async () => {
        await repo().create({ preference_key: 'gone', preference_value: 1, description: '' });
        assert.equal(await repo().delete('gone'), true);
        assert.equal(await repo().delete('gone'), false);
        assert.equal(await repo().delete('\u0000'), false);
      });

      it('lists paginated, newest first', async () => {
        for (let i = 0; i < 5; i++) {
          now = T0 + i * 1000;
          await repo().create({ preference_key: `p${i}`, preference_value: i, description: '' });
        }
        const page1 = await repo().list({ page: 1, pageSize: 2 });
        assert.deepEqual(page1.rows.map((r) => r.preference_key), ['p4', 'p3']);
        assert.equal(page1.count, 5);
        assert.equal(page1.hasNext, true);
        const page3 = await repo().list({ page: 3, pageSize: 2 });
        assert.deepEqual(page3.rows.map((r) => r.preference_key), ['p0']);
        assert.equal(page3.hasNext, false);
      });
    });

    describe('DecisionRepository', () => {
      const repo = () => db().decisions;

      it('inserts with every contract field; decision JSON and booleans round-trip', async () => {
        now = T0 + 5000;
        const row = await repo().insert(decision({ decision: { commands: [{ device_id: 'd', command: 'c', value: null }], n: 1.5 }, reasoning: 'why', applied: true }));
        assert.deepEqual(Object.keys(row), ['id', 'decision_type', 'decision', 'confidence', 'reasoning', 'applied', 'timestamp', 'created_at']);
        assert.equal(row.applied, true);
        assert.equal(row.reasoning, 'why');
        assert.equal(row.timestamp, '2026-01-26T08:00:00.000Z');
        assert.equal(row.created_at, '2026-01-26T08:00:05.000Z');
        assert.deepEqual(row.decision, { commands: [{ device_id: 'd', command: 'c', value: null }], n: 1.5 });
        assert.deepEqual(await repo().get(row.id), row);
        assert.equal(await repo().get(row.id + 1000), undefined);
        await assert.rejects(repo().insert(decision({ confidence: 2 })), 'the CHECK constraint holds');
      });

      it('lists with filters decision_type and applied, and each ordering', async () => {
        await repo().insert(decision({ decision_type: 'light_dim', confidence: 0.5, timestamp: new Date(T0 - 3 * HOUR).toISOString() }));
        await repo().insert(decision({ decision_type: 'power_source', confidence: 0.9, applied: true, timestamp: new Date(T0 - 1 * HOUR).toISOString() }));
        await repo().insert(decision({ decision_type: 'light_dim', confidence: 0.7, applied: true, timestamp: new Date(T0 - 2 * HOUR).toISOString() }));
        const all = await repo().list({});
        assert.deepEqual(all.rows.map((r) => r.confidence), [0.9, 0.7, 0.5], 'newest first');
        assert.deepEqual((await repo().list({ filters: { decision_type: 'light_dim' } })).rows.map((r) => r.confidence), [0.7, 0.5]);
        assert.deepEqual((await repo().list({ filters: { applied: true } })).rows.map((r) => r.confidence), [0.9, 0.7]);
        assert.deepEqual((await repo().list({ filters: { applied: false, decision_type: 'light_dim' } })).rows.map((r) => r.confidence), [0.5]);
        assert.deepEqual((await repo().list({ ordering: 'confidence' })).rows.map((r) => r.confidence), [0.5, 0.7, 0.9]);
        assert.deepEqual((await repo().list({ ordering: '-confidence' })).rows.map((r) => r.confidence), [0.9, 0.7, 0.5]);
        assert.deepEqual((await repo().list({ ordering: 'timestamp' })).rows.map((r) => r.confidence), [0.5, 0.7, 0.9]);
        assert.deepEqual((await repo().list({ ordering: 'created_at' })).rows.map((r) => r.confidence), [0.5, 0.9, 0.7]);
        await assert.rejects(repo().list({ ordering: 'reasoning' }), RangeError);
      });

      it('recent: at or after now - hours, newest first, limit, type; latest; none → undefined', async () => {
        assert.equal(await repo().latest(), undefined);
        for (const [h, type] of [[0, 'general'], [1, 'light_dim'], [2, 'general'], [25, 'general']] as const) {
          await repo().insert(decision({ decision_type: type, timestamp: new Date(T0 - h * HOUR).toISOString(), reasoning: `${h}h` }));
        }
        const recent = await repo().recent({ hours: 2, limit: 10, now: T0 });
        assert.deepEqual(recent.map((r) => r.reasoning), ['0h', '1h', '2h'], 'a row exactly at the cutoff is included');
        assert.deepEqual((await repo().recent({ hours: 24, limit: 2, now: T0 })).map((r) => r.reasoning), ['0h', '1h']);
        assert.deepEqual((await repo().recent({ hours: 48, limit: 10, decision_type: 'general', now: T0 })).map((r) => r.reasoning), ['0h', '2h', '25h']);
        assert.equal((await repo().latest())!.reasoning, '0h');
        assert.equal((await repo().latest('light_dim'))!.reasoning, '1h');
        assert.equal(await repo().latest('load_shift'), undefined);
        assert.equal(await repo().latest('x\u0000'), undefined);
      });

      it('setApplied changes applied only', async () => {
        const row = await repo().insert(decision());
        now = T0 + HOUR;
        const changed = await repo().setApplied(row.id, true);
        assert.deepEqual(changed, { ...row, applied: true });
        assert.deepEqual(await repo().setApplied(row.id, false), row);
        assert.equal(await repo().setApplied(row.id + 99, true), undefined);
        assert.equal(await repo().setApplied(-1, true), undefined);
      });
    });

    describe('EnergySourceRepository', () => {
      const repo = () => db().energySources;

      it('creates with every contract field; source_type is unique (ConflictError)', async () => {
        const row = await repo().create(source({ capacity: null }));
        assert.deepEqual(Object.keys(row), ['id', 'source_type', 'is_available', 'capacity', 'current_output', 'priority', 'updated_at']);
        assert.equal(row.capacity, null);
        assert.equal(row.is_available, true);
        assert.match(row.updated_at, ISO);
        await assert.rejects(repo().create(source()), (err: unknown) => err instanceof ConflictError && err.field === 'source_type');
        assert.deepEqual(await repo().get(row.id), row);
      });

      it('lists by priority (highest first) and available() as an array', async () => {
        await repo().create(source({ source_type: 'grid', priority: 1 }));
        await repo().create(source({ source_type: 'solar', priority: 10 }));
        await repo().create(source({ source_type: 'battery', priority: 5, is_available: false }));
        await repo().create(source({ source_type: 'generator', priority: -3 }));
        const list = await repo().list({ page: 1, pageSize: 10 });
        assert.deepEqual(list.rows.map((r) => r.source_type), ['solar', 'battery', 'grid', 'generator']);
        assert.equal(list.count, 4);
        assert.deepEqual((await repo().available()).map((r) => r.source_type), ['solar', 'grid', 'generator']);
      });

      it('replace and patch set updated_at; a taken source_type is a ConflictError', async () => {
        const solar = await repo().create(source());
        await repo().create(source({ source_type: 'grid', priority: 0 }));
        now = T0 + 2 * HOUR;
        const patched = await repo().patch(solar.id, { current_output: 0, is_available: false });
        assert.deepEqual(patched, { ...solar, current_output: 0, is_available: false, updated_at: '2026-01-26T10:00:00.000Z' });
        const replaced = await repo().replace(solar.id, { source_type: 'battery', is_available: true, capacity: null, current_output: 5, priority: 2 });
        assert.deepEqual(replaced, { id: solar.id, source_type: 'battery', is_available: true, capacity: null, current_output: 5, priority: 2, updated_at: '2026-01-26T10:00:00.000Z' });
        await assert.rejects(repo().patch(solar.id, { source_type: 'grid' }), ConflictError);
        assert.equal(await repo().patch(9999, { priority: 1 }), undefined);
        assert.equal(await repo().replace(9999, source()), undefined);
      });
    });
  });
}
