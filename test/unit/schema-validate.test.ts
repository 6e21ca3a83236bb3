/**
 * The resource schemas: body validation (DRF-style field errors), stored shape, table columns.
 */
import assert from 'assert/strict';
import {
  AI_DECISION,
  COMMAND,
  ENERGY_SOURCE,
  GRID_DATA,
  MAX_JSON_DEPTH,
  parseDateTime,
  rowJson,
  SENSOR_READING,
  storedFields,
  tableColumns,
  USER_PREFERENCE,
  validateBody,
} from '../../nodes/shared/schema';
import { GRID_DATA_TABLE } from '../../nodes/shared/db/grid-data';
import { READINGS_TABLE } from '../../nodes/shared/db/readings';
import { PREFERENCES_TABLE } from '../../nodes/shared/db/preferences';
import { DECISIONS_TABLE } from '../../nodes/shared/db/decisions';
import { ENERGY_SOURCES_TABLE } from '../../nodes/shared/db/energy-sources';

const NOW = Date.parse('2026-01-26T08:00:00.000Z');
const ok = (r: ReturnType<typeof validateBody>) => {
  if (!r.ok) assert.fail(`expected valid, got ${JSON.stringify(r.errors)}`);
  return r.value;
};
const errors = (r: ReturnType<typeof validateBody>) => {
  if (r.ok) assert.fail(`expected errors, got ${JSON.stringify(r.value)}`);
  return r.errors;
};

