import assert from 'assert/strict';
import { ManualClock } from '../../nodes/shared/clock';
import { FetchController, formatAge, type FetchJobResult, type StatusView } from '../../nodes/shared/fetch/controller';
import { FetchError } from '../../nodes/shared/fetch/errors';
import { fetchMetricsFor, getFetchMetrics, removeFetchMetrics } from '../../nodes/shared/fetch/metrics';
import type { GridRow } from '../../nodes/shared/fetch/rows';
import { ManualTimers, settle } from '../../nodes/shared/timers';

const MIN = 60_000;

function row(value: number): GridRow {
  return { data_type: 'carbon_intensity', value, unit: 'gCO2eq/kWh', zone: 'IN-KA', metadata: {}, timestamp: '2026-01-26T08:00:00.000Z' };
}

function setup(opts: { blocked?: FetchError; script?: (number | FetchError)[]; nodeId?: string } = {}) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const script = [...(opts.script ?? [])];
  const statuses: StatusView[] = [];
  const warnings: string[] = [];
  const sent: FetchJobResult[] = [];
  let runs = 0;
  const nodeId = opts.nodeId ?? `n${Math.random()}`;
  const metrics = fetchMetricsFor(nodeId, { source: 'electricitymaps', data_type: 'carbon_intensity', zone: 'IN-KA' });
  const controller = new FetchController<FetchJobResult>({
    blocked: opts.blocked,
    run: async () => {
      runs += 1;
      const step = script.shift() ?? 500;
      if (step instanceof FetchError) throw step;
      return { rows: [row(step)], headline: step + 0.4, notes: [] };
    },
    intervalMs: 15 * MIN,
    retryBaseMs: 30_000,
    clock,
    timers,
    random: () => 0,
    metrics,
    okKey: 'ok',
    formatValue: (v) => String(Math.round(v)),
    send: (r) => sent.push(r),
    setStatus: (s) => statuses.push(s),
    warn: (m) => warnings.push(m),
  });
  return { clock, timers, controller, statuses, warnings, sent, metrics, nodeId, runs: () => runs };
}

describe('fetch controller: status, warnings, metrics', () => {
  it('formats ages', () => {
    assert.equal(formatAge(0), 'just now');
    assert.equal(formatAge(59_999), 'just now');
    assert.equal(formatAge(2 * MIN + 5000), '2 min ago');
    assert.equal(formatAge(3 * 60 * MIN), '3 h ago');
    assert.equal(formatAge(72 * 60 * MIN), '3 d ago');
  });

  it('shows the value and keeps its age current every minute', async () => {
    const { controller, timers, statuses, sent } = setup({ script: [512] });
    controller.start();
    await settle();
    assert.deepEqual(statuses.map((s) => s.key), ['fetching', 'ok']);
    assert.deepEqual(statuses.at(-1), { fill: 'green', shape: 'dot', key: 'ok', params: { value: '512', count: 1, age: 'just now' } });
    assert.equal(sent.length, 1);
    await timers.advance(2 * MIN);
    assert.equal(statuses.at(-1)?.params.age, '2 min ago');
    controller.stop();
  });

  it('shows the retry countdown in yellow, a rejected key in red, no key in grey', async () => {
    const c1 = setup({ script: [new FetchError('server', 'Electricity Maps: request failed (HTTP 503)', 503)] });
    c1.controller.start();
    await settle();
    assert.deepEqual(c1.statuses.at(-1), { fill: 'yellow', shape: 'ring', key: 'retrying', params: { seconds: 30, reason: '503' } });
    assert.equal(c1.sent.length, 0, 'nothing is sent for a failed fetch');
    c1.controller.stop();

    const c2 = setup({ script: [new FetchError('auth', 'rejected', 401)] });
    c2.controller.start();
    await settle();
    assert.deepEqual(c2.statuses.at(-1), { fill: 'red', shape: 'ring', key: 'auth', params: { status: '401' } });
    await c2.timers.advance(60 * MIN);
    assert.equal(c2.runs(), 1, 'no retry after 401');
    c2.controller.stop();

    const c3 = setup({ blocked: new FetchError('no_key', 'no API key configured') });
    c3.controller.start();
    await c3.timers.advance(60 * MIN);
    assert.deepEqual(c3.statuses, [{ fill: 'grey', shape: 'ring', key: 'no-key', params: {} }]);
    const outcome = await c3.controller.trigger();
    assert.equal(!outcome.ok && outcome.error.kind, 'no_key');
    assert.equal(c3.runs(), 0, 'nothing fetched without a key');
  });

  it('warns once per change of failure for scheduled fetches, not for manual ones', async () => {
    const e503 = () => new FetchError('server', 'HTTP 503', 503);
    const { controller, timers, warnings } = setup({ script: [e503(), e503(), e503(), new FetchError('timeout', 'no answer'), 500, e503()] });
    controller.start();
    await timers.advance(30_000 + 60_000 + 120_000 + 240_000); // 4 failures, then a success
    assert.deepEqual(warnings, ['HTTP 503', 'no answer']);
    const manual = await controller.trigger();
    assert.equal(manual.ok, false);
    assert.deepEqual(warnings, ['HTTP 503', 'no answer'], 'a manual failure goes to done(err), not warn');
    controller.stop();
  });

  it('counts fetches in the metrics registry, and forgets a removed node', async () => {
    const { controller, timers, nodeId } = setup({ script: [new FetchError('timeout', 'no answer'), 300, new FetchError('client', 'HTTP 404', 404)] });
    controller.start();
    await timers.advance(30_000);
    await timers.advance(15 * MIN);
    const m = getFetchMetrics().find((x) => x.node_id === nodeId);
    assert.ok(m);
    assert.equal(m.fetches_ok, 1);
    assert.equal(m.rows_produced, 1);
    assert.equal(m.fetches_failed.timeout, 1);
    assert.equal(m.fetches_failed.client, 1);
    assert.equal(m.fetches_failed.server, 0);
    assert.equal(m.last_error?.status, 404);
    assert.ok(m.last_success_at);
    assert.equal(m.source, 'electricitymaps');
    controller.stop();
    // The same id (a redeploy) keeps counting; removal forgets.
    assert.equal(fetchMetricsFor(nodeId, { source: 'electricitymaps', data_type: 'carbon_intensity', zone: 'DE' }).fetchesOk, 1);
    removeFetchMetrics(nodeId);
    assert.equal(getFetchMetrics().find((x) => x.node_id === nodeId), undefined);
  });

  it('stop() leaves no timer behind (the age refresh included)', async () => {
    const { controller, timers, statuses } = setup({ script: [512] });
    controller.start();
    await settle();
    assert.ok(timers.count >= 2, 'next fetch and age refresh');
    controller.stop();
    assert.equal(timers.count, 0);
    const n = statuses.length;
    await timers.advance(60 * MIN);
    assert.equal(statuses.length, n);
  });
});
