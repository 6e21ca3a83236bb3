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
import { freePort, httpGet, makeTempDir, npmPack, NodeRedProcess, REPO_ROOT, writeSettings, type PackResult } from '../support/pack';

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

interface NodeSetInfo {
  id: string;
  name: string;
  types: string[];
  enabled: boolean;
  loaded?: boolean;
  module: string;
  version?: string;
  err?: string;
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
        // The editor's "Upload module tgz": a multipart POST /nodes with the file in field "tarball".
        const form = new FormData();
        form.append('tarball', new Blob([fs.readFileSync(packed.tarball)], { type: 'application/gzip' }), path.basename(packed.tarball));
        const started = Date.now();
        const res = await fetch(`${nr.url}/nodes`, { method: 'POST', body: form, signal: AbortSignal.timeout(400000) });
        installAnswer = { status: res.status, body: await res.text() };
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
        await checkNodeList(nr!);
      });

      it('serves the editor definition, form and help of every type (GET /nodes as text/html)', async function () {
        const res = await httpGet(`${nr!.url}/nodes`, 'text/html');
        assert.equal(res.status, 200);
        const problems: string[] = [];
        for (const type of TYPES) {
          if (!res.body.includes(`RED.nodes.registerType('${type}'`)) problems.push(`${type}: no registerType`);
          if (!res.body.includes(`data-template-name="${type}"`)) problems.push(`${type}: no edit form`);
          const help = new RegExp(`<script type="text/html" data-help-name="${type}">([\\s\\S]*?)</script>`).exec(res.body);
          if (!help) problems.push(`${type}: no help (data-help-name)`);
          else if (help[1].replace(/<[^>]*>/g, '').trim().length < 80) problems.push(`${type}: help is almost empty`);
        }
        assert.deepEqual(problems, []);
      });

      it('serves the message catalog of every type (GET /nodes/messages)', async function () {
        const res = await httpGet(`${nr!.url}/nodes/messages?lng=en-US`);
        assert.equal(res.status, 200);
        const catalogs = JSON.parse(res.body) as Record<string, Record<string, unknown>>;
        const problems: string[] = [];
        for (const type of TYPES) {
          const catalog = catalogs[`${pkg.name}/${type}`];
          if (!catalog || Object.keys(catalog).length === 0) problems.push(`${type}: no catalog`);
          else if (typeof catalog[type] !== 'object') problems.push(`${type}: catalog has no "${type}" key`);
        }
        assert.deepEqual(problems, []);
      });

      it('lists the examples under the package name in Import > Examples and serves each flow', async function () {
        const roots = await httpGet(`${nr!.url}/library/examples/flows/`);
        assert.equal(roots.status, 200);
        assert.ok((JSON.parse(roots.body) as string[]).includes(pkg.name), `examples list: ${roots.body}`);
        const list = await httpGet(`${nr!.url}/library/examples/flows/${pkg.name}`);
        assert.equal(list.status, 200);
        const names = (JSON.parse(list.body) as ({ fn: string } | string)[]).map((e) => (typeof e === 'string' ? `${e}/` : e.fn)).sort();
        // What the tarball holds (examples/ may have changed since it was packed).
        const expected = packed.files
          .map((f) => /^examples\/([^/]+)\.json$/.exec(f.path)?.[1])
          .filter((n): n is string => n !== undefined)
          .sort();
        assert.deepEqual(names.filter((n) => !n.endsWith('/')), expected);
        // Every node of every example is of a type this Node-RED knows (else it imports as "unknown").
        const known = new Set((JSON.parse((await httpGet(`${nr!.url}/nodes`)).body) as NodeSetInfo[]).flatMap((set) => set.types));
        for (const t of ['tab', 'group', 'junction', 'subflow']) known.add(t);
        const unknown: string[] = [];
        for (const name of expected) {
          const flow = await httpGet(`${nr!.url}/library/examples/flows/${pkg.name}/${name}`);
          assert.equal(flow.status, 200, name);
          const nodes = JSON.parse(flow.body) as { type: string }[];
          assert.ok(Array.isArray(nodes) && nodes.length > 0, name);
          for (const n of nodes) if (!known.has(n.type) && !n.type.startsWith('subflow:')) unknown.push(`${name}: ${n.type}`);
        }
        assert.deepEqual(unknown, [], 'example nodes of unknown types');
      });

      it('loads the same nodes at start after a restart', async function () {
        await nr!.stop();
        const port = await freePort();
        nr = await NodeRedProcess.start({ userDir, port, settingsFile: writeSettings(userDir, port) });
        await checkNodeList(nr);
      });
    });
  });
});

async function checkNodeList(nr: NodeRedProcess): Promise<void> {
  const res = await httpGet(`${nr.url}/nodes`);
  assert.equal(res.status, 200);
  const sets = (JSON.parse(res.body) as NodeSetInfo[]).filter((s) => s.module === pkg.name);
  const problems: string[] = [];
  for (const type of TYPES) {
    const set = sets.find((s) => s.name === type);
    if (!set) problems.push(`${type}: no node set`);
    else if (set.err) problems.push(`${type}: ${set.err}`);
    else if (!set.enabled || set.loaded === false) problems.push(`${type}: enabled ${set.enabled}, loaded ${set.loaded}`);
    else if (!set.types.includes(type)) problems.push(`${type}: the set registers ${JSON.stringify(set.types)}, not "${type}"`);
  }
  assert.deepEqual(problems, [], `node sets of ${pkg.name} that did not load:\n${problems.join('\n')}`);
}
