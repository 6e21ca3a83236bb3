/**
 * Options of `npm run simulate`: command line first, then environment, then defaults. Pure: the
 * caller passes argv and env, and gets options or a clear message.
 */
import { randomBytes } from 'crypto';
import { isSensorType, SENSOR_TYPES, type SensorType } from './house';
import { parseSeed } from './random';

export interface SimOptions {
  url: string;
  prefix: string;
  locations: string[];
  sensors: SensorType[];
  /** Readings per second, all streams together. */
  rate: number;
  /** Readings per message: 1 publishes objects, more publishes arrays (per sensor, as a batching Pi). */
  batch: number;
  /** Stop after this many seconds of publishing. */
  duration?: number;
  /** Stop after this many readings. */
  count?: number;
  username?: string;
  password?: string;
  seed: number;
  /** Every Nth message is malformed. */
  badEvery?: number;
  qos: 0 | 1 | 2;
  /** Messages published but not yet acknowledged, at most; more readings wait (and are skipped if late). */
  maxInflight: number;
  /** Seconds between progress lines; 0 for none. */
  reportSeconds: number;
  utcOffsetMinutes: number;
  clientId: string;
}

export type ParseResult = { ok: true; options: SimOptions } | { ok: false; help: true } | { ok: false; help?: false; error: string };

export const HELP = `Usage: npm run simulate -- [options]     (or: node dist/app/simulate.js [options])

Publishes simulated Raspberry Pi sensor readings over MQTT to
{prefix}/sensors/{location}/{sensor_type}, one JSON reading per message (or arrays with --batch).

Options (environment variable in brackets):
  --url URL            broker [MQTT_URL] (default mqtt://127.0.0.1:1883)
  --username NAME      [MQTT_USERNAME]
  --password SECRET    [MQTT_PASSWORD]
  --prefix TEXT        topic prefix [MQTT_TOPIC_PREFIX] (default HyperVolt)
  --locations A,B      [SIM_LOCATIONS] (default living_room,kitchen)
  --sensors A,B        [SIM_SENSORS] (default ldr,current,voltage,temperature,humidity,power,energy)
  --rate N             readings per second in total [SIM_RATE]
                       (default: one reading per sensor every 5 s)
  --batch N            publish JSON arrays of N readings of one sensor, as a batching Pi [SIM_BATCH]
  --duration S         stop after S seconds [SIM_DURATION]
  --count N            stop after N readings [SIM_COUNT]
  --seed S             repeat a run: same seed, same values [SIM_SEED] (default: random, printed)
  --bad-every N        every Nth message is malformed, to show the reject path [SIM_BAD_EVERY]
  --qos 0|1|2          (default 1)
  --max-inflight N     unacknowledged messages at most (default 1000); readings more than
                       1 s late are skipped and counted
  --report S           seconds between progress lines, 0 for none (default 5)
  --utc-offset H       local time zone for day and night, hours from UTC (default: this machine's)
  --client-id ID       (default hypervolt-sim-<random>)
  -h, --help

Ctrl-C stops: the simulator sends what it has batched, waits for the broker's acknowledgements,
disconnects and prints a summary.`;

const LOCATION_RE = /^[a-z0-9_-]{1,100}$/;
const CLIENT_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

interface Flag {
  env?: string;
}

const FLAGS: Record<string, Flag> = {
  url: { env: 'MQTT_URL' },
  username: { env: 'MQTT_USERNAME' },
  password: { env: 'MQTT_PASSWORD' },
  prefix: { env: 'MQTT_TOPIC_PREFIX' },
  locations: { env: 'SIM_LOCATIONS' },
  sensors: { env: 'SIM_SENSORS' },
  rate: { env: 'SIM_RATE' },
  batch: { env: 'SIM_BATCH' },
  duration: { env: 'SIM_DURATION' },
  count: { env: 'SIM_COUNT' },
  seed: { env: 'SIM_SEED' },
  'bad-every': { env: 'SIM_BAD_EVERY' },
  qos: {},
  'max-inflight': {},
  report: {},
  'utc-offset': {},
  // Not MQTT_CLIENT_ID: that is the pipeline's own id, and a second client with it would take its session over.
  'client-id': {},
};

