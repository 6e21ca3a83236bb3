import assert from 'assert/strict';
import { jsonBytes } from '../../nodes/shared/http';
import { JsonText } from '../../nodes/shared/json-text';

/** A small deterministic generator (mulberry32), so a failure names its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const texts = ['', 'ldr', 'living "room"', 'back\\slash', 'línea\nnueva', '温度', '\u2028', 'emoji 🌡', '</script>'];

function anyValue(r: () => number, depth = 0): unknown {
  const k = Math.floor(r() * (depth > 1 ? 6 : 9));
  switch (k) {
    case 0: return null;
    case 1: return Math.floor(r() * 1e6) - 5e5;
    case 2: return r() * 1e3;
    case 3: return texts[Math.floor(r() * texts.length)];
    case 4: return r() < 0.5;
    case 5: return undefined; // left out of an object, null in an array
    case 6: return [anyValue(r, depth + 1), anyValue(r, depth + 1)];
    case 7: return { a: anyValue(r, depth + 1), 'b c': anyValue(r, depth + 1) };
    default: return () => 1; // not JSON: left out
  }
}

function row(r: () => number, id: number): Record<string, unknown> {
  return { id, sensor_type: texts[id % texts.length], value: r() * 100, unit: r() < 0.2 ? undefined : 'lux', timestamp: new Date(1_700_000_000_000 + id * 1000).toISOString(), meta: anyValue(r) };
}

describe('jsonBytes (the JSON bytes of a REST answer)', () => {
  it('writes a page exactly as JSON.stringify does, whatever its keys, their order and their values', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const r = rng(seed);
      const rows = Array.from({ length: 1 + Math.floor(r() * 5) }, (_, i) => row(r, i));
      const keys = ['count', 'next', 'previous', 'results', '2', 'extra', 'x"y'].filter(() => r() < 0.8);
      if (!keys.includes('results')) keys.push('results');
      keys.sort(() => r() - 0.5);
      const page: Record<string, unknown> = {};
      for (const k of keys) page[k] = k === 'results' ? rows : anyValue(r);
      assert.equal(jsonBytes(page).toString('utf8'), JSON.stringify(page), `seed ${seed}: ${JSON.stringify(page)}`);
    }
  });

  it('writes other bodies as JSON.stringify does: empty pages, arrays of other things, errors, a value with toJSON, nothing', () => {
    const bodies: unknown[] = [
      { count: 0, next: null, previous: null, results: [] },
      { results: [1, 2, 3] },
      { results: 'no rows' },
      { detail: 'Not found.' },
      [1, 'two', null],
      [],
      { when: new Date(0), results: [{ id: 1 }] },
      Object.assign(Object.create({ inherited: 1 }), { results: [{ id: 1 }] }),
      { toJSON: () => ({ replaced: true }), results: [{ id: 1 }] },
      'text',
      42,
      null,
    ];
    for (const body of bodies) assert.equal(jsonBytes(body).toString('utf8'), JSON.stringify(body), JSON.stringify(body));
    assert.equal(jsonBytes(undefined).toString('utf8'), 'null');
    assert.equal(jsonBytes(new JsonText('[{"a":1}]')).toString('utf8'), '[{"a":1}]');
  });

  it('serialises the same slice of the same rows once, for arrays and pages, and a changed slice again', () => {
    const rows = [{ id: 1 }, { id: 2 }, { id: 3 }];
    const once = jsonBytes(rows);
    assert.equal(jsonBytes(rows.slice()), once, 'the same rows in another array: the bytes already made');
    // Rows are never changed once read; a change here shows whether the kept bytes were used.
    (rows[1] as { id: number }).id = 20;
    assert.equal(jsonBytes({ count: 3, next: 'http://a/?page=2', results: rows }).toString(), '{"count":3,"next":"http://a/?page=2","results":[{"id":1},{"id":2},{"id":3}]}');
    assert.equal(jsonBytes({ count: 3, next: 'http://b/?page=2', results: rows.slice() }).toString(), '{"count":3,"next":"http://b/?page=2","results":[{"id":1},{"id":2},{"id":3}]}', 'each page its own envelope');
    assert.equal(jsonBytes(rows.slice(0, 2)).toString(), '[{"id":1},{"id":20}]', 'another slice: made again');
    assert.equal(jsonBytes([rows[0], rows[1], { id: 4 }]).toString(), '[{"id":1},{"id":20},{"id":4}]', 'another last row: made again');
  });
});
