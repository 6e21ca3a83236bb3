import assert from 'assert/strict';
import { pausesBetween, type RateResult } from '../../bench/measure';
import { parseOptions, type BenchOptions } from '../../bench/options';
import { restText, targetChecks } from '../../bench/report';
import type { HttpLoadResult } from '../../bench/rest';
import {
  compareInstances,
  concatSamples,
  fmtEach,
  fmtMB,
  fmtMs,
  fmtNumber,
  highestLossless,
  highestThroughput,
  instancesLabel,
  PeakTracker,
  percentile,
  promValue,
  ratio,
  renderTable,
  SampleBuffer,
  shares,
  summarize,
} from '../../bench/stats';

describe('bench stats helpers', () => {
  it('highestThroughput: the most moved per second at a lossless rate, with its rate; lossy runs do not count', () => {
    const runs = [
      { rate: 1000, lossless: true, throughput: 1000 },
      { rate: 10000, lossless: true, throughput: 3016 },
      { rate: 20000, lossless: false, throughput: 4000 },
      { rate: 5000, lossless: true, throughput: 2791 },
    ];
    assert.deepEqual(highestThroughput(runs), { throughput: 3016, rate: 10000 });
    assert.deepEqual(highestThroughput(runs.map((r) => ({ ...r, lossless: false }))), { throughput: 0, rate: 0 });
    assert.deepEqual(highestThroughput([]), { throughput: 0, rate: 0 });
  });

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

  describe('several instances (--instances)', () => {
    it('concatSamples joins each client\'s latencies, so the percentiles are over all of them', () => {
      const a = Float64Array.from([1, 2, 3]);
      const b = new SampleBuffer(16);
      for (const v of [100, 200]) b.push(v);
      const all = concatSamples([a, b.values(), []]);
      assert.deepEqual([...all], [1, 2, 3, 100, 200]);
      assert.equal(summarize(all).max, 200, 'a slow client is not hidden by a fast one');
      assert.equal(summarize(all).p50, 3);
      assert.equal(concatSamples([]).length, 0);
    });

    it('PeakTracker keeps the peak of each process and the peak of their sum at one instant', () => {
      const t = new PeakTracker(2);
      t.add([100, 10]);
      t.add([20, 90]); // each peaks at a different instant
      t.add([60, 60]);
      assert.deepEqual(t.peakEach, [100, 90]);
      assert.equal(t.peakSum, 120, 'the sum of the peaks (190) never happened at once');
      t.add([null, 200]); // one process gone: counts as 0
      assert.equal(t.peakSum, 200);
      assert.deepEqual(t.peakEach, [100, 200]);
      assert.throws(() => t.add([1]), RangeError);
    });

    it('promValue reads a counter from /metrics text, summing label sets, ignoring comments and longer names', () => {
      const text = [
        '# HELP hypervolt_readings_accepted_total Sensor readings that passed validation.',
        '# TYPE hypervolt_readings_accepted_total counter',
        'hypervolt_readings_accepted_total 10234',
        'hypervolt_readings_accepted_total_extra 5',
        'hypervolt_readings_rejected_total{code="range"} 3',
        'hypervolt_readings_rejected_total{code="type"} 4',
        '',
      ].join('\n');
      assert.equal(promValue(text, 'hypervolt_readings_accepted_total'), 10234);
      assert.equal(promValue(text, 'hypervolt_readings_rejected_total'), 7);
      assert.equal(promValue(text, 'hypervolt_nothing_total'), null);
    });

    it('fmtEach and shares show what each instance did', () => {
      assert.equal(fmtEach([10_012, 9988]), '10 012 / 9 988');
      assert.equal(fmtEach([210e6, 190e6], fmtMB), '210 MB / 190 MB');
      assert.equal(fmtEach([]), '-');
      assert.deepEqual(shares([3, 1]), [75, 25]);
      assert.deepEqual(shares([0, 0]), [0, 0]);
    });

    it('compareInstances gives each run\'s highest lossless and kept-up rate and its ratio to the first run', () => {
      const one = [
        { rate: 1000, lossless: true, keptUp: true },
        { rate: 5000, lossless: true, keptUp: false },
        { rate: 10_000, lossless: false, keptUp: false },
      ];
      const two = [
        { rate: 1000, lossless: true, keptUp: true },
        { rate: 5000, lossless: true, keptUp: true },
        { rate: 10_000, lossless: true, keptUp: false },
      ];
      const c = compareInstances([
        { instances: 1, results: one },
        { instances: 2, results: two },
      ]);
      assert.deepEqual(c, [
        { instances: 1, lossless: 5000, keptUp: 1000, losslessRatio: 1, keptUpRatio: 1 },
        { instances: 2, lossless: 10_000, keptUp: 5000, losslessRatio: 2, keptUpRatio: 5 },
      ]);
      // A slower second run is shown as such, not hidden.
      const worse = compareInstances([
        { instances: 1, results: two },
        { instances: 2, results: one },
      ]);
      assert.equal(worse[1].losslessRatio, 0.5);
      // The first run lossless at no rate: no ratio.
      const none = compareInstances([
        { instances: 1, results: [{ rate: 1000, lossless: false, keptUp: false }] },
        { instances: 2, results: one },
      ]);
      assert.equal(none[1].losslessRatio, null);
      assert.deepEqual(compareInstances([]), []);
    });

    it('pausesBetween gives an instance\'s own pauses over a rate from two scrapes of its /metrics', () => {
      const before = { delayP99: 0.004, delayMax: 0.5, gcSeconds: 1.25, gcCount: 40, gcMax: 0.2 };
      const after = { delayP99: 0.012, delayMax: 0.031, gcSeconds: 1.5, gcCount: 52, gcMax: 0.009 };
      // The quantiles and the longest pause are the second scrape's own (its since-scrape window); GC totals are differences.
      assert.deepEqual(pausesBetween(before, after), { delayP99Ms: 12, delayMaxMs: 31, gcMs: 250, gcCount: 12, gcMaxMs: 9 });
      assert.equal(pausesBetween(null, after), null, 'a target without them (naive, floor)');
      assert.equal(pausesBetween(before, null), null);
      assert.equal(pausesBetween(before, { ...after, delayP99: null }), null, 'no delay interval completed: nothing to show');
    });

    it('restText shows the serving side of each REST endpoint: CPU per request of the app, PostgreSQL and the client, and the app\'s loop', () => {
      const latency = summarize(Float64Array.from([2, 4, 30]));
      const base: HttpLoadResult = {
        name: 'latest', path: '/api/sensor-readings/latest/', seconds: 5, connections: 10, requests: 5000, rps: 1000,
        failures: {}, bodyBytes: 36467, latency, loadAvg1: 1.2, clientCpuMs: 0.19,
      };
      const served = { ...base, name: 'buffer', server: { appCpuMs: 0.6214, pgCpuMs: 0.3, pauses: { delayP99Ms: 6.5, delayMaxMs: 21.25, gcMs: 80, gcCount: 12, gcMaxMs: 4 } } };
      const noPg = { ...base, name: 'page', server: { appCpuMs: 0.5, pgCpuMs: NaN, pauses: null } };
      const text = restText({ rows: 5_000_000, sensors: 100, seconds: 80, intervalMs: 11_232 }, [served, noPg, base]);
      const line = (name: string) => text.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
      assert.match(line('buffer'), /0\.62 \/ 0\.30 \/ 0\.19 +6\.50 \/ 21\.3$/);
      assert.match(line('page'), /0\.50 \/ - \/ 0\.19 +-$/, 'unreadable /proc: "-", not a made-up figure; no pauses: "-"');
      assert.match(line('latest'), / - +-$/, 'a result saved before the serving side was measured');
    });

    it('labels a run by its instance count', () => {
      assert.equal(instancesLabel('app', 1), 'app');
      assert.equal(instancesLabel('app', 2), 'app x2');
    });
  });

  describe('targetChecks (the issue\'s targets, PASS or MISS)', () => {
    // Only what the checks read; the rest of a RateResult does not enter them.
    const rate = (target: string, r: number, o: { lossless?: boolean; keptUp?: boolean; p99?: number; steadyP99?: number; peakMB?: number; throughput?: number } = {}) =>
      ({
        target, rate: r, lossless: o.lossless ?? true, keptUp: o.keptUp ?? o.lossless ?? true, throughput: o.throughput ?? r,
        latencyWs: summarize(Float64Array.from([1, o.p99 ?? 5])), latencyWsSteady: summarize(Float64Array.from([1, o.steadyP99 ?? o.p99 ?? 5])),
        peakRssSampled: (o.peakMB ?? 200) * 1e6, vmHwm: (o.peakMB ?? 200) * 1e6 - 1, cpu: { pipeline: 3, mosquitto: 0, postgres: 0, redis: 0, bench: 0, wallSeconds: 10 },
      }) as unknown as RateResult;
    const rest = (name: string, p99: number, failures: Record<string, number> = {}) =>
      ({ name, path: '/', seconds: 5, connections: 10, requests: 1000, rps: 200, failures, bodyBytes: 10, latency: summarize(Float64Array.from([1, p99])), loadAvg1: 1, clientCpuMs: 0.1 }) as HttpLoadResult;
    const judged = (checks: ReturnType<typeof targetChecks>) => Object.fromEntries(checks.map((c) => [c.name, c.pass]));

    it('passes what holds: lossless and kept up at 20 000/s, 20x the naive flow, the latencies, the memory, the REST reads', () => {
      const app = [rate('app', 1000, { p99: 8 }), rate('app', 10000, { p99: 49.9 }), rate('app', 20000, { peakMB: 249 })];
      const naive = [rate('naive', 1000), rate('naive', 10000, { lossless: false })];
      const checks = judged(targetChecks({ app, naive }, [rest('latest', 19.9), rest('buffer', 3)]));
      assert.deepEqual(checks, {
        'app lossless >= 15 000/s': true,
        'app lossless and kept up >= 15 000/s': true,
        'app >= 5x naive': true,
        '(info) app vs naive by highest throughput': null,
        'app >= 5x naive (both kept up)': true,
        'p99 publish->WS at 1 000/s < 10 ms': true,
        'p99 publish->WS at 10 000/s < 50 ms': true,
        'peak memory at highest lossless rate < 250 MB': true,
        '(info) peak memory of the app over all rates': null,
        'REST latest p99 < 20 ms': true,
        'REST buffer p99 < 20 ms': true,
      });
    });

    it('misses at the limits and on failures: a rate after a lossy one does not count, 10 ms is not under 10 ms, a failed request fails its endpoint', () => {
      const app = [
        rate('app', 1000, { p99: 10 }),
        rate('app', 10000, { p99: 120, steadyP99: 40, keptUp: false }),
        rate('app', 15000, { lossless: false }),
        rate('app', 20000, { peakMB: 100 }), // lossless, but above a lossy rate: not counted
      ];
      const naive = [rate('naive', 1000), rate('naive', 10000, { keptUp: false })];
      const list = targetChecks({ app, naive }, [rest('latest', 12, { '500': 1 }), rest('recent 1 h', 20)]);
      const checks = judged(list);
      assert.equal(checks['app lossless >= 15 000/s'], false);
      assert.equal(list.find((c) => c.name === 'app lossless >= 15 000/s')?.detail, '10 000/s (rates tried: 1000, 10000, 15000, 20000)');
      assert.equal(checks['app lossless and kept up >= 15 000/s'], false);
      assert.equal(checks['app >= 5x naive'], false, '10 000 against 10 000: 1x');
      assert.equal(checks['app >= 5x naive (both kept up)'], false, '1 000 against 1 000');
      assert.equal(checks['p99 publish->WS at 1 000/s < 10 ms'], false);
      assert.equal(checks['p99 publish->WS at 10 000/s < 50 ms'], false, 'judged over the whole run, not after the first second');
      assert.match(list.find((c) => c.name === 'p99 publish->WS at 10 000/s < 50 ms')?.detail ?? '', /after its first second 40/);
      assert.equal(checks['peak memory at highest lossless rate < 250 MB'], true, '200 MB at 10 000/s, the highest counted');
      assert.equal(checks['REST latest p99 < 20 ms'], false, 'fast, but one request failed');
      assert.match(list.find((c) => c.name === 'REST latest p99 < 20 ms')?.detail ?? '', /1 failed requests/);
      assert.equal(checks['REST recent 1 h p99 < 20 ms'], false, '20 ms is not under 20 ms');
    });

    it('says what was not run instead of judging it', () => {
      const list = targetChecks({ app: [rate('app', 5000)] }, null);
      assert.equal(list.find((c) => c.name === 'p99 publish->WS at 1 000/s < 10 ms')?.detail, 'rate not run');
      assert.equal(list.find((c) => c.name === 'p99 publish->WS at 1 000/s < 10 ms')?.pass, null);
      assert.ok(!list.some((c) => c.name.startsWith('app >= 5x naive')), 'no naive flow, no ratio');
      assert.ok(!list.some((c) => c.name.startsWith('REST')), 'no REST check run');
      assert.deepEqual(targetChecks({}, null), []);
    });
  });

  describe('options', () => {
    const opts = (argv: string[]) => parseOptions(argv) as BenchOptions;

    it('leaves the defaults and --quick as they were: one instance', () => {
      assert.deepEqual(opts([]).instances, [1]);
      assert.deepEqual(opts([]).targets, ['app', 'naive', 'floor']);
      assert.deepEqual(opts(['--quick']).rates, [1000, 5000]);
      assert.deepEqual(opts(['--quick']).targets, ['app', 'naive']);
      assert.deepEqual(opts(['--profile']).targets, ['app']);
      assert.deepEqual(opts(['--quick']).instances, [1]);
    });

    it('--targets takes the floor beside the app and the naive flow, and refuses others', () => {
      assert.deepEqual(opts(['--targets', 'floor,app']).targets, ['floor', 'app']);
      assert.throws(() => opts(['--targets', 'app,bare']), /unknown target "bare" \(app, naive, floor\)/);
      assert.throws(() => opts(['--profile', '--targets', 'app,floor']), /--profile profiles the app only/);
      assert.throws(() => opts(['--targets', 'floor', '--instances', '1,2']), /applies to the app/);
    });

    it('--instances lists instance counts of the app, in order, without repeats', () => {
      assert.deepEqual(opts(['--instances', '1,2']).instances, [1, 2]);
      assert.deepEqual(opts(['--instances=2,1,2']).instances, [2, 1]);
      assert.deepEqual(opts(['--targets', 'app', '--instances', '2']).instances, [2]);
    });

    it('refuses bad --instances with a clear error', () => {
      assert.throws(() => opts(['--instances', '0']), /--instances must be a number from 1 to 4/);
      assert.throws(() => opts(['--instances', '5']), /--instances must be a number from 1 to 4/);
      assert.throws(() => opts(['--instances', 'two']), /--instances must be a number/);
      assert.throws(() => opts(['--instances', ',']), /--instances needs a comma-separated list/);
      assert.throws(() => opts(['--instances', '1.5']), /whole numbers/);
      assert.throws(() => opts(['--targets', 'naive', '--instances', '1,2']), /applies to the app/);
      assert.throws(() => opts(['--profile', '--instances', '1,2']), /--profile profiles one instance/);
    });
  });
});
