/**
 * The REST read check: many readings stored (generated in PostgreSQL by generate_series, in time
 * order as they would arrive), hot windows filled through MQTT, then each read endpoint driven
 * by 10 keep-alive connections for a few seconds: requests/s and latency.
 * Like autocannon, every connection repeats the same request (buffer: the same few), so
 * concurrent identical reads share one database query in the app (readings.ts); the machine's
 * load average and the client's own CPU time per request are kept with each result, as this
 * client runs on the same cores as the app and PostgreSQL.
 */
import { execFileSync } from 'child_process';
import fs from 'fs';
import http from 'http';
import os from 'os';
import { performance } from 'perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'worker_threads';
import type { Pool } from 'pg';
import type { PauseFigures } from './measure';
import { monoMs } from './load';
import { SampleBuffer, summarize, type Summary } from './stats';

const TYPES = ['ldr', 'current', 'voltage', 'temperature', 'humidity', 'power', 'energy'];
const UNITS = ['lux', 'A', 'V', 'celsius', '%', 'W', 'Wh'];
/** The generated readings span this much time back from now (within the 7-day retention). */
const SPAN_MS = 6.5 * 24 * 3600 * 1000;

export interface SeedResult {
  rows: number;
  sensors: number;
  seconds: number;
  intervalMs: number;
}

/**
 * Inserts about `rows` readings over `sensors` sensors (`rest_s{n}`, the seven types in turn,
 * ten locations), evenly spaced over the last 6.5 days, oldest first, in statements of about
 * 250 000 rows; then ANALYZE.
 */
export async function seedReadings(pool: Pool, rows: number, sensors: number, log: (m: string) => void): Promise<SeedResult> {
  const perSensor = Math.max(1, Math.floor(rows / sensors));
  const intervalMs = Math.max(1, Math.floor(SPAN_MS / perSensor));
  const base = Date.now() - 5_000;
  const chunk = Math.max(1, Math.floor(250_000 / sensors));
  const t0 = monoMs();
  let done = 0;
  let lastLog = t0;
  for (let hi = perSensor - 1; hi >= 0; hi -= chunk) {
    const lo = Math.max(0, hi - chunk + 1);
    await pool.query(
      `INSERT INTO sensor_readings (sensor_type, sensor_id, value, unit, location, timestamp)
       SELECT ($1::text[])[1 + s % 7], 'rest_s' || s, ((g * 7 + s) % 100)::float8, ($2::text[])[1 + s % 7],
              'room_' || (s % 10), to_timestamp(($3::float8 - g::float8 * $4::float8 - s) / 1000.0)
       FROM generate_series($5::int, $6::int, -1) AS g, generate_series(0, $7::int - 1) AS s`,
      [TYPES, UNITS, base, intervalMs, hi, lo, sensors],
    );
    done += (hi - lo + 1) * sensors;
    if (monoMs() - lastLog > 10_000) {
      lastLog = monoMs();
      log(`  seeded ${done.toLocaleString('en')} of ${(perSensor * sensors).toLocaleString('en')} rows (${((lastLog - t0) / 1000).toFixed(0)} s)`);
    }
  }
  await pool.query('ANALYZE sensor_readings');
  return { rows: perSensor * sensors, sensors, seconds: (monoMs() - t0) / 1000, intervalMs };
}

export interface HttpLoadResult {
  name: string;
  path: string;
  seconds: number;
  connections: number;
  requests: number;
  rps: number;
  /** Responses other than 200, by status (and `error` for failed requests). */
  failures: Record<string, number>;
  /** Size of the first response body (bytes), for context. */
  bodyBytes: number;
  latency: Summary;
  /** The machine's 1-minute load average when the endpoint's run ended (other work shows here). */
  loadAvg1: number;
  /** CPU time of the client's thread per request, ms (NaN where /proc is not readable): it shares the cores with the app. */
  clientCpuMs: number;
  /**
   * The serving side over the same run (set by the bench after the load; absent in results saved
   * before it was measured): CPU ms per request of the app's process and of PostgreSQL (all its
   * processes; NaN where /proc is not readable), and the app's own pauses from its /metrics. The
   * CPU is read around `httpLoad`, so it includes the client's 20 warm-up requests (under 1 % of a
   * run's) and whatever else the app did meanwhile (nothing else is sent to it then).
   */
  server?: { appCpuMs: number; pgCpuMs: number; pauses: PauseFigures | null };
}

