/**
 * `npm run bench`: throughput and latency of the HyperVolt app against the naive reference flow
 * (issue 6), on this machine's PostgreSQL and Redis and a Mosquitto of the bench's own.
 *
 * For each target (app, naive) in turn: a fresh database, a Redis key prefix and a topic prefix
 * of its own; start it, warm it up, then for each rate publish for N seconds, drain, measure,
 * and clear the data (restarting the target when it did not drain, so a backlog never leaks into
 * the next rate). Then the REST read check on the app with many readings stored. Prints a table
 * per rate and the targets, and saves everything as JSON under bench-results/.
 *
 * `--instances 1,2`: the app is run once per instance count, as a target of its own (`app`,
 * `app x2`): N instances in one group (HYPERVOLT_GROUP) sharing the database and the Redis prefix,
 * a WebSocket client on each (each must get every reading once, through the Redis fan-out),
 * memory and CPU summed over the instances and shown for each; then a comparison line.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import { startBroker, type Broker } from './broker';
import { installSignalHandlers, onCleanup, runCleanups } from './cleanup';
import { monoMs, startLoad, wallOffsetMs, WsCollector } from './load';
import { LOAD_TYPE, pausesBetween, runRate, scrapeHealth, type RateContext, type RateResult } from './measure';
import { HELP, parseOptions, type BenchOptions } from './options';
import { cpuDelta, cpuSnapshot, pidsByComm } from './procstat';
import { summarizeProfile, type ProfileSummary } from './profile';
import { httpLoad, seedReadings, type HttpLoadResult, type SeedResult } from './rest';
import {
  checksText,
  highestLines,
  instancesNotes,
  mismatchNotes,
  profileText,
  rateTable,
  restText,
  scaleOutLines,
  targetChecks,
} from './report';
import { createBenchDatabase, openBenchRedis, REDIS_DB, RUN_ID, type BenchDatabase, type BenchRedis } from './services';
import { fmtNumber, instancesLabel } from './stats';
import { ROOT, startTarget, type RunningTarget, type TargetName } from './targets';

const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TargetState {
  name: TargetName;
  /** `app`, `naive`, or `app x2` for two instances (the key of its results). */
  label: string;
  instances: number;
  db: BenchDatabase;
  redisPrefix: string;
  topicPrefix: string;
  /** The running processes: one, or the instances of the group. Empty when stopped. */
  targets: RunningTarget[];
  /** One WebSocket client per instance. */
  wss: WsCollector[];
}

interface Env {
  opts: BenchOptions;
  broker: Broker;
  redis: BenchRedis;
  tmpDir: string;
  profDir: string | null;
  wallOffset: number;
  /** Printed after the tables: what went wrong outside the measured rates (e.g. a warm-up). */
  notes: string[];
}

/** SIGUSR2 to the app when its profiling hook is loaded (else the signal would end it). */
function toggleProfiler(env: Env, s: TargetState): void {
  const target = s.targets[0];
  if (!env.profDir || s.name !== 'app' || s.instances !== 1 || !target) return;
  if (!fs.existsSync(path.join(env.profDir, `ready-${target.pid}`))) {
    log('  the profiling hook is not loaded in the app: no profile');
    return;
  }
  process.kill(target.pid, 'SIGUSR2');
}

function context(env: Env, s: TargetState): RateContext {
  return {
    onLoadStart: () => toggleProfiler(env, s),
    onDrained: () => toggleProfiler(env, s),
    broker: env.broker,
    label: s.label,
    targets: s.targets,
    pool: s.db.pool,
    redis: env.redis.client,
    redisPrefix: s.redisPrefix,
    wss: s.wss,
    topicPrefix: s.topicPrefix,
    sensors: env.opts.sensors,
    publishers: env.opts.publishers,
    windowSize: env.opts.windowSize,
    drainMaxSeconds: env.opts.drainMaxSeconds,
    wallOffset: env.wallOffset,
    clientIdBase: `hvbench-${RUN_ID}-load`,
    log,
  };
}

/**
 * Publishes `rate` × `seconds` readings of sensors `{prefix}s{n}` and waits (at most `maxWaitS`)
 * until the WebSocket (every instance's client) has seen every one: proves the target's flow runs
 * end to end.
 */
