/**
 * The REST read check: many readings stored (generated in PostgreSQL by generate_series, in time
 * order as they would arrive), hot windows filled through MQTT, then each read endpoint driven
 * by 10 keep-alive connections for a few seconds: requests/s and latency.
 */
import http from 'http';
import type { Pool } from 'pg';
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

/**
 * Drives `nextPath()` (called per request) with `connections` concurrent keep-alive connections
 * for `seconds`, after a short warm-up that is not counted.
 */
export async function httpLoad(
  name: string,
  baseUrl: string,
  nextPath: () => string,
  seconds: number,
  connections = 10,
  displayPath?: string,
): Promise<HttpLoadResult> {
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
    const t0 = monoMs();
    const end = t0 + seconds * 1000;
    const loop = async () => {
      while (monoMs() < end) {
        const s = monoMs();
        try {
          const r = await get(agent, baseUrl + nextPath());
          if (r.status !== 200) failures[String(r.status)] = (failures[String(r.status)] ?? 0) + 1;
        } catch {
          failures.error = (failures.error ?? 0) + 1;
        }
        lat.push(monoMs() - s);
        requests++;
      }
    };
    await Promise.all(Array.from({ length: connections }, loop));
    const elapsed = (monoMs() - t0) / 1000;
    return {
      name,
      path: displayPath ?? nextPath(),
      seconds: elapsed,
      connections,
      requests,
      rps: requests / elapsed,
      failures,
      bodyBytes,
      latency: summarize(lat.values()),
    };
  } finally {
    agent.destroy();
  }
}
