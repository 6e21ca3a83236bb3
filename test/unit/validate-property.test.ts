/**
 * Property tests of the validator (fast-check): `validatePayload` never throws, whatever it is
 * given, and every reading it accepts satisfies the schema (CONTRACT: sensor_type, sensor_id,
 * value, unit, location, timestamp).
 */
import assert from 'assert/strict';
import fc from 'fast-check';
import { ManualClock } from '../../nodes/shared/clock';
import { DEFAULT_UNITS, type Reading } from '../../nodes/shared/types';
import {
  DEFAULT_RANGES,
  KNOWN_SENSOR_TYPES,
  MAX_FUTURE_MS,
  MAX_SENSOR_ID_LENGTH,
  MAX_UNIT_LENGTH,
  validatePayload,
  type ValidateOptions,
} from '../../nodes/sensor-validate/validate';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const RETENTION_DAYS = 7;
const opts: ValidateOptions = { retentionDays: RETENTION_DAYS, clock: new ManualClock(NOW) };
const RUNS = Number(process.env.HV_PROPERTY_RUNS) || 400;

/** The schema, written out independently of the validator's own checks. */
function assertSchema(r: Reading): void {
  const where = JSON.stringify(r).slice(0, 300);
  assert.match(r.sensor_type, /^[a-z][a-z0-9_]{0,31}$/, `sensor_type of ${where}`);
  assert.ok(KNOWN_SENSOR_TYPES.includes(r.sensor_type), `known type: ${where}`);
  assert.equal(typeof r.sensor_id, 'string');
  assert.match(r.sensor_id, /^[A-Za-z0-9_.:-]+$/, `sensor_id of ${where}`);
  assert.ok(r.sensor_id.length >= 1 && r.sensor_id.length <= MAX_SENSOR_ID_LENGTH, `sensor_id length: ${where}`);
  assert.equal(typeof r.value, 'number');
  assert.ok(Number.isFinite(r.value), `finite value: ${where}`);
  const range = DEFAULT_RANGES[r.sensor_type] ?? {};
  if (range.min !== undefined) assert.ok(r.value >= range.min, `value >= ${range.min}: ${where}`);
  if (range.max !== undefined) assert.ok(r.value <= range.max, `value <= ${range.max}: ${where}`);
  assert.equal(typeof r.unit, 'string');
  assert.ok(r.unit.length <= MAX_UNIT_LENGTH, `unit length: ${where}`);
  assert.equal(typeof r.location, 'string');
  // Optional (CONTRACT: taken from the topic when missing; absent from both, e.g. over HTTP: empty).
  if (r.location !== '') assert.match(r.location, /^[a-z0-9_-]{1,100}$/, `location of ${where}`);
  assert.match(r.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, `timestamp of ${where}`);
  const t = Date.parse(r.timestamp);
  assert.equal(new Date(t).toISOString(), r.timestamp, `a real instant: ${where}`);
  assert.ok(t >= NOW - RETENTION_DAYS * 86_400_000, `not older than the retention: ${where}`);
  assert.ok(t <= NOW + MAX_FUTURE_MS, `not further in the future than allowed: ${where}`);
}

/** Runs the validator; it must not throw, and its answer must be well formed. */
function check(raw: unknown, topic: unknown): void {
  let result: ReturnType<typeof validatePayload>;
  try {
    result = validatePayload(raw, topic, opts, NOW);
  } catch (err) {
    throw new Error(`validatePayload threw: ${(err as Error)?.stack ?? String(err)}`);
  }
  assert.ok(Array.isArray(result.accepted) && Array.isArray(result.rejected));
  for (const r of result.accepted) assertSchema(r);
  for (const j of result.rejected) {
    assert.equal(typeof j.error.code, 'string');
    assert.ok(j.error.message.length > 0, 'a rejection says why');
  }
  if (result.accepted.length === 0) assert.ok(result.rejected.length > 0, 'nothing accepted: something rejected');
}

