/**
 * Counters of each fetch node, kept in a module-level registry that the `/metrics` endpoint
 * reads with `getFetchMetrics()`. Counters survive a redeploy (same node id) and are dropped
 * when the node is removed.
 */
import { FETCH_ERROR_KINDS, type FetchError, type FetchErrorKind } from './errors';

export interface FetchMetricsSnapshot {
  node_id: string;
  /** `electricitymaps` or `openweathermap`. */
  source: string;
  /** `carbon_intensity`, `carbon_forecast`, `weather`, `weather_forecast`. */
  data_type: string;
  zone: string;
  fetches_ok: number;
  fetches_failed: Record<FetchErrorKind, number>;
  rows_produced: number;
  /** ISO time of the last successful fetch, or null. */
  last_success_at: string | null;
  last_error: { kind: FetchErrorKind; status: number | null; message: string; at: string } | null;
}

export class FetchMetrics {
  fetchesOk = 0;
  rowsProduced = 0;
  readonly fetchesFailed: Record<FetchErrorKind, number>;
  lastSuccessAt: string | null = null;
  lastError: FetchMetricsSnapshot['last_error'] = null;

  constructor(
    readonly nodeId: string,
    public labels: { source: string; data_type: string; zone: string },
  ) {
    this.fetchesFailed = Object.fromEntries(FETCH_ERROR_KINDS.map((k) => [k, 0])) as Record<FetchErrorKind, number>;
  }

  recordSuccess(rows: number, at: number): void {
    this.fetchesOk += 1;
    this.rowsProduced += rows;
    this.lastSuccessAt = new Date(at).toISOString();
  }

  recordFailure(error: FetchError, at: number): void {
    this.fetchesFailed[error.kind] += 1;
    this.lastError = { kind: error.kind, status: error.status ?? null, message: error.message, at: new Date(at).toISOString() };
  }

  snapshot(): FetchMetricsSnapshot {
    return {
      node_id: this.nodeId,
      ...this.labels,
      fetches_ok: this.fetchesOk,
      fetches_failed: { ...this.fetchesFailed },
      rows_produced: this.rowsProduced,
      last_success_at: this.lastSuccessAt,
      last_error: this.lastError ? { ...this.lastError } : null,
    };
  }
}

const registry = new Map<string, FetchMetrics>();

/** The metrics of a node, created on first use; the labels are updated (a redeploy may change the zone). */
export function fetchMetricsFor(nodeId: string, labels: FetchMetrics['labels']): FetchMetrics {
  let m = registry.get(nodeId);
  if (!m) {
    m = new FetchMetrics(nodeId, labels);
    registry.set(nodeId, m);
  } else {
    m.labels = labels;
  }
  return m;
}

/** Forgets a node's metrics (the node was removed from the flows). */
export function removeFetchMetrics(nodeId: string): void {
  registry.delete(nodeId);
}

/** Every fetch node's counters, for `/metrics`. */
export function getFetchMetrics(): FetchMetricsSnapshot[] {
  return [...registry.values()].map((m) => m.snapshot());
}