function number(name: string, text: string, check: (n: number) => boolean, what: string): number {
  const n = /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isFinite(n) || !check(n)) throw new Error(`--${name} must be ${what}, got "${text}"`);
  return n;
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function parseOptions(argv: readonly string[], env: Record<string, string | undefined>, machineUtcOffsetMinutes = 0): ParseResult {
  const given: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { ok: false, help: true };
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m || !Object.prototype.hasOwnProperty.call(FLAGS, m[1])) {
      return { ok: false, error: `unknown option "${arg}" (see --help)` };
    }
    let value = m[2];
    if (value === undefined) {
      if (i + 1 >= argv.length) return { ok: false, error: `--${m[1]} needs a value` };
      value = argv[++i];
    }
    given[m[1]] = value;
  }
  const get = (name: string): string | undefined => {
    if (given[name] !== undefined) return given[name];
    const envName = FLAGS[name].env;
    const v = envName ? env[envName] : undefined;
    return v === undefined || v === '' ? undefined : v;
  };

  try {
    const url = get('url') ?? 'mqtt://127.0.0.1:1883';
    if (!/^(mqtts?|wss?|tcp|ssl):\/\/./.test(url)) throw new Error(`--url must be an mqtt://, mqtts://, ws:// or wss:// URL, got "${url}"`);

    const prefix = get('prefix') ?? 'HyperVolt';
    if (prefix === '' || /[+#\u0000]/.test(prefix) || prefix.startsWith('$') || prefix.endsWith('/')) {
      throw new Error(`--prefix must be a topic without wildcards, not starting with $ or ending with /, got "${prefix}"`);
    }

    const locations = list(get('locations') ?? 'living_room,kitchen');
    if (locations.length === 0) throw new Error('--locations needs at least one location');
    for (const l of locations) {
      if (!LOCATION_RE.test(l)) throw new Error(`location "${l}" must be 1 to 100 of a-z 0-9 _ -`);
    }
    if (new Set(locations).size !== locations.length) throw new Error('--locations has a location twice');

    const sensorNames = list(get('sensors') ?? SENSOR_TYPES.join(','));
    if (sensorNames.length === 0) throw new Error('--sensors needs at least one sensor type');
    const sensors: SensorType[] = [];
    for (const s of sensorNames) {
      if (!isSensorType(s)) throw new Error(`sensor "${s}" is not one of ${SENSOR_TYPES.join(', ')}`);
      if (!sensors.includes(s)) sensors.push(s);
    }

    const streams = locations.length * sensors.length;
    const rateText = get('rate');
    const rate = rateText === undefined ? streams / 5 : number('rate', rateText, (n) => n > 0 && n <= 100000, 'a number above 0, at most 100000');
    const batchText = get('batch');
    const batch = batchText === undefined ? 1 : number('batch', batchText, (n) => Number.isInteger(n) && n >= 1 && n <= 1000, 'an integer from 1 to 1000');
    const durationText = get('duration');
    const duration = durationText === undefined ? undefined : number('duration', durationText, (n) => n > 0, 'a number of seconds above 0');
    const countText = get('count');
    const count = countText === undefined ? undefined : number('count', countText, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
    const seedText = get('seed');
    const seed = seedText === undefined ? randomBytes(4).readUInt32BE(0) : parseSeed(seedText);
    const badText = get('bad-every');
    const badEvery = badText === undefined ? undefined : number('bad-every', badText, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
    const qosText = get('qos');
    const qos = (qosText === undefined ? 1 : number('qos', qosText, (n) => n === 0 || n === 1 || n === 2, '0, 1 or 2')) as 0 | 1 | 2;
    const inflightText = get('max-inflight');
    const maxInflight = inflightText === undefined ? 1000 : number('max-inflight', inflightText, (n) => Number.isInteger(n) && n >= 1 && n <= 65535, 'an integer from 1 to 65535');
    const reportText = get('report');
    const reportSeconds = reportText === undefined ? 5 : number('report', reportText, (n) => n >= 0, 'a number of seconds, 0 or more');
    const offsetText = get('utc-offset');
    const utcOffsetMinutes =
      offsetText === undefined ? machineUtcOffsetMinutes : Math.round(60 * number('utc-offset', offsetText, (n) => n >= -14 && n <= 14, 'hours from -14 to 14'));
    const clientId = get('client-id') ?? `hypervolt-sim-${randomBytes(4).toString('hex')}`;
    if (!CLIENT_ID_RE.test(clientId)) throw new Error(`--client-id must be 1 to 64 of A-Z a-z 0-9 _ . : -, got "${clientId}"`);

    return {
      ok: true,
      options: {
        url,
        prefix,
        locations,
        sensors,
        rate,
        batch,
        duration,
        count,
        username: get('username'),
        password: get('password'),
        seed,
        badEvery,
        qos,
        maxInflight,
        reportSeconds,
        utcOffsetMinutes,
        clientId,
      },
    };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}
