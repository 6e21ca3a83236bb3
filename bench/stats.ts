/**
 * Small numeric helpers of the bench: percentiles (nearest-rank), summaries of latency samples,
 * and the formatting of figures in the tables. Pure functions, unit-tested in
 * test/unit/bench-stats.test.ts.
 */

export interface Summary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/**
 * The nearest-rank percentile of an ascending array: the smallest value such that at least p %
 * of the samples are at or below it. NaN for an empty array. `p` is 0 to 100.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be 0 to 100, got ${p}`);
  if (p === 0) return sorted[0];
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1];
}

/** Summary of samples (any order; the input is not modified). Empty → count 0 and NaNs. */
export function summarize(samples: ArrayLike<number>): Summary {
  const n = samples.length;
  const sorted = Float64Array.from(samples as ArrayLike<number>).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  return {
    count: n,
    min: n ? sorted[0] : NaN,
    mean: n ? sum / n : NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: n ? sorted[n - 1] : NaN,
  };
}

/**
 * A growable Float64 sample buffer: latency samples at 30 000/s for 10 s are 300 000 numbers, and
 * an array of boxed doubles costs several times the memory of a typed array.
 */
export class SampleBuffer {
  private data: Float64Array;
  private n = 0;

  constructor(initial = 1024) {
    this.data = new Float64Array(Math.max(16, initial));
  }

  push(v: number): void {
    if (this.n === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.n++] = v;
  }

  get length(): number {
    return this.n;
  }

  values(): Float64Array {
    return this.data.subarray(0, this.n);
  }

  clear(): void {
    this.n = 0;
  }
}

/** A number for a table cell: integers with thin grouping, small values with one or two decimals. */
export function fmtNumber(v: number | null | undefined, decimals?: number): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const d = decimals ?? (Number.isInteger(v) ? 0 : Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0);
  const fixed = v.toFixed(d);
  const [int, frac] = fixed.split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  return frac ? `${grouped}.${frac}` : grouped;
}

/** Milliseconds for a table cell: `-` when there were no samples. */
export function fmtMs(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '-';
  return fmtNumber(v, Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0);
}

/** Bytes as MB (10^6, as in the targets). */
export function fmtMB(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return '-';
  return `${fmtNumber(bytes / 1e6, 0)} MB`;
}

/**
 * A plain-text table: the first row is the header; columns padded to their widest cell; the first
 * column left-aligned, the others right-aligned.
 */
export function renderTable(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  const cols = Math.max(...rows.map((r) => r.length));
  const widths: number[] = [];
  for (let c = 0; c < cols; c++) widths.push(Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join('  ')
      .trimEnd();
  const out = [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows.slice(1)) out.push(line(r));
  return out.join('\n');
}

/**
 * The highest rate of a run that was lossless, provided every lower rate was lossless too (a rate
 * that passes above a failed one is luck, not capacity). 0 when the lowest rate already failed.
 */
export function highestLossless(results: readonly { rate: number; lossless: boolean }[]): number {
  let best = 0;
  for (const r of [...results].sort((a, b) => a.rate - b.rate)) {
    if (!r.lossless) break;
    best = r.rate;
  }
  return best;
}

/**
 * The most readings a target moved per second at any lossless rate, and at which rate: its capacity
 * as measured, whatever rate was offered (a target that kept up moves what is offered; an
 * overloaded one what it can). Runs that lost data do not count. `{ throughput: 0, rate: 0 }` when none.
 */
export function highestThroughput(results: readonly { rate: number; lossless: boolean; throughput: number }[]): { throughput: number; rate: number } {
  let best = { throughput: 0, rate: 0 };
  for (const r of results) if (r.lossless && r.throughput > best.throughput) best = { throughput: r.throughput, rate: r.rate };
  return best;
}

/** `a / b` for the ratio line: null when b is 0 (the naive flow lost data at every rate). */
export function ratio(a: number, b: number): number | null {
  return b > 0 ? a / b : null;
}

// ---- several instances of one target (scale out) ----

/** The samples of several collectors (one WebSocket client per instance) as one array. */
export function concatSamples(parts: readonly ArrayLike<number>[]): Float64Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Float64Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Peaks of processes sampled together (resident memory of each instance at the same instant):
 * the peak of each, and the peak of their sum at one instant (at most the sum of the peaks, which
 * need not coincide). A process that is gone (null) counts as 0 in that sample.
 */
export class PeakTracker {
  readonly peakEach: number[];
  peakSum = 0;

  constructor(readonly size: number) {
    this.peakEach = new Array<number>(size).fill(0);
  }

  add(values: readonly (number | null)[]): void {
    if (values.length !== this.size) throw new RangeError(`expected ${this.size} values, got ${values.length}`);
    let sum = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i] ?? 0;
      sum += v;
      if (v > this.peakEach[i]) this.peakEach[i] = v;
    }
    if (sum > this.peakSum) this.peakSum = sum;
  }
}

/**
 * The value of an unlabelled Prometheus counter or gauge in a text exposition (`name value`),
 * or the sum over its label sets (`name{...} value`); null when the metric is not there.
 */
export function promValue(text: string, name: string): number | null {
  let total: number | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue; // a longer name
    const after = rest.startsWith('{') ? rest.slice(rest.indexOf('}') + 1) : rest;
    const v = Number(after.trim().split(/\s+/)[0]);
    if (Number.isFinite(v)) total = (total ?? 0) + v;
  }
  return total;
}

/** Per-instance figures in one cell: `a / b / c` (a single value as itself). */
export function fmtEach(values: readonly number[], fmt: (v: number) => string = (v) => fmtNumber(v)): string {
  return values.length === 0 ? '-' : values.map(fmt).join(' / ');
}

/** Shares of a total in percent, for the split of the readings between instances (0s when the total is 0). */
export function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((s, n) => s + n, 0);
  return counts.map((n) => (total > 0 ? (100 * n) / total : 0));
}

export interface InstancesRun {
  instances: number;
  results: readonly { rate: number; lossless: boolean; keptUp: boolean }[];
}

/**
 * The comparison of runs of one target with different numbers of instances at the same rates:
 * each run's highest lossless and highest kept-up rate (as `highestLossless`), and the ratio of
 * each to the first run's (null when the first run's is 0).
 */
export function compareInstances(runs: readonly InstancesRun[]): {
  instances: number;
  lossless: number;
  keptUp: number;
  losslessRatio: number | null;
  keptUpRatio: number | null;
}[] {
  const best = runs.map((r) => ({
    instances: r.instances,
    lossless: highestLossless(r.results),
    keptUp: highestLossless(r.results.map((x) => ({ rate: x.rate, lossless: x.keptUp }))),
  }));
  const base = best[0];
  return best.map((b) => ({
    ...b,
    losslessRatio: base ? ratio(b.lossless, base.lossless) : null,
    keptUpRatio: base ? ratio(b.keptUp, base.keptUp) : null,
  }));
}

/** The label of a target run with `instances` instances: `app` for one, `app x2` for two. */
export function instancesLabel(target: string, instances: number): string {
  return instances === 1 ? target : `${target} x${instances}`;
}
