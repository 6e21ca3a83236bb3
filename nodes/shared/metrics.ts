/**
 * A tiny process-wide metrics registry with the Prometheus text format (version 0.0.4), free of
 * Node-RED. Nodes count into it (`metrics.counter(...).inc(...)`); values that already live
 * elsewhere (a writer's queue depth, the fetch nodes' counters) are read at scrape time by
 * collectors. `GET /metrics` renders it all with `metrics.render()`.
 *
 * Getting a metric by name is idempotent (a redeploy re-creates nodes, never duplicate series).
 */

export type Labels = Readonly<Record<string, string | number>>;
export type MetricType = 'counter' | 'gauge' | 'summary';

export interface Sample {
  /** Suffix appended to the family name (`_sum`, `_count`), or ''. */
  suffix?: string;
  labels?: Labels;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label value escaping of the text format: backslash, double quote, line feed. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escaping: backslash and line feed. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${String(labels[k])}`)
    .join('\u0001');
}

function formatLabels(labels: Labels | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  return `{${keys
    .map((k) => {
      if (!LABEL.test(k)) throw new RangeError(`invalid label name "${k}"`);
      return `${k}="${escapeLabelValue(String(labels[k]))}"`;
    })
    .join(',')}}`;
}

/** The text exposition of some families. */
export function renderFamilies(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(`${f.name}${s.suffix ?? ''}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

abstract class Metric {
  protected readonly series = new Map<string, { labels?: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  abstract readonly type: MetricType;
  protected entry(labels?: Labels): { labels?: Labels; value: number } {
    const key = labelKey(labels);
    let e = this.series.get(key);
    if (!e) {
      e = { labels: labels ? { ...labels } : undefined, value: 0 };
      this.series.set(key, e);
    }
    return e;
  }
  /** Removes the series with these labels (e.g. of a removed node). */
  remove(labels?: Labels): void {
    this.series.delete(labelKey(labels));
  }
  get(labels?: Labels): number {
    return this.series.get(labelKey(labels))?.value ?? 0;
  }
  samples(): Sample[] {
    return [...this.series.values()].map((e) => ({ labels: e.labels, value: e.value }));
  }
}

export class Counter extends Metric {
  readonly type = 'counter';
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new RangeError('a counter only goes up');
    this.entry(labels).value += by;
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  set(value: number, labels?: Labels): void {
    this.entry(labels).value = value;
  }
  inc(labels?: Labels, by = 1): void {
    this.entry(labels).value += by;
  }
}

/** `_sum` and `_count` of observations (a summary without quantiles): enough for rate(sum)/rate(count). */
export class Summary extends Metric {
  readonly type = 'summary';
  private readonly counts = new Map<string, number>();
  observe(value: number, labels?: Labels): void {
    if (!Number.isFinite(value)) return;
    this.entry(labels).value += value;
    const key = labelKey(labels);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  count(labels?: Labels): number {
    return this.counts.get(labelKey(labels)) ?? 0;
  }
  override remove(labels?: Labels): void {
    super.remove(labels);
    this.counts.delete(labelKey(labels));
  }
  override samples(): Sample[] {
    return [...this.series.entries()].flatMap(([key, e]) => [
      { suffix: '_sum', labels: e.labels, value: e.value },
      { suffix: '_count', labels: e.labels, value: this.counts.get(key) ?? 0 },
    ]);
  }
}

/** Something that reports families of its own at scrape time. */
export type Collector = () => MetricFamily[];

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors = new Map<string, Collector>();

  private getOrCreate<M extends Metric>(name: string, help: string, make: () => M, kind: MetricType): M {
    if (!NAME.test(name)) throw new RangeError(`invalid metric name "${name}"`);
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.type !== kind) throw new TypeError(`metric ${name} is a ${existing.type}, not a ${kind}`);
      return existing as M;
    }
    const m = make();
    this.metrics.set(name, m);
    return m;
  }

  counter(name: string, help: string): Counter {
    return this.getOrCreate(name, help, () => new Counter(name, help), 'counter');
  }

  gauge(name: string, help: string): Gauge {
    return this.getOrCreate(name, help, () => new Gauge(name, help), 'gauge');
  }

  summary(name: string, help: string): Summary {
    return this.getOrCreate(name, help, () => new Summary(name, help), 'summary');
  }

  /** Adds (or replaces) a collector under `id`; returns a function that removes it. */
  collect(id: string, collector: Collector): () => void {
    this.collectors.set(id, collector);
    return () => {
      if (this.collectors.get(id) === collector) this.collectors.delete(id);
    };
  }

  /** Every family: own metrics, then collected ones merged by name (a collector that throws is skipped). */
  families(): MetricFamily[] {
    const byName = new Map<string, MetricFamily>();
    for (const m of this.metrics.values()) byName.set(m.name, { name: m.name, help: m.help, type: m.type, samples: m.samples() });
    for (const collector of this.collectors.values()) {
      let got: MetricFamily[];
      try {
        got = collector();
      } catch {
        continue;
      }
      for (const f of got) {
        const have = byName.get(f.name);
        if (have && have.type === f.type) have.samples.push(...f.samples);
        else if (!have) byName.set(f.name, { ...f, samples: [...f.samples] });
      }
    }
    return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  render(): string {
    return renderFamilies(this.families());
  }

  /** Forgets everything (tests). */
  reset(): void {
    this.metrics.clear();
    this.collectors.clear();
  }
}

/** The process-wide registry. */
export const metrics = new MetricsRegistry();

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

// ---- the pipeline's own series (names shared by the nodes that count them) ----

export const READINGS_ACCEPTED = 'hypervolt_readings_accepted_total';
export const READINGS_REJECTED = 'hypervolt_readings_rejected_total';

/** sensor-validate: one call per message. */
export function countValidation(accepted: number, rejectedCodes: readonly string[], registry: MetricsRegistry = metrics): void {
  registry.counter(READINGS_ACCEPTED, 'Sensor readings that passed validation.').inc(undefined, accepted);
  const rejected = registry.counter(READINGS_REJECTED, 'Sensor readings rejected by validation, by error code.');
  for (const code of rejectedCodes) rejected.inc({ code });
}
