/**
 * The rate limits in Redis (issue 9): the same token buckets as `TokenBucketLimiter`, shared by
 * every instance of the app, so N instances behind a load balancer allow the limit once.
 *
 * - One round trip per request: one Lua script (EVALSHA through ioredis `defineCommand`) reads the
 *   request's buckets (writes; or commands, then writes), refills them, takes a token from each
 *   and writes them back, atomically.
 * - Key: `{REDIS_KEY_PREFIX}ratelimit:{bucket}:{client}`, the client key (`clientKey`) in base64url
 *   so that any address string is a safe key part (no `:`, spaces, glob characters or newlines).
 *   Value: `"{tokens} {ms}"`. The key expires (PEXPIRE, via SET PX) when the bucket would be full
 *   again: an absent key IS a full bucket, so idle clients leave nothing behind.
 * - Clock: the Redis server's (TIME, inside the script), one clock for every instance, so instances
 *   with skewed clocks still refill a shared bucket at the right rate. It is never mixed with the
 *   callers' clocks: the `now` option (tests) replaces it for EVERY call of that limiter.
 * - Outages: `RedisRateLimits` bounds every call (150 ms by default) and counts a request that
 *   Redis cannot answer (down, not connected yet, slow, an error) with the instance's in-memory
 *   limiter: local limits, never none. It logs once when the outage starts and once when Redis
 *   answers again. A call that timed out may still be counted by Redis later (stricter, not looser).
 */
import Redis, { type RedisOptions } from 'ioredis';
import { withTimeout } from '../nodes/shared/timers';
import { maskUrlsIn } from '../nodes/shared/redact';
import { chainLimiters, type ChainedBucket, type RateLimiter, type SharedRateLimits, type TakeResult } from './rate-limit';

const MINUTE_MS = 60_000;

/**
 * KEYS: the buckets, in order; ARGV[1] the time in ms, or '' for the Redis server's TIME; ARGV[1+i]
 * the tokens per minute (the size) of KEYS[i]. Takes a token from each bucket in order and stops
 * at the first that has none (the buckets before it keep their token taken, as in memory).
 * Returns {1, tokens left in the last bucket (whole)} or {0, seconds until the refusing bucket has
 * a token}. The arithmetic is `TokenBucketLimiter`'s, in the same doubles; tokens are saved with
 * %.17g so they read back exactly (Lua's own tostring keeps 14 digits).
 */
export const TOKEN_BUCKET_SCRIPT = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local left = 0
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[i + 1])
  local perMs = cap / ${MINUTE_MS}
  local tokens = cap
  local saved = redis.call('GET', key)
  if saved then
    local t, at = string.match(saved, '^(%S+) (%S+)$')
    t = tonumber(t)
    at = tonumber(at)
    if t and at then
      tokens = math.min(cap, t + math.max(0, now - at) * perMs)
    end
  end
  local ok = tokens >= 1
  if ok then tokens = tokens - 1 end
  redis.call('SET', key, string.format('%.17g %.17g', tokens, now), 'PX', math.max(1, math.ceil((cap - tokens) / perMs)))
  if not ok then
    return {0, math.max(1, math.ceil((1 - tokens) / perMs / 1000))}
  end
  left = math.floor(tokens)
