/**
 * The palette package as a user gets it: the Flow Library scorecard's checks on package.json,
 * the node .html files and the examples (what `node-red-dev validate` checks, without its calls
 * to the internet); `npm pack`'s file list; then the tarball uploaded to the palette manager of a
 * fresh Node-RED (`POST /nodes` with the .tgz, as "Install > Upload module" does: Node-RED runs
 * `npm install --omit=dev ...` in its user directory) and checked through the admin API that the
 * editor uses: node list, editor html with help, message catalogs, Import > Examples. Then once
 * more after a restart, when the nodes load from the user directory at start.
 *
 * Slow (the install compiles better-sqlite3 from source here: no prebuilt binaries offline).
 * Run it after a build: `npm run pack:check`.
 */
import assert from 'assert/strict';
import fs from 'fs';
import path from 'path';
import vm from 'vm';
import Sqlite from 'better-sqlite3';
import {
  checkEditorHelp,
  checkExamples,
  checkMessageCatalogs,
  checkNodeList,
  CommsClient,
  freePort,
  httpGet,
  makeTempDir,
  npmPack,
  NodeRedProcess,
  paletteUpload,
  REPO_ROOT,
  writeSettings,
  type NodeSetInfo,
  type PackResult,
} from '../support/pack';

interface PackageJson {
  name: string;
  version: string;
  license?: string;
  repository?: string | { url?: string };
  bugs?: unknown;
  keywords?: string[];
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  'node-red'?: { version?: string; nodes?: Record<string, string> };
}

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as PackageJson;
const nodeFiles = pkg['node-red']?.nodes ?? {};
const TYPES = Object.keys(nodeFiles);
const EXAMPLES_DIR = path.join(REPO_ROOT, 'examples');

/** The source .html of a node: next to its .ts in nodes/<type>/ (copied beside the .js in dist). */
function nodeHtmlPath(type: string): string {
  return path.join(REPO_ROOT, 'nodes', type, `${type}.html`);
}