const types = [...KNOWN_SENSOR_TYPES, 'LDR', 'ldr ', 'unknown_type', '__proto__', 'constructor', ''];
const topicArb = fc.oneof(
  fc.constant(undefined),
  fc.string(),
  fc.tuple(fc.constantFrom('room_1', 'a', 'bad/loc', 'UPPER', '', 'x'.repeat(101)), fc.constantFrom(...types)).map(([l, t]) => `HyperVolt/sensors/${l}/${t}`),
);
const instant = fc.integer({ min: NOW - 10 * 86_400_000, max: NOW + 10 * 60_000 });
const timestampArb = fc.oneof(
  instant.map((t) => new Date(t).toISOString()),
  instant.map((t) => new Date(t).toISOString().replace('Z', '+05:30')),
  instant.map((t) => new Date(t).toISOString().slice(0, 19)),
  instant.map((t) => t), // a number
  fc.constantFrom('1970-01-01T00:00:00Z', '2100-01-01T00:00:00Z', '2026-02-30T10:00:00Z', '2026-03-01T24:00:00Z', '12:00', '', 'now'),
  fc.string(),
);
const valueArb = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.double({ noNaN: true, min: -1e6, max: 1e6 }).map(String),
  fc.constantFrom('NaN', 'Infinity', '1e999', '12abc', '', ' 5 ', '0x10', true, null, [], {}),
  fc.string(),
);
const idArb = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.:-]{1,70}$/),
  fc.constantFrom('a/b', 'a+b', '#', 'nul\u0000', 'zw\u200bsp', 'ctl\u0007', '__proto__', 'constructor'),
  fc.string(),
  fc.integer(),
);
/** Objects shaped like readings, field by field valid or not, so that many are accepted. */
const readingLike = fc.record(
  {
    sensor_type: fc.oneof(fc.constantFrom(...types), fc.string()),
    sensor_id: idArb,
    value: valueArb,
    unit: fc.oneof(fc.constantFrom(...Object.values(DEFAULT_UNITS)), fc.string({ maxLength: 30 }), fc.integer()),
    location: fc.oneof(fc.stringMatching(/^[a-z0-9_-]{1,20}$/), fc.string(), fc.constantFrom('', 'Room 1', 'x'.repeat(101))),
    timestamp: timestampArb,
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);
/** Nested `depth` levels deep, as objects or arrays. */
const deepArb = fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.boolean()).map(([depth, arrays]) => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { a: v };
  return v;
});
/** Prototype keys at any depth, as JSON text (so `__proto__` is an own key, as from the wire). */
const protoArb = fc
  .tuple(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'), fc.integer({ min: 0, max: 5 }), readingLike)
  .map(([key, depth, r]) => {
    let inner = `{"${key}": {"polluted": 1, "sensor_type": "ldr"}}`;
    for (let i = 0; i < depth; i++) inner = `{"${key}": ${inner}}`;
    const base = JSON.stringify(r) ?? '{}';
    return base === '{}' ? `{"${key}": ${inner}}` : `${base.slice(0, -1)}, "${key}": ${inner}}`;
  });

describe('sensor-validate: validatePayload properties (fast-check)', function () {
  this.timeout(120_000);
  const params = { numRuns: RUNS };

  it('never throws on anything JS-like (objects, arrays, primitives, typed arrays, odd prototypes)', () => {
    fc.assert(fc.property(fc.anything({ withBigInt: true, withTypedArray: true, withNullPrototype: true, withObjectString: true, withSparseArray: true, withBoxedValues: true, withMap: true, withSet: true, withDate: true }), topicArb, (raw, topic) => check(raw, topic)), params);
  });

  it('never throws on arbitrary strings and bytes', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' })), topicArb, (raw, topic) => check(raw, topic)), params);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), topicArb, (bytes, topic) => check(Buffer.from(bytes), topic)), params);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => check(bytes, undefined)), params);
  });

  it('never throws on any JSON text', () => {
    fc.assert(fc.property(fc.json({ depthSize: 'medium' }), topicArb, (text, topic) => {
      check(text, topic);
      check(Buffer.from(text), topic);
    }), params);
  });

  it('never throws on deep nesting, as text and as objects', () => {
    fc.assert(fc.property(deepArb, topicArb, (v, topic) => {
      check(v, topic);
      check(JSON.stringify(v), topic);
      check([v], topic);
      check({ sensor_type: 'ldr', sensor_id: 'x', value: v }, topic);
    }), { numRuns: Math.min(RUNS, 100) });
  });

  it('never throws on prototype keys at depth, and accepts nothing that breaks the schema', () => {
    fc.assert(fc.property(protoArb, topicArb, (text, topic) => {
      check(text, topic);
      check(JSON.parse(text), topic);
      check(`[${text}, ${text}]`, topic);
    }), params);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  });

  it('what it accepts satisfies the schema (reading-like objects, single and in batches, as objects and JSON)', () => {
    let accepted = 0;
    fc.assert(fc.property(fc.oneof(readingLike, fc.array(readingLike, { minLength: 1, maxLength: 5 })), topicArb, (data, topic) => {
      check(data, topic);
      const text = JSON.stringify(data);
      if (text !== undefined) check(text, topic);
      accepted += validatePayload(data, topic, opts, NOW).accepted.length;
    }), { numRuns: RUNS * 5 });
    // The generator must reach the accepting paths, or the schema assertions prove nothing.
    assert.ok(accepted > 0, `some readings accepted (${accepted})`);
  });

  it('accepts valid readings (the generator of valid ones is right), each as the schema says', () => {
    const valid = fc.record({
      sensor_type: fc.constantFrom(...KNOWN_SENSOR_TYPES),
      sensor_id: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/),
      value: fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 100 }),
      location: fc.stringMatching(/^[a-z0-9_-]{1,100}$/),
      timestamp: fc.integer({ min: NOW - 86_400_000, max: NOW }).map((t) => new Date(t).toISOString()),
    });
    fc.assert(fc.property(valid, (r) => {
      const res = validatePayload(r, undefined, opts, NOW);
      assert.equal(res.accepted.length, 1, JSON.stringify(res.rejected));
      assertSchema(res.accepted[0]);
      assert.equal(res.accepted[0].timestamp, r.timestamp);
      assert.equal(res.accepted[0].unit, DEFAULT_UNITS[r.sensor_type]);
    }), params);
  });
});
