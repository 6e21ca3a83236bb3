/**
 * The process's health on /metrics: event-loop delay, GC pauses, memory.
 */
import assert from 'assert/strict';
import { MetricsRegistry } from '../../nodes/shared/metrics';
import { DELAY_RESOLUTION_MS, ProcessHealth, startProcessHealth } from '../../nodes/shared/process-health';
import { getMetrics } from '../../nodes/shared/api/metrics';
import type { MetricFamily } from '../../nodes/shared/metrics';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function value(fams: MetricFamily[], name: string, suffix = '', kind?: string): number | undefined {
  const f = fams.find((x) => x.name === name);
  return f?.samples.find((s) => (s.suffix ?? '') === suffix && (kind === undefined || s.labels?.kind === kind))?.value;
}

/** Holds the event loop for `ms` (what a long synchronous task does). */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* busy */
  }
}

describe('process health metrics', () => {
  let health: ProcessHealth | undefined;
  afterEach(() => {
    health?.stop();
    health = undefined;
  });

  it('reports how long the event loop was held since the previous scrape, then starts again', async () => {
    health = new ProcessHealth();
    await sleep(4 * DELAY_RESOLUTION_MS);
    block(300);
    await sleep(3 * DELAY_RESOLUTION_MS);
    const first = health.families();
    const max = value(first, 'nodejs_eventloop_delay_max_seconds')!;
    const p50 = value(first, 'nodejs_eventloop_delay_p50_seconds')!;
    assert.ok(max >= 0.28 && max < 2, `max ${max}`);
    assert.ok(p50 < max, `p50 ${p50} below max ${max}`);
    assert.ok(value(first, 'nodejs_eventloop_delay_p99_seconds')! <= max);
    await sleep(6 * DELAY_RESOLUTION_MS);
    const second = health.families();
    const again = value(second, 'nodejs_eventloop_delay_max_seconds')!;
    assert.ok(again < 0.2, `the 300 ms block belongs to the previous scrape, max now ${again}`);
  });

  it('counts garbage-collector pauses by kind, cumulatively, and the longest since the previous scrape', async () => {
    health = new ProcessHealth();
    // Short-lived garbage well beyond the young generation: several minor collections.
    let keep: unknown[] = [];
    for (let i = 0; i < 2_000_000; i++) {
      keep.push({ i, s: `r${i}` });
      if (keep.length === 1000) keep = [];
    }
    assert.ok(keep.length < 1000);
    await sleep(20); // GC entries reach the observer asynchronously
    const first = health.families();
    const minors = value(first, 'nodejs_gc_duration_seconds', '_count', 'minor')!;
    const seconds = value(first, 'nodejs_gc_duration_seconds', '_sum', 'minor')!;
    assert.ok(minors >= 1, `minor collections: ${minors}`);
    assert.ok(seconds > 0, `minor collections took ${seconds} s`);
    const longest = value(first, 'nodejs_gc_pause_max_seconds')!;
    const allSeconds = first.find((f) => f.name === 'nodejs_gc_duration_seconds')!.samples.filter((s) => s.suffix === '_sum').reduce((n, s) => n + s.value, 0);
    assert.ok(longest > 0 && longest <= allSeconds + 1e-9, `longest ${longest} of ${allSeconds}`);
    // At once (no GC entry can be delivered in between): nothing since the previous scrape.
    const second = health.families();
    assert.equal(value(second, 'nodejs_gc_pause_max_seconds'), 0, 'no pause since the previous scrape');
    assert.equal(value(second, 'nodejs_gc_duration_seconds', '_count', 'minor'), minors, 'the count is cumulative');
  });

  it('reports the memory the process holds', () => {
    health = new ProcessHealth();
    const fams = health.families();
    const rss = value(fams, 'process_resident_memory_bytes')!;
    const used = value(fams, 'nodejs_heap_size_used_bytes')!;
    const total = value(fams, 'nodejs_heap_size_total_bytes')!;
    assert.ok(rss > 10e6 && used > 1e6 && used <= total, `${rss} ${used} ${total}`);
  });

  it('starts once per registry, and its stop removes the families', async () => {
    const r = new MetricsRegistry();
    const stop = startProcessHealth(r);
    assert.equal(startProcessHealth(r), stop);
    await sleep(3 * DELAY_RESOLUTION_MS);
    assert.match(r.render(), /^# TYPE nodejs_gc_duration_seconds summary$/m);
    assert.match(r.render(), /^process_resident_memory_bytes \d+$/m);
    stop();
    assert.doesNotMatch(r.render(), /nodejs_|process_resident/);
    assert.notEqual(startProcessHealth(r), stop, 'started again after a stop');
    startProcessHealth(r)();
  });

  it('GET /metrics carries them, measured from its first scrape on', async () => {
    const registry = new MetricsRegistry();
    const first = getMetrics(registry).body as string;
    assert.match(first, /^nodejs_gc_pause_max_seconds 0$/m, 'started by the first scrape');
    assert.doesNotMatch(first, /^nodejs_eventloop_delay_p99_seconds /m, 'no delay measured yet');
    await sleep(3 * DELAY_RESOLUTION_MS);
    const text = getMetrics(registry).body as string;
    startProcessHealth(registry)(); // stops it
    assert.match(text, /^nodejs_eventloop_delay_p99_seconds [0-9.e-]+$/m);
    assert.match(text, /^nodejs_gc_pause_max_seconds [0-9.e-]+$/m);
    assert.match(text, /^nodejs_heap_size_used_bytes \d+$/m);
  });
});
