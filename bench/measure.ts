/**
 * One rate against one target: publish, drain, then count and check everything the issue asks
 * for (sent, PUBACKed, stored, hot windows, WebSocket, lost, duplicated, latencies, memory, CPU).
 */
import type Redis from 'ioredis';
import os from 'os';
import type { Pool } from 'pg';
import type { Broker } from './broker';
import { monoMs, startLoad, type WsCollector } from './load';
import { cpuDelta, cpuSnapshot, GroupRssSampler, memoryOf, pidsByComm, resetPeakMemory } from './procstat';
import { concatSamples, promValue, summarize, type Summary } from './stats';
import type { RunningTarget } from './targets';

export const LOAD_LOCATION = 'bench';
export const LOAD_TYPE = 'power';
export const LOAD_UNIT = 'W';
/** A lossless rate "kept up" when its last reading arrived at most this long after the last publish. */
export const KEPT_UP_LAG_MS = 1000;

export interface RateContext {
  broker: Broker;
  /** The target's label in the results (`app`, `app x2`, `naive`). */
  label: string;
  /** The target's processes: one, or the instances of one group (the broker splits the readings). */
  targets: RunningTarget[];
  pool: Pool;
  redis: Redis;
  /** The target's Redis key prefix (the naive flow's lists are `{prefix}window:{type}:{id}`). */
  redisPrefix: string;
  /** One WebSocket client per instance: each must receive every reading, once. */
  wss: WsCollector[];
  topicPrefix: string;
  sensors: number;
  publishers: number;
  windowSize: number;
  drainMaxSeconds: number;
  /** wall-clock ms = monotonic ms + wallOffset */
  wallOffset: number;
  clientIdBase: string;
  log: (m: string) => void;
  /** Called when the publishers are connected, just before the first reading (profiling). */
  onLoadStart?: () => void;
  /** Called when the drain is over, before the counting queries (profiling). */
  onDrained?: () => void;
}

/**
 * How long an instance's own event loop was held over a rate (publish and drain), from its
 * `/metrics` (nodes/shared/process-health.ts): tells a pause of the pipeline from waiting for a
 * core. Null for a target without them (the naive flow, the floor).
 */
export interface PauseFigures {
  /** Event-loop delay beyond the timer's interval: 99th percentile and longest. */
  delayP99Ms: number;
  delayMaxMs: number;
  /** Garbage-collector pauses: their total, number and the longest. */
  gcMs: number;
  gcCount: number;
  gcMaxMs: number;
}

/** What one instance of a target did and used over a rate. */
export interface InstanceResult {
  pid: number;
  /** Readings it accepted (`hypervolt_readings_accepted_total` before → after); null if not read. */
  accepted: number | null;
  /** Its WebSocket client. */
  wsReceived: number;
  wsDuplicates: number;
  wsClosed: boolean;
  peakRssSampled: number;
  vmHwm: number;
  cpu: number;
  /** Absent in results saved before it was measured. */
  pauses?: PauseFigures | null;
}

