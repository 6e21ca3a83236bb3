/**
 * The load: several publisher worker threads at a fixed total rate, and a WebSocket client that
 * counts each reading it sees (by sequence number) and its publish → receive latency.
 */
import path from 'path';
import { Worker } from 'worker_threads';
import WebSocket from 'ws';
import type { PublisherConfig, PublisherResult } from './publisher-worker';
import { SampleBuffer } from './stats';


/**
 * The first second of a rate is its step up from idle (JIT, new sensors' window rebuilds, pools):
 * latencies from then on are also summarised apart, as the steady state.
 */
export const STEADY_AFTER_MS = 1000;
/** Width of the slices of sending time over which the highest latency is kept (WsCollector.sliceMax). */
export const SLICE_MS = 250;
export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * Offset such that `wall-clock ms = monotonic ms + offset`: taken at the instant Date.now() ticks
 * over (spinning at most a few ms), so it is good to a few microseconds, not to 1 ms.
 */
export function wallOffsetMs(): number {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    const d0 = Date.now();
    let d = d0;
    let m = monoMs();
    const limit = m + 5;
    while (d === d0 && m < limit) {
      m = monoMs();
      d = Date.now();
    }
    samples.push(d - m);
  }
  samples.sort((a, b) => a - b);
  return samples[2];
}

export interface LoadSpec {
  url: string;
  topicPrefix: string;
  sensorPrefix: string;
  sensors: number;
  publishers: number;
  rate: number;
  seconds: number;
  location: string;
  sensorType: string;
  unit: string;
  clientIdBase: string;
}

export interface LoadResult {
  total: number;
  sent: number;
  acked: number;
  ackErrors: number;
  errors: string[];
  /** Monotonic ms of the first publish and the last publish of any publisher. */
  startedAt: number;
  endedAt: number;
  lastAckAt: number;
  maxBehindMs: number;
  /** Monotonic send time of each reading, by sequence number (NaN when not sent). */
  sendTimes: Float64Array;
}

/** A running load: `done` settles when every publisher has sent and had its PUBACKs (or timed out). */
export interface RunningLoad {
  sendTimes: Float64Array;
  total: number;
  done: Promise<LoadResult>;
  abort(): void;
}

const WORKER = path.join(__dirname, 'publisher-worker.js');

/** `beforeStart` runs once every publisher is connected, just before the first reading is sent. */
export async function startLoad(spec: LoadSpec, beforeStart?: (sendTimes: Float64Array) => void): Promise<RunningLoad> {
  const total = Math.round(spec.rate * spec.seconds);
  const sab = new SharedArrayBuffer(Math.max(1, total) * 8);
  const sendTimes = new Float64Array(sab);
  sendTimes.fill(NaN);
  const publishers = Math.max(1, Math.min(spec.publishers, spec.sensors));
  const workers: Worker[] = [];
  const results: Promise<PublisherResult>[] = [];
  const ready: Promise<void>[] = [];
  for (let i = 0; i < publishers; i++) {
    const cfg: PublisherConfig = {
      url: spec.url,
      clientId: `${spec.clientIdBase}-pub${i}`,
      topicPrefix: spec.topicPrefix,
      location: spec.location,
      sensorType: spec.sensorType,
      unit: spec.unit,
      sensorPrefix: spec.sensorPrefix,
      sensors: spec.sensors,
      index: i,
      publishers,
      total,
      durationMs: spec.seconds * 1000,
      sendTimes: sab,
      ackTimeoutMs: 60_000,
    };
    const w = new Worker(WORKER, { workerData: cfg });
    workers.push(w);
    let onReady!: () => void;
    let failReady!: (e: Error) => void;
    ready.push(
      new Promise<void>((resolve, reject) => {
        onReady = resolve;
        failReady = reject;
      }),
    );
    results.push(
      new Promise<PublisherResult>((resolve, reject) => {
        w.on('message', (m: { type: string; result?: PublisherResult }) => {
          if (m.type === 'ready') onReady();
          if (m.type === 'done') resolve(m.result!);
        });
        w.once('error', (err) => {
          failReady(err);
          reject(err);
        });
        w.once('exit', (code) => {
          const e = new Error(`publisher ${i} exited with code ${code} before reporting`);
          failReady(e);
          reject(e);
        });
      }),
    );
  }
  const terminate = () => {
    for (const w of workers) void w.terminate();
  };
  try {
    await Promise.race([
      Promise.all(ready),
      new Promise((_, reject) => setTimeout(() => reject(new Error('publishers did not connect within 15 s')), 15_000).unref()),
    ]);
  } catch (err) {
    terminate();
    throw err;
  }
  beforeStart?.(sendTimes);
  const at = monoMs() + 50;
  for (const w of workers) w.postMessage({ type: 'start', at });
  const done = Promise.all(results).then((rs): LoadResult => {
    terminate();
    const errors = rs.map((r) => r.firstError).filter((e): e is string => !!e);
    return {
      total,
      sent: rs.reduce((s, r) => s + r.sent, 0),
      acked: rs.reduce((s, r) => s + r.acked, 0),
      ackErrors: rs.reduce((s, r) => s + r.ackErrors, 0),
      errors,
      startedAt: Math.min(...rs.map((r) => r.firstSendAt || Infinity)),
      endedAt: Math.max(...rs.map((r) => r.lastSendAt)),
      lastAckAt: Math.max(...rs.map((r) => r.lastAckAt)),
      maxBehindMs: Math.max(...rs.map((r) => r.maxBehindMs)),
      sendTimes,
    };
  });
  done.catch(terminate);
  return {
    sendTimes,
    total,
    done,
    abort: () => {
      for (const w of workers) w.postMessage({ type: 'abort' });
      setTimeout(terminate, 2000).unref();
    },
  };
}

