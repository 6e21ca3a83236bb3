import assert from 'assert/strict';
import fs from 'fs';
import path from 'path';
import { ManualClock } from '../../nodes/shared/clock';
import { DEFAULT_UNITS } from '../../nodes/shared/types';
import {
  ERROR_CODES,
  KNOWN_SENSOR_TYPES,
  OptionsError,
  errorTopic,
  parseExtraTypes,
  parseRanges,
  parseRetentionDays,
  parseTimestamp,
  parseTopic,
  rejectionMessage,
  resolveOptions,
  toJsonSafe,
  validateMqttBatch,
  validatePayload,
  validateReading,
  type ValidateOptions,
} from '../../nodes/sensor-validate/validate';

const NOW = '2026-01-26T08:00:00.000Z';
const TOPIC = 'HyperVolt/sensors/living_room/ldr';

function makeOpts(extra: Partial<ValidateOptions> = {}): ValidateOptions & { clock: ManualClock } {
  return { retentionDays: 7, clock: new ManualClock(Date.parse(NOW)), ...extra } as ValidateOptions & { clock: ManualClock };
}

const good = Object.freeze({
  sensor_type: 'ldr',
  sensor_id: 'ldr_1',
  value: 750,
  unit: 'lux',
  location: 'living_room',
  timestamp: '2026-01-26T07:59:00Z',
});

function reading(over: Record<string, unknown> = {}, omit: string[] = []): Record<string, unknown> {
  const r: Record<string, unknown> = { ...good, ...over };
  for (const k of omit) delete r[k];
  return r;
}

/** Validates one payload that must give exactly one accepted reading. */
function acceptOne(raw: unknown, topic?: string, opts: ValidateOptions = makeOpts()) {
  const res = validatePayload(raw, topic, opts);
  assert.deepEqual(res.rejected, [], `unexpected rejection: ${JSON.stringify(res.rejected[0]?.error)}`);
  assert.equal(res.accepted.length, 1);
  return res.accepted[0];
}

