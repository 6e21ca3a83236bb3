/**
 * The bench's printed output: a table per rate (targets side by side), the highest lossless
 * rates and their ratio, the comparison of one and several app instances (--instances), the
 * targets of issue 6 with PASS/MISS, the REST table, the profile.
 */
import { KEPT_UP_LAG_MS, type PauseFigures, type RateResult } from './measure';
import type { ProfileSummary } from './profile';
import type { HttpLoadResult, SeedResult } from './rest';
import { compareInstances, fmtEach, fmtMB, fmtMs, fmtNumber, highestLossless, highestThroughput, ratio, renderTable, shares, type Summary } from './stats';

const lat = (s: Summary) => (s.count ? `${fmtMs(s.p50)} / ${fmtMs(s.p99)} / ${fmtMs(s.max)}` : '-');
const cpu = (s: number) => fmtNumber(s, 1);
/** An instance's own pauses (from its /metrics; '-' for a target without them), instances apart by ' ; '. */
const pauses = (r: RateResult, f: (p: PauseFigures) => string) =>
  r.perInstance.map((p) => (p.pauses ? f(p.pauses) : '-')).join(' ; ') || '-';

export function rateTable(rate: number, byTarget: readonly RateResult[]): string {
  const head = ['', ...byTarget.map((r) => r.target)];
  const row = (label: string, f: (r: RateResult) => string) => [label, ...byTarget.map(f)];
  // Rows of several instances (--instances): only when a target ran with more than one.
  const multi = byTarget.some((r) => (r.instances ?? 1) > 1);
  const each = (label: string, f: (r: RateResult) => string) => (multi ? [row(label, (r) => ((r.instances ?? 1) > 1 ? f(r) : '-'))] : []);
  const rows: string[][] = [
    head,
    row('sent (readings)', (r) => fmtNumber(r.sent)),
    row('publish rate achieved (/s)', (r) => `${fmtNumber(r.achievedRate, 0)}${r.publisherMaxBehindMs > 250 ? ` (behind ${fmtNumber(r.publisherMaxBehindMs, 0)} ms)` : ''}`),
    row('PUBACKed', (r) => fmtNumber(r.acked) + (r.ackErrors ? ` (${r.ackErrors} errors)` : '')),
    row('broker dropped ($SYS)', (r) => fmtNumber(r.brokerDropped)),
    row('broker still queued after drain', (r) => fmtNumber(Math.max(0, r.brokerQueuedAfter))),
    ...each('readings taken by each instance', (r) => {
      const counts = r.perInstance.map((p) => p.accepted);
      if (counts.some((c) => c === null)) return fmtEach(counts.map((c) => c ?? NaN));
      return `${fmtEach(counts as number[])} (${shares(counts as number[]).map((x) => fmtNumber(x, 0)).join('/')} %)`;
    }),
    row('stored in PostgreSQL', (r) => fmtNumber(r.stored)),
    row('  of which by end of publishing', (r) => fmtNumber(r.storedAtLoadEnd)),
    row('lost (sent - stored)', (r) => fmtNumber(r.lost)),
    row('WebSocket received', (r) => fmtNumber(r.wsReceived) + (r.wsClosed ? ' (ws closed!)' : '')),
    row('  of which by end of publishing', (r) => fmtNumber(r.wsAtLoadEnd)),
    row('WebSocket duplicates', (r) => fmtNumber(r.wsDuplicates)),
    ...each('WebSocket received, each client', (r) => fmtEach(r.perInstance.map((p) => p.wsReceived))),
    ...each('WebSocket duplicates, each client', (r) => fmtEach(r.perInstance.map((p) => p.wsDuplicates))),
    row('hot windows exact', (r) => `${r.hotWindowsExact}/${r.hotWindowsChecked}`),
    row('publish->WS ms p50/p99/max', (r) => lat(r.latencyWs)),
    row('  after its first second (steady)', (r) => (r.latencyWsSteady ? lat(r.latencyWsSteady) : '-')),
    row('publish->row write ms p50/p99/max', (r) => lat(r.latencyCommit)),
    row('last arrival after last publish (ms)', (r) => fmtNumber(r.completionLagMs, 0)),
    row('pipeline throughput (/s)', (r) => fmtNumber(r.throughput, 0)),
    row('drain after publishing (s)', (r) => `${fmtNumber(r.drainSeconds, 1)}${r.drained ? '' : ' (incomplete)'}`),
    row('peak RSS (200 ms samples)', (r) => fmtMB(r.peakRssSampled)),
    row('VmHWM', (r) => fmtMB(r.vmHwm) + (r.hwmReset ? '' : ' (lifetime)')),
    ...each('peak RSS, each instance', (r) => fmtEach(r.perInstance.map((p) => p.peakRssSampled), fmtMB)),
    ...each('VmHWM, each instance', (r) => fmtEach(r.perInstance.map((p) => p.vmHwm), fmtMB)),
    row(multi ? 'CPU s pipeline process(es)' : 'CPU s pipeline process', (r) => cpu(r.cpu.pipeline)),
    ...each('CPU s, each instance', (r) => fmtEach(r.perInstance.map((p) => p.cpu), cpu)),
    row('CPU s mosquitto', (r) => cpu(r.cpu.mosquitto)),
    row('CPU s postgres (all)', (r) => cpu(r.cpu.postgres)),
    row('CPU s redis', (r) => cpu(r.cpu.redis)),
    row('CPU s bench (publishers, ws)', (r) => cpu(r.cpu.bench)),
    row('wall s (publish + drain)', (r) => fmtNumber(r.cpu.wallSeconds, 1)),
    row('its event loop held ms p99/max', (r) => pauses(r, (x) => `${fmtMs(x.delayP99Ms)} / ${fmtMs(x.delayMaxMs)}`)),
    row('  GC pauses ms total/count/longest', (r) => pauses(r, (x) => `${fmtNumber(x.gcMs, 0)} / ${fmtNumber(x.gcCount)} / ${fmtMs(x.gcMaxMs)}`)),
    row('LOSSLESS', (r) => (r.lossless ? 'yes' : 'NO')),
    row(`kept up (lossless, done <= ${KEPT_UP_LAG_MS / 1000} s after)`, (r) => (r.keptUp ? 'yes' : 'no')),
  ];
  return `== ${fmtNumber(rate)} readings/s for ${byTarget[0]?.seconds ?? '?'} s ==\n${renderTable(rows)}`;
}

