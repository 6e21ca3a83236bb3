/**
 * The palette install of palette-install.test.ts once more on Node-RED 5 and Node.js 22, both
 * from the npm registry: `node@22` (the `node` package ships the binary and headers) and
 * `node-red@5` into a temp dir, the tarball uploaded to that Node-RED's palette manager (its npm
 * runs on Node 22 and builds better-sqlite3 against Node 22's headers), then the same checks:
 * every node type loaded without error, editor help, message catalogs, Import > Examples.
 *
 * Needs the registry (or npm's cache): a download that fails skips the test, except under
 * CI=true where it fails. Slow (compiles better-sqlite3): about two minutes, bounded at six.
 */
import assert from 'assert/strict';
import { execFile } from 'child_process';
import fs from 'fs';
import path from 'path';
import {
  checkEditorHelp,
  checkExamples,
  checkMessageCatalogs,
  checkNodeList,
  DownloadError,
  freePort,
  installNodeRuntime,
  makeTempDir,
  npmInstallInto,
  npmPack,
  NodeRedProcess,
  paletteUpload,
  REPO_ROOT,
  runtimeEnv,
  writeSettings,
  type NodeRuntime,
  type PackResult,
} from '../support/pack';

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string; 'node-red'?: { nodes?: Record<string, string> } };
const TYPES = Object.keys(pkg['node-red']?.nodes ?? {});

/** The whole file's budget: every step gets what is left of it. */
const BUDGET_MS = 330000;

describe('palette package on Node-RED 5 and Node.js 22 (from the npm registry)', function () {
  this.timeout(BUDGET_MS + 30000);

  let tmp: string | undefined;
  let packed: PackResult;
  let node22: NodeRuntime;
  let userDir: string;
  let nr: NodeRedProcess | undefined;
  let installAnswer: { status: number; body: string } | undefined;

  before(async function () {
    this.timeout(BUDGET_MS);
    const deadline = Date.now() + BUDGET_MS - 10000;
    const left = (capMs: number) => {
      const ms = Math.min(capMs, deadline - Date.now());
      if (ms < 5000) throw new Error('out of time budget before the next step');
      return ms;
    };
    tmp = makeTempDir('nr5');
    packed = await npmPack(tmp);

    const took = (label: string, since: number) => console.log(`      ${label} took ${((Date.now() - since) / 1000).toFixed(1)} s`);
    let started = Date.now();
    try {
      node22 = await installNodeRuntime(path.join(tmp, 'node22'), 'node@22', left(150000));
      took(`npm install node@22 (${node22.version})`, started);
      started = Date.now();
      // No scripts: Node-RED's optional bcrypt would build for the system's Node; it falls back to bcryptjs.
      await npmInstallInto(path.join(tmp, 'nr5'), ['node-red@5'], { scripts: false, timeoutMs: left(150000) });
      took('npm install node-red@5', started);
    } catch (err) {
      if (!(err instanceof DownloadError) || process.env.CI === 'true') throw err;
      console.log(`      skipped: Node.js 22 or Node-RED 5 could not be had from the npm registry: ${err.message.split('\n')[0]}`);
      this.skip();
    }
    assert.match(node22.version, /^v22\./);

    userDir = path.join(tmp, 'userdir');
    fs.mkdirSync(userDir);
    const port = await freePort();
    nr = await NodeRedProcess.start({
      userDir,
      port,
      settingsFile: writeSettings(userDir, port),
      env: runtimeEnv(node22),
      nodeBin: node22.bin,
      redJs: path.join(tmp, 'nr5', 'node_modules', 'node-red', 'red.js'),
      timeoutMs: left(60000),
    });
    started = Date.now();
    installAnswer = await paletteUpload(nr, packed.tarball, left(240000));
    took('palette install', started);
  });

  after(async function () {
    this.timeout(30000);
    if (nr) await nr.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('runs Node-RED 5 on Node.js 22', async function () {
    const settings = JSON.parse(await (await fetch(`${nr!.url}/settings`)).text()) as { version: string };
    assert.match(settings.version, /^5\./);
    assert.match(nr!.log(), /Node\.js\s+version:\s*v22\./);
  });

  it('installs the module through the palette manager (POST /nodes answers 200 with the module)', function () {
    assert.ok(installAnswer, 'no answer from POST /nodes');
    assert.equal(installAnswer.status, 200, `POST /nodes: ${installAnswer.body}\n--- Node-RED log ---\n${nr?.log()}`);
    const info = JSON.parse(installAnswer.body) as { name: string; version: string };
    assert.equal(info.name, pkg.name);
    assert.equal(info.version, pkg.version);
  });

  it('built better-sqlite3 for Node.js 22 (it opens a database there)', async function () {
    const script = "const D = require('better-sqlite3'); const db = new D(':memory:'); console.log(db.prepare('select 41 + 1 as n').get().n); db.close();";
    const out = await new Promise<string>((resolve, reject) =>
      execFile(node22.bin, ['-e', script], { cwd: userDir, timeout: 30000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
    );
    assert.equal(out.trim(), '42');
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

  it('loads the same nodes at start after a restart', async function () {
    this.timeout(90000);
    await nr!.stop();
    const port = await freePort();
    nr = await NodeRedProcess.start({
      userDir,
      port,
      settingsFile: writeSettings(userDir, port),
      env: runtimeEnv(node22),
      nodeBin: node22.bin,
      redJs: path.join(tmp!, 'nr5', 'node_modules', 'node-red', 'red.js'),
    });
    await checkNodeList(nr, pkg.name, TYPES);
  });
});
