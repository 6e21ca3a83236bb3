/**
 * The process's own health for `/metrics`, free of Node-RED: how long the event loop was held up
 * (every message waits behind whatever holds it), how long V8's garbage collector paused it, and the
 * memory the process holds. What an operator reads first when the pipeline's latency grows: is it
 * this process (a long task, long collections) or the machine around it (CPU shared with the broker,
 * the databases, other work)?
 *
 * Event-loop delay: Node's `monitorEventLoopDelay` times a timer of RESOLUTION_MS and records each
 * interval between its callbacks; the delay is that interval less RESOLUTION_MS. Its quantiles and
 * the longest GC pause are over the time since the previous scrape of this process (the histogram
 * restarts at each scrape, as prom-client's do): with two scrapers each sees part of it. The GC
 * totals are cumulative counters, as usual. `GET /metrics` starts it at its first scrape.
 */
import { constants, monitorEventLoopDelay, PerformanceObserver, type IntervalHistogram, type PerformanceEntry } from 'perf_hooks';
import type { MetricFamily, MetricsRegistry } from './metrics';

/** Interval of the event-loop delay timer (Node's default): the smallest delay seen is below it. */
export const DELAY_RESOLUTION_MS = 10;

const GC_KINDS: ReadonlyMap<number, string> = new Map([
  [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

function gcKind(entry: PerformanceEntry): string {
  const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
  return (kind !== undefined && GC_KINDS.get(kind)) || 'other';
}

/** Nanoseconds of one interval of the delay timer → seconds of delay beyond the timer's own interval. */
function delaySeconds(intervalNs: number): number {
  return Math.max(0, intervalNs / 1e6 - DELAY_RESOLUTION_MS) / 1000;
}

export class ProcessHealth {
  private readonly delay: IntervalHistogram;
  private readonly observer: PerformanceObserver;
  private readonly gc = new Map<string, { count: number; seconds: number }>();
  private longestPauseMs = 0;
  private stopped = false;

  constructor() {
    this.delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
    this.delay.enable();
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.noteGc(gcKind(entry), entry.duration);
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  private noteGc(kind: string, ms: number): void {
    const total = this.gc.get(kind) ?? { count: 0, seconds: 0 };
    total.count++;
    total.seconds += ms / 1000;
    this.gc.set(kind, total);
    if (ms > this.longestPauseMs) this.longestPauseMs = ms;
  }

  /** The families at this moment; the since-the-previous-scrape figures start again. */
  families(): MetricFamily[] {
    const h = this.delay;
    // No interval completed since the last scrape (two scrapes within one): no quantiles rather than zeros.
    const delay = (q: number) => (h.count > 0 ? [{ value: delaySeconds(q === 100 ? h.max : h.percentile(q)) }] : []);
    const families: MetricFamily[] = [
      { name: 'nodejs_eventloop_delay_p50_seconds', help: 'Median event-loop delay since the previous scrape.', type: 'gauge', samples: delay(50) },
      { name: 'nodejs_eventloop_delay_p99_seconds', help: '99th percentile of the event-loop delay since the previous scrape.', type: 'gauge', samples: delay(99) },
      { name: 'nodejs_eventloop_delay_max_seconds', help: 'Longest event-loop delay since the previous scrape.', type: 'gauge', samples: delay(100) },
      {
        name: 'nodejs_gc_duration_seconds',
        help: 'Pauses of the garbage collector, by kind (minor: young generation; major: full).',
        type: 'summary',
        samples: [...this.gc].flatMap(([kind, t]) => [
          { suffix: '_sum', labels: { kind }, value: t.seconds },
          { suffix: '_count', labels: { kind }, value: t.count },
        ]),
      },
      { name: 'nodejs_gc_pause_max_seconds', help: 'Longest garbage-collector pause since the previous scrape.', type: 'gauge', samples: [{ value: this.longestPauseMs / 1000 }] },
    ];
    const mem = process.memoryUsage();
    families.push(
      { name: 'process_resident_memory_bytes', help: 'Resident memory of the process.', type: 'gauge', samples: [{ value: mem.rss }] },
      { name: 'nodejs_heap_size_total_bytes', help: "V8's heap, as reserved.", type: 'gauge', samples: [{ value: mem.heapTotal }] },
      { name: 'nodejs_heap_size_used_bytes', help: "V8's heap in use.", type: 'gauge', samples: [{ value: mem.heapUsed }] },
    );
    h.reset();
    this.longestPauseMs = 0;
    return families;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.delay.disable();
    this.observer.disconnect();
  }
}

const started = new WeakMap<MetricsRegistry, () => void>();

/** Starts measuring and adds the families to `registry`; once per registry. Returns the stop. */
export function startProcessHealth(registry: MetricsRegistry): () => void {
  const have = started.get(registry);
  if (have) return have;
  const health = new ProcessHealth();
  const remove = registry.collect('process-health', () => health.families());
  const stop = () => {
    remove();
    health.stop();
    started.delete(registry);
  };
  started.set(registry, stop);
  return stop;
}
