/**
 * The Prometheus registry: text format, escaping, idempotent registration, collectors.
 */
import assert from 'assert/strict';
import { countValidation, escapeLabelValue, MetricsRegistry, renderFamilies } from '../../nodes/shared/metrics';
import { getMetrics } from '../../nodes/shared/api/metrics';
import { fetchMetricsFor, removeFetchMetrics } from '../../nodes/shared/fetch/metrics';
import { FetchError } from '../../nodes/shared/fetch/errors';
import { writerFamilies } from '../../nodes/cold-store/cold-store-ops';

describe('metrics registry', () => {
  it('renders HELP, TYPE and samples with escaped labels and help', () => {
    const r = new MetricsRegistry();
    r.counter('a_total', 'Line one\nback\\slash').inc({ code: 'say "hi"\\\n' }, 2);
    r.gauge('b', 'B.').set(-1.5);
    const s = r.summary('c_seconds', 'C.');
    s.observe(0.25, { node: 'n1' });
    s.observe(0.5, { node: 'n1' });
    assert.equal(
      r.render(),
      [
        '# HELP a_total Line one\\nback\\\\slash',
        '# TYPE a_total counter',
        'a_total{code="say \\"hi\\"\\\\\\n"} 2',
        '# HELP b B.',
        '# TYPE b gauge',
        'b -1.5',
        '# HELP c_seconds C.',
        '# TYPE c_seconds summary',
        'c_seconds_sum{node="n1"} 0.75',
        'c_seconds_count{node="n1"} 2',
        '',
      ].join('\n'),
    );
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  });

  it('gets the same metric by name (a redeploy does not duplicate), refuses a type clash and bad names', () => {
    const r = new MetricsRegistry();
    r.counter('x_total', 'X.').inc();
    r.counter('x_total', 'X.').inc();
    assert.equal(r.counter('x_total', 'X.').get(), 2);
    assert.throws(() => r.gauge('x_total', 'X.'), /is a counter/);
    assert.throws(() => r.counter('bad name', 'X.'), /invalid metric name/);
    assert.throws(() => r.counter('x_total', 'X.').inc(undefined, -1), /only goes up/);
  });

  it('merges collectors into families, skips one that throws, and removes them', () => {
    const r = new MetricsRegistry();
    const stop = r.collect('one', () => [{ name: 'q', help: 'Q.', type: 'gauge', samples: [{ labels: { node: 'a' }, value: 1 }] }]);
    r.collect('two', () => [{ name: 'q', help: 'Q.', type: 'gauge', samples: [{ labels: { node: 'b' }, value: 2 }] }]);
    r.collect('bad', () => {
      throw new Error('boom');
    });
    assert.equal(r.render(), '# HELP q Q.\n# TYPE q gauge\nq{node="a"} 1\nq{node="b"} 2\n');
    stop();
    assert.equal(r.render(), '# HELP q Q.\n# TYPE q gauge\nq{node="b"} 2\n');
  });

  it('formats special values', () => {
    assert.equal(
      renderFamilies([{ name: 'v', help: 'V.', type: 'gauge', samples: [{ value: Infinity }, { value: NaN, labels: { a: 1 } }] }]),
      '# HELP v V.\n# TYPE v gauge\nv +Inf\nv{a="1"} NaN\n',
    );
  });

  it('countValidation counts accepted and rejected by code', () => {
    const r = new MetricsRegistry();
    countValidation(3, ['out_of_range', 'required', 'out_of_range'], r);
    assert.match(r.render(), /^hypervolt_readings_accepted_total 3$/m);
    assert.match(r.render(), /^hypervolt_readings_rejected_total\{code="out_of_range"\} 2$/m);
    assert.match(r.render(), /^hypervolt_readings_rejected_total\{code="required"\} 1$/m);
  });

  it('GET /metrics: the process registry with the fetch nodes and a writer, as text 0.0.4', () => {
    const m = fetchMetricsFor('metrics-test-node', { source: 'electricitymaps', data_type: 'carbon_intensity', zone: 'IN-KA' });
    m.recordSuccess(2, Date.parse('2026-01-26T08:00:00Z'));
    m.recordFailure(new FetchError('rate_limited', 'slow down'), Date.now());
    try {
      const res = getMetrics();
      assert.equal(res.status, 200);
      assert.equal(res.headers!['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      const text = res.body as string;
      const labels = 'node="metrics-test-node",source="electricitymaps",data_type="carbon_intensity",zone="IN-KA"';
      assert.ok(text.includes(`hypervolt_fetch_success_total{${labels}} 1`), text);
      assert.ok(text.includes(`hypervolt_fetch_failures_total{${labels},kind="rate_limited"} 1`));
      assert.ok(text.includes(`hypervolt_fetch_rows_total{${labels}} 2`));
      assert.ok(text.includes(`hypervolt_fetch_last_success_timestamp_seconds{${labels}} 1769414400`));
      assert.match(text, /^process_uptime_seconds \d/m);
    } finally {
      removeFetchMetrics('metrics-test-node');
    }
  });

  it('writer families from the batcher stats', () => {
    const fams = writerFamilies('n1', {
      queued: 3, inFlight: 2, written: 10, duplicates: 1, failed: 0, refused: 1, refusedItems: 7, batches: 2, retries: 0,
      lastError: null, lastFlushMs: 3, connected: true, closed: false,
    });
    const text = renderFamilies(fams);
    assert.match(text, /^hypervolt_cold_store_queue_depth\{node="n1"\} 5$/m);
    assert.match(text, /^hypervolt_cold_store_refused_total\{node="n1"\} 7$/m);
    assert.match(text, /^hypervolt_cold_store_database_up\{node="n1"\} 1$/m);
  });
});
