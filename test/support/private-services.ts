/**
 * A PostgreSQL cluster and a Redis server of the test's own, on free loopback ports in a temp
 * directory, so that faults can be real (`pg_ctl restart -m immediate`: a crash and recovery;
 * Redis `SHUTDOWN NOSAVE`: everything in it lost) without touching this machine's shared services.
 * PostgreSQL refuses to run as root: as root, the cluster is made and run as the `postgres` user.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';
import { freePort } from './app';

function waitListening(port: number, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        if (Date.now() > deadline) reject(new Error(`${what} did not listen on 127.0.0.1:${port}`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** `SHUTDOWN NOSAVE` (all data gone), then the same server started again after `downMs`. */
  shutdownNosaveAndRestart(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-redis-'));
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    await waitListening(port, 10_000, 'redis-server');
  };
  const exited = (c: ChildProcess) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r())));
  await start();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    shutdownNosaveAndRestart: async (downMs) => {
      const c = child!;
      spawnSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { timeout: 5000 });
      await exited(c);
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    stop: async () => {
      const c = child;
      if (c && c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await exited(c);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PrivatePostgres {
  /** The `postgres` database of the cluster. */
  url: string;
  port: number;
  /** `pg_ctl restart -m immediate`: every backend killed, crash recovery on start. */
  restartImmediate(): Promise<void>;
  stop(): Promise<void>;
}

const PG_BIN = (() => {
  const base = '/usr/lib/postgresql';
  try {
    const v = fs.readdirSync(base).sort((a, b) => Number(b) - Number(a))[0];
    return v ? path.join(base, v, 'bin') : '';
  } catch {
    return '';
  }
})();

/** Whether a private cluster can be made here (the server binaries, and a non-root user if root). */
export function canRunPrivatePostgres(): boolean {
  if (!PG_BIN || !fs.existsSync(path.join(PG_BIN, 'initdb'))) return false;
  if (process.getuid?.() !== 0) return true;
  return spawnSync('id', ['postgres']).status === 0;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  // Async: pg_ctl waits for the server, and the test's event loop must go on meanwhile.
  const run = (bin: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const cmd = asRoot ? 'runuser' : path.join(PG_BIN, bin);
      const full = asRoot ? ['-u', 'postgres', '--', path.join(PG_BIN, bin), ...args] : args;
      const c = spawn(cmd, full, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(' ')} exited with ${code}:\n${out}`))));
    });
  await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c max_connections=50`;
  const log = path.join(dir, 'log');
  await run('pg_ctl', ['-D', data, '-o', opts, '-l', log, '-w', '-t', '30', 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    restartImmediate: () => run('pg_ctl', ['-D', data, '-o', opts, '-l', log, '-m', 'immediate', '-w', '-t', '30', 'restart']),
    stop: async () => {
      await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
