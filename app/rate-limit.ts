/**
 * Per-client rate limits on REST writes (issue 8): a token bucket per client address. Every write
 * (POST, PUT, PATCH, DELETE under /api/) takes a token from the client's writes bucket;
 * `POST /api/commands/` (it moves real devices) also takes one from a tighter commands bucket. An
 * empty bucket answers 429 as DRF's throttling does, with `Retry-After`. Unauthenticated attempts
 * count too, so the limit also slows token guessing.
 *
 * Where the buckets live (issue 9): one `RateLimiter` interface, two implementations.
 * - In memory (`TokenBucketLimiter`, the default): one set per instance. Memory stays bounded:
 *   buckets are kept in least-recently-used order, the oldest are dropped past `maxKeys`, and a
 *   bucket idle for a minute (full again, so it carries no information) is swept away.
 * - In Redis (`RedisTokenBucketLimiter`, app/rate-limit-redis.ts, when REDIS_URL is set): one set
 *   shared by every instance, so N instances behind a load balancer allow the limit once, not N
 *   times. When Redis cannot answer in time a request is counted by this instance's in-memory
 *   limiter instead (local limits, never none).
 */
import type { IncomingMessage, ServerResponse } from 'http';
import { sendJson } from './api-middleware';
import { isApiPath } from './security';

const MINUTE_MS = 60_000;

export type TakeResult = { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number };

/**
 * Token buckets per key: `perMinute` tokens a minute, at most a minute's worth saved up. `take`
 * answers at once (in memory) or through a promise (a shared store); a shared one used by the
 * middleware never rejects (see `SharedRateLimits`). A limiter may hold a chain of buckets (a
 * command takes from the commands bucket, then from the writes bucket): `take` takes a token from
 * each in order and stops at the first that has none.
 */
export interface RateLimiter {
  /** Takes one token for `key`, or says how many whole seconds until one is available. */
  take(key: string): TakeResult | Promise<TakeResult>;
}

/**
 * In-memory buckets taken in order, stopping at the first refusal: its verdict, else the last one's
 * (what the last bucket has left).
 */
export function chainLimiters(limiters: readonly TokenBucketLimiter[]): RateLimiter & { take(key: string): TakeResult } {
  if (limiters.length === 0) throw new RangeError('a chain needs a bucket');
  return {
    take(key: string): TakeResult {
      let verdict!: TakeResult;
      for (const l of limiters) {
        verdict = l.take(key);
        if (!verdict.ok) break;
      }
      return verdict;
    },
  };
}

export interface TokenBucketOptions {
  /** Tokens per minute; also the bucket's size (a client may burst a minute's worth). */
  perMinute: number;
  /** The most clients remembered at once; the least recently seen are forgotten first. */
  maxKeys?: number;
  /** Milliseconds; injectable for tests. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBucketLimiter implements RateLimiter {
  readonly capacity: number;
  readonly maxKeys: number;
  private readonly perMs: number;
  private readonly now: () => number;
  /** Map iteration order is insertion order: re-inserting on every use keeps it LRU. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: TokenBucketOptions) {
    if (!(opts.perMinute > 0)) throw new RangeError('perMinute must be positive');
    this.capacity = opts.perMinute;
    this.perMs = opts.perMinute / MINUTE_MS;
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Takes one token for `key`, or says how many whole seconds until one is available. */
  take(key: string): TakeResult {
    const now = this.now();
    const b = this.refilled(key, now);
    this.buckets.delete(key);
    this.buckets.set(key, b);
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, remaining: Math.floor(b.tokens) };
    }
    const waitMs = (1 - b.tokens) / this.perMs;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Forgets buckets idle long enough to be full again; returns how many. */
  sweep(): number {
    const now = this.now();
    const fullAfterMs = this.capacity / this.perMs; // one minute
    let removed = 0;
    for (const [key, b] of this.buckets) {
      if (now - b.at < fullAfterMs) break; // LRU order: every later bucket is younger
      this.buckets.delete(key);
      removed += 1;
    }
    return removed;
  }

  /** Clients currently remembered. */
  get size(): number {
    return this.buckets.size;
  }

  private refilled(key: string, now: number): Bucket {
    const b = this.buckets.get(key);
    if (!b) return { tokens: this.capacity, at: now };
    const elapsed = Math.max(0, now - b.at);
    return { tokens: Math.min(this.capacity, b.tokens + elapsed * this.perMs), at: now };
  }
}

