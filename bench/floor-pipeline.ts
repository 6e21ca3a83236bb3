/**
 * The bench's `floor` target: the least a Node.js process must do to carry the bench's readings to
 * the same places, so the bench can show how much of the app's latency and CPU is the machine's
 * (the broker, Redis, PostgreSQL, the publishers and the WebSocket client sharing its cores) and
 * how much is the pipeline's. Not a product and not a reference to beat: it has no Node-RED, no
 * validation (a payload that is not a reading is dropped), no durability (mqtt.js acknowledges a
 * message when it arrives, so a crash loses what is in flight), no flow control, no REST API.
 *
 * What it does keep is the work the issue asks of every target: each reading into the Redis hot
 * window (the naive flow's lists: RPUSH + LTRIM, `{prefix}window:{type}:{id}`), into PostgreSQL
 * (one `unnest` INSERT per event-loop turn) and to the WebSocket clients as a `sensor_update`
 * (once its window write is answered, as the app does). The messages of one event-loop turn go
 * together: one Redis pipeline, one INSERT, and their WebSocket frames in one turn.
 *
 * Configured by the environment the bench sets: HVB_MQTT_PORT, HVB_CLIENT_ID, HVB_TOPIC,
 * HVB_REDIS_URL, HVB_REDIS_PREFIX, HVB_WINDOW_SIZE, HVB_DATABASE_URL, HVB_PORT. Answers
 * `GET /ready` with 200 once subscribed; WebSocket clients connect to `/ws/sensors/`.
 */
import http from 'http';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import { Pool } from 'pg';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Reading } from '../nodes/shared/types';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`floor pipeline: ${name} is not set`);
  return v;
}

/** A reading of the bench's payload, or null (dropped: the floor does not validate or report). */
function asReading(payload: Buffer): Reading | null {
  let r: Partial<Reading>;
  try {
    r = JSON.parse(payload.toString()) as Partial<Reading>;
  } catch {
    return null;
  }
  if (typeof r?.sensor_type !== 'string' || typeof r.sensor_id !== 'string' || typeof r.value !== 'number' || typeof r.timestamp !== 'string') return null;
  const ms = Date.parse(r.timestamp);
  if (Number.isNaN(ms)) return null;
  return {
    sensor_type: r.sensor_type,
    sensor_id: r.sensor_id,
    value: r.value,
    unit: typeof r.unit === 'string' ? r.unit : '',
    location: typeof r.location === 'string' ? r.location : '',
    timestamp: new Date(ms).toISOString(),
  };
}

const INSERT =
  'INSERT INTO sensor_readings (sensor_type, sensor_id, value, unit, location, timestamp) ' +
  'SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::timestamptz[]) ' +
  'ON CONFLICT (sensor_type, sensor_id, timestamp) DO NOTHING';

function main(): void {
  // All of the configuration read once, at start: a missing variable stops it before it connects.
  const topic = need('HVB_TOPIC');
  const port = Number(need('HVB_PORT'));
  const prefix = process.env.HVB_REDIS_PREFIX ?? '';
  const size = Number(process.env.HVB_WINDOW_SIZE) || 60;
  const redis = new Redis(need('HVB_REDIS_URL'), { maxRetriesPerRequest: 2 });
  redis.on('error', (err) => console.error('floor redis:', err.message));
  const pg = new Pool({ connectionString: need('HVB_DATABASE_URL'), max: 4 });
  pg.on('error', (err) => console.error('floor pg:', err.message));

  const clients = new Set<WebSocket>();
  let subscribed = false;
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/ready' && subscribed ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(subscribed ? 'ready' : 'starting');
  });
  const wss = new WebSocketServer({ server, path: '/ws/sensors/', perMessageDeflate: false });
  wss.on('connection', (ws) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
  });

  let batch: Reading[] = [];
  const flush = () => {
    const readings = batch;
    batch = [];
    const p = redis.pipeline();
    for (const r of readings) {
      const key = `${prefix}window:${r.sensor_type}:${r.sensor_id}`;
      p.rpush(key, JSON.stringify({ value: r.value, timestamp: r.timestamp })).ltrim(key, -size, -1);
    }
    p.exec().then(
      () => {
        for (const r of readings) {
          const text = JSON.stringify({ type: 'sensor_update', data: r });
          for (const ws of clients) ws.send(text);
        }
      },
      (err: Error) => console.error('floor redis pipeline:', err.message),
    );
    pg.query(INSERT, [
      readings.map((r) => r.sensor_type),
      readings.map((r) => r.sensor_id),
      readings.map((r) => r.value),
      readings.map((r) => r.unit),
      readings.map((r) => r.location),
      readings.map((r) => r.timestamp),
    ]).catch((err: Error) => console.error('floor insert:', err.message));
  };

  const client = mqtt.connect(`mqtt://127.0.0.1:${need('HVB_MQTT_PORT')}`, {
    clientId: need('HVB_CLIENT_ID'),
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 1000,
  });
  client.on('error', (err) => console.error('floor mqtt:', err.message));
  client.on('message', (_topic, payload) => {
    const r = asReading(payload);
    if (!r) return;
    if (batch.length === 0) setImmediate(flush);
    batch.push(r);
  });
  client.on('connect', () => {
    client.subscribe(topic, { qos: 1 }, (err) => {
      if (err) console.error('floor subscribe:', err.message);
      else subscribed = true;
    });
  });

  server.listen(port, '127.0.0.1');
  const stop = () => {
    client.end(true);
    for (const ws of clients) ws.terminate();
    server.close();
    void Promise.allSettled([pg.end(), redis.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