/** Under a table with several instances: what its figures mean for them. */
export function instancesNotes(byTarget: readonly RateResult[]): string[] {
  const multi = byTarget.filter((r) => (r.instances ?? 1) > 1);
  if (multi.length === 0) return [];
  return [
    `  ${multi.map((r) => r.target).join(', ')}: one group (HYPERVOLT_GROUP, MQTT 5 shared subscription), one database and Redis prefix, ` +
      'one WebSocket client per instance.',
    '  "WebSocket received" is the fewest any client got (each must get every reading once, through the Redis fan-out);',
    '  duplicates and latencies are over all clients; peak RSS is the peak of the summed RSS sampled together, VmHWM and CPU the sums.',
  ];
}

export function mismatchNotes(byTarget: readonly RateResult[]): string[] {
  const out: string[] = [];
  for (const r of byTarget) {
    if (r.hotWindowMismatch) out.push(`  ${r.target}: first hot window mismatch: ${r.hotWindowMismatch}`);
    if (r.publisherErrors.length) out.push(`  ${r.target}: publisher errors: ${r.publisherErrors.join('; ')}`);
    if (r.wsOther) out.push(`  ${r.target}: ${r.wsOther} WebSocket messages of other readings (an earlier run's backlog?)`);
  }
  return out;
}

/**
 * The app with one and with several instances at the same rates: each run's highest lossless and
 * kept-up rate, their ratio to the first run's, throughput and pipeline CPU at the highest rate
 * tried, and what this machine is (the instances share its cores with everything else).
 */