/**
 * The key a client is limited by: its IPv4 address, or the /64 prefix of its IPv6 address (one
 * host usually holds a whole /64, so per-address limits would be trivial to dodge).
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  let a = address.trim().toLowerCase();
  const zone = a.indexOf('%');
  if (zone !== -1) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1];
  if (!a.includes(':')) return a;
  const groups = expandIpv6(a);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : a;
}

/** The eight 16-bit groups of an IPv6 address (an embedded IPv4 tail counts as two), or null. */
function expandIpv6(a: string): string[] | null {
  const parts = a.split('::');
  if (parts.length > 2) return null;
  const side = (s: string) => (s === '' ? [] : s.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])));
  const head = side(parts[0]);
  const tail = parts.length === 2 ? side(parts[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < 0 || (parts.length === 1 && fill !== 0)) return null;
  const all = [...head, ...Array<string>(fill).fill('0'), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return all.map((g) => g.replace(/^0+(?=.)/, ''));
}

/** DRF's throttling answer. */
export function throttledBody(seconds: number): { detail: string } {
  return { detail: `Request was throttled. Expected available in ${seconds} second${seconds === 1 ? '' : 's'}.` };
}

/** `/api/commands`, `/api/commands/` and anything below it. */
export function isCommandsPath(path: string): boolean {
  return path === '/api/commands' || path.startsWith('/api/commands/');
}

export interface RateLimits {
  /** Writes per client per minute; 0 turns the limit off. */
  writesPerMin: number;
  /** `POST /api/commands/` per client per minute; 0 turns the limit off. */
  commandsPerMin: number;
}

export const RATE_LIMIT_DEFAULTS: Readonly<RateLimits> = Object.freeze({ writesPerMin: 600, commandsPerMin: 60 });

/** A whole number ≥ `min` from the environment ('' or unset: the default), or a problem. */
export function readCount(env: Record<string, string | undefined>, name: string, fallback: number, min = 0): { value: number; problem?: string } {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return { value: fallback };
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    return { value: fallback, problem: `${name} must be a whole number of at least ${min}, got "${env[name]}"` };
  }
  return { value: Number(raw) };
}

/** `RATE_LIMIT_WRITES_PER_MIN` (600) and `RATE_LIMIT_COMMANDS_PER_MIN` (60). */
export function rateLimitsFromEnv(env: Record<string, string | undefined>): { limits: RateLimits; problems: string[] } {
  const writes = readCount(env, 'RATE_LIMIT_WRITES_PER_MIN', RATE_LIMIT_DEFAULTS.writesPerMin);
  const commands = readCount(env, 'RATE_LIMIT_COMMANDS_PER_MIN', RATE_LIMIT_DEFAULTS.commandsPerMin);
  return {
    limits: { writesPerMin: writes.value, commandsPerMin: commands.value },
    problems: [writes.problem, commands.problem].filter((p): p is string => p !== undefined),
  };
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

type Req = IncomingMessage & { path?: string };
type Next = (err?: unknown) => void;

/** The buckets of the middleware: `writes` and `commands`. */
export type BucketName = 'writes' | 'commands';

/** One bucket of a chain: its name, and the in-memory limiter that counts when the store cannot. */
export interface ChainedBucket {
  bucket: BucketName;
  local: TokenBucketLimiter;
}

/**
 * Limiters shared by every instance (app/rate-limit-redis.ts). The middleware keeps an in-memory
 * `TokenBucketLimiter` per bucket anyway and hands it over as `local` (its `capacity` is the
 * bucket's rate): the shared limiter counts a request there when the store cannot answer, so its
 * `take` never rejects. A chain is taken in one go (one round trip).
 */
export interface SharedRateLimits {
  limiter(chain: readonly ChainedBucket[]): RateLimiter;
  /** Releases the store (its connection). */
  close(): Promise<void>;
}

export interface RateLimitMiddlewareOptions {
  /** Milliseconds, for the in-memory buckets; injectable for tests. */
  now?: () => number;
  maxKeys?: number;
  sweepEveryMs?: number;
  /** Count in a store shared by every instance; unset: in memory, per instance. */
  shared?: SharedRateLimits;
  /** Where an unexpected limiter error is reported (the request is let through, never a 500). */
  warn?: (message: string) => void;
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | undefined)?.then === 'function';
}

