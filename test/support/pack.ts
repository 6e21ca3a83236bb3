/**
 * Support for testing the palette package as a user gets it: `npm pack` of the repository, a
 * fresh Node-RED user directory, and a Node-RED process (the repository's devDependency) driven
 * through its admin HTTP API.
 */
import assert from 'assert/strict';
import { spawn, execFile, type ChildProcess } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import WebSocket from 'ws';

/** dist/test/support → the repository root. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export interface PackedFile {
  path: string;
  size: number;
}

export interface PackResult {
  tarball: string;
  name: string;
  version: string;
  /** Bytes of the .tgz. */
  size: number;
  unpackedSize: number;
  files: PackedFile[];
}

/**
 * The environment for the system's npm: under `npx`/`npm run`, PATH starts with the repository's
 * node_modules/.bin, whose `npm` is Node-RED's bundled npm 10, and npm 10 runs `prepare` on
 * `npm pack` even with `--ignore-scripts`.
 */
function systemNpmEnv(): NodeJS.ProcessEnv {
  const inRepoModules = (dir: string) => path.resolve(dir).startsWith(path.join(REPO_ROOT, 'node_modules'));
  const PATH = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => dir !== '' && !inRepoModules(dir))
    .join(path.delimiter);
  return { ...process.env, PATH, npm_config_ignore_scripts: 'true' };
}

function run(cmd: string, args: string[], cwd: string, timeoutMs: number, env: NodeJS.ProcessEnv = systemNpmEnv()): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/**
 * `npm pack` of the repository into `destDir`, as it is built now. `--ignore-scripts`: the
 * `prepare` script would rebuild the whole tree (tests included) in the middle of a test run.
 */
export async function npmPack(destDir: string): Promise<PackResult> {
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', destDir], REPO_ROOT, 120000);
  const [info] = JSON.parse(stdout) as { name: string; version: string; filename: string; size: number; unpackedSize: number; files: PackedFile[] }[];
  return {
    tarball: path.join(destDir, info.filename),
    name: info.name,
    version: info.version,
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.files.map((f) => ({ path: f.path, size: f.size })),
  };
}

export function makeTempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `hv-${label}-`));
}

/** A TCP port that was free a moment ago, on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A minimal settings file for a clean Node-RED: editor and admin API at `/`, no auth, no flows,
 * nothing that phones home, palette install and upload allowed (the palette manager's paths).
 */
export function writeSettings(userDir: string, port: number): string {
  const settings = {
    uiHost: '127.0.0.1',
    uiPort: port,
    httpAdminRoot: '/',
    httpNodeRoot: '/',
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    editorTheme: { tours: false, projects: { enabled: false } },
    externalModules: { palette: { allowInstall: true, allowUpload: true } },
    logging: { console: { level: 'info', metrics: false, audit: false } },
  };
  const file = path.join(userDir, 'settings.js');
  fs.writeFileSync(file, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  return file;
}

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
}