export function scaleOutLines(
  results: Record<string, RateResult[]>,
  runs: readonly { label: string; instances: number }[],
  cpus: number,
  load?: { start: readonly number[]; end: readonly number[] },
): { lines: string[]; comparison: ReturnType<typeof compareInstances> } {
  const present = runs.filter((r) => results[r.label]);
  const comparison = compareInstances(present.map((r) => ({ instances: r.instances, results: results[r.label] })));
  const x = (v: number | null) => (v === null ? 'n/a' : `${fmtNumber(v, 2)}x`);
  const inst = (n: number) => `${n} instance${n === 1 ? '' : 's'}`;
  const lines = [
    `scale out (the app, same rates in this run): ${comparison
      .map((c, i) => `${inst(c.instances)}: highest lossless ${fmtNumber(c.lossless)}/s${i > 0 ? ` (${x(c.losslessRatio)})` : ''}, ` +
        `kept up ${fmtNumber(c.keptUp)}/s${i > 0 ? ` (${x(c.keptUpRatio)})` : ''}`)
      .join('; ')}`,
  ];
  const top = Math.max(0, ...present.flatMap((r) => results[r.label].map((x) => x.rate)));
  const atTop = present.map((r) => ({ r, at: results[r.label].find((x) => x.rate === top) })).filter((v) => v.at);
  if (atTop.length > 0) {
    lines.push(
      `  at ${fmtNumber(top)}/s offered: ${atTop
        .map(({ r, at }) =>
          `${inst(r.instances)} ${fmtNumber(at!.throughput, 0)}/s through, pipeline CPU ${fmtNumber(at!.cpu.pipeline, 1)} s` +
            (at!.perInstance.length > 1 ? ` (${fmtEach(at!.perInstance.map((p) => p.cpu), (v) => fmtNumber(v, 1))})` : '') +
            ` in ${fmtNumber(at!.cpu.wallSeconds, 1)} s (${fmtNumber(at!.cpu.wallSeconds > 0 ? at!.cpu.pipeline / at!.cpu.wallSeconds : 0, 2)} cores)` +
            (at!.loadAvg1 !== undefined ? `, load ${fmtNumber(at!.loadAvg1, 2)}` : ''))
        .join('; ')}`,
    );
  }
  lines.push(
    `  note: this machine has ${cpus} CPU core${cpus === 1 ? '' : 's'}, shared by the instances and by the broker, Redis, PostgreSQL, the`,
    "  publishers and the bench's WebSocket clients (and whatever else runs here): a second instance adds a Node.js event loop, not",
    "  a core. What it can show here is whether one instance's main thread was the limit; the gain of instances on machines of",
    '  their own is not measured by this run. The runs are one after the other, so other work on the machine can differ between',
    `  them${load ? ` (1-min load average ${fmtNumber(load.start[0], 2)} at the start of the bench, ${fmtNumber(load.end[0], 2)} at the end)` : ''}.`,
  );
  return { lines, comparison };
}

export interface TargetCheck {
  name: string;
  pass: boolean | null;
  detail: string;
}

/** Each target's highest throughput at a lossless rate (highestThroughput) and app / naive. */
function throughputComparison(app: RateResult[], naive: RateResult[]) {
  const a = highestThroughput(app);
  const n = highestThroughput(naive);
  return { app: a, naive: n, ratio: ratio(a.throughput, n.throughput) };
}

/** Highest rates, by the brief's definition (lossless) and the stricter one (lossless and kept up). */
export function highestLines(results: Record<string, RateResult[]>): {
  lines: string[];
  app: number;
  naive: number;
  appKeptUp: number;
  naiveKeptUp: number;
} {
  const best = (rs: RateResult[] | undefined, keptUp: boolean) =>
    highestLossless((rs ?? []).map((r) => ({ rate: r.rate, lossless: keptUp ? r.keptUp : r.lossless })));
  const both = !!results.app && !!results.naive;
  const line = (label: string, a: number, n: number) => {
    const r = both ? ratio(a, n) : null;
    return `${label}: app ${results.app ? `${fmtNumber(a)}/s` : 'not run'}, naive ${results.naive ? `${fmtNumber(n)}/s` : 'not run'}, ratio ${
      r === null ? (both ? 'n/a (naive at no rate)' : 'n/a') : `${fmtNumber(r, 2)}x`
    }`;
  };
  const app = best(results.app, false);
  const naive = best(results.naive, false);
  const appKeptUp = best(results.app, true);
  const naiveKeptUp = best(results.naive, true);
  const most = throughputComparison(results.app ?? [], results.naive ?? []);
  const throughputLine = () => {
    const side = (name: string, rs: RateResult[] | undefined, m: { throughput: number; rate: number }) =>
      `${name} ${rs ? (m.rate ? `${fmtNumber(m.throughput, 0)}/s (at ${fmtNumber(m.rate)}/s offered)` : 'none lossless') : 'not run'}`;
    const r = both ? most.ratio : null;
    return `highest throughput at a lossless rate (readings stored and sent per second): ${side('app', results.app, most.app)}, ${side('naive', results.naive, most.naive)}, ratio ${
      r === null ? 'n/a' : `${fmtNumber(r, 2)}x`
    }`;
  };
  const lines = [
    line('highest lossless rate', app, naive),
    line(`highest lossless rate also kept up with (last reading <= ${KEPT_UP_LAG_MS / 1000} s after the last publish)`, appKeptUp, naiveKeptUp),
    throughputLine(),
    '  (lossless: lost = 0, duplicates = 0, WebSocket received = sent, after a drain of at most --drain-max s; a rate counts',
    '   only when every lower rate passed too; capacity lies between it and the next rate tried. "Kept up" excludes a rate',
    '   that was only lossless because the broker queued the excess and the drain wait let the pipeline catch up.)',
  ];
  return { lines, app, naive, appKeptUp, naiveKeptUp };
}

