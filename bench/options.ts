/** Command-line options of `npm run bench` (`--name value` or `--name=value`). */
import type { TargetName } from './targets';

export interface BenchOptions {
  rates: number[];
  seconds: number;
  targets: TargetName[];
  /**
   * Instance counts the app is measured with, in order (default [1]): 2 = two instances of the
   * app in one group (HYPERVOLT_GROUP) on the same broker, Redis and database, at the same rates.
   */
  instances: number[];
  sensors: number;
  publishers: number;
  drainMaxSeconds: number;
  maxInflight: number;
  restRows: number;
  restSeconds: number;
  restConnections: number;
  windowSize: number;
  quick: boolean;
  profile: boolean;
  out: string | null;
  /** NODE_OPTIONS for the app's processes only (e.g. V8 heap flags), or null. */
  appNodeOptions: string | null;
}

export const HELP = `npm run bench [-- options]     (npm run bench:quick = --quick)

  --rates 1000,5000,...   readings/s to run, each alone (default 1000,5000,10000,20000,30000)
  --seconds N             seconds of publishing per rate (default 10)
  --targets app,naive     systems to measure (default app,naive,floor; --quick app,naive); floor =
                          a bare mqtt.js process doing the same Redis, PostgreSQL and WebSocket
                          writes without Node-RED, validation or durability: what the machine
                          and the bench themselves cost (bench/floor-pipeline.ts)
  --instances 1,2         run the app with each number of instances, at the same rates (default 1);
                          2 = two instances in one group (HYPERVOLT_GROUP, MQTT 5 shared
                          subscription), one WebSocket client on each; prints a comparison line
  --quick                 rates 1000,5000 for 3 s, 200 000 REST rows, 3 s per REST endpoint, no floor
  --rest-rows N           readings stored for the REST check (default 5 000 000; 0 skips it)
  --rest-seconds N        seconds per REST endpoint (default 5)
  --sensors N             sensors (default 100)
  --publishers N          MQTT publisher threads (default 2: one carries 30 000/s; each costs CPU)
  --drain-max N           longest drain wait after publishing, s (default 30)
  --max-inflight N        bench broker's max_inflight_messages (default 100; Mosquitto 2.0.11 does
                          not keep to it once acknowledgements flow: sensor-in stops reading instead)
  --profile               CPU-profile the app (node --cpu-prof) at --rates (default 20000);
                          app only, no REST check; prints where the time goes
                          with HVB_HEAP_PROF=1 in the environment also V8's sampling heap
                          profile over the same span (bench-results/*.heapprofile: where the
                          garbage is allocated; open it in Chrome DevTools)
  --out FILE              JSON results file (default bench-results/bench-<time>.json)
  --app-node-options "…"  NODE_OPTIONS for the app's processes only, e.g. to compare V8 heap
                          settings: "--max-semi-space-size=32"

Environment: HVB_APP_LOG=FILE keeps the app's output (its last part) in FILE-{client id}.log.
`;

function num(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new Error(`--${name} must be a number from ${min} to ${max}, got ${v === undefined ? 'nothing' : `"${v}"`}`);
  }
  return n;
}

export function parseOptions(argv: readonly string[]): BenchOptions | 'help' {
  const given = new Map<string, string | undefined>();
  const flags = new Set(['quick', 'profile', 'help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}" (see --help)`);
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (eq > 0) given.set(name, a.slice(eq + 1));
    else if (flags.has(name)) given.set(name, 'true');
    else given.set(name, argv[++i]);
  }
  if (given.has('help')) return 'help';
  const known = new Set(['rates', 'seconds', 'targets', 'instances', 'quick', 'rest-rows', 'rest-seconds', 'sensors', 'publishers', 'drain-max', 'max-inflight', 'profile', 'out', 'window-size', 'app-node-options']);
  for (const k of given.keys()) if (!known.has(k)) throw new Error(`unknown option --${k} (see --help)`);

  const quick = given.get('quick') === 'true';
  const profile = given.get('profile') === 'true';
  const o: BenchOptions = {
    rates: quick ? [1000, 5000] : profile ? [20_000] : [1000, 5000, 10_000, 20_000, 30_000],
    seconds: quick ? 3 : 10,
    targets: profile ? ['app'] : quick ? ['app', 'naive'] : ['app', 'naive', 'floor'],
    instances: [1],
    sensors: 100,
    publishers: 2,
    drainMaxSeconds: 30,
    maxInflight: 100,
    restRows: profile ? 0 : quick ? 200_000 : 5_000_000,
    restSeconds: quick ? 3 : 5,
    restConnections: 10,
    windowSize: 60,
    quick,
    profile,
    out: given.get('out') ?? null,
    appNodeOptions: given.get('app-node-options')?.trim() || null,
  };
  if (given.has('rates')) {
    const list = (given.get('rates') ?? '').split(',').filter((s) => s.trim() !== '');
    if (list.length === 0) throw new Error('--rates needs a comma-separated list, e.g. 1000,5000');
    o.rates = list.map((s) => num('rates', s, 1, 1_000_000));
  }
  if (given.has('targets')) {
    const list = (given.get('targets') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const t of list) if (t !== 'app' && t !== 'naive' && t !== 'floor') throw new Error(`--targets: unknown target "${t}" (app, naive, floor)`);
    if (list.length === 0) throw new Error('--targets needs app, naive, floor or several');
    o.targets = [...new Set(list)] as TargetName[];
  }
  if (given.has('instances')) {
    const list = (given.get('instances') ?? '').split(',').filter((s) => s.trim() !== '');
    if (list.length === 0) throw new Error('--instances needs a comma-separated list, e.g. 1,2');
    o.instances = [...new Set(list.map((s) => num('instances', s, 1, 4)))];
    if (o.instances.some((n) => !Number.isInteger(n))) throw new Error(`--instances takes whole numbers, got "${given.get('instances')}"`);
    if (!o.targets.includes('app') && !(o.instances.length === 1 && o.instances[0] === 1)) {
      throw new Error('--instances applies to the app: add app to --targets');
    }
    if (o.profile && !(o.instances.length === 1 && o.instances[0] === 1)) throw new Error('--profile profiles one instance: leave out --instances');
  }
  if (given.has('seconds')) o.seconds = num('seconds', given.get('seconds'), 0.5, 3600);
  if (given.has('rest-rows')) o.restRows = Math.floor(num('rest-rows', given.get('rest-rows'), 0, 100_000_000));
  if (given.has('rest-seconds')) o.restSeconds = num('rest-seconds', given.get('rest-seconds'), 0.5, 600);
  if (given.has('sensors')) o.sensors = Math.floor(num('sensors', given.get('sensors'), 1, 100_000));
  if (given.has('publishers')) o.publishers = Math.floor(num('publishers', given.get('publishers'), 1, 64));
  if (given.has('drain-max')) o.drainMaxSeconds = num('drain-max', given.get('drain-max'), 1, 600);
  if (given.has('max-inflight')) o.maxInflight = Math.floor(num('max-inflight', given.get('max-inflight'), 0, 65535));
  if (given.has('window-size')) o.windowSize = Math.floor(num('window-size', given.get('window-size'), 1, 10_000));
  if (o.profile && o.targets.some((t) => t !== 'app')) throw new Error('--profile profiles the app only: --targets app');
  if (o.profile) o.restRows = 0;
  return o;
}