end
return {1, left}
`;

interface RateLimitCommands {
  hypervoltRateLimit(numKeys: number, ...keysThenArgs: Array<string | number>): Promise<[number, number]>;
}

/** `{prefix}ratelimit:{bucket}:{client in base64url}`. */
export function rateLimitKey(prefix: string, bucket: string, client: string): string {
  return `${prefix}ratelimit:${bucket}:${Buffer.from(client, 'utf8').toString('base64url')}`;
}

export interface BucketSpec {
  /** Bucket name, part of the key: letters, digits, `_`, `-`. */
  bucket: string;
  perMinute: number;
}

export interface RedisTokenBucketOptions {
  client: Redis;
  /** Key prefix (the app's REDIS_KEY_PREFIX). */
  prefix: string;
  /** The buckets a `take` takes from, in order (usually one; a command: commands, then writes). */
  buckets: readonly BucketSpec[];
  /** The clock in ms for every call (tests); unset: the Redis server's TIME. */
  now?: () => number;
}

/**
 * Token buckets per key in Redis. `take` is one script call (one round trip, whatever the number
 * of buckets) and rejects when Redis does (not connected, an error); `RedisRateLimits` adds the
 * time bound and the fallback.
 */
export class RedisTokenBucketLimiter implements RateLimiter {
  readonly buckets: readonly BucketSpec[];
  private readonly client: Redis & RateLimitCommands;
  private readonly prefix: string;
  private readonly now?: () => number;

  constructor(opts: RedisTokenBucketOptions) {
    if (opts.buckets.length === 0) throw new RangeError('at least one bucket');
    for (const b of opts.buckets) {
      if (!(b.perMinute > 0)) throw new RangeError('perMinute must be positive');
      if (!/^[A-Za-z0-9_-]+$/.test(b.bucket)) throw new RangeError(`bucket must be letters, digits, _ or -, got "${b.bucket}"`);
    }
    this.buckets = opts.buckets.map((b) => ({ ...b }));
    this.prefix = opts.prefix;
    this.now = opts.now;
    const client = opts.client as Redis & Partial<RateLimitCommands>;
    if (typeof client.hypervoltRateLimit !== 'function') {
      // numberOfKeys unset: the key count is the first argument of each call.
      client.defineCommand('hypervoltRateLimit', { lua: TOKEN_BUCKET_SCRIPT });
    }
    this.client = client as Redis & RateLimitCommands;
  }

  /** The Redis keys of a client's buckets, in order. */
  keysFor(client: string): string[] {
    return this.buckets.map((b) => rateLimitKey(this.prefix, b.bucket, client));
  }

  async take(key: string): Promise<TakeResult> {
    const now = this.now ? String(this.now()) : '';
    const [ok, n] = await this.client.hypervoltRateLimit(this.buckets.length, ...this.keysFor(key), now, ...this.buckets.map((b) => b.perMinute));
    return ok === 1 ? { ok: true, remaining: n } : { ok: false, retryAfterSeconds: n };
  }
}

/**
 * The rate limits' own connection: fail fast rather than queue (a command while disconnected
 * rejects at once and the request is counted locally), reconnect in the background with backoff.
 */
export function rateLimitRedisOptions(): RedisOptions {
  return {
    connectionName: 'hypervolt-ratelimit',
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy: (times: number) => Math.min(times * 250, 5000),
  };
}

/**
 * Why `url` cannot be the rate limits' Redis, or null: it must parse as `redis://` or `rediss://`
 * with a numeric database index if any (ioredis would otherwise fail late, or not at all clearly).
 */
export function redisUrlProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return 'is not redis:// or rediss://';
  if (!u.hostname) return 'has no host';
  if (!/^\/?(\d+)?$/.test(u.pathname)) return 'has a database index that is not a number';
  return null;
}

export interface RateLimitLog {
  warn(message: string): void;
  info(message: string): void;
}

export interface RedisRateLimitsOptions {
  /** A client of the caller's: used, left open on close (its 'error' listener is the caller's job). */
  client?: Redis;
  /** Otherwise a URL (`redis://host:port/db`) for a client of our own, connected at once. */
  url?: string;
  /** Merged over `rateLimitRedisOptions()` for an own client. */
  redisOptions?: RedisOptions;
  /** Key prefix (the app's REDIS_KEY_PREFIX, e.g. `hypervolt:`). */
  prefix: string;
  /** A Redis answer later than this counts the request locally (default 150 ms). */
  timeoutMs?: number;
  /** After a failed call, requests skip Redis this long (default 1000 ms), then it is tried again. */
  retryMs?: number;
  log?: RateLimitLog;
  /** The buckets' clock (tests); unset: the Redis server's TIME. */
  now?: () => number;
}

