/**
 * When to try again after a failed fetch: exponential backoff with jitter for transient
 * failures, `Retry-After` for 429, never for a rejected key.
 */
import type { FetchError } from './errors';

export interface RetryPolicy {
  /** First retry delay (ms); doubles with each consecutive failure. Default 30 s. */
  baseMs: number;
  /** Upper bound of a backoff delay (ms): the regular interval, so a retry never waits longer than the schedule. */
  capMs: number;
  /** Fraction of the delay taken off at random (0..1), so many instances do not retry in step. Default 0.2. */
  jitter: number;
}

export const DEFAULT_RETRY_BASE_MS = 30_000;
export const DEFAULT_JITTER = 0.2;

/**
 * Delay before retry number `attempt` (1 for the first retry): base·2^(attempt−1), capped,
 * minus up to `jitter` of itself. `random` returns 0..1 (injected for tests).
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(attempt));
  // 2^30 is far beyond any cap; avoid Infinity for absurd attempt counts.
  const raw = policy.baseMs * 2 ** Math.min(n - 1, 30);
  const capped = Math.min(raw, Math.max(policy.capMs, policy.baseMs));
  const jitter = Math.min(Math.max(policy.jitter, 0), 1);
  return Math.round(capped * (1 - jitter * random()));
}

/**
 * Parses a `Retry-After` header: a number of seconds or an HTTP date. Returns the wait in ms
 * (0 for a date in the past), or undefined when the header is missing or unreadable.
 */
export function parseRetryAfter(value: string | string[] | undefined | null, nowMs: number): number | undefined {
  if (Array.isArray(value)) value = value[0];
  if (value === undefined || value === null) return undefined;
  const v = String(value).trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  // HTTP-date (RFC 9110 IMF-fixdate and the obsolete forms Date.parse also reads); must name a weekday or month, not just digits.
  if (!/[A-Za-z]/.test(v)) return undefined;
  const at = Date.parse(v);
  if (!Number.isFinite(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/** What to do after a failure. */
export type RetryPlan =
  | { action: 'retry'; delayMs: number }
  | { action: 'wait-interval' } // no early retry: the next regular fetch happens as usual
  | { action: 'halt' }; // the key was rejected: nothing more until a manual trigger or a redeploy

/**
 * Decides what follows a failure. `attempt` counts consecutive retryable failures, 1 for the
 * first one.
 */
export function retryPlan(
  error: FetchError,
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): RetryPlan {
  switch (error.kind) {
    case 'auth':
    case 'no_key':
    case 'config':
      return { action: 'halt' };
    case 'client':
    case 'aborted':
      return { action: 'wait-interval' };
    case 'rate_limited':
      // The API said how long to wait: honour it even beyond the interval. Without a header, back off.
      if (error.retryAfterMs !== undefined) return { action: 'retry', delayMs: error.retryAfterMs };
      return { action: 'retry', delayMs: backoffDelay(attempt, policy, random) };
    case 'timeout':
    case 'network':
    case 'server':
    case 'invalid_response':
      return { action: 'retry', delayMs: backoffDelay(attempt, policy, random) };
  }
}