describe('schema: validateBody', () => {
  describe('bodies that are not objects', () => {
    for (const [body, got] of [
      [[1, 2], 'list'],
      ['text', 'str'],
      [null, 'NoneType'],
      [5, 'int'],
      [true, 'bool'],
    ] as const) {
      it(`${JSON.stringify(body)} → non_field_errors (${got})`, () => {
        assert.deepEqual(errors(validateBody(USER_PREFERENCE, body, 'create')), {
          non_field_errors: [`Invalid data. Expected a dictionary, but got ${got}.`],
        });
      });
    }
  });

  describe('user preferences', () => {
    it('accepts a minimal body, applies the description default, keeps only schema fields in order', () => {
      const v = ok(
        validateBody(USER_PREFERENCE, { extra: 1, preference_value: { a: [1, null] }, preference_key: 'brightness', id: 99, created_at: 'x', updated_at: 'y' }, 'create'),
      );
      assert.deepEqual(v, { preference_key: 'brightness', preference_value: { a: [1, null] }, description: '' });
      assert.deepEqual(Object.keys(v), ['preference_key', 'preference_value', 'description']);
    });

    it('requires preference_key and preference_value; null value is allowed, null key is not', () => {
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, {}, 'create')), {
        preference_key: ['This field is required.'],
        preference_value: ['This field is required.'],
      });
      assert.deepEqual(ok(validateBody(USER_PREFERENCE, { preference_key: 'k', preference_value: null }, 'create')).preference_value, null);
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: null, preference_value: 1 }, 'create')), {
        preference_key: ['This field may not be null.'],
      });
    });

    it('limits the key to 1..100 characters', () => {
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: '', preference_value: 1 }, 'create')), {
        preference_key: ['This field may not be blank.'],
      });
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: 'k'.repeat(101), preference_value: 1 }, 'create')), {
        preference_key: ['Ensure this field has no more than 100 characters.'],
      });
      assert.equal(ok(validateBody(USER_PREFERENCE, { preference_key: 'k'.repeat(100), preference_value: 1 }, 'create')).preference_key, 'k'.repeat(100));
    });

    it('takes a number as a string (DRF CharField) but not a list, object or boolean', () => {
      assert.equal(ok(validateBody(USER_PREFERENCE, { preference_key: 42, preference_value: 1 }, 'create')).preference_key, '42');
      for (const bad of [[1], { a: 1 }, true]) {
        assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: bad, preference_value: 1 }, 'create')), {
          preference_key: ['Not a valid string.'],
        });
      }
    });

    it('refuses NUL characters, unpaired surrogates and too deep values, in strings and inside JSON values', () => {
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: 'a\u0000b', preference_value: 1 }, 'create')), {
        preference_key: ['Null characters are not allowed.'],
      });
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: 'k', preference_value: { 'x\u0000': 1 } }, 'create')), {
        preference_value: ['Null characters are not allowed.'],
      });
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: 'k', preference_value: ['\ud800'] }, 'create')), {
        preference_value: ['Unpaired surrogate characters are not allowed.'],
      });
      assert.equal(ok(validateBody(USER_PREFERENCE, { preference_key: '☀️ \ud83d\ude00', preference_value: 1 }, 'create')).preference_key, '☀️ 😀');
      let deep: unknown = 1;
      for (let i = 0; i <= MAX_JSON_DEPTH + 1; i++) deep = [deep];
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: 'k', preference_value: deep }, 'create')), {
        preference_value: [`Ensure this value is nested at most ${MAX_JSON_DEPTH} levels deep.`],
      });
    });

    it('PATCH validates only the given fields and adds no defaults', () => {
      assert.deepEqual(ok(validateBody(USER_PREFERENCE, { description: 'd' }, 'partial')), { description: 'd' });
      assert.deepEqual(ok(validateBody(USER_PREFERENCE, {}, 'partial')), {});
      assert.deepEqual(errors(validateBody(USER_PREFERENCE, { preference_key: '' }, 'partial')), { preference_key: ['This field may not be blank.'] });
    });

    it('ignores __proto__, constructor and prototype keys without harm', () => {
      const body = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}, "preference_key": "k", "preference_value": 1}');
      const v = ok(validateBody(USER_PREFERENCE, body, 'create'));
      assert.deepEqual(v, { preference_key: 'k', preference_value: 1, description: '' });
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });

    it('a JSON value may hold __proto__ as a plain key and keeps it', () => {
      const body = JSON.parse('{"preference_key": "k", "preference_value": {"__proto__": {"a": 1}}}');
      const v = ok(validateBody(USER_PREFERENCE, body, 'create'));
      assert.equal(JSON.stringify(v.preference_value), '{"__proto__":{"a":1}}');
    });
  });

  describe('AI decisions', () => {
    const base = { decision_type: 'light_dim', decision: { brightness: 60 }, confidence: 0.8 };

    it('applies defaults: reasoning "", applied false, timestamp now', () => {
      const v = ok(validateBody(AI_DECISION, base, 'create', { now: NOW }));
      assert.deepEqual(v, { ...base, reasoning: '', applied: false, timestamp: '2026-01-26T08:00:00.000Z' });
    });

    it('checks the enum, the object, the confidence range, booleans and times', () => {
      assert.deepEqual(
        errors(validateBody(AI_DECISION, { decision_type: 'dance', decision: [1], confidence: 1.5, applied: 'maybe', timestamp: 'yesterday' }, 'create')),
        {
          decision_type: ['"dance" is not a valid choice.'],
          decision: ['Expected a dictionary of items.'],
          confidence: ['Ensure this value is less than or equal to 1.'],
          applied: ['Must be a valid boolean.'],
          timestamp: ['Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].'],
        },
      );
      assert.deepEqual(errors(validateBody(AI_DECISION, { ...base, confidence: -0.01 }, 'create')), {
        confidence: ['Ensure this value is greater than or equal to 0.'],
      });
      assert.deepEqual(errors(validateBody(AI_DECISION, { ...base, confidence: 'NaN' }, 'create')), { confidence: ['A valid number is required.'] });
      assert.deepEqual(errors(validateBody(AI_DECISION, { ...base, confidence: true }, 'create')), { confidence: ['A valid number is required.'] });
    });

    it('converts as DRF does: numeric strings, "true"/"0" booleans, offsets to UTC', () => {
      const v = ok(validateBody(AI_DECISION, { ...base, confidence: '0.25', applied: 'true', timestamp: '2026-01-26T13:30:00+05:30' }, 'create'));
      assert.equal(v.confidence, 0.25);
      assert.equal(v.applied, true);
      assert.equal(v.timestamp, '2026-01-26T08:00:00.000Z');
      assert.equal(ok(validateBody(AI_DECISION, { ...base, applied: 0 }, 'create')).applied, false);
    });

    it('validates commands: device_id pattern and length, command length, at most 100, value any JSON', () => {
      const v = ok(validateBody(AI_DECISION, { ...base, commands: [{ device_id: 'light_1', command: 'on' }, { device_id: 'a.b:c-d', command: 'x', value: { v: [1] } }] }, 'create'));
      assert.deepEqual(v.commands, [
        { device_id: 'light_1', command: 'on', value: null },
        { device_id: 'a.b:c-d', command: 'x', value: { v: [1] } },
      ]);
      const e = errors(
        validateBody(AI_DECISION, { ...base, commands: [{ device_id: 'ok', command: 'on' }, { device_id: 'bad/topic', command: '' }, { device_id: 'x'.repeat(65), command: 'c'.repeat(65) }, 'str'] }, 'create'),
      );
      assert.deepEqual(e, {
        commands: [
          'Item 2: device_id: Enter a valid value: 1 to 64 of A-Z a-z 0-9 _ . : -.',
          'Item 2: command: This field may not be blank.',
          'Item 3: device_id: Ensure this field has no more than 64 characters.',
          'Item 3: command: Ensure this field has no more than 64 characters.',
          'Item 4: non_field_errors: Invalid data. Expected a dictionary, but got str.',
        ],
      });
      for (const id of ['a+b', 'a#', '', 'é']) {
        assert.equal(validateBody(AI_DECISION, { ...base, commands: [{ device_id: id, command: 'on' }] }, 'create').ok, false, id);
      }
      const many = Array.from({ length: 101 }, () => ({ device_id: 'd', command: 'c' }));
      assert.deepEqual(errors(validateBody(AI_DECISION, { ...base, commands: many }, 'create')), { commands: ['Ensure this field has no more than 100 elements.'] });
      assert.deepEqual(errors(validateBody(AI_DECISION, { ...base, commands: { device_id: 'd' } }, 'create')), { commands: ['Expected a list of items but got type "dict".'] });
    });

    it('forbidden fields get the given message (PATCH of a decision)', () => {
      const e = errors(validateBody(AI_DECISION, { reasoning: 'x', applied: true }, 'partial', { forbidden: { reasoning: 'no' } }));
      assert.deepEqual(e, { reasoning: ['no'] });
    });

    it('the stored row has no commands field; rowJson keeps the schema order', () => {
      assert.deepEqual(storedFields(AI_DECISION), ['id', 'decision_type', 'decision', 'confidence', 'reasoning', 'applied', 'timestamp', 'created_at']);
      const row = rowJson<Record<string, unknown>>(AI_DECISION, { created_at: 'c', id: 1, extra: 2, timestamp: 't', applied: false, reasoning: '', confidence: 1, decision: {}, decision_type: 'general' });
      assert.deepEqual(Object.keys(row), storedFields(AI_DECISION));
    });
  });

  describe('energy sources', () => {
    it('defaults, nullable capacity, integer priority within PostgreSQL integer', () => {
      assert.deepEqual(ok(validateBody(ENERGY_SOURCE, { source_type: 'solar' }, 'create')), {
        source_type: 'solar',
        is_available: true,
        capacity: null,
        current_output: 0,
        priority: 0,
      });
      assert.equal(ok(validateBody(ENERGY_SOURCE, { source_type: 'grid', capacity: null }, 'create')).capacity, null);
      assert.equal(ok(validateBody(ENERGY_SOURCE, { source_type: 'grid', priority: '7' }, 'create')).priority, 7);
      assert.equal(ok(validateBody(ENERGY_SOURCE, { source_type: 'grid', priority: 3.0 }, 'create')).priority, 3);
      assert.deepEqual(errors(validateBody(ENERGY_SOURCE, { source_type: 'wind', capacity: -1, priority: 1.5, current_output: 'lots' }, 'create')), {
        source_type: ['"wind" is not a valid choice.'],
        capacity: ['Ensure this value is greater than or equal to 0.'],
        current_output: ['A valid number is required.'],
        priority: ['A valid integer is required.'],
      });
      assert.deepEqual(errors(validateBody(ENERGY_SOURCE, { source_type: 'grid', priority: 2 ** 31 }, 'create')), {
        priority: ['Ensure this value is less than or equal to 2147483647.'],
      });
      assert.deepEqual(errors(validateBody(ENERGY_SOURCE, { source_type: 'grid', current_output: 1e400 }, 'create')), {
        current_output: ['A valid number is required.'],
      });
    });
  });

  describe('commands', () => {
    it('requires device_id and command', () => {
      assert.deepEqual(errors(validateBody(COMMAND, {}, 'create')), { device_id: ['This field is required.'], command: ['This field is required.'] });
    });
  });

  describe('parseDateTime', () => {
    const cases: [string, string | undefined][] = [
      ['2026-01-26T08:00:00Z', '2026-01-26T08:00:00.000Z'],
      ['2026-01-26T08:00Z', '2026-01-26T08:00:00.000Z'],
      ['2026-01-26 08:00:00.123456', '2026-01-26T08:00:00.123Z'],
      ['2026-01-26T08:00:00-03:30', '2026-01-26T11:30:00.000Z'],
      ['2026-01-26T08:00:00+0530', '2026-01-26T02:30:00.000Z'],
      ['2026-02-30T08:00:00Z', undefined],
      ['2026-01-26', undefined],
      ['08:00:00', undefined],
      ['2026-01-26T25:00:00Z', undefined],
      ['', undefined],
    ];
    for (const [text, want] of cases) it(`${JSON.stringify(text)} → ${want}`, () => assert.equal(parseDateTime(text), want));
  });

  describe('the tables follow the schemas', () => {
    const pairs = [
      [SENSOR_READING, READINGS_TABLE],
      [GRID_DATA, GRID_DATA_TABLE],
      [USER_PREFERENCE, PREFERENCES_TABLE],
      [AI_DECISION, DECISIONS_TABLE],
      [ENERGY_SOURCE, ENERGY_SOURCES_TABLE],
    ] as const;
    for (const [schema, table] of pairs) {
      it(`${table.table} has exactly the columns of ${schema.name}, of the same kinds, in order`, () => {
        assert.deepEqual(Object.entries(table.columns), Object.entries(tableColumns(schema)));
      });
    }
  });
});
