import assert from 'assert/strict';
import {
  fmtMs,
  fmtNumber,
  highestLossless,
  percentile,
  ratio,
  renderTable,
  SampleBuffer,
  summarize,
} from '../../bench/stats';

describe('bench stats helpers', () => {
  describe('percentile (nearest rank)', () => {
    const hundred = Float64Array.from({ length: 100 }, (_, i) => i + 1); // 1..100

    it('picks the smallest value with at least p % of the samples at or below it', () => {
      assert.equal(percentile(hundred, 50), 50);
      assert.equal(percentile(hundred, 99), 99);
      assert.equal(percentile(hundred, 100), 100);
      assert.equal(percentile(hundred, 1), 1);
      assert.equal(percentile(hundred, 0), 1);
      assert.equal(percentile(hundred, 99.5), 100);
    });

    it('works for small samples', () => {
      assert.equal(percentile([7], 50), 7);
      assert.equal(percentile([7], 99), 7);
      assert.equal(percentile([1, 2], 50), 1);
      assert.equal(percentile([1, 2], 51), 2);
      assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000], 99), 1000);
      assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000], 90), 9);
    });

    it('is NaN for no samples and refuses a p outside 0..100', () => {
      assert.ok(Number.isNaN(percentile([], 50)));
      assert.throws(() => percentile([1], 101), RangeError);
      assert.throws(() => percentile([1], -1), RangeError);
      assert.throws(() => percentile([1], NaN), RangeError);
    });
  });

  describe('summarize', () => {
    it('sorts a copy and reports count, min, mean, p50, p90, p99, max', () => {
      const input = [5, 1, 4, 2, 3];
      const s = summarize(input);
      assert.deepEqual(s, { count: 5, min: 1, mean: 3, p50: 3, p90: 5, p99: 5, max: 5 });
      assert.deepEqual(input, [5, 1, 4, 2, 3], 'the input is not modified');
    });

    it('sorts numerically, not as strings', () => {
      const s = summarize([10, 9, 100, 2]);
      assert.equal(s.min, 2);
      assert.equal(s.max, 100);
      assert.equal(s.p50, 9);
    });

    it('catches a tail the median hides', () => {
      const samples = new Array(1000).fill(1);
      for (let i = 0; i < 20; i++) samples[i * 50] = 80; // 2 % slow
      const s = summarize(samples);
      assert.equal(s.p50, 1);
      assert.equal(s.p99, 80);
      assert.equal(s.max, 80);
    });

    it('is count 0 and NaNs for no samples', () => {
      const s = summarize([]);
      assert.equal(s.count, 0);
      for (const k of ['min', 'mean', 'p50', 'p99', 'max'] as const) assert.ok(Number.isNaN(s[k]), k);
    });
  });

  describe('SampleBuffer', () => {
    it('grows past its initial size and keeps every value in order', () => {
      const b = new SampleBuffer(16);
      for (let i = 0; i < 1000; i++) b.push(i * 0.5);
      assert.equal(b.length, 1000);
      const v = b.values();
      assert.equal(v.length, 1000);
      assert.equal(v[0], 0);
      assert.equal(v[999], 499.5);
      assert.equal(summarize(v).p50, 249.5);
      b.clear();
      assert.equal(b.length, 0);
    });
  });

  describe('highestLossless and ratio', () => {
    it('is the highest rate below the first failure, whatever the order', () => {
      assert.equal(
        highestLossless([
          { rate: 10_000, lossless: true },
          { rate: 1000, lossless: true },
          { rate: 20_000, lossless: false },
          { rate: 5000, lossless: true },
        ]),
        10_000,
      );
      // A pass above a failure does not count.
      assert.equal(highestLossless([{ rate: 1000, lossless: true }, { rate: 5000, lossless: false }, { rate: 10_000, lossless: true }]), 1000);
      assert.equal(highestLossless([{ rate: 1000, lossless: false }]), 0);
      assert.equal(highestLossless([]), 0);
    });

    it('ratio is null when the divisor is 0', () => {
      assert.equal(ratio(20_000, 4000), 5);
      assert.equal(ratio(20_000, 0), null);
    });
  });

  describe('formatting', () => {
    it('groups thousands and keeps small values readable', () => {
      assert.equal(fmtNumber(5_000_000), '5 000 000');
      assert.equal(fmtNumber(1234.5), '1 235');
      assert.equal(fmtNumber(3.14159), '3.14');
      assert.equal(fmtNumber(NaN), '-');
      assert.equal(fmtMs(0.123), '0.12');
      assert.equal(fmtMs(47.25), '47.3');
      assert.equal(fmtMs(430), '430');
    });

    it('renders a padded table with a rule under the header', () => {
      const t = renderTable([
        ['', 'app', 'naive'],
        ['sent', '10 000', '10 000'],
        ['lost', '0', '123'],
      ]);
      assert.equal(
        t,
        ['         app   naive', '----  ------  ------', 'sent  10 000  10 000', 'lost       0     123'].join('\n'),
      );
    });
  });
});