async function publishAndAwait(env: Env, s: TargetState, prefix: string, rate: number, seconds: number, maxWaitS: number): Promise<boolean> {
  const wss = s.wss;
  const received = () => Math.min(...wss.map((w) => w.received));
  const load = await startLoad(
    {
      url: env.broker.url,
      topicPrefix: s.topicPrefix,
      sensorPrefix: prefix,
      sensors: env.opts.sensors,
      publishers: Math.min(2, env.opts.publishers),
      rate,
      seconds,
      location: 'bench',
      sensorType: LOAD_TYPE,
      unit: 'W',
      clientIdBase: `hvbench-${RUN_ID}-${prefix}`,
    },
    (times) => {
      for (const ws of wss) ws.track(prefix, times);
    },
  );
  const res = await load.done;
  const deadline = monoMs() + maxWaitS * 1000;
  while (received() < res.sent && monoMs() < deadline) await sleep(100);
  return received() >= res.sent;
}

/**
 * The readings of a rate (rows, hot windows). A running group's membership, adoption locks and
 * schedule leadership are kept: deleting a live member's records would make it look dead.
 */
async function clearData(env: Env, s: TargetState): Promise<void> {
  await s.db.clear();
  const group = ['members:', 'adopt:', 'leader:'].map((k) => s.redisPrefix + k);
  await env.redis.deletePrefix(s.redisPrefix, (key) => group.some((g) => key.startsWith(g)));
}

let groups = 0;

/** Until every instance reports its MQTT subscription up (GET /api/health/), at most `ms`. */
async function awaitMqttUp(targets: readonly RunningTarget[], ms: number): Promise<void> {
  const deadline = monoMs() + ms;
  for (const t of targets) {
    for (;;) {
      try {
        const r = await fetch(`${t.httpUrl}/api/health/`, { signal: AbortSignal.timeout(2000) });
        const body = (await r.json()) as { mqtt?: string };
        if (body.mqtt === 'up') break;
      } catch {
        // not yet
      }
      if (monoMs() > deadline) throw new Error(`instance pid ${t.pid}: MQTT not up within ${ms / 1000} s\nlogs:\n${t.logs().slice(-4000)}`);
      await sleep(250);
    }
  }
}

async function startWarm(env: Env, s: TargetState): Promise<void> {
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: preload a hook that profiles between two SIGUSR2.
  const hook = path.join(__dirname, 'cpu-prof-hook.js');
  const appOptions = s.name === 'app' ? env.opts.appNodeOptions ?? '' : '';
  const extraEnv: Record<string, string> | undefined =
    env.profDir && s.name === 'app'
      ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${appOptions} --require "${hook}"`.trim(), HVB_CPU_PROF_DIR: env.profDir }
      : appOptions
        ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${appOptions}`.trim() }
        : undefined;
  // Several instances: one group per start, so a new group never meets the members of an old one.
  const group = s.instances > 1 ? `hvbench-${RUN_ID}-${s.label.replace(/[^A-Za-z0-9]/g, '_')}-${++groups}` : undefined;
  log(`starting ${s.label}${group ? ` (${s.instances} instances, HYPERVOLT_GROUP ${group})` : ''}`);
  const started = await Promise.allSettled(
    Array.from({ length: s.instances }, () =>
      startTarget({
        name: s.name,
        broker: env.broker,
        runId: RUN_ID,
        tmpDir: env.tmpDir,
        databaseUrl: s.db.url,
        redisUrl: env.redis.url,
        redisPrefix: s.redisPrefix,
        topicPrefix: s.topicPrefix,
        windowSize: env.opts.windowSize,
        extraEnv,
        group,
      }),
    ),
  );
  s.targets = started.filter((r): r is PromiseFulfilledResult<RunningTarget> => r.status === 'fulfilled').map((r) => r.value);
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopTarget(s);
    throw failed.reason;
  }
  if (s.instances > 1) await awaitMqttUp(s.targets, 30_000);
  s.wss = s.targets.map((t) => new WsCollector(t.wsUrl));
  for (const ws of s.wss) await ws.connect(30_000);
  // Warm-up: 2 000 readings at 1 000/s through the whole flow (subscription live, JIT warm).
  // A batch incomplete right after the start is reported and tried once more; twice fails the run.
  for (const prefix of ['warm_', 'warm2_']) {
    const ok = await publishAndAwait(env, s, prefix, 1000, 2, prefix === 'warm_' ? 15 : 30);
    if (ok) break;
    const seen = s.wss.map((w) => w.received).join(' / ');
    const r = await s.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM sensor_readings WHERE starts_with(sensor_id, $1)', [prefix]);
    const what = `${s.label}: warm-up batch "${prefix}" right after the start: 2 000 sent, ${r.rows[0].n} stored, WebSocket ${seen}`;
    if (prefix !== 'warm_') {
      throw new Error(`${what}: the flow does not run end to end.\n${s.targets.map((t) => `logs of pid ${t.pid}:\n${t.logs().slice(-4000)}`).join('\n')}`);
    }
    env.notes.push(what);
    log(`  ${what}: trying another batch`);
  }
  await clearData(env, s);
  log(`${s.label} is up (pid ${s.targets.map((t) => t.pid).join(', ')}) and warmed up`);
}