describe('sensor-validate: validate.ts', () => {
  describe('good readings', () => {
    it('accepts the contract example and normalizes the timestamp to milliseconds', () => {
      const r = acceptOne(JSON.stringify({ ...good, timestamp: '2026-01-26T08:00:00Z' }), TOPIC);
      assert.deepEqual(r, {
        sensor_type: 'ldr',
        sensor_id: 'ldr_1',
        value: 750,
        unit: 'lux',
        location: 'living_room',
        timestamp: '2026-01-26T08:00:00.000Z',
      });
    });

    for (const type of KNOWN_SENSOR_TYPES) {
      it(`accepts a ${type} reading with its default unit`, () => {
        const r = acceptOne(
          Buffer.from(JSON.stringify({ sensor_type: type, sensor_id: `${type}_1`, value: 12.5 })),
          `HyperVolt/sensors/kitchen/${type}`,
        );
        assert.equal(r.sensor_type, type);
        assert.equal(r.value, 12.5);
        assert.equal(r.unit, DEFAULT_UNITS[type]);
        assert.equal(r.location, 'kitchen');
        assert.equal(r.timestamp, NOW);
      });
    }

    it('accepts Buffer, string, Uint8Array, object and BOM-prefixed payloads alike', () => {
      const text = JSON.stringify(good);
      const expected = acceptOne(text, TOPIC);
      assert.deepEqual(acceptOne(Buffer.from(text), TOPIC), expected);
      assert.deepEqual(acceptOne(new Uint8Array(Buffer.from(text)), TOPIC), expected);
      assert.deepEqual(acceptOne(JSON.parse(text), TOPIC), expected);
      assert.deepEqual(acceptOne(`\ufeff${text}`, TOPIC), expected);
      assert.deepEqual(acceptOne(Buffer.from(`\ufeff${text}`), TOPIC), expected);
    });

    it('converts numeric strings, in decimal notation only', () => {
      const cases: Array<[string, number]> = [
        [' 42.5 ', 42.5],
        ['1e3', 1000],
        ['+7', 7],
        ['.5', 0.5],
        ['5.', 5],
        ['-0', 0],
        ['0012', 12],
      ];
      for (const [text, expected] of cases) {
        const r = acceptOne(JSON.stringify(reading({ sensor_type: 'temperature', value: text, unit: 'celsius' }, ['location'])));
        assert.equal(r.value, expected, text);
        assert.ok(!Object.is(r.value, -0), 'no negative zero');
      }
    });

    it('converts offsets to UTC and keeps milliseconds (finer fractions truncated)', () => {
      const cases: Array<[string, string]> = [
        ['2026-01-26T13:30:00.250+05:30', '2026-01-26T08:00:00.250Z'],
        ['2026-01-26T13:30:00+0530', '2026-01-26T08:00:00.000Z'],
        ['2026-01-26T10:00:00+02', '2026-01-26T08:00:00.000Z'],
        ['2026-01-26T03:00:00-05:00', '2026-01-26T08:00:00.000Z'],
        ['2026-01-26T07:00:00', '2026-01-26T07:00:00.000Z'],
        ['2026-01-26 07:00', '2026-01-26T07:00:00.000Z'],
        ['2026-01-26t07:00:00.1z', '2026-01-26T07:00:00.100Z'],
        ['2026-01-26T07:00:00.123456789Z', '2026-01-26T07:00:00.123Z'],
        ['2026-01-26T07:00:00,5Z', '2026-01-26T07:00:00.500Z'],
        ['2026-01-26T07:00:00.000Z', '2026-01-26T07:00:00.000Z'],
        ['2026-01-25T23:30:00-08:00', '2026-01-26T07:30:00.000Z'],
        ['2026-01-20T00:00:00Z', '2026-01-20T00:00:00.000Z'],
      ];
      for (const [input, expected] of cases) {
        const r = acceptOne(JSON.stringify(reading({ timestamp: input })), TOPIC);
        assert.equal(r.timestamp, expected, input);
      }
    });

    it('parses timestamps exactly as Date.parse does for the forms both understand', () => {
      // Deterministic pseudo-random dates across centuries, leap days, and offsets.
      let seed = 12345;
      const rnd = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return seed % n;
      };
      const pad = (n: number, w = 2) => String(n).padStart(w, '0');
      for (let i = 0; i < 2000; i++) {
        const y = 1000 + rnd(9000);
        const mo = 1 + rnd(12);
        const d = 1 + rnd(new Date(Date.UTC(y, mo, 0)).getUTCDate());
        const base = `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(rnd(24))}:${pad(rnd(60))}:${pad(rnd(60))}.${pad(rnd(1000), 3)}`;
        const oh = rnd(15);
        const zone = rnd(3) === 0 ? 'Z' : `${rnd(2) ? '+' : '-'}${pad(oh)}:${pad(rnd(4) * 15)}`;
        const s = base + zone;
        assert.equal(parseTimestamp(s, 0), Date.parse(s), s);
      }
      assert.equal(parseTimestamp('2024-02-29T12:00:00Z', 0), Date.parse('2024-02-29T12:00:00Z'));
      assert.equal(parseTimestamp('2000-02-29T12:00:00Z', 0), Date.parse('2000-02-29T12:00:00Z'));
      assert.equal(parseTimestamp('0050-06-01T00:00:00Z', 0), Date.parse('0050-06-01T00:00:00Z'));
      assert.ok(Number.isNaN(parseTimestamp('1900-02-29T12:00:00Z', 0)));
      assert.ok(Number.isNaN(parseTimestamp('2026-04-31T00:00:00Z', 0)));
    });

    it('reads a time of day as today, UTC', () => {
      const opts = makeOpts();
      assert.equal(acceptOne(JSON.stringify(reading({ timestamp: '07:30:00' })), TOPIC, opts).timestamp, '2026-01-26T07:30:00.000Z');
      opts.clock.set('2026-03-01T00:10:00Z');
      assert.equal(acceptOne(JSON.stringify(reading({ timestamp: '00:05:00.5' })), TOPIC, opts).timestamp, '2026-03-01T00:05:00.500Z');
      assert.equal(acceptOne(JSON.stringify(reading({ timestamp: '00:01Z' })), TOPIC, opts).timestamp, '2026-03-01T00:01:00.000Z');
    });

    it('stamps a reading without timestamp (or with null or empty) with the clock, one time per payload', () => {
      const opts = makeOpts();
      opts.clock.set('2026-01-26T08:00:00.123Z');
      for (const ts of [undefined, null, '']) {
        const r = acceptOne(JSON.stringify(reading({ timestamp: ts }, ts === undefined ? ['timestamp'] : [])), TOPIC, opts);
        assert.equal(r.timestamp, '2026-01-26T08:00:00.123Z');
      }
      let calls = 0;
      const countingOpts: ValidateOptions = { retentionDays: 7, clock: { now: () => (calls++, Date.parse(NOW)) } };
      const res = validatePayload(JSON.stringify([reading({}, ['timestamp']), reading({ sensor_id: 'b' }, ['timestamp'])]), TOPIC, countingOpts);
      assert.equal(res.accepted.length, 2);
      assert.equal(calls, 1);
    });

    it('stamps a reading without timestamp with the time of receipt when given (a replayed message keeps its identity)', () => {
      const opts = makeOpts();
      const receivedAt = Date.parse('2026-01-26T07:58:00.250Z');
      const res = validatePayload(JSON.stringify(reading({}, ['timestamp'])), TOPIC, opts, receivedAt);
      assert.equal(res.accepted[0].timestamp, '2026-01-26T07:58:00.250Z');
      const later = validatePayload(JSON.stringify(reading({}, ['timestamp'])), TOPIC, opts, receivedAt);
      assert.equal(later.accepted[0].timestamp, res.accepted[0].timestamp, 'the same message validated twice gets the same key');
    });

    it('accepts the edges: exactly 5 minutes ahead and exactly the retention period old', () => {
      acceptOne(JSON.stringify(reading({ timestamp: '2026-01-26T08:05:00.000Z' })), TOPIC);
      acceptOne(JSON.stringify(reading({ timestamp: '2026-01-19T08:00:00.000Z' })), TOPIC);
    });

    it('defaults the unit (missing, null or empty) and keeps a given one', () => {
      assert.equal(acceptOne(JSON.stringify(reading({}, ['unit'])), TOPIC).unit, 'lux');
      assert.equal(acceptOne(JSON.stringify(reading({ unit: null })), TOPIC).unit, 'lux');
      assert.equal(acceptOne(JSON.stringify(reading({ unit: '' })), TOPIC).unit, 'lux');
      assert.equal(acceptOne(JSON.stringify(reading({ unit: 'klx' })), TOPIC).unit, 'klx');
      assert.equal(acceptOne(JSON.stringify(reading({ unit: 'x'.repeat(20) })), TOPIC).unit, 'x'.repeat(20));
    });

    it('takes location and sensor_type from the topic when the payload has none', () => {
      const r = acceptOne(JSON.stringify({ sensor_id: 'ldr_1', value: 3 }), 'home/a/sensors/garage_2/ldr');
      assert.equal(r.location, 'garage_2');
      assert.equal(r.sensor_type, 'ldr');
      const noLocation = acceptOne(JSON.stringify(reading({}, ['location'])));
      assert.equal(noLocation.location, '');
      const ignoredTopic = acceptOne(JSON.stringify(reading()), 'some/other/topic');
      assert.equal(ignoredTopic.location, 'living_room');
    });

    it('drops other fields and builds a fresh object with exactly the six fields', () => {
      const input = { ...good, id: 99, created_at: 'x', is_admin: true, extra: { deep: 1 } };
      const r = acceptOne(input, TOPIC);
      assert.deepEqual(Object.keys(r), ['sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp']);
      assert.notEqual(r as unknown, input);
    });

    it('accepts a non-negative integer sensor_id as a string, and a Date timestamp', () => {
      const r = acceptOne({ ...good, sensor_id: 7, timestamp: new Date('2026-01-26T07:00:00.5Z') }, TOPIC);
      assert.equal(r.sensor_id, '7');
      assert.equal(r.timestamp, '2026-01-26T07:00:00.500Z');
    });

    it('accepts the size limits exactly: 65536 bytes and 1000 readings', () => {
      const text = JSON.stringify(good);
      const padded = text.slice(0, -1) + ' '.repeat(65536 - Buffer.byteLength(text)) + '}';
      assert.equal(Buffer.byteLength(padded), 65536);
      acceptOne(Buffer.from(padded), TOPIC);
      acceptOne(padded, TOPIC);
      // 1000 readings are more than 64 KiB of JSON: as parsed objects (http in) they are not measured.
      const batch = Array.from({ length: 1000 }, (_, i) => reading({ sensor_id: `s${i}` }));
      assert.equal(validatePayload(JSON.stringify(batch), TOPIC, makeOpts()).rejected[0].error.code, 'payload_too_large');
      const res = validatePayload(batch, TOPIC, makeOpts());
      assert.equal(res.accepted.length, 1000);
      assert.equal(res.rejected.length, 0);
    });
  });

  describe('bad input', () => {
    interface BadCase {
      name: string;
      raw: unknown;
      topic?: string;
      code: string;
      field: string;
      index?: number | null;
      /** Readings of the same payload that are fine (default 0). */
      accepted?: number;
    }
    const text = (over: Record<string, unknown>, omit: string[] = []) => JSON.stringify(reading(over, omit));
    const bigReading = JSON.stringify(good);
    const over64k = bigReading.slice(0, -1) + ' '.repeat(65537 - Buffer.byteLength(bigReading)) + '}';

    const table: BadCase[] = [
      // payload
      { name: 'broken JSON', raw: '{"sensor_type": "ldr",', code: 'invalid_json', field: 'payload' },
      { name: 'empty string payload', raw: '', code: 'invalid_json', field: 'payload' },
      { name: 'plain text', raw: 'ldr_1=750', code: 'invalid_json', field: 'payload' },
      { name: 'invalid UTF-8 bytes', raw: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), code: 'invalid_utf8', field: 'payload' },
      {
        name: 'overlong UTF-8 inside a string',
        raw: Buffer.concat([Buffer.from('{"sensor_id":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]),
        code: 'invalid_utf8',
        field: 'payload',
      },
      { name: '64 KiB + 1 as a string', raw: over64k, code: 'payload_too_large', field: 'payload' },
      { name: '64 KiB + 1 as a Buffer', raw: Buffer.from(over64k), code: 'payload_too_large', field: 'payload' },
      {
        name: 'fewer than 64 Ki characters but more than 64 KiB of UTF-8',
        raw: text({ unit: 'é'.repeat(33000) }),
        code: 'payload_too_large',
        field: 'payload',
      },
      {
        name: '1001 readings',
        raw: JSON.stringify(Array.from({ length: 1001 }, () => ({ value: 1 }))),
        code: 'batch_too_large',
        field: 'payload',
      },
      { name: 'empty array', raw: '[]', code: 'empty_batch', field: 'payload' },
      { name: 'JSON null', raw: 'null', code: 'not_an_object', field: 'payload' },
      { name: 'JSON number', raw: '42', code: 'not_an_object', field: 'payload' },
      { name: 'JSON string', raw: '"ldr 750"', code: 'not_an_object', field: 'payload' },
      { name: 'JSON boolean', raw: 'true', code: 'not_an_object', field: 'payload' },
      { name: 'msg.payload undefined', raw: undefined, code: 'not_an_object', field: 'payload' },
      { name: 'array element not an object', raw: JSON.stringify([good, 5]), topic: TOPIC, code: 'not_an_object', field: 'payload', index: 1, accepted: 1 },
      { name: 'array element is an array', raw: JSON.stringify([[good]]), topic: TOPIC, code: 'not_an_object', field: 'payload', index: 0 },
      // sensor_type
      { name: 'missing sensor_type, no topic', raw: text({}, ['sensor_type']), code: 'required', field: 'sensor_type' },
      { name: 'null sensor_type, no topic', raw: text({ sensor_type: null }), code: 'required', field: 'sensor_type' },
      { name: 'sensor_type LDR', raw: text({ sensor_type: 'LDR' }), code: 'invalid_format', field: 'sensor_type' },
      { name: 'sensor_type 1abc', raw: text({ sensor_type: '1abc' }), code: 'invalid_format', field: 'sensor_type' },
      { name: 'sensor_type empty', raw: text({ sensor_type: '' }), code: 'invalid_format', field: 'sensor_type' },
      { name: 'sensor_type 33 chars', raw: text({ sensor_type: 'a'.repeat(33) }), code: 'too_long', field: 'sensor_type' },
      { name: 'sensor_type unknown', raw: text({ sensor_type: 'wind_speed' }), code: 'unknown_sensor_type', field: 'sensor_type' },
      { name: 'sensor_type constructor', raw: text({ sensor_type: 'constructor' }), code: 'unknown_sensor_type', field: 'sensor_type' },
      { name: 'sensor_type a number', raw: text({ sensor_type: 3 }), code: 'not_a_string', field: 'sensor_type' },
      { name: 'sensor_type differs from topic', raw: text({ sensor_type: 'current' }), topic: TOPIC, code: 'type_mismatch', field: 'sensor_type' },
      { name: 'topic type invalid', raw: text({}, ['sensor_type']), topic: 'HyperVolt/sensors/living_room/LDR', code: 'invalid_format', field: 'sensor_type' },
      // sensor_id
      { name: 'missing sensor_id', raw: text({}, ['sensor_id']), code: 'required', field: 'sensor_id' },
      { name: 'sensor_id with /', raw: text({ sensor_id: 'ldr/1' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id with +', raw: text({ sensor_id: 'ldr+1' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id with #', raw: text({ sensor_id: 'ldr#1' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id with a space', raw: text({ sensor_id: 'ldr 1' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id empty', raw: text({ sensor_id: '' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id 65 chars', raw: text({ sensor_id: 'a'.repeat(65) }), code: 'too_long', field: 'sensor_id' },
      { name: 'sensor_id with a zero-width space', raw: text({ sensor_id: 'ldr\u200b1' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id with a newline', raw: text({ sensor_id: 'ldr_1\n' }), code: 'invalid_format', field: 'sensor_id' },
      { name: 'sensor_id true', raw: text({ sensor_id: true }), code: 'not_a_string', field: 'sensor_id' },
      { name: 'sensor_id negative number', raw: text({ sensor_id: -1 }), code: 'not_a_string', field: 'sensor_id' },
      { name: 'sensor_id fraction', raw: text({ sensor_id: 1.5 }), code: 'not_a_string', field: 'sensor_id' },
      // value
      { name: 'missing value', raw: text({}, ['value']), code: 'required', field: 'value' },
      { name: 'value null', raw: text({ value: null }), code: 'required', field: 'value' },
      { name: "value 'NaN'", raw: text({ value: 'NaN' }), code: 'not_a_number', field: 'value' },
      { name: "value 'Infinity'", raw: text({ value: 'Infinity' }), code: 'not_a_number', field: 'value' },
      { name: "value '-Infinity'", raw: text({ value: '-Infinity' }), code: 'not_a_number', field: 'value' },
      { name: 'value 1e999 in raw JSON', raw: text({ value: 0 }).replace('"value":0', '"value":1e999'), code: 'not_a_number', field: 'value' },
      { name: "value '1e999'", raw: text({ value: '1e999' }), code: 'not_a_number', field: 'value' },
      { name: 'value NaN (object payload)', raw: reading({ value: NaN }), code: 'not_a_number', field: 'value' },
      { name: 'value Infinity (object payload)', raw: reading({ value: Infinity }), code: 'not_a_number', field: 'value' },
      { name: 'value true', raw: text({ value: true }), code: 'not_a_number', field: 'value' },
      { name: 'value {}', raw: text({ value: {} }), code: 'not_a_number', field: 'value' },
      { name: 'value []', raw: text({ value: [] }), code: 'not_a_number', field: 'value' },
      { name: "value ''", raw: text({ value: '' }), code: 'not_a_number', field: 'value' },
      { name: "value '  '", raw: text({ value: '  ' }), code: 'not_a_number', field: 'value' },
      { name: "value '0x10'", raw: text({ value: '0x10' }), code: 'not_a_number', field: 'value' },
      { name: "value '0b1'", raw: text({ value: '0b1' }), code: 'not_a_number', field: 'value' },
      { name: "value '1_000'", raw: text({ value: '1_000' }), code: 'not_a_number', field: 'value' },
      { name: "value '12abc'", raw: text({ value: '12abc' }), code: 'not_a_number', field: 'value' },
      { name: 'value a bigint (object payload)', raw: reading({ value: BigInt(5) }), code: 'not_a_number', field: 'value' },
      { name: 'negative ldr', raw: text({ value: -1 }), code: 'out_of_range', field: 'value' },
      { name: 'negative power as a string', raw: text({ sensor_type: 'power', value: '-5' }, ['unit']), code: 'out_of_range', field: 'value' },
      { name: 'humidity 101', raw: text({ sensor_type: 'humidity', value: 101 }, ['unit']), code: 'out_of_range', field: 'value' },
      { name: 'humidity -0.1', raw: text({ sensor_type: 'humidity', value: -0.1 }, ['unit']), code: 'out_of_range', field: 'value' },
      // unit
      { name: 'unit 21 chars', raw: text({ unit: 'u'.repeat(21) }), code: 'too_long', field: 'unit' },
      { name: 'unit a number', raw: text({ unit: 5 }), code: 'not_a_string', field: 'unit' },
      { name: 'unit an object', raw: text({ unit: { si: 'lux' } }), code: 'not_a_string', field: 'unit' },
      // location
      { name: 'location uppercase', raw: text({ location: 'Living_Room' }), code: 'invalid_format', field: 'location' },
      { name: 'location with a slash', raw: text({ location: 'home/kitchen' }), code: 'invalid_format', field: 'location' },
      { name: 'location 101 chars', raw: text({ location: 'l'.repeat(101) }), code: 'too_long', field: 'location' },
      { name: 'location a number', raw: text({ location: 12 }), code: 'not_a_string', field: 'location' },
      { name: 'location differs from topic', raw: text({ location: 'kitchen' }), topic: TOPIC, code: 'location_mismatch', field: 'location' },
      { name: 'topic location invalid', raw: text({}, ['location']), topic: 'HyperVolt/sensors/Living Room/ldr', code: 'invalid_format', field: 'location' },
      // timestamp
      { name: 'timestamp 1970', raw: text({ timestamp: '1970-01-01T00:00:00Z' }), code: 'timestamp_too_old', field: 'timestamp' },
      { name: 'timestamp 8 days old', raw: text({ timestamp: '2026-01-18T08:00:00Z' }), code: 'timestamp_too_old', field: 'timestamp' },
      { name: 'timestamp 1 ms past retention', raw: text({ timestamp: '2026-01-19T07:59:59.999Z' }), code: 'timestamp_too_old', field: 'timestamp' },
      { name: 'timestamp 2100', raw: text({ timestamp: '2100-01-01T00:00:00Z' }), code: 'timestamp_in_future', field: 'timestamp' },
      { name: 'timestamp 6 minutes ahead', raw: text({ timestamp: '2026-01-26T08:06:00Z' }), code: 'timestamp_in_future', field: 'timestamp' },
      { name: 'timestamp 5 min 1 ms ahead', raw: text({ timestamp: '2026-01-26T08:05:00.001Z' }), code: 'timestamp_in_future', field: 'timestamp' },
      { name: 'offset makes it future', raw: text({ timestamp: '2026-01-26T08:00:00-01:00' }), code: 'timestamp_in_future', field: 'timestamp' },
      { name: 'timestamp 2026-02-30', raw: text({ timestamp: '2026-02-30T00:00:00Z' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp 2025-02-29 (not a leap year)', raw: text({ timestamp: '2025-02-29T00:00:00Z' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp month 13', raw: text({ timestamp: '2026-13-01T00:00:00Z' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp hour 24', raw: text({ timestamp: '2026-01-26T24:00:00Z' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp second 60', raw: text({ timestamp: '2026-01-26T07:59:60Z' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp offset +25:00', raw: text({ timestamp: '2026-01-26T08:00:00+25:00' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp yesterday', raw: text({ timestamp: 'yesterday' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp date only', raw: text({ timestamp: '2026-01-26' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp RFC 2822', raw: text({ timestamp: 'Mon, 26 Jan 2026 08:00:00 GMT' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp epoch number', raw: text({ timestamp: 1769414400000 }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp time-only 25:00:00', raw: text({ timestamp: '25:00:00' }), code: 'invalid_timestamp', field: 'timestamp' },
      { name: 'timestamp invalid Date object', raw: reading({ timestamp: new Date('x') }), code: 'invalid_timestamp', field: 'timestamp' },
    ];

    it('has a case for every error code, and only documented codes', () => {
      const used = new Set(table.map((c) => c.code));
      assert.deepEqual([...used].sort(), Object.keys(ERROR_CODES).sort());
      assert.ok(table.length >= 40);
    });

    for (const c of table) {
      it(`${c.name} → ${c.code} (${c.field})`, () => {
        const res = validatePayload(c.raw, c.topic, makeOpts());
        assert.equal(res.rejected.length, 1, `rejections: ${JSON.stringify(res.rejected.map((r) => r.error))}`);
        const rej = res.rejected[0];
        assert.equal(rej.error.code, c.code, rej.error.message);
        assert.equal(rej.error.field, c.field);
        assert.equal(typeof rej.error.message, 'string');
        assert.ok(rej.error.message.length > 10);
        assert.equal(rej.index, c.index === undefined ? null : c.index);
        assert.equal(res.accepted.length, c.accepted ?? 0);
      });
    }

    it('names the first broken rule only, in table order', () => {
      const res = validatePayload(text({ sensor_id: 'a b', value: 'x', unit: 5 }), undefined, makeOpts());
      assert.equal(res.rejected[0].error.code, 'invalid_format');
      assert.equal(res.rejected[0].error.field, 'sensor_id');
    });

    it('keeps messages short even for huge offending values', () => {
      const res = validatePayload(text({ sensor_id: 'x y'.repeat(5000) }), undefined, makeOpts());
      assert.equal(res.rejected[0].error.code, 'too_long');
      const res2 = validatePayload(text({ timestamp: 'z'.repeat(5000) }), undefined, makeOpts());
      assert.equal(res2.rejected[0].error.code, 'invalid_timestamp');
      assert.ok(res2.rejected[0].error.message.length < 200);
    });
  });

  describe('arrays', () => {
    it('accepts the good and rejects the bad readings of one array, with their indexes', () => {
      const payload = [
        reading({ sensor_id: 'a' }),
        reading({ value: -3 }),
        reading({ sensor_id: 'b', value: '12' }),
        reading({ sensor_type: 'humidity', location: 'bath', value: 50 }, ['unit']),
        'junk',
      ];
      const res = validatePayload(JSON.stringify(payload), undefined, makeOpts());
      assert.deepEqual(res.accepted.map((r) => r.sensor_id), ['a', 'b', 'ldr_1']);
      assert.deepEqual(res.accepted.map((r) => r.unit), ['lux', 'lux', '%']);
      assert.deepEqual(
        res.rejected.map((r) => [r.index, r.error.code, r.location, r.sensor_type]),
        [
          [1, 'out_of_range', 'living_room', 'ldr'],
          [4, 'not_an_object', undefined, undefined],
        ],
      );
      assert.deepEqual(res.rejected[0].input, payload[1]);
    });

    it('addresses rejections by the topic first, then by the payload', () => {
      const res = validatePayload(JSON.stringify([reading({ value: -1, location: 'kitchen' })]), 'pre/sensors/garage/ldr', makeOpts());
      assert.equal(res.rejected[0].error.code, 'out_of_range');
      assert.equal(res.rejected[0].location, 'garage');
      const noTopic = validatePayload(JSON.stringify([reading({ value: -1, location: 'kitchen' })]), undefined, makeOpts());
      assert.equal(noTopic.rejected[0].location, 'kitchen');
      const top = validatePayload('nope', 'pre/sensors/garage/ldr', makeOpts());
      assert.deepEqual([top.rejected[0].location, top.rejected[0].sensor_type], ['garage', 'ldr']);
    });
  });

  describe('batches of MQTT messages (sensor-in output "batch")', () => {
    it('validates each message against its own topic; accepted in order, rejections with their message', () => {
      const at = Date.parse(NOW) - 1000;
      const items = [
        { topic: 'HyperVolt/sensors/hall/ldr', payload: Buffer.from(JSON.stringify(reading({ sensor_id: 'a', location: 'hall' }))), receivedAt: at },
        { topic: 'site/sensors/attic/ldr', payload: Buffer.from('{"sensor_id": "b", "value": '), receivedAt: at },
        { topic: 'HyperVolt/sensors/hall/ldr', payload: Buffer.from(JSON.stringify([reading({ sensor_id: 'c', location: 'hall' }, ['timestamp']), reading({ value: -1, location: 'hall' })])), receivedAt: at },
        { topic: 'HyperVolt/sensors/hall/humidity', payload: Buffer.from(JSON.stringify(reading({ sensor_id: 'd', location: 'hall' }))), receivedAt: at },
        'junk',
      ];
      const res = validateMqttBatch(items, makeOpts());
      assert.deepEqual(res.accepted.map((r) => r.sensor_id), ['a', 'c']);
      assert.equal(res.accepted[1].timestamp, new Date(at).toISOString(), 'no timestamp: the time its message was received');
      assert.deepEqual(
        res.rejected.map((r) => [r.entry, r.topic, r.rejection.index, r.rejection.error.code, r.rejection.location]),
        [
          [1, 'site/sensors/attic/ldr', null, 'invalid_json', 'attic'],
          [2, 'HyperVolt/sensors/hall/ldr', 1, 'out_of_range', 'hall'],
          [3, 'HyperVolt/sensors/hall/humidity', null, 'type_mismatch', 'hall'],
          [4, undefined, null, 'not_an_object', undefined],
        ],
      );
      // Each the same as on its own.
      for (let i = 0; i < 4; i++) {
        const item = items[i] as { topic: string; payload: Buffer };
        const alone = validatePayload(item.payload, item.topic, makeOpts(), at);
        assert.deepEqual(alone.rejected.map((r) => r.error.code), res.rejected.filter((r) => r.entry === i).map((r) => r.rejection.error.code));
      }
      assert.deepEqual(validateMqttBatch([], makeOpts()), { accepted: [], rejected: [] });
    });
  });

  describe('prototype safety', () => {
    it('a __proto__ key is dropped and pollutes nothing', () => {
      const text = `{"__proto__": {"polluted": 1, "sensor_type": "ldr"}, "constructor": {"prototype": {"polluted": 2}}, "sensor_id": "ldr_1", "value": 1, "sensor_type": "ldr"}`;
      for (const raw of [text, Buffer.from(text), JSON.parse(text)]) {
        const r = acceptOne(raw, TOPIC);
        assert.deepEqual(Object.keys(r), ['sensor_type', 'sensor_id', 'value', 'unit', 'location', 'timestamp']);
        assert.equal(Object.getPrototypeOf(r), Object.prototype);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        assert.equal((r as unknown as Record<string, unknown>).polluted, undefined);
      }
    });

    it('fields under __proto__ or on a prototype are not read', () => {
      const text = '{"__proto__": {"sensor_type": "ldr", "sensor_id": "x", "value": 1}}';
      const res = validatePayload(text, undefined, makeOpts());
      assert.equal(res.rejected[0].error.code, 'required');
      assert.equal(res.rejected[0].error.field, 'sensor_type');
      const inherited = Object.create({ sensor_type: 'ldr', sensor_id: 'x', value: 1 });
      assert.equal(validatePayload(inherited, undefined, makeOpts()).rejected[0].error.code, 'required');
    });

    it('an extra type named like an Object.prototype member gets no inherited unit or range', () => {
      const opts = makeOpts({ extraTypes: ['constructor', 'tostring'] });
      const r = acceptOne(JSON.stringify({ sensor_type: 'constructor', sensor_id: 'c', value: -5 }), undefined, opts);
      assert.equal(r.unit, '');
      assert.equal(acceptOne(JSON.stringify({ sensor_type: 'tostring', sensor_id: 'c', value: 1 }), undefined, opts).unit, '');
    });
  });

  describe('options', () => {
    it('extraTypes allows more sensor types', () => {
      const co2 = JSON.stringify({ sensor_type: 'co2', sensor_id: 'c1', value: 415, unit: 'ppm' });
      assert.equal(validatePayload(co2, undefined, makeOpts()).rejected[0].error.code, 'unknown_sensor_type');
      const r = acceptOne(co2, undefined, makeOpts({ extraTypes: parseExtraTypes(' co2 , pressure,') }));
      assert.equal(r.unit, 'ppm');
    });

    it('ranges replace the range of a type', () => {
      const opts = makeOpts({ ranges: { temperature: { min: -40, max: 85 }, ldr: {}, humidity: { max: 110 } } });
      const t = (value: number) => JSON.stringify({ sensor_type: 'temperature', sensor_id: 't', value });
      assert.equal(validatePayload(t(90), undefined, opts).rejected[0].error.code, 'out_of_range');
      assert.equal(validatePayload(t(-41), undefined, opts).rejected[0].error.code, 'out_of_range');
      acceptOne(t(85), undefined, opts);
      acceptOne(t(90), undefined, makeOpts()); // unbounded by default
      acceptOne(JSON.stringify({ sensor_type: 'ldr', sensor_id: 'l', value: -5 }), undefined, opts);
      acceptOne(JSON.stringify({ sensor_type: 'humidity', sensor_id: 'h', value: -5 }), undefined, opts);
      acceptOne(JSON.stringify({ sensor_type: 'humidity', sensor_id: 'h', value: 105 }), undefined, opts);
    });

    it('retentionDays sets how old a reading may be', () => {
      const old = JSON.stringify(reading({ timestamp: '2025-12-01T00:00:00Z' }));
      assert.equal(validatePayload(old, TOPIC, makeOpts()).rejected[0].error.code, 'timestamp_too_old');
      acceptOne(old, TOPIC, makeOpts({ retentionDays: 90 }));
    });

    it('maxPayloadBytes and maxBatch are configurable', () => {
      const opts = makeOpts({ maxPayloadBytes: 100, maxBatch: 2 });
      assert.equal(validatePayload(JSON.stringify({ ...good, unit: 'x'.repeat(20), location: 'l'.repeat(30) }), undefined, opts).rejected[0].error.code, 'payload_too_large');
      assert.equal(validatePayload([good, good, good], undefined, opts).rejected[0].error.code, 'batch_too_large');
    });

    it('bad options are refused with a clear OptionsError', () => {
      const bad: Array<[Partial<ValidateOptions>, RegExp]> = [
        [{ extraTypes: ['CO2'] }, /CO2/],
        [{ extraTypes: ['a'.repeat(33)] }, /not a valid sensor type/],
        [{ ranges: { wind: { min: 0 } } }, /wind.*not a known sensor type/],
        [{ ranges: { constructor: { min: 0 } } }, /not a known sensor type/],
        [{ ranges: { ldr: { min: 5, max: 1 } } }, /greater than max/],
        [{ ranges: { ldr: { min: '0' as unknown as number } } }, /finite number/],
        [{ ranges: { ldr: { mn: 0 } as never } }, /unknown key "mn"/],
        [{ ranges: { ldr: 5 as never } }, /must be an object/],
        [{ ranges: [] as never }, /must be an object/],
        [{ retentionDays: 0 }, /retentionDays/],
        [{ retentionDays: NaN }, /retentionDays/],
        [{ maxBatch: 0 }, /maxBatch/],
        [{ clock: {} as never }, /clock/],
      ];
      for (const [over, re] of bad) {
        assert.throws(() => resolveOptions(makeOpts(over)), (e: unknown) => e instanceof OptionsError && re.test(e.message), JSON.stringify(over));
      }
    });

    it('parses the node settings', () => {
      assert.deepEqual(parseExtraTypes(''), []);
      assert.deepEqual(parseExtraTypes(undefined), []);
      assert.deepEqual(parseExtraTypes('co2,  pressure '), ['co2', 'pressure']);
      assert.deepEqual(parseRanges(''), {});
      assert.deepEqual(parseRanges('  '), {});
      assert.deepEqual(parseRanges('{"ldr": {"max": 5}}'), { ldr: { max: 5 } });
      assert.throws(() => parseRanges('{ldr: 5}'), (e: unknown) => e instanceof OptionsError && /not valid JSON/.test(e.message));
      assert.throws(() => parseRanges('[1]'), OptionsError);
      assert.throws(() => parseRanges('null'), OptionsError);
      assert.equal(parseRetentionDays(undefined), 7);
      assert.equal(parseRetentionDays(''), 7);
      assert.equal(parseRetentionDays('${RETENTION_DAYS}'), 7);
      assert.equal(parseRetentionDays(' 14 '), 14);
      assert.equal(parseRetentionDays(30), 30);
      assert.equal(parseRetentionDays('0.5'), 0.5);
      for (const v of ['abc', '-1', '0', 0, -2, '0x10', Infinity, true]) {
        assert.throws(() => parseRetentionDays(v), OptionsError, String(v));
      }
    });

    it('resolves options once per options object', () => {
      const opts = makeOpts();
      assert.equal(resolveOptions(opts), resolveOptions(opts));
      const resolved = resolveOptions(opts);
      assert.equal(resolveOptions(resolved), resolved);
      assert.equal(validateReading({ ...good }, { topicLocation: 'living_room', topicType: 'ldr' }, resolved).ok, true);
    });
  });

  describe('validateReading', () => {
    it('returns ok with the reading or the error', () => {
      const ok = validateReading({ sensor_id: 'x', value: '3' }, { topicLocation: 'hall', topicType: 'current' }, makeOpts());
      assert.deepEqual(ok, {
        ok: true,
        reading: { sensor_type: 'current', sensor_id: 'x', value: 3, unit: 'A', location: 'hall', timestamp: NOW },
      });
      const bad = validateReading({ sensor_id: 'x', value: 3 }, {}, makeOpts());
      assert.deepEqual(bad, { ok: false, error: { code: 'required', field: 'sensor_type', message: bad.ok ? '' : bad.error.message } });
      const at = validateReading({ sensor_type: 'ldr', sensor_id: 'x', value: 3 }, { now: Date.parse('2026-01-01T00:00:00Z') }, makeOpts());
      assert.equal(at.ok && at.reading.timestamp, '2026-01-01T00:00:00.000Z');
    });
  });

  describe('topics', () => {
    it('parses {prefix}/sensors/{location}/{sensor_type}', () => {
      assert.deepEqual(parseTopic('HyperVolt/sensors/living_room/ldr'), { prefix: 'HyperVolt', location: 'living_room', sensor_type: 'ldr' });
      assert.deepEqual(parseTopic('a/b/sensors/x/y'), { prefix: 'a/b', location: 'x', sensor_type: 'y' });
      assert.deepEqual(parseTopic('x/sensors/sensors/a/b'), { prefix: 'x/sensors', location: 'a', sensor_type: 'b' });
      assert.deepEqual(parseTopic('sensors/x/y'), { prefix: '', location: 'x', sensor_type: 'y' });
      for (const t of ['HyperVolt/sensors/x', 'HyperVolt/other/x/y', 'HyperVolt/sensors//ldr', 'HyperVolt/sensors/x/', 'HyperVolt/sensors/x/y/z', '/sensors/x/y', '', undefined, 42]) {
        const parts = parseTopic(t);
        if (t === '/sensors/x/y') assert.deepEqual(parts, { prefix: '', location: 'x', sensor_type: 'y' });
        else assert.equal(parts, null, String(t));
      }
    });

    it('builds error topics that are never wildcards and never add levels', () => {
      assert.equal(errorTopic('HyperVolt', 'living_room', 'ldr'), 'HyperVolt/errors/living_room/ldr');
      assert.equal(errorTopic('my/home', 'Hall-1', 'CO2'), 'my/home/errors/Hall-1/CO2');
      assert.equal(errorTopic(undefined, undefined, undefined), 'HyperVolt/errors/unknown/unknown');
      assert.equal(errorTopic('', 'a+b', 'x#'), 'HyperVolt/errors/unknown/unknown');
      assert.equal(errorTopic('$SYS', 'a/b', ''), 'HyperVolt/errors/unknown/unknown');
      assert.equal(errorTopic('pre+', 'room', 5), 'HyperVolt/errors/room/unknown');
      assert.equal(errorTopic('p', 'x'.repeat(101), 'ldr'), 'p/errors/unknown/ldr');
    });
  });

  describe('reject output', () => {
    it('builds the reject message with a JSON-safe copy of the input', () => {
      const [rej] = validatePayload(JSON.stringify([reading({ value: -1 })]), 'home/sensors/living_room/ldr', makeOpts()).rejected;
      const m = rejectionMessage(rej, 'home');
      assert.equal(m.topic, 'home/errors/living_room/ldr');
      assert.equal(m.error.code, 'out_of_range');
      assert.deepEqual(m.payload, { error: rej.error, reading: reading({ value: -1 }) });
      const [payloadLevel] = validatePayload(Buffer.from([0xff]), undefined, makeOpts()).rejected;
      assert.deepEqual(rejectionMessage(payloadLevel, undefined), {
        topic: 'HyperVolt/errors/unknown/unknown',
        error: payloadLevel.error,
        payload: { error: payloadLevel.error },
      });
    });

    it('toJsonSafe copes with cycles, bigints, functions and size', () => {
      const cyclic: Record<string, unknown> = { a: 1 };
      cyclic.self = cyclic;
      assert.equal(toJsonSafe(cyclic), '[not serializable]');
      assert.deepEqual(toJsonSafe({ v: BigInt(10) }), { v: '10' });
      assert.equal(toJsonSafe(() => 1), undefined);
      assert.equal(toJsonSafe(undefined), undefined);
      const big = toJsonSafe({ s: 'x'.repeat(10000) });
      assert.equal(typeof big, 'string');
      assert.equal((big as string).length, 4097);
      assert.equal((toJsonSafe('y'.repeat(5000)) as string).length, 4097);
      const input = { a: [1, { b: null }] };
      const copy = toJsonSafe(input);
      assert.deepEqual(copy, input);
      assert.notEqual(copy, input);
    });
  });

  describe('documentation', () => {
    it('the help text documents every error code', () => {
      const help = fs.readFileSync(path.join(__dirname, '../../../nodes/sensor-validate/locales/en-US/sensor-validate.html'), 'utf8');
      for (const code of Object.keys(ERROR_CODES)) assert.ok(help.includes(`<dt>${code}</dt>`), code);
    });
  });
});