/** `<script type="text/javascript">` blocks, as node-red-dev's parser finds them. */
function scriptBlocks(html: string): string[] {
  const re = /<script[^>]+type=['"]text\/javascript['"][^>]*>([\s\S]*?)<\/script>/gi;
  const blocks: string[] = [];
  for (let m = re.exec(html); m !== null; m = re.exec(html)) blocks.push(m[1]);
  return blocks;
}

interface Registration {
  type: string;
  category?: string;
}

/** Literal `RED.nodes.registerType('<type>', {...})` calls and the literal category of each. */
function registrations(js: string): Registration[] {
  const re = /RED\.nodes\.registerType\(\s*(['"])([^'"]+)\1\s*,\s*\{/g;
  const found: Registration[] = [];
  for (let m = re.exec(js); m !== null; m = re.exec(js)) {
    const rest = js.slice(m.index + m[0].length);
    const cat = /\bcategory\s*:\s*(['"])([^'"]*)\1/.exec(rest);
    found.push({ type: m[2], category: cat?.[2] });
  }
  return found;
}

function exampleFlows(): Map<string, Record<string, unknown>[]> {
  const flows = new Map<string, Record<string, unknown>[]>();
  if (!fs.existsSync(EXAMPLES_DIR)) return flows;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) flows.set(path.relative(EXAMPLES_DIR, p), JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>[]);
    }
  };
  walk(EXAMPLES_DIR);
  return flows;
}

describe('palette package', function () {
  this.timeout(180000);

  describe('Flow Library scorecard (static)', function () {
    it('has a scoped @hypervolt/node-red-… name, the node-red keyword, a license and a repository (P01, P03, P04, P05)', function () {
      assert.match(pkg.name, /^@hypervolt\/node-red-[a-z0-9-]+$/);
      assert.ok(pkg.keywords?.includes('node-red'), 'keywords must contain node-red');
      assert.ok(typeof pkg.license === 'string' && pkg.license !== '' && pkg.license !== 'UNLICENSED', `license ${pkg.license}`);
      assert.ok(fs.existsSync(path.join(REPO_ROOT, 'LICENSE')), 'LICENSE file');
      const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
      assert.ok(repo || pkg.bugs, 'repository or bugs');
    });

    it('declares node-red.version and engines.node, both satisfied by what we test with (P06, P07)', function () {
      const nrVersion = pkg['node-red']?.version;
      assert.ok(nrVersion, 'node-red.version');
      const installed = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules', 'node-red', 'package.json'), 'utf8')) as { version: string }).version;
      const major = (range: string) => Number(/(\d+)/.exec(range)?.[1]);
      assert.ok(nrVersion.startsWith('>=') && major(nrVersion) <= Number(installed.split('.')[0]), `node-red.version ${nrVersion} vs Node-RED ${installed}`);
      const engines = pkg.engines?.node;
      assert.ok(engines, 'engines.node');
      assert.ok(engines.startsWith('>=') && major(engines) <= Number(process.versions.node.split('.')[0]), `engines.node ${engines} vs Node ${process.version}`);
    });

    it('has at most 6 runtime dependencies, none of them Node-RED, the broker or a test tool (D01)', function () {
      const deps = Object.keys(pkg.dependencies ?? {});
      assert.ok(deps.length <= 6, `${deps.length} dependencies: ${deps.join(', ')}`);
      for (const dev of ['node-red', 'aedes', 'mocha', 'node-red-node-test-helper', 'typescript']) {
        assert.ok(!deps.includes(dev), `${dev} must be a devDependency`);
      }
    });

    it('lists each node type once, with its compiled file at dist/nodes/<type>/<type>.js (N01)', function () {
      assert.ok(TYPES.length > 0, 'package.json node-red.nodes is empty');
      assert.equal(new Set(TYPES).size, TYPES.length);
      const problems: string[] = [];
      for (const type of TYPES) {
        if (nodeFiles[type] !== `dist/nodes/${type}/${type}.js`) problems.push(`${type}: listed as ${nodeFiles[type]}`);
        if (!fs.existsSync(path.join(REPO_ROOT, 'nodes', type, `${type}.ts`))) problems.push(`${type}: nodes/${type}/${type}.ts missing`);
      }
      assert.deepEqual(problems, []);
    });

    it("has a parsable .html per node with a literal RED.nodes.registerType('<type>', {...}) and a category", function () {
      const problems: string[] = [];
      const registered = new Map<string, string>();
      for (const type of TYPES) {
        const file = nodeHtmlPath(type);
        if (!fs.existsSync(file)) {
          problems.push(`${type}: nodes/${type}/${type}.html missing`);
          continue;
        }
        const html = fs.readFileSync(file, 'utf8');
        if (!html.includes(`RED.nodes.registerType('${type}'`)) problems.push(`${type}: no literal RED.nodes.registerType('${type}'`);
        const blocks = scriptBlocks(html);
        if (blocks.length === 0) problems.push(`${type}: no <script type="text/javascript"> block`);
        for (const js of blocks) {
          try {
            new vm.Script(js, { filename: `${type}.html` });
          } catch (err) {
            problems.push(`${type}: editor script does not parse: ${(err as Error).message}`);
          }
          for (const r of registrations(js)) {
            if (registered.has(r.type)) problems.push(`${r.type}: registered twice`);
            registered.set(r.type, r.category ?? '');
            if (!r.category) problems.push(`${r.type}: no literal category`);
          }
        }
        if (!/<script[^>]+data-template-name=['"]/.test(html) || !html.includes(`data-template-name="${type}"`)) {
          problems.push(`${type}: no <script type="text/html" data-template-name="${type}"> form`);
        }
      }
      for (const type of registered.keys()) if (!TYPES.includes(type)) problems.push(`${type}: registered in an .html but not listed in package.json`);
      assert.deepEqual(problems, []);
    });

    it('has help (locales/en-US/<type>.html) and a message catalog (locales/en-US/<type>.json) for every type', function () {
      const problems: string[] = [];
      for (const type of TYPES) {
        const dir = path.join(REPO_ROOT, 'nodes', type, 'locales', 'en-US');
        const help = path.join(dir, `${type}.html`);
        const catalog = path.join(dir, `${type}.json`);
        if (!fs.existsSync(help)) problems.push(`${type}: help missing`);
        else if (!fs.readFileSync(help, 'utf8').includes(`data-help-name="${type}"`)) problems.push(`${type}: help has no data-help-name="${type}"`);
        if (!fs.existsSync(catalog)) problems.push(`${type}: message catalog missing`);
        else {
          const json = JSON.parse(fs.readFileSync(catalog, 'utf8')) as Record<string, unknown>;
          if (typeof json[type] !== 'object') problems.push(`${type}: catalog has no top-level "${type}" key (RED._('${type}.…'))`);
        }
      }
      assert.deepEqual(problems, []);
    });

    it('has an example flow in examples/ using every node type (N02)', function () {
      const flows = exampleFlows();
      assert.ok(flows.size > 0, 'no examples/*.json');
      const used = new Set<string>();
      for (const [file, flow] of flows) {
        assert.ok(Array.isArray(flow), `${file} is not a flow (an array of nodes)`);
        for (const n of flow) if (typeof n.type === 'string') used.add(n.type);
      }
      const configTypes = new Set<string>();
      for (const type of TYPES) {
        const file = nodeHtmlPath(type);
        if (!fs.existsSync(file)) continue;
        for (const js of scriptBlocks(fs.readFileSync(file, 'utf8'))) for (const r of registrations(js)) if (r.category === 'config') configTypes.add(r.type);
      }
      const missing = TYPES.filter((t) => !used.has(t)).map((t) => (configTypes.has(t) ? `${t} (config node)` : t));
      assert.deepEqual(missing, [], `node types without an example in examples/: ${missing.join(', ')}`);
    });

    it('has importable examples: unique ids, every wire and config node reference inside the file; a quick start among them', function () {
      const flows = exampleFlows();
      assert.ok(flows.has('quick-start.json'), 'examples/quick-start.json');
      const problems: string[] = [];
      for (const [file, flow] of flows) {
        const ids = new Set<string>();
        for (const n of flow) {
          if (typeof n.id !== 'string' || typeof n.type !== 'string') problems.push(`${file}: a node without id or type`);
          else if (ids.has(n.id)) problems.push(`${file}: id ${n.id} twice`);
          else ids.add(n.id);
        }
        const configIds = new Set(flow.filter((n) => !('wires' in n) && n.type !== 'tab' && n.type !== 'group').map((n) => n.id as string));
        for (const n of flow) {
          const wires = (n.wires ?? []) as unknown[];
          for (const w of wires.flat()) if (!ids.has(w as string)) problems.push(`${file}: ${n.id} wired to missing ${String(w)}`);
          // (A `z` of a tab not in the file is fine: the editor imports such nodes onto the current tab.)
          // Our nodes point at their config node by id in one of these properties.
          for (const key of ['store', 'database', 'account']) {
            const ref = n[key];
            if (typeof ref === 'string' && ref !== '' && !configIds.has(ref)) problems.push(`${file}: ${n.id}.${key} → missing config node ${ref}`);
          }
        }
      }
      assert.deepEqual(problems, []);
    });
  });

  describe('npm pack, then Node-RED palette install', function () {
    let packDir: string;
    let packed: PackResult;
    let userDir: string;
    let nr: NodeRedProcess | undefined;
    let installAnswer: { status: number; body: string } | undefined;

    before(async function () {
      packDir = makeTempDir('pack');
      packed = await npmPack(packDir);
    });

    after(async function () {
      if (nr) await nr.stop();
      for (const dir of [packDir, userDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    describe('the tarball', function () {
      it('contains the compiled nodes with html and locales, the examples, README, LICENSE and package.json', function () {
        const files = new Set(packed.files.map((f) => f.path));
        const missing: string[] = [];
        for (const f of ['package.json', 'README.md', 'LICENSE']) if (!files.has(f)) missing.push(f);
        for (const type of TYPES) {
          for (const f of [`dist/nodes/${type}/${type}.js`, `dist/nodes/${type}/${type}.html`, `dist/nodes/${type}/locales/en-US/${type}.html`, `dist/nodes/${type}/locales/en-US/${type}.json`]) {
            if (!files.has(f)) missing.push(f);
          }
        }
        for (const example of exampleFlows().keys()) if (!files.has(`examples/${example}`)) missing.push(`examples/${example}`);
        assert.deepEqual(missing, []);
      });

      it('contains no tests, fixtures, data, app, bench, TypeScript sources or stale build output', function () {
        const kinds = new Map<string, number>();
        for (const f of packed.files) {
          const kind = f.path.startsWith('dist/nodes/') ? `dist/nodes *${path.extname(f.path)}` : f.path.split('/')[0];
          kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        }
        console.log(
          `      ${path.basename(packed.tarball)}: ${packed.files.length} files, ${(packed.size / 1024).toFixed(1)} KiB packed, ` +
            `${(packed.unpackedSize / 1024).toFixed(1)} KiB unpacked (${[...kinds].map(([k, n]) => `${k}: ${n}`).join(', ')})`,
        );
        const bad = packed.files
          .map((f) => f.path)
          .filter(
            (p) =>
              /^(test|dist\/test|dist\/app|app|data|bench|dist\/bench|flows|scripts|node_modules)\//.test(p) ||
              /(^|\/)(fixtures?|__tests__)\//.test(p) ||
              /\.test\.js$/.test(p) ||
              (/\.ts$/.test(p) && !/\.d\.ts$/.test(p)) ||
              /(^|\/)\.env/.test(p) ||
              /\.(db|sqlite|log|tgz)$/.test(p) ||
              p === 'settings.js' ||
              p === 'dist/settings.js',
          );
        assert.deepEqual(bad, []);
        // A compiled file whose source is gone would ship dead code (dist/ is built incrementally).
        const stale = packed.files
          .map((f) => f.path)
          .filter((p) => /^dist\/nodes\/.*\.js$/.test(p))
          .filter((p) => !fs.existsSync(path.join(REPO_ROOT, p.replace(/^dist\//, '').replace(/\.js$/, '.ts'))));
        assert.deepEqual(stale, [], 'compiled files without a source: rebuild dist/ from clean');
      });
    });

    describe('installed by the palette manager into a fresh Node-RED', function () {
      before(async function () {
        // Installing compiles better-sqlite3 from source (no prebuilt binary offline): allow for it.
        this.timeout(420000);
        userDir = makeTempDir('userdir');
        const port = await freePort();
        const env = { ...process.env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' };
        nr = await NodeRedProcess.start({ userDir, port, settingsFile: writeSettings(userDir, port), env });
        // The editor's "Upload module tgz".
        const started = Date.now();
        installAnswer = await paletteUpload(nr, packed.tarball, 400000);
        console.log(`      palette install took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      });

      it('installs the module (POST /nodes answers 200 with the module) with production dependencies only', function () {
        assert.ok(installAnswer, 'no answer from POST /nodes');
        assert.equal(installAnswer.status, 200, `POST /nodes: ${installAnswer.body}\n--- Node-RED log ---\n${nr?.log()}`);
        const info = JSON.parse(installAnswer.body) as { name: string; version: string; nodes: NodeSetInfo[] };
        assert.equal(info.name, pkg.name);
        assert.equal(info.version, pkg.version);
        const modules = path.join(userDir, 'node_modules');
        assert.ok(fs.existsSync(path.join(modules, ...pkg.name.split('/'), 'package.json')));
        for (const dep of Object.keys(pkg.dependencies ?? {})) assert.ok(fs.existsSync(path.join(modules, dep)), `dependency ${dep} not installed`);
        for (const dev of ['node-red', 'aedes', 'mocha', 'typescript']) assert.ok(!fs.existsSync(path.join(modules, dev)), `devDependency ${dev} was installed`);
      });

      it('lists every node type of package.json as enabled and loaded, without error (GET /nodes)', async function () {
        await checkNodeList(nr!, pkg.name, TYPES);
      });

      it('serves the editor definition, form and help of every type (GET /nodes as text/html)', async function () {
        await checkEditorHelp(nr!, TYPES);
      });

      it('serves the message catalog of every type (GET /nodes/messages)', async function () {
        await checkMessageCatalogs(nr!, pkg.name, TYPES);
      });

      it('lists the examples under the package name in Import > Examples and serves each flow', async function () {
        await checkExamples(nr!, packed);
      });

      it('runs the quick-start example as imported, with no hardware and no services: readings validated, rejected, in the hot window and in SQLite', async function () {
        this.timeout(90000);
        const example = await httpGet(`${nr!.url}/library/examples/flows/${pkg.name}/quick-start`);
        assert.equal(example.status, 200);
        const flow = JSON.parse(example.body) as Record<string, unknown>[];
        const byName = (type: string, name?: string) => {
          const n = flow.find((x) => x.type === type && (name === undefined || x.name === name));
          assert.ok(n, `quick-start has no ${type} ${name ?? ''}`);
          return n.id as string;
        };
        const push = flow.find((x) => x.type === 'hot-window' && x.operation === 'push')!.id as string;
        const write = flow.find((x) => x.type === 'cold-store' && x.operation === 'write-readings')!.id as string;
        const ours = flow.filter((x) => TYPES.includes(x.type as string) && 'wires' in x).map((x) => x.id as string);
        const dbFile = path.join(userDir, 'hypervolt-quick-start.db');
        assert.ok(!fs.existsSync(dbFile), 'no database before the deploy');

        const comms = await CommsClient.connect(nr!.url, ['status/#', 'debug']);
        const logFrom = nr!.log().length;
        try {
          // As the editor deploys an import: the whole flow, full deployment.
          const res = await fetch(`${nr!.url}/flows`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
            body: JSON.stringify(flow),
          });
          assert.ok(res.status === 200 || res.status === 204, `POST /flows: ${res.status} ${await res.text()}`);

          const readingsInWindow = () => {
            const text = comms.statusesOf(push).at(-1)?.text ?? '';
            return Number(/^connected · (\d+) readings$/.exec(text)?.[1] ?? 0);
          };
          // The read-back group first fires 6 s after the deploy.
          const until = Date.now() + 30000;
          while (
            Date.now() < until &&
            !(readingsInWindow() >= 3 && comms.debugOf(byName('debug', 'latest stored readings')).length > 0 && comms.debugOf(byName('debug', 'hot window of current_1')).length > 0 && comms.debugOf(byName('debug', 'rejected reading')).length > 0)
          ) {
            await new Promise((r) => setTimeout(r, 250));
          }
          const log = nr!.log().slice(logFrom);
          assert.ok(readingsInWindow() >= 3, `hot-window push status: ${JSON.stringify(comms.statusesOf(push))}\n${log}`);

          // Accepted readings reached the sidebar with the contract shape.
          const accepted = comms.debugOf(byName('debug', 'accepted reading')).map((m) => JSON.parse(m) as Record<string, unknown>);
          assert.ok(accepted.length >= 3, `accepted readings: ${accepted.length}`);
          for (const r of accepted) assert.deepEqual(Object.keys(r).sort(), ['location', 'sensor_id', 'sensor_type', 'timestamp', 'unit', 'value']);
          assert.deepEqual([...new Set(accepted.map((r) => r.sensor_type))].sort(), ['current', 'humidity', 'ldr', 'temperature']);

          // The simulator's broken reading took the reject path (output 2), with its error.
          const rejected = comms.debugOf(byName('debug', 'rejected reading')).map((m) => JSON.parse(m) as { code: string; field: string; message: string });
          assert.ok(rejected.length >= 1 && rejected.every((e) => e.code && e.field && e.message), `rejects: ${JSON.stringify(rejected)}`);

          // The read-back: one sensor's window from the hot store, the newest rows from the database.
          const window = JSON.parse(comms.debugOf(byName('debug', 'hot window of current_1'))[0]) as { readings: unknown[]; stats: unknown };
          assert.ok(Array.isArray(window.readings) && window.readings.length >= 1 && window.stats, `hot window: ${JSON.stringify(window)}`);
          const latest = JSON.parse(comms.debugOf(byName('debug', 'latest stored readings'))[0]) as { sensor_id: string }[];
          assert.ok(Array.isArray(latest) && latest.some((r) => r.sensor_id === 'current_1'), `latest readings: ${JSON.stringify(latest)}`);

          // The database file, where the comment says it is (relative to Node-RED's working directory).
          const db = new Sqlite(dbFile, { readonly: true, fileMustExist: true });
          try {
            const stored = db.prepare('SELECT sensor_type, COUNT(*) AS n FROM sensor_readings GROUP BY sensor_type ORDER BY sensor_type').all() as { sensor_type: string; n: number }[];
            assert.deepEqual(
              stored.map((r) => r.sensor_type),
              ['current', 'humidity', 'ldr', 'temperature'],
            );
          } finally {
            db.close();
          }

          // No node failed or shows trouble.
          assert.doesNotMatch(log, /\[error\]/, log);
          // sensor-validate turns red when it has rejected something: the simulator's broken readings, on purpose.
          const validate = byName('sensor-validate');
          const red = ours.flatMap((id) =>
            comms
              .statusesOf(id)
              .filter((s) => s.fill === 'red' && !(id === validate && /rejected [1-9]/.test(s.text ?? '')))
              .map((s) => `${id}: ${s.text}`),
          );
          assert.deepEqual(red, []);
          assert.ok(comms.statusesOf(write).length > 0, 'cold-store shows a status');
        } finally {
          comms.close();
        }
      });

      it('loads the same nodes at start after a restart', async function () {
        await nr!.stop();
        const port = await freePort();
        nr = await NodeRedProcess.start({ userDir, port, settingsFile: writeSettings(userDir, port) });
        await checkNodeList(nr, pkg.name, TYPES);
      });
    });
  });
});
