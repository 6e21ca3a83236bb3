/**
 * The machine's PostgreSQL and Redis, as the bench uses them: one fresh database per target
 * (dropped after), one Redis database index and a key prefix of this run (its keys deleted after).
 */
import { randomBytes } from 'crypto';
import Redis from 'ioredis';
import { Client, Pool } from 'pg';
import { openDatabase } from '../nodes/shared/db';
import { onCleanup } from './cleanup';

export const PG_ADMIN_URL = process.env.BENCH_PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_BASE_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379';

/** Unique to this bench run: database names, key and topic prefixes, client ids. */
export const RUN_ID = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
/** Redis database index 1 to 15 (0 is left to users); keys are also prefixed. */
export const REDIS_DB = 1 + ((process.pid + 7) % 15);
export const REDIS_URL = `${REDIS_BASE_URL}/${REDIS_DB}`;

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
    throw new Error(`the bench only talks to loopback services, not ${host}`);
  }
}

export interface BenchDatabase {
  name: string;
  url: string;
  /** A small pool of the bench's own for counting and checks. */
  pool: Pool;
  /** TRUNCATE sensor_readings (between rates). */
  clear(): Promise<void>;
  drop(): Promise<void>;
}

/**
 * Creates `hvbench_<run>_<label>`, applies the project's migrations (openDatabase), and sets
 * `sensor_readings.created_at` to default to `clock_timestamp()` (the time the row is written)
 * instead of `now()` (the start of its transaction), so `created_at - publish time` measures
 * publish → write for every row of a batch, not publish → start of the batch's transaction.
 */
export async function createBenchDatabase(label: string): Promise<BenchDatabase> {
  assertLoopback(PG_ADMIN_URL);
  const name = `hvbench_${RUN_ID}_${label}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  let pool: Pool | null = null;
  const drop = onCleanup(`drop database ${name}`, async () => {
    if (pool) await pool.end().catch(() => undefined);
    const c = new Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });
  const db = await openDatabase(url);
  await db.close();
  pool = new Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  await pool.query('ALTER TABLE sensor_readings ALTER COLUMN created_at SET DEFAULT clock_timestamp()');
  return {
    name,
    url,
    pool,
    clear: async () => {
      await pool!.query('TRUNCATE sensor_readings');
    },
    drop,
  };
}

export interface BenchRedis {
  client: Redis;
  url: string;
  /**
   * Deletes every key under `prefix` (SCAN + UNLINK, bounded batches), except those for which
   * `keep(key)` is true.
   */
  deletePrefix(prefix: string, keep?: (key: string) => boolean): Promise<number>;
  close(): Promise<void>;
}

export async function openBenchRedis(runPrefix: string): Promise<BenchRedis> {
  assertLoopback(REDIS_BASE_URL);
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
  client.on('error', () => undefined);
  await client.connect();
  const deletePrefix = async (prefix: string, keep?: (key: string) => boolean) => {
    if (!prefix.startsWith(runPrefix)) throw new Error(`refusing to delete keys outside ${runPrefix}`);
    let cursor = '0';
    let deleted = 0;
    for (let i = 0; i < 100_000; i++) {
      const [next, found] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      const keys = keep ? found.filter((k) => !keep(k)) : found;
      if (keys.length > 0) deleted += await client.unlink(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
    return deleted;
  };
  const close = onCleanup('redis keys of the bench', async () => {
    await deletePrefix(runPrefix).catch(() => undefined);
    client.disconnect();
  });
  return { client, url: REDIS_URL, deletePrefix, close };
}
