/**
 * canonicalIsoMs recognises exactly the strings toISOString writes (years 0100-9999), and agrees
 * with Date.parse + toISOString on everything else it accepts: property tests with fast-check.
 */
import assert from 'assert/strict';
import fc from 'fast-check';
import { canonicalIso, canonicalIsoMs, isoFromEpochMs, parseIsoMs } from '../../nodes/shared/iso-time';

const MIN_MS = Date.UTC(100, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** What the fast path must agree with. */
function slow(s: string): string | null {
  const ms = Date.parse(s);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

describe('iso-time: the canonical form without parsing', () => {
  it('every time toISOString writes (years 0100-9999) is recognised, with its epoch ms', () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), (ms) => {
        const s = new Date(ms).toISOString();
        assert.equal(canonicalIsoMs(s), ms);
        assert.equal(canonicalIso(s), s);
        assert.equal(parseIsoMs(s), ms);
      }),
      { numRuns: 5000 },
    );
  });

  it('a canonical string with one character changed is either still a valid time (then the same as Date.parse) or refused', () => {
    const chars = '0123456789-:.TZ +x';
    fc.assert(
      fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), fc.nat(23), fc.nat(chars.length - 1), (ms, at, c) => {
        const s = new Date(ms).toISOString();
        const t = s.slice(0, at) + chars[c] + s.slice(at + 1);
        const fast = canonicalIsoMs(t);
        if (Number.isNaN(fast)) {
          // Not taken by the fast path: the full parse decides, as before.
          assert.equal(canonicalIso(t), slow(t));
        } else {
          assert.equal(new Date(fast).toISOString(), t, `${t} recognised but it is not canonical`);
          assert.equal(fast, Date.parse(t));
        }
      }),
      { numRuns: 20000 },
    );
  });

  it('refuses impossible dates and times that Date would roll over, and leaves other forms to the full parse', () => {
    for (const s of [
      '2026-02-29T00:00:00.000Z', // not a leap year
      '2100-02-29T00:00:00.000Z', // nor is 2100
      '2026-04-31T00:00:00.000Z',
      '2026-13-01T00:00:00.000Z',
      '2026-00-10T00:00:00.000Z',
      '2026-01-00T00:00:00.000Z',
      '2026-01-01T24:00:00.000Z',
      '2026-01-01T23:60:00.000Z',
      '2026-01-01T23:59:60.000Z',
      '0099-01-01T00:00:00.000Z', // Date.UTC's two-digit years: left to the full parse
      '2026-01-01T00:00:00Z',
      '2026-01-01T00:00:00.000+00:00',
      '+002026-01-01T00:00:00.000Z',
    ]) {
      assert.ok(Number.isNaN(canonicalIsoMs(s)), s);
      assert.equal(canonicalIso(s), slow(s), s);
    }
    assert.equal(canonicalIsoMs('2024-02-29T12:00:00.000Z'), Date.parse('2024-02-29T12:00:00.000Z'));
    assert.equal(canonicalIsoMs('2000-02-29T00:00:00.000Z'), Date.parse('2000-02-29T00:00:00.000Z'));
    assert.equal(canonicalIso('2026-01-01T00:00:00Z'), '2026-01-01T00:00:00.000Z');
    assert.equal(canonicalIso('not a time'), null);
    assert.ok(Number.isNaN(parseIsoMs('not a time')));
  });
});

describe('iso-time: isoFromEpochMs writes what toISOString writes', () => {
  const iso = (ms: number) => new Date(ms).toISOString();
  const JS_MAX_MS = 8.64e15;

  it('for any time, in any order (the day it keeps is replaced, never wrong)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -JS_MAX_MS, max: JS_MAX_MS }), { minLength: 1, maxLength: 20 }), (times) => {
        for (const ms of times) assert.equal(isoFromEpochMs(ms), iso(ms));
      }),
      { numRuns: 2000 },
    );
  });

  it('for runs of times on one day and across its midnight, as a window holds them', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(-5, 0, 1), max: Date.UTC(10000, 0, 1) }), fc.array(fc.integer({ min: -90_000_000, max: 90_000_000 }), { minLength: 2, maxLength: 60 }), (start, offsets) => {
        const day = Math.floor(start / 86_400_000) * 86_400_000;
        for (const off of offsets) {
          const ms = day + off; // before, on and after the day: the cached day and its edges
          if (Math.abs(ms) <= JS_MAX_MS) assert.equal(isoFromEpochMs(ms), iso(ms));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('at the edges: midnight and the last ms of a day, before 1970, 1899, years 0 to 99, five- and six-digit years', () => {
    const cases = [
      Date.UTC(2026, 10, 28), Date.UTC(2026, 10, 28) - 1, Date.UTC(2026, 10, 28, 23, 59, 59, 999), Date.UTC(2026, 10, 29),
      0, -0, -1, -86_400_000, -86_400_001, Date.UTC(1969, 11, 31, 23, 59, 59, 999),
      Date.UTC(0, 0, 1) - 1, Date.parse('0050-06-15T12:34:56.789Z'), Date.parse('0099-12-31T23:59:59.999Z'), -62_167_219_200_000, -62_167_219_200_001, 253_402_300_799_999, 253_402_300_800_000, JS_MAX_MS, -JS_MAX_MS,
    ];
    // Each case twice: once as the day's first call (toISOString), once from the kept day.
    for (const ms of [...cases, ...cases]) {
      const next = Math.min(ms + 1, JS_MAX_MS);
      assert.equal(isoFromEpochMs(ms), iso(ms), String(ms));
      assert.equal(isoFromEpochMs(next), iso(next), String(next));
    }
  });

  it('a fraction of a ms is truncated as Date does, and an invalid time throws RangeError as toISOString does', () => {
    const day = Date.UTC(2026, 10, 28, 12);
    isoFromEpochMs(day); // the day is kept
    for (const ms of [day + 0.5, day + 1234.999, day - 0.25]) assert.equal(isoFromEpochMs(ms), iso(ms));
    for (const bad of [NaN, Infinity, -Infinity, JS_MAX_MS + 1]) assert.throws(() => isoFromEpochMs(bad), RangeError);
  });
});