function get(agent: http.Agent, url: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 30_000 }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

interface LoadJob {
  name: string;
  baseUrl: string;
  /** Requested in turn, round and round. */
  paths: string[];
  seconds: number;
  connections: number;
  displayPath: string;
}

const WORKER_KIND = 'hv-bench-http-load';

/** The paths `nextPath` yields, one cycle of them (it may count, e.g. over the sensors), at most 10 000. */
function pathCycle(nextPath: () => string): string[] {
  const first = nextPath();
  const paths = [first];
  for (let p = nextPath(); p !== first && paths.length < 10_000; p = nextPath()) paths.push(p);
  return paths;
}

/** CPU seconds of the calling thread (Linux /proc/thread-self), or NaN. */
function threadCpuSeconds(): number {
  try {
    const text = fs.readFileSync('/proc/thread-self/stat', 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const tck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    return (Number(f[11]) + Number(f[12])) / tck;
  } catch {
    return NaN;
  }
}

/** The measurement itself (in the worker thread). */
async function runLoad(job: LoadJob): Promise<HttpLoadResult> {
  const now = () => performance.now();
  const { baseUrl, paths, connections } = job;
  let next = 0;
  const nextPath = () => paths[next++ % paths.length];
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  try {
    let bodyBytes = 0;
    for (let i = 0; i < 20; i++) {
      const r = await get(agent, baseUrl + nextPath()).catch(() => ({ status: 0, bytes: 0 }));
      if (i === 0) bodyBytes = r.bytes;
    }
    const lat = new SampleBuffer(1 << 14);
    const failures: Record<string, number> = {};
    let requests = 0;
    const cpu0 = threadCpuSeconds();
    const t0 = now();
    const end = t0 + job.seconds * 1000;
    const loop = async () => {
      while (now() < end) {
        const s = now();
        try {
          const r = await get(agent, baseUrl + nextPath());
          if (r.status !== 200) failures[String(r.status)] = (failures[String(r.status)] ?? 0) + 1;
        } catch {
          failures.error = (failures.error ?? 0) + 1;
        }
        lat.push(now() - s);
        requests++;
      }
    };
    await Promise.all(Array.from({ length: connections }, loop));
    const elapsed = (now() - t0) / 1000;
    const cpu = threadCpuSeconds() - cpu0;
    return {
      name: job.name,
      path: job.displayPath,
      seconds: elapsed,
      connections,
      requests,
      rps: requests / elapsed,
      failures,
      bodyBytes,
      latency: summarize(lat.values()),
      loadAvg1: os.loadavg()[0],
      clientCpuMs: requests > 0 ? (cpu * 1000) / requests : NaN,
    };
  } finally {
    agent.destroy();
  }
}

/**
 * Drives the paths of `nextPath()` (one cycle of them, requested in turn) with `connections`
 * concurrent keep-alive connections for `seconds`, after a short warm-up that is not counted.
 * The client runs in a worker thread of its own, as autocannon runs in a process of its own: on
 * the bench's main thread (which also holds the ingest runs' state) the bench process spent
 * 0.8-1.1 ms of CPU per `recent` request (179 KB), in its own thread the client spends 0.2-0.4 ms
 * (measured, 5 M readings), CPU that the app and PostgreSQL get back on a 2-core machine.
 */
export async function httpLoad(
  name: string,
  baseUrl: string,
  nextPath: () => string,
  seconds: number,
  connections = 10,
  displayPath?: string,
): Promise<HttpLoadResult> {
  const paths = pathCycle(nextPath);
  const job: LoadJob = { name, baseUrl, paths, seconds, connections, displayPath: displayPath ?? paths[0] };
  const worker = new Worker(__filename, { workerData: { kind: WORKER_KIND, job } });
  try {
    return await new Promise<HttpLoadResult>((resolve, reject) => {
      worker.once('message', (m: { result?: HttpLoadResult; error?: string }) => (m.result ? resolve(m.result) : reject(new Error(m.error))));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the HTTP load worker exited with code ${code}`)));
    });
  } finally {
    void worker.terminate();
  }
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND) {
  runLoad((workerData as { job: LoadJob }).job).then(
    (result) => parentPort!.postMessage({ result }),
    (err: unknown) => parentPort!.postMessage({ error: String((err as Error)?.stack ?? err) }),
  );
}
