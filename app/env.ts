/**
 * The app's environment: `.env` loading and the defaults that make every `${VAR}` in the shipped
 * flow resolve. Node-RED substitutes a property whose whole value is `${VAR}` only when VAR is set:
 * an unset variable would leave the literal text `${VAR}` in the node's config, so every variable
 * the flow names gets a value here (possibly empty). Pure functions; main.ts applies them.
 */
import fs from 'fs';
import os from 'os';
import path from 'path';
import util from 'util';

export type Env = Record<string, string | undefined>;

/** CONTRACT section 6 defaults, plus the app's own variables. Empty means "not set, use the built-in". */
export const ENV_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  PORT: '1880',
  HOST: '127.0.0.1',
  DATA_DIR: 'data',
  LOG_LEVEL: 'info',
  MQTT_TOPIC_PREFIX: 'HyperVolt',
  MQTT_CLIENT_ID: 'hypervolt-pipeline',
  MQTT_PROTOCOL_VERSION: '5',
  HYPERVOLT_GROUP: '',
  /** How long the schedules' leadership lock outlives a dead leader (see hot-window leader-gate). */
  HYPERVOLT_LEADER_TTL_SECONDS: '15',
  REDIS_URL: '',
  REDIS_KEY_PREFIX: 'hypervolt:',
  SENSOR_BUFFER_SIZE: '60',
  RETENTION_DAYS: '7',
  ELECTRICITY_MAPS_BASE_URL: 'https://api.electricitymap.org',
  OPENWEATHER_BASE_URL: 'https://api.openweathermap.org',
  CARBON_FETCH_MINUTES: '15',
  WEATHER_FETCH_MINUTES: '15',
  LOCATION_LAT: '12.9716',
  LOCATION_LON: '77.5946',
  LOCATION_ZONE: 'IN-KA',
  /** V8's old generation grows at most this much over what was live after a full collection (0: V8's own rule). */
  HEAP_GROWING_PERCENT: '25',
});

/**
 * Parses a `.env` file's text (Node's own parser: `KEY=value`, quotes, `#` comments, `export`).
 * Node 20.12+ has `util.parseEnv`; earlier 20.x has neither it nor `process.loadEnvFile`.
 */
export function parseEnvText(text: string): Record<string, string> {
  const parse = (util as unknown as { parseEnv?: (s: string) => Record<string, string> }).parseEnv;
  if (typeof parse !== 'function') {
    throw new Error(`reading .env needs Node.js 20.12 or later (this is ${process.version})`);
  }
  return { ...parse(text) };
}

/**
 * Reads `file` into `env` without overriding what is already set (the real environment wins, as
 * with `node --env-file`). Returns the names it set, or null when there is no such file.
 */
export function loadEnvFile(file: string, env: Env): string[] | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const set: string[] = [];
  for (const [key, value] of Object.entries(parseEnvText(text))) {
    if (env[key] === undefined) {
      env[key] = value;
      set.push(key);
    }
  }
  return set;
}

/**
 * The values to add to `env` so that the flow's `${VAR}`s resolve: every default not already set,
 * and the derived variables (absolute data dir, SQLite file inside it, the sensor subscription,
 * the MQTT client id of an instance of a group). `root` is the repository root that relative
 * paths are taken from; `hostname` names this machine (injected for tests).
 */
export function envDefaults(env: Env, root: string, hostname: string = os.hostname()): Record<string, string> {
  const out: Record<string, string> = {};
  const get = (k: string) => (env[k] !== undefined ? env[k] : out[k]) as string;
  for (const [k, v] of Object.entries(ENV_DEFAULTS)) {
    if (env[k] === undefined) out[k] = v;
  }
  if (env.MQTT_CLIENT_ID === undefined && get('HYPERVOLT_GROUP')) {
    out.MQTT_CLIENT_ID = instanceClientId(get('HYPERVOLT_GROUP'), hostname, get('PORT'));
  }
  const dataDir = path.resolve(root, get('DATA_DIR') || 'data');
  out.DATA_DIR = dataDir;
  // The database node's own default is `data/` relative to the working directory; pin it to DATA_DIR.
  if (!env.DATABASE_URL) out.DATABASE_URL = `sqlite:${path.join(dataDir, 'hypervolt.db')}`;
  if (env.MQTT_SENSOR_TOPIC === undefined) {
    out.MQTT_SENSOR_TOPIC = sensorSubscription(get('MQTT_TOPIC_PREFIX'), get('HYPERVOLT_GROUP'));
  }
  // Decisions an AI engine publishes are recorded once, by one instance of a group.
  if (env.MQTT_DECISIONS_TOPIC === undefined) {
    out.MQTT_DECISIONS_TOPIC = sharedSubscription(`${get('MQTT_TOPIC_PREFIX')}/ai/decisions`, get('HYPERVOLT_GROUP'));
  }
  return out;
}

/** `{prefix}/sensors/+/+`, as a shared subscription `$share/{group}/...` when instances share the load. */
export function sensorSubscription(prefix: string, group: string | undefined): string {
  return sharedSubscription(`${prefix}/sensors/+/+`, group);
}

/** `topic`, or the shared subscription `$share/{group}/{topic}` when instances share the load. */
export function sharedSubscription(topic: string, group: string | undefined): string {
  return group ? `$share/${group}/${topic}` : topic;
}

/**
 * The MQTT client id of one instance of a group: `hypervolt-{group}-{hostname}-{port}`. Each
 * instance needs its own id (the broker drops an older session that shares an id with a newer
 * one) and keeps it across restarts, so its persistent session (and the QoS 1 messages queued in
 * it while the instance was down) survives. Characters other than A-Z a-z 0-9 _ . - become `_`.
 */