export function targetChecks(results: Record<string, RateResult[]>, rest: HttpLoadResult[] | null): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const app = results.app ?? [];
  const naive = results.naive ?? [];
  const best = highestLossless(app);
  const bestNaive = highestLossless(naive);
  if (app.length) {
    checks.push({ name: 'app lossless >= 15 000/s', pass: best >= 15_000, detail: `${fmtNumber(best)}/s (rates tried: ${app.map((r) => r.rate).join(', ')})` });
    const kept = highestLossless(app.map((r) => ({ rate: r.rate, lossless: r.keptUp })));
    checks.push({ name: 'app lossless and kept up >= 15 000/s', pass: kept >= 15_000, detail: `${fmtNumber(kept)}/s` });
    if (naive.length) {
      const r = ratio(best, bestNaive);
      checks.push({
        name: 'app >= 5x naive',
        pass: r === null ? best > 0 : r >= 5,
        detail: r === null ? `naive lossless at no rate tried; app ${fmtNumber(best)}/s` : `${fmtNumber(r, 2)}x`,
      });
      const t = throughputComparison(app, naive);
      checks.push({
        name: '(info) app vs naive by highest throughput',
        pass: null,
        detail: `${fmtNumber(t.app.throughput, 0)}/s vs ${fmtNumber(t.naive.throughput, 0)}/s${t.ratio === null ? '' : `: ${fmtNumber(t.ratio, 2)}x`}`,
      });
      const keptNaive = highestLossless(naive.map((x) => ({ rate: x.rate, lossless: x.keptUp })));
      const rk = ratio(kept, keptNaive);
      checks.push({
        name: 'app >= 5x naive (both kept up)',
        pass: rk === null ? kept > 0 : rk >= 5,
        detail: rk === null ? `naive kept up at no rate tried; app ${fmtNumber(kept)}/s` : `${fmtNumber(rk, 2)}x`,
      });
    }
    const at = (rate: number) => app.find((r) => r.rate === rate);
    const steady = (r: RateResult) => (r.latencyWsSteady ? ` (after its first second ${fmtMs(r.latencyWsSteady.p99)} ms)` : '');
    const r1k = at(1000);
    checks.push(
      r1k
        ? { name: 'p99 publish->WS at 1 000/s < 10 ms', pass: r1k.latencyWs.p99 < 10, detail: `${fmtMs(r1k.latencyWs.p99)} ms${steady(r1k)}` }
        : { name: 'p99 publish->WS at 1 000/s < 10 ms', pass: null, detail: 'rate not run' },
    );
    const r10k = at(10_000);
    checks.push(
      r10k
        ? { name: 'p99 publish->WS at 10 000/s < 50 ms', pass: r10k.latencyWs.p99 < 50, detail: `${fmtMs(r10k.latencyWs.p99)} ms${steady(r10k)}` }
        : { name: 'p99 publish->WS at 10 000/s < 50 ms', pass: null, detail: 'rate not run' },
    );
    // The floor (bench/floor-pipeline.ts): the same writes without the pipeline; what the machine allows.
    for (const rate of [1000, 10_000]) {
      const f = (results.floor ?? []).find((r) => r.rate === rate);
      if (f) {
        checks.push({
          name: `(info) floor p99 publish->WS at ${fmtNumber(rate)}/s`,
          pass: null,
          detail: `${fmtMs(f.latencyWs.p99)} ms${steady(f)}, CPU ${cpu(f.cpu.pipeline)} s (app ${at(rate) ? `${cpu(at(rate)!.cpu.pipeline)} s` : 'not run'})`,
        });
      }
    }
    const atBest = at(best);
    if (atBest) {
      const peak = Math.max(atBest.peakRssSampled, atBest.vmHwm);
      checks.push({ name: 'peak memory at highest lossless rate < 250 MB', pass: peak < 250e6, detail: `${fmtMB(peak)} at ${fmtNumber(best)}/s` });
    } else {
      checks.push({ name: 'peak memory at highest lossless rate < 250 MB', pass: null, detail: 'no lossless rate' });
    }
    const peakAll = Math.max(...app.map((r) => Math.max(r.peakRssSampled, r.vmHwm)));
    checks.push({ name: '(info) peak memory of the app over all rates', pass: null, detail: fmtMB(peakAll) });
  }
  if (rest) {
    for (const r of rest) {
      const failed = Object.values(r.failures).reduce((s, n) => s + n, 0);
      checks.push({
        name: `REST ${r.name} p99 < 20 ms`,
        pass: r.latency.p99 < 20 && failed === 0,
        detail: `${fmtMs(r.latency.p99)} ms${failed ? `, ${failed} failed requests` : ''}`,
      });
    }
  }
  return checks;
}