/** Waits for `p`, at most `ms`. */
async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/**
 * The shared limits for `rateLimitMiddleware`: one Redis connection for every bucket, whose
 * `limiter`s never reject. A request goes to Redis when the connection is ready and no failure
 * happened in the last `retryMs`; otherwise, or when Redis errs or takes longer than `timeoutMs`,
 * it is counted by the bucket's in-memory limiter.
 */
export class RedisRateLimits implements SharedRateLimits {
  readonly client: Redis;
  readonly prefix: string;
  private readonly owned: boolean;
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly log: RateLimitLog;
  private readonly now?: () => number;
  private down = false;
  private skipUntil = 0;
  private closed = false;
  private readonly onError = (err: Error) => this.markDown(err.message);
  private readonly onClose = () => {
    if (!this.closed) this.markDown('connection closed');
  };

  constructor(opts: RedisRateLimitsOptions) {
    if (!opts.client && !opts.url) throw new Error('RedisRateLimits needs a client or a url');
    this.prefix = opts.prefix;
    this.timeoutMs = opts.timeoutMs ?? 150;
    this.retryMs = opts.retryMs ?? 1000;
    this.log = opts.log ?? { warn: (m) => console.warn(m), info: () => undefined };
    this.now = opts.now;
    this.owned = !opts.client;
    this.client = opts.client ?? new Redis(opts.url!, { ...rateLimitRedisOptions(), ...opts.redisOptions });
    this.client.on('error', this.onError);
    this.client.on('close', this.onClose);
  }

  /** Whether requests are being counted locally because Redis failed. */
  get outage(): boolean {
    return this.down;
  }

  limiter(chain: readonly ChainedBucket[]): RateLimiter {
    const buckets = chain.map((b) => ({ bucket: b.bucket, perMinute: b.local.capacity }));
    const shared = new RedisTokenBucketLimiter({ client: this.client, prefix: this.prefix, buckets, now: this.now });
    const local = chainLimiters(chain.map((b) => b.local));
    return { take: (key) => this.take(shared, local, key) };
  }

  private async take(shared: RedisTokenBucketLimiter, local: { take(key: string): TakeResult }, key: string): Promise<TakeResult> {
    if (this.closed || this.client.status !== 'ready' || Date.now() < this.skipUntil) return local.take(key);
    try {
      const verdict = await withTimeout(shared.take(key), this.timeoutMs, `no answer within ${this.timeoutMs} ms`);
      this.markUp();
      return verdict;
    } catch (err) {
      this.skipUntil = Date.now() + this.retryMs;
      this.markDown((err as Error)?.message ?? String(err));
      return local.take(key);
    }
  }

  private markDown(reason: string): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.log.warn(`rate limits: Redis unavailable (${maskUrlsIn(reason)}): counting in memory, per instance, until it answers again`);
  }

  private markUp(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info('rate limits: Redis answers again: counting in Redis, shared by every instance');
  }

  /** Stops using Redis; closes the connection if it is ours (QUIT, at most 500 ms, then dropped). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.owned) {
      this.client.off('error', this.onError);
      this.client.off('close', this.onClose);
      return;
    }
    // Our 'error' listener stays: an error while closing must not become an unhandled 'error' event.
    const client = this.client;
    // With a connection open (or being opened) 'end' follows; waiting to reconnect, nothing does.
    const open = ['connecting', 'connect', 'ready'].includes(client.status);
    const ended = new Promise<void>((r) => client.once('end', () => r()));
    if (client.status === 'ready') await bounded(client.quit().catch(() => undefined), 500);
    client.disconnect();
    if (open && (client.status as string) !== 'end') await bounded(ended, 500);
  }
}