/**
 * A WebSocket client of `/ws/sensors/`. `track()` starts counting the readings of one load (by
 * sensor id prefix; value = sequence number); other messages are counted as `other`.
 */
export class WsCollector {
  private ws: WebSocket | null = null;
  private prefix = '\0';
  private seen: Uint8Array = new Uint8Array(0);
  private times: Float64Array<ArrayBufferLike> = new Float64Array(0);
  received = 0;
  duplicates = 0;
  outOfRange = 0;
  other = 0;
  parseErrors = 0;
  closed = false;
  /** Monotonic ms of the last tracked reading seen. */
  lastAt = 0;
  latencies = new SampleBuffer(1 << 16);
  /** Latencies of the readings sent from STEADY_AFTER_MS after the first one on (past the step up in rate). */
  latenciesSteady = new SampleBuffer(1 << 16);
  /** Highest latency of the readings sent in each SLICE_MS of the load (where in the run the time went). */
  sliceMax: number[] = [];

  constructor(private readonly url: string) {}

  async connect(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastErr: Error | null = null;
    while (Date.now() < deadline) {
      try {
        await new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(this.url, { perMessageDeflate: false });
          ws.once('open', () => {
            this.ws = ws;
            resolve();
          });
          ws.once('error', reject);
          ws.on('message', (data: Buffer) => this.onMessage(data));
          ws.on('close', () => {
            if (this.ws === ws) this.closed = true;
          });
        });
        return;
      } catch (err) {
        lastErr = err as Error;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw new Error(`WebSocket ${this.url}: ${lastErr?.message ?? 'timeout'}`);
  }

  /** Counts from now on the readings whose sensor id starts with `prefix`. */
  track(prefix: string, sendTimes: Float64Array): void {
    this.prefix = prefix;
    this.times = sendTimes;
    this.seen = new Uint8Array(sendTimes.length);
    this.received = 0;
    this.duplicates = 0;
    this.outOfRange = 0;
    this.other = 0;
    this.parseErrors = 0;
    this.lastAt = 0;
    this.latencies = new SampleBuffer(Math.min(1 << 20, Math.max(1024, sendTimes.length)));
    this.latenciesSteady = new SampleBuffer(Math.min(1 << 20, Math.max(1024, sendTimes.length)));
    this.sliceMax = [];
  }

  private onMessage(data: Buffer): void {
    const at = monoMs();
    let m: { type?: string; data?: { sensor_id?: string; value?: number } };
    try {
      m = JSON.parse(data.toString());
    } catch {
      this.parseErrors++;
      return;
    }
    const id = m?.data?.sensor_id;
    if (m?.type !== 'sensor_update' || typeof id !== 'string' || !id.startsWith(this.prefix)) {
      this.other++;
      return;
    }
    const seq = m.data!.value;
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 0 || seq >= this.seen.length) {
      this.outOfRange++;
      return;
    }
    if (this.seen[seq]) {
      this.duplicates++;
      return;
    }
    this.seen[seq] = 1;
    this.received++;
    this.lastAt = at;
    const sent = this.times[seq];
    if (!Number.isNaN(sent)) {
      const ms = at - sent;
      this.latencies.push(ms);
      const since = sent - this.times[0];
      if (since >= STEADY_AFTER_MS) this.latenciesSteady.push(ms);
      const slice = Math.floor(since / SLICE_MS);
      if (!(this.sliceMax[slice] >= ms)) this.sliceMax[slice] = ms;
    }
  }

  close(): void {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.terminate();
  }
}