export async function httpGet(url: string, accept = 'application/json', timeoutMs = 30000): Promise<HttpAnswer> {
  const res = await fetch(url, { headers: { Accept: accept }, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body: await res.text() };
}

const MAX_LOG_CHARS = 200000;

/** Node-RED in a child process, from the repository's devDependency. */
export class NodeRedProcess {
  private logText = '';
  private exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    const keep = (d: Buffer) => {
      this.logText += d.toString();
      if (this.logText.length > MAX_LOG_CHARS) this.logText = this.logText.slice(-MAX_LOG_CHARS);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    // Never leave a Node-RED behind, even when the test run itself is cut short.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        process.removeListener('exit', killOnExit);
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  /** Starts Node-RED and resolves once its admin API answers; rejects with its log if it does not. */
  static async start(opts: {
    userDir: string;
    port: number;
    settingsFile: string;
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    /** Another Node.js binary (default: the one running the tests). */
    nodeBin?: string;
    /** Another Node-RED's red.js (default: the repository's devDependency). */
    redJs?: string;
  }): Promise<NodeRedProcess> {
    const redJs = opts.redJs ?? path.join(REPO_ROOT, 'node_modules', 'node-red', 'red.js');
    const child = spawn(opts.nodeBin ?? process.execPath, [redJs, '--userDir', opts.userDir, '--port', String(opts.port), '--settings', opts.settingsFile], {
      cwd: opts.userDir,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const nr = new NodeRedProcess(child, `http://127.0.0.1:${opts.port}`);
    const until = Date.now() + (opts.timeoutMs ?? 60000);
    for (;;) {
      if (nr.exitCode !== undefined) throw new Error(`Node-RED exited (${nr.exitCode}) while starting:\n${nr.log()}`);
      try {
        const res = await httpGet(`${nr.url}/settings`, 'application/json', 2000);
        if (res.status === 200) return nr;
      } catch {
        // not listening yet
      }
      if (Date.now() > until) {
        await nr.stop();
        throw new Error(`Node-RED did not answer on ${nr.url} in time:\n${nr.log()}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  log(): string {
    return this.logText;
  }

  /** SIGINT (Node-RED stops its flows), then SIGKILL if it is still running after `graceMs`. */
  async stop(graceMs = 10000): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface CommsMessage {
  topic: string;
  data: Record<string, unknown>;
}

/**
 * The editor's live channel (`/comms` websocket): node statuses (`status/<id>`) and debug sidebar
 * messages (`debug`), as the editor sees them. Keeps every message received.
 */
export class CommsClient {
  readonly messages: CommsMessage[] = [];

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const parsed = JSON.parse(data.toString()) as CommsMessage | CommsMessage[];
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) this.messages.push(m);
    });
  }

  static async connect(baseUrl: string, topics: string[]): Promise<CommsClient> {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/comms`);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    for (const topic of topics) socket.send(JSON.stringify({ subscribe: topic }));
    return new CommsClient(socket);
  }

  /** The statuses a node has shown so far, oldest first. */
  statusesOf(id: string): { fill?: string; shape?: string; text?: string }[] {
    return this.messages.filter((m) => m.topic === `status/${id}`).map((m) => m.data as { fill?: string; shape?: string; text?: string });
  }

  /** What the debug node `id` sent to the sidebar so far (its `msg`, as the editor gets it: serialized). */
  debugOf(id: string): string[] {
    return this.messages.filter((m) => m.topic === 'debug' && m.data.id === id).map((m) => String(m.data.msg));
  }

  close(): void {
    this.socket.close();
  }
}

/** A node set as the admin API lists it (`GET /nodes`). */
export interface NodeSetInfo {
  id: string;
  name: string;
  types: string[];
  enabled: boolean;
  loaded?: boolean;
  module: string;
  version?: string;
  err?: string;
}

/**
 * The editor's "Install > Upload module": a multipart POST /nodes with the .tgz in field
 * "tarball" (Node-RED runs `npm install --omit=dev ...` in its user directory).
 */
export async function paletteUpload(nr: NodeRedProcess, tarball: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  const form = new FormData();
  form.append('tarball', new Blob([fs.readFileSync(tarball)], { type: 'application/gzip' }), path.basename(tarball));
  const res = await fetch(`${nr.url}/nodes`, { method: 'POST', body: form, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

/** Every type of `types` is in an enabled, loaded node set of module `moduleName`, without error. */
export async function checkNodeList(nr: NodeRedProcess, moduleName: string, types: string[]): Promise<void> {
  const res = await httpGet(`${nr.url}/nodes`);
  assert.equal(res.status, 200);
  const sets = (JSON.parse(res.body) as NodeSetInfo[]).filter((s) => s.module === moduleName);
  const problems: string[] = [];
  for (const type of types) {
    const set = sets.find((s) => s.name === type);
    if (!set) problems.push(`${type}: no node set`);
    else if (set.err) problems.push(`${type}: ${set.err}`);
    else if (!set.enabled || set.loaded === false) problems.push(`${type}: enabled ${set.enabled}, loaded ${set.loaded}`);
    else if (!set.types.includes(type)) problems.push(`${type}: the set registers ${JSON.stringify(set.types)}, not "${type}"`);
  }
  assert.deepEqual(problems, [], `node sets of ${moduleName} that did not load:\n${problems.join('\n')}`);
}

/** The editor html (`GET /nodes` as text/html) has the definition, the form and a real help text of every type. */
export async function checkEditorHelp(nr: NodeRedProcess, types: string[]): Promise<void> {
  const res = await httpGet(`${nr.url}/nodes`, 'text/html');
  assert.equal(res.status, 200);
  const problems: string[] = [];
  for (const type of types) {
    if (!res.body.includes(`RED.nodes.registerType('${type}'`)) problems.push(`${type}: no registerType`);
    if (!res.body.includes(`data-template-name="${type}"`)) problems.push(`${type}: no edit form`);
    const help = new RegExp(`<script type="text/html" data-help-name="${type}">([\\s\\S]*?)</script>`).exec(res.body);
    if (!help) problems.push(`${type}: no help (data-help-name)`);
    else if (help[1].replace(/<[^>]*>/g, '').trim().length < 80) problems.push(`${type}: help is almost empty`);
  }
  assert.deepEqual(problems, []);
}

/** `GET /nodes/messages` has a non-empty catalog, keyed by the type, for every type. */
export async function checkMessageCatalogs(nr: NodeRedProcess, moduleName: string, types: string[]): Promise<void> {
  const res = await httpGet(`${nr.url}/nodes/messages?lng=en-US`);
  assert.equal(res.status, 200);
  const catalogs = JSON.parse(res.body) as Record<string, Record<string, unknown>>;
  const problems: string[] = [];
  for (const type of types) {
    const catalog = catalogs[`${moduleName}/${type}`];
    if (!catalog || Object.keys(catalog).length === 0) problems.push(`${type}: no catalog`);
    else if (typeof catalog[type] !== 'object') problems.push(`${type}: catalog has no "${type}" key`);
  }
  assert.deepEqual(problems, []);
}

/**
 * Import > Examples lists the module with exactly the example flows the tarball holds (the quick
 * start among them), each served as a flow whose nodes are all of types this Node-RED knows.
 */
export async function checkExamples(nr: NodeRedProcess, packed: PackResult): Promise<void> {
  const roots = await httpGet(`${nr.url}/library/examples/flows/`);
  assert.equal(roots.status, 200);
  assert.ok((JSON.parse(roots.body) as string[]).includes(packed.name), `examples list: ${roots.body}`);
  const list = await httpGet(`${nr.url}/library/examples/flows/${packed.name}`);
  assert.equal(list.status, 200);
  const names = (JSON.parse(list.body) as ({ fn: string } | string)[]).map((e) => (typeof e === 'string' ? `${e}/` : e.fn)).sort();
  // What the tarball holds (examples/ may have changed since it was packed).
  const expected = packed.files
    .map((f) => /^examples\/([^/]+)\.json$/.exec(f.path)?.[1])
    .filter((n): n is string => n !== undefined)
    .sort();
  assert.deepEqual(names.filter((n) => !n.endsWith('/')), expected);
  assert.ok(expected.includes('quick-start'), `the quick start is among the examples: ${expected.join(', ')}`);
  // Every node of every example is of a type this Node-RED knows (else it imports as "unknown").
  const known = new Set((JSON.parse((await httpGet(`${nr.url}/nodes`)).body) as NodeSetInfo[]).flatMap((set) => set.types));
  for (const t of ['tab', 'group', 'junction', 'subflow']) known.add(t);
  const unknown: string[] = [];
  for (const name of expected) {
    const flow = await httpGet(`${nr.url}/library/examples/flows/${packed.name}/${name}`);
    assert.equal(flow.status, 200, name);
    const nodes = JSON.parse(flow.body) as { type: string }[];
    assert.ok(Array.isArray(nodes) && nodes.length > 0, name);
    for (const n of nodes) if (!known.has(n.type) && !n.type.startsWith('subflow:')) unknown.push(`${name}: ${n.type}`);
  }
  assert.deepEqual(unknown, [], 'example nodes of unknown types');
}

/** Thrown when the npm registry could not give us a package (offline, timeout, not published). */
export class DownloadError extends Error {}

/**
 * `npm install <specs>` (the system's npm) into `dir`, a throwaway project of its own. `scripts`:
 * whether install scripts run (the `node` package fetches its binary in one).
 */
export async function npmInstallInto(dir: string, specs: string[], opts: { scripts: boolean; timeoutMs: number }): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'hv-tools', private: true }));
  const env = systemNpmEnv();
  if (opts.scripts) delete env.npm_config_ignore_scripts;
  const args = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-update-notifier', ...(opts.scripts ? [] : ['--ignore-scripts']), ...specs];
  try {
    await run('npm', args, dir, opts.timeoutMs, env);
  } catch (err) {
    throw new DownloadError((err as Error).message);
  }
}

export interface NodeRuntime {
  /** The `node` binary. */
  bin: string;
  /** For `npm_config_nodedir`: holds include/node (the headers native modules build against). */
  nodedir: string;
  /** `process.version` of that binary. */
  version: string;
}

/**
 * Node.js from the npm registry: the `node` package (`spec`, e.g. `node@22`) installed into `dir`;
 * its preinstall fetches `node-<platform>-<arch>`, which holds the binary and the headers.
 */
export async function installNodeRuntime(dir: string, spec: string, timeoutMs: number): Promise<NodeRuntime> {
  await npmInstallInto(dir, [spec], { scripts: true, timeoutMs });
  const nested = path.join(dir, 'node_modules', 'node', 'node_modules');
  const platformPkg = [`node-${process.platform}-${process.arch}`, `node-bin-${process.platform}-${process.arch}`]
    .map((name) => path.join(nested, name))
    .find((p) => fs.existsSync(path.join(p, 'package.json')));
  if (!platformPkg) throw new DownloadError(`${spec}: no node-${process.platform}-${process.arch} under ${nested}`);
  const bin = path.join(platformPkg, 'bin', 'node');
  assert.ok(fs.existsSync(path.join(platformPkg, 'include', 'node', 'node_version.h')), `${spec} ships no headers in ${platformPkg}/include/node`);
  const { stdout } = await run(bin, ['-p', 'process.version'], dir, 30000, {});
  return { bin, nodedir: platformPkg, version: stdout.trim() };
}

/**
 * The environment for a Node-RED (and the npm it spawns for palette installs) on another Node.js:
 * that `node` first on PATH (npm's `#!/usr/bin/env node` runs on it), native modules built
 * against its headers, install scripts on (better-sqlite3 builds in one).
 */
export function runtimeEnv(runtime: NodeRuntime): NodeJS.ProcessEnv {
  const env = systemNpmEnv();
  delete env.npm_config_ignore_scripts;
  // npm's own bookkeeping from the outer `npx`: it names the Node.js that ran it.
  for (const key of Object.keys(env)) if (key.startsWith('npm_') && !key.startsWith('npm_config_')) delete env[key];
  env.PATH = [path.dirname(runtime.bin), env.PATH].join(path.delimiter);
  env.npm_config_nodedir = runtime.nodedir;
  env.npm_config_prefer_offline = 'true';
  env.npm_config_update_notifier = 'false';
  return env;
}