/**
 * Express-style middleware limiting writes under /api/ per client address. Mounted on the app
 * ahead of Node-RED (app/main.ts), so it also covers paths no route answers. In memory it decides
 * synchronously, as it always did; with a shared store it waits for the store's answer (bounded:
 * see `SharedRateLimits`). It never throws and never answers 500: a limiter that fails anyway
 * lets the request through and the failure is reported to `warn`.
 */
export function rateLimitMiddleware(limits: RateLimits, opts: RateLimitMiddlewareOptions = {}) {
  const make = (perMinute: number) => (perMinute > 0 ? new TokenBucketLimiter({ perMinute, now: opts.now, maxKeys: opts.maxKeys }) : undefined);
  const writesLocal = make(limits.writesPerMin);
  const commandsLocal = make(limits.commandsPerMin);
  const limiterOf = (buckets: Array<[BucketName, TokenBucketLimiter | undefined]>): RateLimiter | undefined => {
    const chain = buckets.filter((b): b is [BucketName, TokenBucketLimiter] => b[1] !== undefined).map(([bucket, local]) => ({ bucket, local }));
    if (chain.length === 0) return undefined;
    return opts.shared ? opts.shared.limiter(chain) : chainLimiters(chain.map((b) => b.local));
  };
  // A command takes from its own bucket first; one that passes still counts as a write.
  const writes = limiterOf([['writes', writesLocal]]);
  const commands = limiterOf([['commands', commandsLocal], ['writes', writesLocal]]);
  const warn = opts.warn ?? ((m: string) => console.warn(m));
  const timer = setInterval(() => {
    writesLocal?.sweep();
    commandsLocal?.sweep();
  }, opts.sweepEveryMs ?? MINUTE_MS);
  timer.unref();

  type Verdict = TakeResult | undefined;

  function hypervoltRateLimit(req: Req, res: ServerResponse, next: Next): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    if (!WRITE_METHODS.has(method) || !isApiPath(path)) {
      next();
      return;
    }
    const answer = (verdict: Verdict): void => {
      if (verdict && !verdict.ok) {
        req.resume(); // the body is not wanted; let the connection be reused
        sendJson(res, 429, throttledBody(verdict.retryAfterSeconds), { 'retry-after': String(verdict.retryAfterSeconds) });
        return;
      }
      next();
    };
    const failed = (err: unknown): void => {
      warn(`rate limits: ${(err as Error)?.message ?? err}; the request is let through`);
      next();
    };
    let verdict: Verdict | Promise<Verdict>;
    try {
      const limiter = method === 'POST' && isCommandsPath(path) ? commands : writes;
      verdict = limiter?.take(clientKey(req.socket?.remoteAddress));
    } catch (err) {
      failed(err);
      return;
    }
    if (isThenable(verdict)) {
      verdict.then(answer, failed).catch((err: unknown) => warn(`rate limits: after the verdict: ${(err as Error)?.message ?? err}`));
    } else answer(verdict);
  }
  return Object.assign(hypervoltRateLimit, {
    /** Stops the sweep timer and closes the shared store, if any. */
    close: async (): Promise<void> => {
      clearInterval(timer);
      await opts.shared?.close();
    },
    /** Clients remembered in memory (with a shared store: by the fallback buckets). */
    buckets: () => ({ writes: writesLocal?.size ?? 0, commands: commandsLocal?.size ?? 0 }),
    /** Whether the limits are counted in a shared store. */
    shared: opts.shared !== undefined,
  });
}
