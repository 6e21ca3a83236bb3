/**
 * Real services for integration tests: a fresh PostgreSQL database, a Redis database index and
 * key prefix, and an MQTT topic prefix of this run's own. Under CI (CI=true) a missing service
 * fails the run; elsewhere the tests that need it are skipped with a clear reason.
 */
import { randomBytes } from 'crypto';
import type Redis from 'ioredis';
import mqtt from 'mqtt';
import net from 'net';
import { Client } from 'pg';

export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_BASE_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';
export const MQTT_BROKER_URL = process.env.TEST_MQTT_URL || 'mqtt://127.0.0.1:1883';

/** A short id unique to this test run (process), used in database names, key and topic prefixes. */
export const RUN_ID = `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;

/** Redis database index for this run: 1 to 15, from the pid (0 is left to users). */
export const REDIS_DB = 1 + (process.pid % 15);
/** Every key this run writes starts with this; cleanup deletes only these. */
export const REDIS_PREFIX = `hvtest:${RUN_ID}:`;
export const REDIS_URL = `${REDIS_BASE_URL}/${REDIS_DB}`;
/** MQTT topic prefix of this run, in place of `HyperVolt`. */
export const TOPIC_PREFIX = `hvtest_${RUN_ID}`;

function portOpen(url: string, fallbackPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) || fallbackPort });
    const finish = (up: boolean) => {
      sock.destroy();
      resolve(up);
    };
    sock.setTimeout(1000, () => finish(false));
    sock.once('connect', () => finish(true));
    sock.once('error', () => finish(false));
  });
}

/**
 * Call in a `before` hook: skips the suite when the service is down outside CI, fails it under CI.
 */
export async function requireService(
  ctx: Mocha.Context,
  name: 'postgres' | 'redis' | 'mqtt',
): Promise<void> {
  const [url, port] =
    name === 'postgres' ? [PG_ADMIN_URL, 5432] : name === 'redis' ? [REDIS_BASE_URL, 6379] : [MQTT_BROKER_URL, 1883];
  if (await portOpen(url, port)) return;
  const why = `${name} is not reachable at ${url}`;
  if (process.env.CI) throw new Error(`${why}: integration tests must run under CI`);
  console.warn(`skipping: ${why}`);
  ctx.skip();
}

/** Creates a fresh PostgreSQL database for a suite; returns its URL and a function that drops it. */
export async function createTestDatabase(label = 'db'): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `hvtest_${RUN_ID}_${label}_${randomBytes(2).toString('hex')}`.toLowerCase();
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** Deletes the keys matching `pattern` (SCAN, so a big keyspace is never blocked). */
export async function deleteRedisKeys(client: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length) await client.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}

/**
 * Ends the broker's session of a client id (MQTT 5 clean start with session expiry 0): what a
 * test's persistent session (sensor-in, the app) left behind.
 */
export async function dropMqttSession(clientId: string, url = MQTT_BROKER_URL): Promise<void> {
  const c = await mqtt.connectAsync(url, { clientId, clean: true, protocolVersion: 5, properties: { sessionExpiryInterval: 0 }, reconnectPeriod: 0 });
  await c.endAsync();
}
