/**
 * Per-client rate limits on REST writes (issue 8): a token bucket per client address, in memory,
 * one set per instance. Every write (POST, PUT, PATCH, DELETE under /api/) takes a token from the
 * client's writes bucket; `POST /api/commands/` (it moves real devices) also takes one from a
 * tighter commands bucket. An empty bucket answers 429 as DRF's throttling does, with
 * `Retry-After`. Unauthenticated attempts count too, so the limit also slows token guessing.
 *
 * Memory stays bounded: buckets are kept in least-recently-used order, the oldest are dropped
 * past `maxKeys`, and a bucket idle for a minute (full again, so it carries no information) is
 * swept away.
 */
import type { IncomingMessage, ServerResponse } from 'http';
import { sendJson } from './api-middleware';
import { isApiPath } from './security';

const MINUTE_MS = 60_000;

export type TakeResult = { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number };

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

export class TokenBucketLimiter {
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

/**
 * Express-style middleware limiting writes under /api/ per client address. Mounted on the app
 * ahead of Node-RED (app/main.ts), so it also covers paths no route answers.
 */
export function rateLimitMiddleware(limits: RateLimits, opts: { now?: () => number; maxKeys?: number; sweepEveryMs?: number } = {}) {
  const make = (perMinute: number) => (perMinute > 0 ? new TokenBucketLimiter({ perMinute, now: opts.now, maxKeys: opts.maxKeys }) : undefined);
  const writes = make(limits.writesPerMin);
  const commands = make(limits.commandsPerMin);
  const timer = setInterval(() => {
    writes?.sweep();
    commands?.sweep();
  }, opts.sweepEveryMs ?? MINUTE_MS);
  timer.unref();

  function hypervoltRateLimit(req: Req, res: ServerResponse, next: Next): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    if (!WRITE_METHODS.has(method) || !isApiPath(path)) {
      next();
      return;
    }
    const key = clientKey(req.socket?.remoteAddress);
    // A command takes from its own bucket first; one that passes still counts as a write.
    let verdict: TakeResult | undefined = method === 'POST' && isCommandsPath(path) ? commands?.take(key) : undefined;
    if (!verdict || verdict.ok) verdict = writes?.take(key) ?? verdict;
    if (verdict && !verdict.ok) {
      req.resume(); // the body is not wanted; let the connection be reused
      sendJson(res, 429, throttledBody(verdict.retryAfterSeconds), { 'retry-after': String(verdict.retryAfterSeconds) });
      return;
    }
    next();
  }
  return Object.assign(hypervoltRateLimit, {
    /** Stops the sweep timer. */
    close: () => clearInterval(timer),
    buckets: () => ({ writes: writes?.size ?? 0, commands: commands?.size ?? 0 }),
  });
}