export interface RateResult {
  target: string;
  /** Instances of the target (1: the single process; more: one group, readings split by the broker). */
  instances: number;
  /** One entry per instance (the figures above are their sum, or for the WebSocket the worst client). */
  perInstance: InstanceResult[];
  rate: number;
  seconds: number;
  sent: number;
  acked: number;
  ackErrors: number;
  publisherErrors: string[];
  /** Readings per second actually achieved by the publishers (first to last publish). */
  achievedRate: number;
  publisherMaxBehindMs: number;
  brokerDropped: number;
  /** Change of `$SYS/broker/store/messages/count` over the rate: messages still held for a subscriber. */
  brokerQueuedAfter: number;
  stored: number;
  storedAtLoadEnd: number;
  wsReceived: number;
  wsAtLoadEnd: number;
  wsDuplicates: number;
  wsOther: number;
  wsClosed: boolean;
  lost: number;
  hotWindowsExact: number;
  hotWindowsChecked: number;
  hotWindowMismatch: string | null;
  latencyWs: Summary;
  /** The same for the readings sent after the first second of the rate (STEADY_AFTER_MS). */
  latencyWsSteady: Summary;
  /** Highest publish->WS latency (ms) of the readings sent in each 250 ms slice of the load, over the clients. */
  latencyWsSliceMax: number[];
  latencyCommit: Summary;
  /**
   * Milliseconds from the last publish to the last reading stored or broadcast (whichever is
   * later): how far behind the offered rate the pipeline finished.
   */
  completionLagMs: number;
  /** Readings per second through the whole pipeline: min(stored, WS) over first publish → last arrival. */
  throughput: number;
  /** Lossless, and finished within KEPT_UP_LAG_MS of the last publish: it kept up with the rate. */
  keptUp: boolean;
  /** Seconds from the last publish until stored and WebSocket counts were complete (or stopped growing). */
  drainSeconds: number;
  drained: boolean;
  peakRssSampled: number;
  vmHwm: number;
  hwmReset: boolean;
  cpu: { pipeline: number; mosquitto: number; postgres: number; redis: number; bench: number; wallSeconds: number };
  /** The machine's 1-minute load average after the drain (other work on it moves every figure). */
  loadAvg1?: number;
  lossless: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function countStored(pool: Pool, prefix: string): Promise<number> {
  const r = await pool.query<{ n: string }>(
    'SELECT count(*) AS n FROM sensor_readings WHERE sensor_type = $1 AND starts_with(sensor_id, $2)',
    [LOAD_TYPE, prefix],
  );
  return Number(r.rows[0].n);
}

/** Reads each instance's /metrics text with `read` (null where it did not answer 200). */
async function scrapeMetrics<T>(targets: readonly RunningTarget[], read: (text: string) => T | null): Promise<(T | null)[]> {
  return Promise.all(
    targets.map(async (t) => {
      try {
        const res = await fetch(`${t.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
        const text = await res.text();
        return res.status === 200 ? read(text) : null;
      } catch {
        return null;
      }
    }),
  );
}

/** Each instance's `hypervolt_readings_accepted_total` (null where /metrics did not answer). */
function acceptedCounts(targets: readonly RunningTarget[]): Promise<(number | null)[]> {
  return scrapeMetrics(targets, (text) => promValue(text, 'hypervolt_readings_accepted_total') ?? 0);
}

export interface HealthScrape {
  delayP99: number | null;
  delayMax: number | null;
  gcSeconds: number;
  gcCount: number;
  gcMax: number;
}

/** The process-health figures of each instance's /metrics (this scrape starts their since-scrape window). */
export function scrapeHealth(targets: readonly RunningTarget[]): Promise<(HealthScrape | null)[]> {
  return scrapeMetrics(targets, (text) => {
    const gcMax = promValue(text, 'nodejs_gc_pause_max_seconds');
    if (gcMax === null) return null; // a target without them (the naive flow, the floor)
    return {
      delayP99: promValue(text, 'nodejs_eventloop_delay_p99_seconds'),
      delayMax: promValue(text, 'nodejs_eventloop_delay_max_seconds'),
      gcSeconds: promValue(text, 'nodejs_gc_duration_seconds_sum') ?? 0,
      gcCount: promValue(text, 'nodejs_gc_duration_seconds_count') ?? 0,
      gcMax,
    };
  });
}

/** An instance's pauses between two scrapes (null where either is missing). */
export function pausesBetween(before: HealthScrape | null, after: HealthScrape | null): PauseFigures | null {
  if (!before || !after || after.delayP99 === null || after.delayMax === null) return null;
  return {
    delayP99Ms: after.delayP99 * 1000,
    delayMaxMs: after.delayMax * 1000,
    gcMs: (after.gcSeconds - before.gcSeconds) * 1000,
    gcCount: after.gcCount - before.gcCount,
    gcMaxMs: after.gcMax * 1000,
  };
}

type Entry = { value: number; ms: number };

function sameEntries(a: Entry[], b: Entry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i].value !== b[i].value || a[i].ms !== b[i].ms) return false;
  return true;
}

/** For each sensor: is the target's hot window the newest `size` stored readings, oldest first? */
async function checkHotWindows(ctx: RateContext, prefix: string): Promise<{ exact: number; checked: number; mismatch: string | null }> {
  const rows = await ctx.pool.query<{ sensor_id: string; value: number; ms: string }>(
    `SELECT sensor_id, value, (extract(epoch FROM timestamp) * 1000)::bigint AS ms FROM (
       SELECT sensor_id, value, timestamp,
              row_number() OVER (PARTITION BY sensor_id ORDER BY timestamp DESC) AS rn
       FROM sensor_readings WHERE sensor_type = $1 AND starts_with(sensor_id, $2)) t
     WHERE rn <= $3 ORDER BY sensor_id, timestamp`,
    [LOAD_TYPE, prefix, ctx.windowSize],
  );
  const expected = new Map<string, Entry[]>();
  for (const r of rows.rows) {
    let list = expected.get(r.sensor_id);
    if (!list) expected.set(r.sensor_id, (list = []));
    list.push({ value: Number(r.value), ms: Number(r.ms) });
  }
  const ids = Array.from({ length: ctx.sensors }, (_, n) => `${prefix}s${n}`);
  let exact = 0;
  let mismatch: string | null = null;
  const check = async (id: string) => {
    try {
      await checkOne(id);
    } catch (err) {
      // A target that crashed or stopped answering: not exact, and say why.
      if (!mismatch) mismatch = `${id}: ${(err as Error).message}`;
    }
  };
  const checkOne = async (id: string) => {
    let actual: Entry[];
    const target = ctx.targets[ids.indexOf(id) % ctx.targets.length];
    if (target.name === 'app') {
      // Any instance answers from the shared Redis window: ask each in turn.
      const url = `${target.httpUrl}/api/sensor-readings/buffer/?sensor_type=${LOAD_TYPE}&sensor_id=${encodeURIComponent(id)}`;
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { readings?: { value: number; timestamp: string }[] };
      if (res.status !== 200 || !Array.isArray(body.readings)) throw new Error(`GET buffer for ${id}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      actual = body.readings.map((e) => ({ value: e.value, ms: Date.parse(e.timestamp) }));
    } else {
      const list = await ctx.redis.lrange(`${ctx.redisPrefix}window:${LOAD_TYPE}:${id}`, 0, -1);
      actual = list.map((s) => {
        const e = JSON.parse(s) as { value: number; timestamp: string };
        return { value: e.value, ms: Date.parse(e.timestamp) };
      });
    }
    const want = expected.get(id) ?? [];
    if (sameEntries(actual, want)) exact++;
    else if (!mismatch) {
      const show = (l: Entry[]) => `${l.length} entries, last ${l.length ? `${l[l.length - 1].value}@${l[l.length - 1].ms}` : '-'}`;
      mismatch = `${id}: window ${show(actual)}; stored ${show(want)}`;
    }
  };
  for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map(check));
  return { exact, checked: ids.length, mismatch };
}

/** Publish → write latency from created_at (clock_timestamp() default) and each reading's send time. */
async function commitLatencies(ctx: RateContext, prefix: string, sendTimes: Float64Array): Promise<Summary> {
  const r = await ctx.pool.query({
    text: `SELECT value, extract(epoch FROM created_at)::float8 * 1000 AS ms FROM sensor_readings
           WHERE sensor_type = $1 AND starts_with(sensor_id, $2)`,
    values: [LOAD_TYPE, prefix],
    rowMode: 'array',
  });
  const lat = new Float64Array(r.rows.length);
  let n = 0;
  for (const row of r.rows as [number, number][]) {
    const seq = row[0];
    const sent = seq >= 0 && seq < sendTimes.length ? sendTimes[seq] : NaN;
    if (!Number.isNaN(sent)) lat[n++] = row[1] - (sent + ctx.wallOffset);
  }
  return summarize(lat.subarray(0, n));
}

export async function runRate(ctx: RateContext, rate: number, seconds: number, sensorPrefix: string): Promise<RateResult> {
  const { targets, broker, wss } = ctx;
  const pids = targets.map((t) => t.pid);
  const hwmReset = pids.map((pid) => resetPeakMemory(pid)).every(Boolean);
  const sampler = new GroupRssSampler(pids, 200);
  const pidsPg = () => pidsByComm('postgres');
  const pidsRedis = () => pidsByComm('redis-server');
  const wsMin = () => Math.min(...wss.map((w) => w.received));
  const wsSum = () => wss.reduce((n, w) => n + w.received, 0);
  const snapshot = () => ({
    pipeline: pids.map((pid) => cpuSnapshot([pid])),
    mosquitto: cpuSnapshot([broker.pid]),
    postgres: cpuSnapshot(pidsPg()),
    redis: cpuSnapshot(pidsRedis()),
    bench: process.cpuUsage(),
    at: monoMs(),
  });
  // Taken again once the publishers are connected, so their start-up is not counted.
  let cpu0 = snapshot();
  const sys0 = broker.sys();
  // Several instances: how the broker split the readings, from each one's metrics.
  const accepted0 = targets.length > 1 ? await acceptedCounts(targets) : null;
  // Starts each instance's since-scrape window of event-loop delay and longest GC pause.
  const health0 = await scrapeHealth(targets);

  const load = await startLoad(
    {
      url: broker.url,
      topicPrefix: ctx.topicPrefix,
      sensorPrefix,
      sensors: ctx.sensors,
      publishers: ctx.publishers,
      rate,
      seconds,
      location: LOAD_LOCATION,
      sensorType: LOAD_TYPE,
      unit: LOAD_UNIT,
      clientIdBase: ctx.clientIdBase,
    },
    (sendTimes) => {
      for (const ws of wss) ws.track(sensorPrefix, sendTimes);
      cpu0 = snapshot();
      ctx.onLoadStart?.();
    },
  );
  const res = await load.done;
  const wsAtLoadEnd = wsMin();
  const storedAtLoadEnd = await countStored(ctx.pool, sensorPrefix);

  // Drain: until both counts are complete, or stop growing for 3 s, at most drainMaxSeconds.
  const drainStart = monoMs();
  let drained = false;
  let last = { stored: storedAtLoadEnd, ws: wsSum() };
  let still = 0;
  let stored = storedAtLoadEnd;
  for (let i = 0; i < ctx.drainMaxSeconds * 4; i++) {
    stored = await countStored(ctx.pool, sensorPrefix);
    if (stored >= res.sent && wsMin() >= res.sent) {
      drained = true;
      break;
    }
    if (stored === last.stored && wsSum() === last.ws) {
      if (++still >= 12) break;
    } else {
      still = 0;
    }
    last = { stored, ws: wsSum() };
    await sleep(250);
  }
  const drainSeconds = (monoMs() - drainStart) / 1000;
  const health1 = await scrapeHealth(targets);
  ctx.onDrained?.();
  // Late duplicates (a redelivery after the last new message) get a moment to show.
  await sleep(300);

  const peakRss = sampler.stop();
  const mems = pids.map((pid) => memoryOf(pid));
  const cpuEach = pids.map((pid, i) => cpuDelta(cpu0.pipeline[i], cpuSnapshot([pid])));
  const cpu = {
    pipeline: cpuEach.reduce((a, b) => a + b, 0),
    mosquitto: cpuDelta(cpu0.mosquitto, cpuSnapshot([broker.pid])),
    postgres: cpuDelta(cpu0.postgres, cpuSnapshot(pidsPg())),
    redis: cpuDelta(cpu0.redis, cpuSnapshot(pidsRedis())),
    bench: (() => {
      const u = process.cpuUsage(cpu0.bench);
      return (u.user + u.system) / 1e6;
    })(),
    wallSeconds: (monoMs() - cpu0.at) / 1000,
  };
  const wsReceived = wsMin();
  const wsDuplicates = wss.reduce((n, w) => n + w.duplicates, 0);
  const latencyWs = summarize(concatSamples(wss.map((w) => w.latencies.values())));
  const latencyWsSteady = summarize(concatSamples(wss.map((w) => w.latenciesSteady.values())));
  const latencyWsSliceMax = Array.from({ length: Math.max(0, ...wss.map((w) => w.sliceMax.length)) }, (_, i) =>
    Math.max(0, ...wss.map((w) => w.sliceMax[i] ?? 0)),
  );
  const wsLastAt = Math.max(...wss.map((w) => w.lastAt));
  const accepted1 = accepted0 ? await acceptedCounts(targets) : null;

  stored = await countStored(ctx.pool, sensorPrefix);
  const lastRow = await ctx.pool.query<{ ms: number | null }>(
    'SELECT extract(epoch FROM max(created_at))::float8 * 1000 AS ms FROM sensor_readings WHERE sensor_type = $1 AND starts_with(sensor_id, $2)',
    [LOAD_TYPE, sensorPrefix],
  );
  const lastRowMono = lastRow.rows[0].ms === null ? 0 : lastRow.rows[0].ms - ctx.wallOffset;
  const lastArrival = Math.max(wsLastAt, lastRowMono);
  const completionLagMs = lastArrival > 0 ? Math.max(0, lastArrival - res.endedAt) : NaN;
  const throughput = lastArrival > res.startedAt ? Math.min(stored, wsReceived) / ((lastArrival - res.startedAt) / 1000) : 0;
  const latencyCommit = await commitLatencies(ctx, sensorPrefix, res.sendTimes);
  const hot = await checkHotWindows(ctx, sensorPrefix);
  // $SYS is published every second: wait for a value taken after the drain.
  await sleep(1200);
  const sys1 = broker.sys();

  const lost = res.sent - stored;
  const lossless = lost === 0 && wsDuplicates === 0 && wsReceived === res.sent;
  const elapsed = (res.endedAt - res.startedAt) / 1000;
  const perInstance: InstanceResult[] = targets.map((t, i) => ({
    pid: t.pid,
    accepted: accepted0 && accepted1 && accepted0[i] !== null && accepted1[i] !== null ? accepted1[i]! - accepted0[i]! : null,
    wsReceived: wss[i]?.received ?? 0,
    wsDuplicates: wss[i]?.duplicates ?? 0,
    wsClosed: wss[i]?.closed ?? false,
    peakRssSampled: Math.max(peakRss.each[i] ?? 0, mems[i]?.rss ?? 0),
    vmHwm: mems[i]?.hwm ?? 0,
    cpu: cpuEach[i],
    pauses: pausesBetween(health0[i], health1[i]),
  }));
  const sumOf = (f: (m: { rss: number; hwm: number }) => number) => mems.reduce((n, m) => n + (m ? f(m) : 0), 0);
  return {
    target: ctx.label,
    instances: targets.length,
    perInstance,
    rate,
    seconds,
    sent: res.sent,
    acked: res.acked,
    ackErrors: res.ackErrors,
    publisherErrors: res.errors,
    achievedRate: elapsed > 0 ? res.sent / elapsed : res.sent,
    publisherMaxBehindMs: res.maxBehindMs,
    brokerDropped: sys1.dropped - sys0.dropped,
    brokerQueuedAfter: sys1.stored - sys0.stored,
    stored,
    storedAtLoadEnd,
    wsReceived,
    wsAtLoadEnd,
    wsDuplicates,
    wsOther: wss.reduce((n, w) => n + w.other, 0),
    wsClosed: wss.some((w) => w.closed),
    lost,
    hotWindowsExact: hot.exact,
    hotWindowsChecked: hot.checked,
    hotWindowMismatch: hot.mismatch,
    latencyWs,
    latencyWsSteady,
    latencyWsSliceMax,
    latencyCommit,
    drainSeconds,
    drained,
    // Several instances: the peak of their summed RSS sampled at once; VmHWM summed (each its own peak).
    peakRssSampled: Math.max(peakRss.sum, sumOf((m) => m.rss)),
    vmHwm: sumOf((m) => m.hwm),
    hwmReset,
    cpu,
    completionLagMs,
    throughput,
    loadAvg1: os.loadavg()[0],
    keptUp: lossless && completionLagMs <= KEPT_UP_LAG_MS,
    lossless,
  };
}