export function instanceClientId(group: string, hostname: string, port: string): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `hypervolt-${clean(group)}-${clean(hostname) || 'host'}-${clean(port)}`;
}

/** Checks values that would otherwise fail late and obscurely. Returns the problems found. */
export function checkEnv(env: Env): string[] {
  const problems: string[] = [];
  const port = Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`PORT must be a port number, got "${env.PORT}"`);
  const prefix = env.MQTT_TOPIC_PREFIX ?? '';
  if (prefix === '' || /[+#]/.test(prefix) || prefix.startsWith('/') || prefix.endsWith('/')) {
    problems.push(`MQTT_TOPIC_PREFIX must be a topic without wildcards or outer slashes, got "${prefix}"`);
  }
  if (env.HYPERVOLT_GROUP && !/^[A-Za-z0-9_.-]{1,64}$/.test(env.HYPERVOLT_GROUP)) {
    problems.push(`HYPERVOLT_GROUP must be 1 to 64 of A-Z a-z 0-9 _ . -, got "${env.HYPERVOLT_GROUP}"`);
  }
  if (env.MQTT_PROTOCOL_VERSION !== '4' && env.MQTT_PROTOCOL_VERSION !== '5') {
    problems.push(`MQTT_PROTOCOL_VERSION must be 4 (MQTT 3.1.1) or 5, got "${env.MQTT_PROTOCOL_VERSION}"`);
  }
  for (const k of ['SENSOR_BUFFER_SIZE', 'RETENTION_DAYS', 'CARBON_FETCH_MINUTES', 'WEATHER_FETCH_MINUTES', 'HYPERVOLT_LEADER_TTL_SECONDS']) {
    const v = Number(env[k]);
    if (!(env[k] ?? '').trim() || !Number.isFinite(v) || v <= 0) problems.push(`${k} must be a positive number, got "${env[k]}"`);
  }
  const growth = (env.HEAP_GROWING_PERCENT ?? '').trim();
  if (!/^\d{1,3}$/.test(growth) || Number(growth) > 400) {
    problems.push(`HEAP_GROWING_PERCENT must be a whole number from 0 to 400, got "${env.HEAP_GROWING_PERCENT}"`);
  }
  if (env.ADMIN_PASSWORD_HASH && !/^\$2[aby]\$\d\d\$.{53}$/.test(env.ADMIN_PASSWORD_HASH)) {
    problems.push('ADMIN_PASSWORD_HASH must be a bcrypt hash (e.g. from `npm run -s hash-password`)');
  }
  if (Boolean(env.ADMIN_USER) !== Boolean(env.ADMIN_PASSWORD_HASH)) {
    problems.push('ADMIN_USER and ADMIN_PASSWORD_HASH must be set together');
  }
  return problems;
}

/**
 * The V8 flag for `HEAP_GROWING_PERCENT`, or null. V8 lets the old generation grow up to 4 times
 * what was live after a full collection before it collects again; under a high allocation rate
 * (the ingest path at thousands of readings a second) that is mostly garbage held in RSS. A fixed
 * factor (1 + percent / 100) bounds it by the live size instead, without a cap: when more is live,
 * the heap still grows. V8 reads the flag at each full collection, so setting it at start works.
 * 0 leaves V8's rule; a `--heap-growing-percent` given to node itself wins.
 */
export function heapGrowthFlag(env: Env, execArgv: readonly string[]): string | null {
  const percent = Number((env.HEAP_GROWING_PERCENT ?? '').trim() || '0');
  if (!Number.isInteger(percent) || percent <= 0) return null;
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a))) return null;
  return `--heap-growing-percent=${percent}`;
}

/** The heap settings in effect, for the log: node's own (e.g. `npm start`'s young generation) and the growth flag set at start. */
export function heapFlags(execArgv: readonly string[], growthFlag: string | null): string[] {
  const own = execArgv.filter((a) => /^--(max|min)[-_]semi[-_]space[-_]size\b|^--max[-_]old[-_]space[-_]size\b|^--heap[-_]growing[-_]percent\b/.test(a));
  return growthFlag ? [...own, growthFlag] : own;
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string | undefined): boolean {
  const h = (host ?? '').trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Why the app must not start as configured, or null. An editor open to the network is a remote shell. */
export function exposureProblem(env: Env): string | null {
  if (isLoopbackHost(env.HOST)) return null;
  if (env.ADMIN_USER && env.ADMIN_PASSWORD_HASH) return null;
  return (
    `refusing to listen on HOST=${env.HOST || '(all interfaces)'} without an editor login: ` +
    'the flow editor can run any code. Set ADMIN_USER and ADMIN_PASSWORD_HASH ' +
    '(hash with `npm run -s hash-password`), or use HOST=127.0.0.1.'
  );
}

/**
 * `mqtt://user:pass@host:1883` → the URL without the user info, and the user and password.
 * Node-RED's broker node logs its URL, so a password must not stay in it; the credentials
 * travel as MQTT_USERNAME / MQTT_PASSWORD (node credentials) instead.
 */
export function splitUrlCredentials(raw: string): { url: string; username?: string; password?: string } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { url: raw };
  }
  if (!u.username && !u.password) return { url: raw };
  const username = decodeURIComponent(u.username) || undefined;
  const password = decodeURIComponent(u.password) || undefined;
  u.username = '';
  u.password = '';
  return { url: u.toString().replace(/\/$/, ''), username, password };
}
