/**
 * Support for testing the palette package as a user gets it: `npm pack` of the repository, a
 * fresh Node-RED user directory, and a Node-RED process (the repository's devDependency) driven
 * through its admin HTTP API.
 */
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

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: systemNpmEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
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
  static async start(opts: { userDir: string; port: number; settingsFile: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<NodeRedProcess> {
    const redJs = path.join(REPO_ROOT, 'node_modules', 'node-red', 'red.js');
    const child = spawn(process.execPath, [redJs, '--userDir', opts.userDir, '--port', String(opts.port), '--settings', opts.settingsFile], {
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
