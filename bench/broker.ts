/**
 * The bench's own Mosquitto: a config of its own in the bench's temp dir, on a free loopback port,
 * so the system broker is never touched. It queues without limit for slow subscribers
 * (`max_queued_messages 0`), so a reading is lost only if the pipeline loses it; the `$SYS` drop
 * counter is watched to prove the broker dropped nothing.
 */
import { spawn, type ChildProcess } from 'child_process';
import fs from 'fs';
import mqtt from 'mqtt';
import net from 'net';
import path from 'path';
import { freePort } from '../test/support/app';
import { onCleanup } from './cleanup';

export interface Broker {
  port: number;
  url: string;
  pid: number;
  /** The latest values of the `$SYS/broker/...` counters the bench watches. */
  sys(): BrokerSys;
  /** Connects with `clientId` and a clean session, which discards that client's stored session. */
  purgeSession(clientId: string): Promise<void>;
  logs(): string;
  /**
   * Stops the broker (SIGTERM: a clean stop, which saves its persistence file when `persistence`
   * is on; SIGKILL: a crash) and starts it again on the same port and config.
   */
  restart(signal: 'SIGTERM' | 'SIGKILL', downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface BrokerSys {
  /** `$SYS/broker/publish/messages/dropped`: PUBLISHes dropped for queue or inflight limits. */
  dropped: number;
  /** `$SYS/broker/publish/messages/received` and `.../sent` (all clients, since start). */
  received: number;
  sent: number;
  /** `$SYS/broker/store/messages/count`: messages held (queued for subscribers, inflight). */
  stored: number;
}

export async function startBroker(tmpDir: string, opts: { maxInflight: number; persistence?: boolean }): Promise<Broker> {
  const bin = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => fs.existsSync(p)) ?? 'mosquitto';
  const port = await freePort();
  const conf = path.join(tmpDir, 'mosquitto.conf');
  fs.writeFileSync(
    conf,
    [
      '# HyperVolt bench broker (temporary; the system broker is not used)',
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      '# queue every QoS 1 message for a slow subscriber: never drop',
      'max_queued_messages 0',
      'max_queued_bytes 0',
      `max_inflight_messages ${opts.maxInflight}`,
      ...(opts.persistence
        ? ['persistence true', `persistence_location ${tmpDir}${path.sep}`, 'autosave_interval 0']
        : ['persistence false']),
      'sys_interval 1',
      'set_tcp_nodelay true',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 20_000) out = out.slice(-10_000);
  };
  let child!: ChildProcess;
  let exited!: Promise<void>;
  const spawnBroker = async () => {
    child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const me = child;
    exited = new Promise<void>((resolve) => me.once('exit', () => resolve()));
    // Listening?
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (me.exitCode !== null) throw new Error(`mosquitto exited with code ${me.exitCode}:\n${out}`);
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on 127.0.0.1:${port}:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  const undoProcess = onCleanup('mosquitto', () => kill());
  await spawnBroker();

  const url = `mqtt://127.0.0.1:${port}`;
  const sys: BrokerSys = { dropped: 0, received: 0, sent: 0, stored: 0 };
  const monitor = mqtt.connect(url, { clientId: `hvbench-sys-${process.pid}`, clean: true, reconnectPeriod: 1000 });
  monitor.on('error', () => undefined);
  const fields: Record<string, keyof BrokerSys> = {
    '$SYS/broker/publish/messages/dropped': 'dropped',
    '$SYS/broker/publish/messages/received': 'received',
    '$SYS/broker/publish/messages/sent': 'sent',
    '$SYS/broker/store/messages/count': 'stored',
  };
  monitor.on('message', (topic, payload) => {
    const f = fields[topic];
    if (f) sys[f] = Number(payload.toString());
  });
  await new Promise<void>((resolve, reject) => {
    monitor.once('connect', () => {
      monitor.subscribe(Object.keys(fields), { qos: 0 }, (err) => (err ? reject(err) : resolve()));
    });
    setTimeout(() => reject(new Error('could not subscribe to $SYS on the bench broker')), 10_000).unref();
  });
  const undoMonitor = onCleanup('mosquitto $SYS monitor', () => new Promise<void>((r) => monitor.end(true, {}, () => r())));

  return {
    port,
    url,
    get pid() {
      return child.pid!;
    },
    sys: () => ({ ...sys }),
    logs: () => out,
    purgeSession: (clientId) =>
      new Promise<void>((resolve, reject) => {
        const c = mqtt.connect(url, { clientId, clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
        c.once('connect', () => c.end(false, {}, () => resolve()));
        c.once('error', (err) => {
          c.end(true);
          reject(err);
        });
      }),
    restart: async (signal, downMs = 0) => {
      await kill(signal);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await spawnBroker();
    },
    stop: async () => {
      await undoMonitor();
      await undoProcess();
    },
  };
}
