/**
 * Starts the app as `npm start` runs it (`node [its flags] dist/app/main.js`, from the repository root) for
 * end-to-end tests: on a free port, with its data (Node-RED user dir, SQLite file, credential
 * secret) in a temporary DATA_DIR, no `.env`, and only the environment the test gives.
 */
import { spawn, type ChildProcess } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';

const ROOT = path.resolve(__dirname, '..', '..', '..'); // dist/test/support → repo root
const MAIN = path.join(ROOT, 'dist', 'app', 'main.js');

/** The node options `npm start` gives (package.json: `node --flag … scripts/start.js`), so tests and the bench run the app with them too. */
function startScriptNodeFlags(): string[] {
  const start = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts?: { start?: string } }).scripts?.start ?? '';
  const m = /^node\s+(.*?)\s*scripts\/start\.js\b/.exec(start.trim());
  if (!m) throw new Error(`package.json's start script is not "node [flags] scripts/start.js": ${start}`);
  return m[1].split(/\s+/).filter((a) => a !== '');
}
const START_NODE_FLAGS = startScriptNodeFlags();

/** Variables of the app that must not leak in from the shell running the tests. */
const APP_VARS = [
  'PORT', 'HOST', 'DATA_DIR', 'ENV_FILE', 'LOG_LEVEL', 'MQTT_URL', 'MQTT_USERNAME', 'MQTT_PASSWORD', 'MQTT_CLIENT_ID',
  'MQTT_TOPIC_PREFIX', 'MQTT_PROTOCOL_VERSION', 'MQTT_SENSOR_TOPIC', 'MQTT_DECISIONS_TOPIC', 'HYPERVOLT_GROUP', 'HYPERVOLT_LEADER_TTL_SECONDS', 'REDIS_URL', 'REDIS_KEY_PREFIX',
  'DATABASE_URL', 'ELECTRICITY_MAPS_API_KEY', 'OPENWEATHER_API_KEY', 'ELECTRICITY_MAPS_BASE_URL', 'OPENWEATHER_BASE_URL',
  'CARBON_FETCH_MINUTES', 'WEATHER_FETCH_MINUTES', 'LOCATION_LAT', 'LOCATION_LON', 'LOCATION_ZONE', 'SENSOR_BUFFER_SIZE',
  'RETENTION_DAYS', 'ADMIN_USER', 'ADMIN_PASSWORD_HASH', 'API_TOKEN', 'API_READ_TOKEN', 'CORS_ORIGIN',
  'NODE_RED_CREDENTIAL_SECRET', 'HYPERVOLT_LOCAL_MQTT_PORT', 'RATE_LIMIT_WRITES_PER_MIN', 'RATE_LIMIT_COMMANDS_PER_MIN',
  'WS_MAX_CLIENTS', 'HEAP_GROWING_PERCENT', 'MQTT_ACL_FILE', 'MQTT_CA_FILE', 'MQTT_CERT_FILE', 'MQTT_KEY_FILE',
];

export interface RunningApp {
  url: string;
  wsUrl: string;
  port: number;
  dataDir: string;
  /** Everything the app wrote to stdout and stderr so far. */
  logs(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. Removes DATA_DIR unless kept. */
  stop(opts?: { keepData?: boolean }): Promise<number | null>;
  /** Kills the process at once (SIGKILL: a crash, nothing flushed); resolves when it is gone. Keeps DATA_DIR (stop() removes it). */
  kill(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function spawnApp(env: Record<string, string | undefined>, dataDir: string, port: number): { child: ChildProcess; logs: () => string } {
  const base: Record<string, string | undefined> = { ...process.env };
  for (const k of APP_VARS) delete base[k];
  const full: Record<string, string | undefined> = {
    ...base,
    PORT: String(port),
    DATA_DIR: dataDir,
    ENV_FILE: path.join(dataDir, 'no.env'),
    ...env,
  };
  for (const [k, v] of Object.entries(full)) if (v === undefined) delete full[k];
  const child = spawn(process.execPath, [...START_NODE_FLAGS, MAIN], { cwd: ROOT, env: full as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, logs: () => out };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * Starts the app and resolves once `GET /api/health/` answers (200 or 503: the flows run).
 * `env` values of `undefined` remove a variable.
 */
export async function startApp(
  env: Record<string, string | undefined> = {},
  opts: { dataDir?: string; timeoutMs?: number } = {},
): Promise<RunningApp> {
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'hv-app-'));
  const port = await freePort();
  const { child, logs } = spawnApp(env, dataDir, port);
  const url = `http://127.0.0.1:${port}`;
  const app: RunningApp = {
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    dataDir,
    logs,
    stop: async ({ keepData = false } = {}) => {
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await done;
      clearTimeout(timer);
      if (!keepData && !opts.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
    kill: async () => {
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await done;
    },
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let gone = false;
  void exited(child).then(() => (gone = true));
  for (;;) {
    if (gone) {
      await app.stop();
      throw new Error(`the app exited with code ${child.exitCode} before answering:\n${logs()}`);
    }
    try {
      const token = env.API_READ_TOKEN ?? env.API_TOKEN;
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const r = await fetch(`${url}/api/health/`, { headers, signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      if (r.status === 200 || r.status === 503) return app;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await app.stop();
      throw new Error(`the app did not answer GET /api/health/ within ${opts.timeoutMs ?? 30_000} ms:\n${logs()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the app expecting it to exit by itself (a refused configuration); resolves with code and logs. */
export async function runAppToExit(env: Record<string, string | undefined>, timeoutMs = 15_000): Promise<{ code: number | null; logs: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-app-'));
  try {
    const { child, logs } = spawnApp(env, dataDir, await freePort());
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited(child);
    clearTimeout(timer);
    return { code, logs: logs() };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