async function stopTarget(s: TargetState): Promise<void> {
  for (const ws of s.wss) ws.close();
  s.wss = [];
  const targets = s.targets;
  s.targets = [];
  await Promise.all(targets.map((t) => t.stop()));
}

async function restCheck(env: Env, s: TargetState): Promise<{ seed: SeedResult; results: HttpLoadResult[] }> {
  const { opts } = env;
  log(`REST check: seeding ${fmtNumber(opts.restRows)} readings with generate_series`);
  const seed = await seedReadings(s.db.pool, opts.restRows, opts.sensors, log);
  log(`  seeded ${fmtNumber(seed.rows)} rows in ${seed.seconds.toFixed(1)} s`);
  if (s.instances > 1) log(`  (on ${s.label}: the REST requests go to its first instance)`);
  // Fill the hot windows (window size readings per sensor) through MQTT, as a Pi would.
  const perSecond = Math.min(5000, opts.sensors * opts.windowSize);
  const ok = await publishAndAwait(env, s, 'hot_', perSecond, (opts.sensors * opts.windowSize) / perSecond, 60);
  if (!ok) log('  warning: not every hot-window reading reached the WebSocket');
  const base = s.targets[0].httpUrl;
  let i = 0;
  const endpoints: [string, () => string, string?][] = [
    ['latest', () => '/api/sensor-readings/latest/'],
    [
      'buffer',
      () => `/api/sensor-readings/buffer/?sensor_type=${LOAD_TYPE}&sensor_id=hot_s${i++ % opts.sensors}`,
      `/api/sensor-readings/buffer/?sensor_type=${LOAD_TYPE}&sensor_id=hot_s{0..${opts.sensors - 1}}`,
    ],
    ['filtered first page', () => '/api/sensor-readings/?sensor_type=ldr&page=1'],
    ['recent 1 h', () => '/api/sensor-readings/recent/?hours=1'],
  ];
  const results: HttpLoadResult[] = [];
  const served = s.targets[0];
  const pgCpu = () => cpuSnapshot(pidsByComm('postgres'));
  for (const [name, next, shown] of endpoints) {
    log(`  ${name}: ${opts.restConnections} connections for ${opts.restSeconds} s`);
    // The serving side over the same run: where a slow tail comes from (the app's own loop, its
    // CPU per answer, PostgreSQL's) on cores that the client shares.
    const [health0] = await scrapeHealth([served]);
    const app0 = cpuSnapshot([served.pid]);
    const pg0 = pgCpu();
    const r = await httpLoad(name, base, next, opts.restSeconds, opts.restConnections, shown);
    const perRequest = (seconds: number) => (r.requests > 0 ? (seconds * 1000) / r.requests : NaN);
    const appCpu = perRequest(cpuDelta(app0, cpuSnapshot([served.pid])));
    const pgCpuMs = perRequest(cpuDelta(pg0, pgCpu()));
    const [health1] = await scrapeHealth([served]);
    r.server = { appCpuMs: appCpu, pgCpuMs, pauses: pausesBetween(health0, health1) };
    results.push(r);
  }
  return { seed, results };
}

