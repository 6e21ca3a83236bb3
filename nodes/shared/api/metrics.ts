/**
 * `GET /metrics`: the process-wide registry in the Prometheus text format, plus the fetch
 * nodes' counters (read from `getFetchMetrics()` at scrape time) and the process's health.
 */
import type { ApiResponse } from '../http';
import { getFetchMetrics } from '../fetch/metrics';
import { metrics, PROMETHEUS_CONTENT_TYPE } from '../metrics';
import type { MetricFamily, MetricsRegistry, Sample } from '../metrics';
import { startProcessHealth } from '../process-health';

/** The fetch nodes' counters as families. */
export function fetchFamilies(): MetricFamily[] {
  const ok: Sample[] = [];
  const failed: Sample[] = [];
  const rows: Sample[] = [];
  const lastSuccess: Sample[] = [];
  for (const m of getFetchMetrics()) {
    const labels = { node: m.node_id, source: m.source, data_type: m.data_type, zone: m.zone };
    ok.push({ labels, value: m.fetches_ok });
    for (const [kind, n] of Object.entries(m.fetches_failed)) failed.push({ labels: { ...labels, kind }, value: n });
    rows.push({ labels, value: m.rows_produced });
    if (m.last_success_at) lastSuccess.push({ labels, value: Date.parse(m.last_success_at) / 1000 });
  }
  return [
    { name: 'hypervolt_fetch_success_total', help: 'Successful fetches of grid data (carbon intensity, weather).', type: 'counter', samples: ok },
    { name: 'hypervolt_fetch_failures_total', help: 'Failed fetches of grid data, by kind of failure.', type: 'counter', samples: failed },
    { name: 'hypervolt_fetch_rows_total', help: 'Grid data rows produced by fetches.', type: 'counter', samples: rows },
    {
      name: 'hypervolt_fetch_last_success_timestamp_seconds',
      help: 'Unix time of the last successful fetch.',
      type: 'gauge',
      samples: lastSuccess,
    },
  ];
}

metrics.collect('fetch', fetchFamilies);
metrics.collect('process', () => [
  { name: 'process_uptime_seconds', help: 'Seconds since the process started.', type: 'gauge', samples: [{ value: process.uptime() }] },
]);

/**
 * `GET /metrics` → 200 text/plain; version=0.0.4. The first scrape starts measuring the process's
 * health (event-loop delay, GC pauses: see process-health), so a Node-RED nobody scrapes does not
 * run its timer; its delay figures appear from the second scrape on.
 */
export function getMetrics(registry: MetricsRegistry = metrics): ApiResponse {
  startProcessHealth(registry);
  return { status: 200, body: registry.render(), headers: { 'content-type': PROMETHEUS_CONTENT_TYPE } };
}
