import assert from 'assert/strict';
import { computeStats, snapshotOf } from '../../nodes/hot-window/window-stats';

const at = (i: number) => new Date(Date.UTC(2026, 0, 26, 8, 0, i)).toISOString();

describe('computeStats', () => {
  it('gives only count and is_full for an empty window', () => {
    assert.deepEqual(computeStats([], 60), { count: 0, is_full: false });
  });

  it('computes count, min, max, mean and the latest entry', () => {
    const entries = [10, 20, 30, 5.5].map((value, i) => ({ value, timestamp: at(i) }));
    assert.deepEqual(computeStats(entries, 60), {
      count: 4,
      is_full: false,
      latest_value: 5.5,
      latest_timestamp: at(3),
      min_value: 5.5,
      max_value: 30,
      avg_value: 16.375,
    });
  });

  it('keeps the key order of the buffer endpoint', () => {
    const stats = computeStats([{ value: 1, timestamp: at(0) }], 60);
    assert.deepEqual(Object.keys(stats), [
      'count', 'is_full', 'latest_value', 'latest_timestamp', 'min_value', 'max_value', 'avg_value',
    ]);
  });

  it('is full when count reaches the window size', () => {
    const three = [1, 2, 3].map((value, i) => ({ value, timestamp: at(i) }));
    assert.equal(computeStats(three, 4).is_full, false);
    assert.equal(computeStats(three, 3).is_full, true);
    assert.equal(computeStats(three, 2).is_full, true);
  });

  it('handles negative values and a single entry', () => {
    const entries = [{ value: -4, timestamp: at(0) }, { value: -1, timestamp: at(1) }];
    const s = computeStats(entries, 60);
    assert.equal(s.min_value, -4);
    assert.equal(s.max_value, -1);
    assert.equal(s.avg_value, -2.5);
    const one = computeStats([{ value: 7, timestamp: at(9) }], 1);
    assert.deepEqual(one, {
      count: 1, is_full: true, latest_value: 7, latest_timestamp: at(9), min_value: 7, max_value: 7, avg_value: 7,
    });
  });

  it('the latest is the last entry (the newest timestamp), not the largest value', () => {
    const entries = [{ value: 900, timestamp: at(0) }, { value: 1, timestamp: at(1) }];
    assert.equal(computeStats(entries, 60).latest_value, 1);
  });

  it('snapshotOf pairs the entries with their stats', () => {
    const entries = [{ value: 3, timestamp: at(0) }];
    assert.deepEqual(snapshotOf(entries, 60), { readings: entries, stats: computeStats(entries, 60) });
  });
});