export function checksText(checks: readonly TargetCheck[]): string {
  return renderTable([
    ['target (issue 6)', 'result', 'measured'],
    ...checks.map((c) => [c.name, c.pass === null ? '-' : c.pass ? 'PASS' : 'MISS', c.detail]),
  ]);
}

export function restText(seed: SeedResult, rest: readonly HttpLoadResult[]): string {
  const head = `== REST reads with ${fmtNumber(seed.rows)} readings stored (${seed.sensors} sensors, one every ${fmtNumber(seed.intervalMs / 1000, 1)} s each; seeded in ${fmtNumber(seed.seconds, 1)} s), ${rest[0]?.connections ?? 10} keep-alive connections ==`;
  const rows = [
    ['endpoint', 'requests', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'non-200', 'body bytes', 'CPU ms/req app / PG / client', 'app loop held ms p99/max'],
    ...rest.map((r) => [
      `${r.name} ${r.path}`,
      fmtNumber(r.requests),
      fmtNumber(r.rps, 0),
      fmtMs(r.latency.p50),
      fmtMs(r.latency.p99),
      fmtMs(r.latency.max),
      fmtNumber(Object.values(r.failures).reduce((s, n) => s + n, 0)),
      fmtNumber(r.bodyBytes),
      r.server ? [r.server.appCpuMs, r.server.pgCpuMs, r.clientCpuMs].map((ms) => fmtNumber(ms, 2)).join(' / ') : '-',
      r.server?.pauses ? `${fmtMs(r.server.pauses.delayP99Ms)} / ${fmtMs(r.server.pauses.delayMaxMs)}` : '-',
    ]),
  ];
  return `${head}\n${renderTable(rows)}\n  (CPU: of the app's process, of PostgreSQL's processes and of the client's thread, per request, on the same cores)`;
}

export function profileText(p: ProfileSummary): string {
  const groups = renderTable([
    ['self time by module', 'ms', '% of busy'],
    ...p.groups.map((g) => [g.group, fmtNumber(g.ms, 0), fmtNumber(g.pctBusy, 1)]),
  ]);
  const top = renderTable([
    ['top self-time functions', 'where', 'group', 'ms', '%'],
    ...p.top.map((t) => [t.fn, t.where, t.group, fmtNumber(t.ms, 0), fmtNumber(t.pctBusy, 1)]),
  ]);
  const inc = renderTable([
    ['inclusive time (function and its callees)', 'ms', '% of busy'],
    ...p.inclusive.map((t) => [t.fn, fmtNumber(t.ms, 0), fmtNumber(t.pctBusy, 1)]),
  ]);
  const writes = renderTable([
    ['socket writes (write syscalls) asked for by', 'ms', '% of busy'],
    ...p.socketWrites.map((w) => [w.group, fmtNumber(w.ms, 0), fmtNumber(w.pctBusy, 1)]),
  ]);
  return [
    `== CPU profile of the app (${p.file}) ==`,
    `profiled from the first publish to the end of the drain (1 ms sampling): ${fmtNumber(p.totalMs, 0)} ms sampled, ` +
      `${fmtNumber(p.busyMs, 0)} ms busy (${fmtNumber(p.totalMs > 0 ? (100 * p.busyMs) / p.totalMs : 0, 1)} % of the main thread); ` +
      'GC is V8 garbage collection caused by allocations anywhere',
    groups,
    '',
    top,
    '',
    inc,
    '',
    writes,
  ].join('\n');
}
