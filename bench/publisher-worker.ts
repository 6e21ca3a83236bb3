/**
 * One MQTT publisher (a worker thread, so that several publishers use several cores and the load
 * generator is not the bottleneck). It owns the sensors n with n % publishers == index, sends its
 * share of the readings at a fixed rate with QoS 1, and records the send time of each reading in
 * a shared array indexed by the reading's sequence number (the reading's value), on the process's
 * monotonic clock, so the main thread can compute publish → WebSocket latency without clock skew.
 *
 * Protocol with the parent: it posts {type:'ready'} once connected, waits for {type:'start', at}
 * (a monotonic ms time), publishes, waits for every PUBACK (bounded), then posts
 * {type:'done', result} and exits.
 */
import mqtt from 'mqtt';
import { parentPort, workerData } from 'worker_threads';

export interface PublisherConfig {
  url: string;
  clientId: string;
  /** `{topicPrefix}/sensors/{location}/{sensorType}` */
  topicPrefix: string;
  location: string;
  sensorType: string;
  unit: string;
  /** sensor ids are `{sensorPrefix}s{n}`, n from 0 to sensors-1 */
  sensorPrefix: string;
  sensors: number;
  index: number;
  publishers: number;
  /** Readings of all publishers together; this one sends seq = index, index+publishers, ... */
  total: number;
  /** Milliseconds over which to spread this publisher's readings. */
  durationMs: number;
  /** Float64 per sequence number: monotonic send time in ms. */
  sendTimes: SharedArrayBuffer;
  /** Longest wait for the last PUBACKs after the last publish. */
  ackTimeoutMs: number;
}

export interface PublisherResult {
  index: number;
  sent: number;
  acked: number;
  ackErrors: number;
  firstError: string | null;
  /** Monotonic ms of the first and last publish call, and of the last PUBACK. */
  firstSendAt: number;
  lastSendAt: number;
  lastAckAt: number;
  /** Largest backlog behind the schedule, in ms of this publisher's rate. */
  maxBehindMs: number;
}

const monoMs = () => Number(process.hrtime.bigint()) / 1e6;

function run(cfg: PublisherConfig): void {
  const port = parentPort!;
  const times = new Float64Array(cfg.sendTimes);
  const owned: number[] = [];
  for (let n = cfg.index; n < cfg.sensors; n += cfg.publishers) owned.push(n);
  if (owned.length === 0) throw new Error(`publisher ${cfg.index} owns no sensor (more publishers than sensors)`);
  const sensorIds = owned.map((n) => `${cfg.sensorPrefix}s${n}`);
  const lastTs = owned.map(() => 0);
  const topic = `${cfg.topicPrefix}/sensors/${cfg.location}/${cfg.sensorType}`;
  const mine = Math.floor(cfg.total / cfg.publishers) + (cfg.index < cfg.total % cfg.publishers ? 1 : 0);

  const client = mqtt.connect(cfg.url, {
    clientId: cfg.clientId,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    keepalive: 60,
  });
  const result: PublisherResult = {
    index: cfg.index,
    sent: 0,
    acked: 0,
    ackErrors: 0,
    firstError: null,
    firstSendAt: 0,
    lastSendAt: 0,
    lastAckAt: 0,
    maxBehindMs: 0,
  };
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    client.end(true, {}, () => {
      port.postMessage({ type: 'done', result });
      port.close();
    });
  };
  client.on('error', (err) => {
    if (!result.firstError) result.firstError = err.message;
  });
  client.on('close', () => {
    if (result.sent > 0 && result.acked + result.ackErrors < mine && !result.firstError) {
      result.firstError = 'connection closed before every PUBACK arrived';
    }
  });
  const onAck = (err?: Error) => {
    if (err) {
      result.ackErrors++;
      if (!result.firstError) result.firstError = err.message;
    } else {
      result.acked++;
    }
    result.lastAckAt = monoMs();
    if (result.sent === mine && result.acked + result.ackErrors === mine) finish();
  };

  const publishOne = (k: number) => {
    const seq = k * cfg.publishers + cfg.index;
    const s = k % owned.length;
    // A unique timestamp per sensor (the reading's identity): the wall-clock ms, moved on by 1 ms
    // when this sensor already sent in this ms.
    const now = Date.now();
    const ts = now > lastTs[s] ? now : lastTs[s] + 1;
    lastTs[s] = ts;
    const payload = JSON.stringify({
      sensor_type: cfg.sensorType,
      sensor_id: sensorIds[s],
      value: seq,
      unit: cfg.unit,
      location: cfg.location,
      timestamp: new Date(ts).toISOString(),
    });
    times[seq] = monoMs();
    client.publish(topic, payload, { qos: 1 }, onAck);
    result.sent++;
  };

  const start = (at: number) => {
    const perMs = mine / cfg.durationMs;
    // Each wake-up costs a timer turn and a socket write per packet batch: wake every
    // `tickMs` (1 to 5 ms, about 8 readings per turn), not every millisecond at low rates.
    const tickMs = Math.max(1, Math.min(5, Math.round(8 / Math.max(perMs, 1e-9))));
    let k = 0;
    const tick = () => {
      const elapsed = monoMs() - at;
      if (elapsed < 0) {
        setTimeout(tick, Math.min(50, -elapsed));
        return;
      }
      const due = Math.min(mine, Math.floor(elapsed * perMs) + 1);
      const behind = (due - k) / perMs;
      if (behind > result.maxBehindMs) result.maxBehindMs = behind;
      // At most 2 000 per turn so PUBACKs and socket writes get their turn when behind.
      const until = Math.min(due, k + 2000);
      if (k === 0 && until > 0) result.firstSendAt = monoMs();
      while (k < until) publishOne(k++);
      if (k > 0) result.lastSendAt = monoMs();
      if (k < mine) {
        setTimeout(tick, tickMs);
        return;
      }
      if (result.acked + result.ackErrors === mine) {
        finish();
        return;
      }
      setTimeout(finish, cfg.ackTimeoutMs).unref();
    };
    tick();
  };

  client.once('connect', () => port.postMessage({ type: 'ready' }));
  port.on('message', (m: { type: string; at?: number }) => {
    if (m.type === 'start') start(m.at!);
    if (m.type === 'abort') finish();
  });
}

if (parentPort && workerData) run(workerData as PublisherConfig);