function machineInfo() {
  return {
    host: os.hostname(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    memoryMB: Math.round(os.totalmem() / 1e6),
    loadavg: os.loadavg(),
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
  };
}

async function main(): Promise<number> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const opts = parsed;
  installSignalHandlers();
  if (process.platform !== 'linux') throw new Error('the bench reads /proc: it runs on Linux only');

  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-bench-'));
  onCleanup(`temp dir ${tmpDir}`, () => fs.rmSync(tmpDir, { recursive: true, force: true }));
  const resultsDir = path.join(ROOT, 'bench-results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const profDir = opts.profile ? path.join(tmpDir, 'cpu-prof') : null;
  if (profDir) fs.mkdirSync(profDir);

  const machine = machineInfo();
  log(
    `HyperVolt bench ${RUN_ID}: rates ${opts.rates.join(', ')} readings/s × ${opts.seconds} s, targets ${opts.targets.join(', ')}, ` +
      `${opts.instances.length > 1 || opts.instances[0] !== 1 ? `app with ${opts.instances.join(', ')} instance(s), ` : ''}` +
      `${opts.sensors} sensors, ${opts.publishers} publishers, QoS 1; ${machine.cpus} CPUs, load ${machine.loadavg.map((l) => l.toFixed(2)).join(' ')}` +
      `${opts.appNodeOptions ? `; app NODE_OPTIONS "${opts.appNodeOptions}"` : ''}`,
  );
  const broker = await startBroker(tmpDir, { maxInflight: opts.maxInflight });
  log(`bench broker: mosquitto pid ${broker.pid} on ${broker.url} (max_queued_messages 0 = unlimited, max_inflight_messages ${opts.maxInflight})`);
  const redis = await openBenchRedis(`hvbench:${RUN_ID}:`);
  const env: Env = { opts, broker, redis, tmpDir, profDir, wallOffset: wallOffsetMs(), notes: [] };

  const results: Record<string, RateResult[]> = {};
  const profileRuns: { rate: number; file: string }[] = [];
  let rest: { seed: SeedResult; results: HttpLoadResult[] } | null = null;

  // The app once per instance count (`app`, `app x2`, ...), then the naive flow.
  type Run = { name: TargetName; instances: number };
  const runs = opts.targets.flatMap((name): Run[] =>
    name === 'app' ? opts.instances.map((instances) => ({ name, instances })) : [{ name, instances: 1 }],
  );
  const labels = runs.map((r) => instancesLabel(r.name, r.instances));
  for (const { name, instances } of runs) {
    const label = instancesLabel(name, instances);
    const key = label.replace(/[^A-Za-z0-9]+/g, '_');
    // The REST check runs once, on the first app run (one instance unless --instances says otherwise).
    const restHere = name === 'app' && instances === opts.instances[0] && opts.restRows > 0;
    log(`--- target ${label} ---`);
    const s: TargetState = {
      name,
      label,
      instances,
      db: await createBenchDatabase(key),
      redisPrefix: `hvbench:${RUN_ID}:${key}:`,
      topicPrefix: `hvbench_${RUN_ID}_${key}`,
      targets: [],
      wss: [],
    };
    results[label] = [];
    try {
      await startWarm(env, s);
      for (const rate of opts.rates) {
        log(`${label}: ${fmtNumber(rate)} readings/s for ${opts.seconds} s`);
        const profiles = () => (env.profDir ? fs.readdirSync(env.profDir).filter((f) => f.endsWith('.cpuprofile')) : []);
        const before = new Set(profiles());
        const r = await runRate(context(env, s), rate, opts.seconds, `r${rate}_`);
        if (env.profDir && name === 'app' && instances === 1) {
          let fresh: string[] = [];
          for (let i = 0; i < 300 && fresh.length === 0; i++) {
            fresh = profiles().filter((f) => !before.has(f));
            if (fresh.length === 0) await sleep(100);
          }
          if (fresh.length === 0) log('  no CPU profile appeared within 30 s');
          else profileRuns.push({ rate, file: path.join(env.profDir, fresh[0]) });
        }
        results[label].push(r);
        const split = r.perInstance.length > 1 ? ` (instances took ${r.perInstance.map((p) => fmtNumber(p.accepted)).join(' / ')})` : '';
        log(
          `  sent ${fmtNumber(r.sent)}${split}, stored ${fmtNumber(r.stored)}, ws ${fmtNumber(r.wsReceived)} (dup ${r.wsDuplicates}), ` +
            `p99 ws ${r.latencyWs.p99.toFixed(1)} ms, done ${r.completionLagMs.toFixed(0)} ms after the last publish, ` +
            `${r.lossless ? 'lossless' : 'NOT lossless'}${r.keptUp ? ', kept up' : ''}`,
        );
        log(`  highest publish->WS ms per 250 ms of sending: ${r.latencyWsSliceMax.map((v) => v.toFixed(0)).join(' ')}`);
        if (!r.drained || r.wsClosed) {
          log(`  ${label} did not drain: restarting it so the backlog does not reach the next rate`);
          await stopTarget(s);
          await clearData(env, s);
          if (rate !== opts.rates[opts.rates.length - 1] || restHere) await startWarm(env, s);
        } else {
          await clearData(env, s);
        }
      }
      if (restHere) {
        if (s.targets.length === 0) await startWarm(env, s);
        rest = await restCheck(env, s);
      }
    } finally {
      await stopTarget(s);
      await s.db.drop();
    }
  }

  // One profile per rate, each from the first publish to the end of the drain; kept in bench-results/.
  const profiles: (ProfileSummary & { rate: number })[] = [];
  for (const { rate, file } of profileRuns) {
    const kept = path.join(resultsDir, `app-${stamp}-${rate}.cpuprofile`);
    fs.copyFileSync(file, kept);
    const heap = file.replace(/\.cpuprofile$/, '.heapprofile');
    if (fs.existsSync(heap)) fs.copyFileSync(heap, kept.replace(/\.cpuprofile$/, '.heapprofile'));
    profiles.push({ ...summarizeProfile(kept), file: path.relative(ROOT, kept), rate });
  }

  // ---- output ----
  const out: string[] = [];
  out.push('');
  out.push(
    `HyperVolt bench ${new Date().toISOString()} — ${machine.cpus} CPUs (${machine.cpuModel}), ${fmtNumber(machine.memoryMB)} MB, ${machine.node}; ` +
      `${opts.sensors} sensors, ${opts.publishers} mqtt.js publishers, QoS 1, Mosquitto 127.0.0.1:${broker.port} (bench's own), ` +
      `PostgreSQL + Redis db ${REDIS_DB} of this machine`,
  );
  out.push(
    'Latency: publish->WS uses each reading\'s send time recorded by the publisher (monotonic clock, same process) and the bench\'s ' +
      'WebSocket receive time; publish->row write uses created_at = clock_timestamp() (set as the column default in the bench ' +
      'databases), i.e. when the row was written by its INSERT, just before that batch commits.',
  );
  for (const rate of opts.rates) {
    const byTarget = labels.map((t) => results[t]?.find((r) => r.rate === rate)).filter((r): r is RateResult => !!r);
    if (byTarget.length === 0) continue;
    out.push('');
    out.push(rateTable(rate, byTarget));
    out.push(...instancesNotes(byTarget));
    out.push(...mismatchNotes(byTarget));
  }
  const dropped = Object.values(results).flat().reduce((s, r) => s + r.brokerDropped, 0);
  out.push('');
  out.push(
    dropped === 0
      ? 'broker: dropped nothing ($SYS/broker/publish/messages/dropped unchanged over every rate)'
      : `broker: DROPPED ${fmtNumber(dropped)} messages ($SYS/broker/publish/messages/dropped) — losses may be the broker's, not the pipeline's`,
  );
  const hl = highestLines(results);
  out.push('', ...hl.lines);
  const appRuns = opts.targets.includes('app') ? opts.instances.map((n) => ({ label: instancesLabel('app', n), instances: n })) : [];
  const scaleOut = appRuns.length > 1 || appRuns.some((r) => r.instances > 1) ? scaleOutLines(results, appRuns, machine.cpus, { start: machine.loadavg, end: os.loadavg() }) : null;
  if (scaleOut) out.push('', ...scaleOut.lines);
  if (env.notes.length) out.push('', 'outside the measured rates:', ...env.notes.map((n) => `  ${n}`));
  if (rest) out.push('', restText(rest.seed, rest.results));
  out.push('', checksText(targetChecks(results, rest?.results ?? null)));
  for (const p of profiles) out.push('', `-- at ${fmtNumber(p.rate)} readings/s --`, profileText(p));
  out.push('');
  process.stdout.write(out.join('\n'));

  const file = opts.out ? path.resolve(opts.out) : path.join(resultsDir, `bench-${opts.quick ? 'quick-' : opts.profile ? 'profile-' : ''}${stamp}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    JSON.stringify(
      {
        runId: RUN_ID,
        at: new Date().toISOString(),
        machine,
        options: opts,
        broker: { port: broker.port, maxInflight: opts.maxInflight, droppedTotal: dropped },
        results,
        highestLossless: { app: hl.app, naive: hl.naive, appKeptUp: hl.appKeptUp, naiveKeptUp: hl.naiveKeptUp },
        ...(scaleOut ? { scaleOut: scaleOut.comparison } : {}),
        ...(env.notes.length ? { notes: env.notes } : {}),
        rest,
        checks: targetChecks(results, rest?.results ?? null),
        profiles,
      },
      null,
      2,
    ),
  );
  process.stdout.write(`results saved to ${path.relative(process.cwd(), file)}\n`);
  return 0;
}

main()
  .then(async (code) => {
    await runCleanups();
    process.exit(code);
  })
  .catch(async (err) => {
    process.stderr.write(`[bench] failed: ${(err as Error).stack ?? err}\n`);
    await runCleanups();
    process.exit(1);
  });
