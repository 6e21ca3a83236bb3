import assert from 'assert/strict';
import { FetchError } from '../../nodes/shared/fetch/errors';
import { backoffDelay, parseRetryAfter, retryPlan, type RetryPolicy } from '../../nodes/shared/fetch/retry';

const NOW = Date.parse('2026-01-26T08:00:00Z');
const policy: RetryPolicy = { baseMs: 30_000, capMs: 15 * 60_000, jitter: 0.2 };

describe('fetch retry: Retry-After', () => {
  it('reads a number of seconds', () => {
    assert.equal(parseRetryAfter('1', NOW), 1000);
    assert.equal(parseRetryAfter('120', NOW), 120_000);
    assert.equal(parseRetryAfter(' 0 ', NOW), 0);
    assert.equal(parseRetryAfter('1.5', NOW), 1500);
  });

  it('reads an HTTP date relative to now, a past date meaning now', () => {
    assert.equal(parseRetryAfter('Mon, 26 Jan 2026 08:01:30 GMT', NOW), 90_000);
    assert.equal(parseRetryAfter('Mon, 26 Jan 2026 07:00:00 GMT', NOW), 0);
  });

  it('takes the first of repeated headers', () => {
    assert.equal(parseRetryAfter(['5', '60'], NOW), 5000);
  });

  it('ignores a missing or unreadable header', () => {
    for (const v of [undefined, null, '', 'soon', '-5', '1e3', '12:30', 'Mon, 99 Foo 2026']) {
      assert.equal(parseRetryAfter(v as string | undefined, NOW), undefined, String(v));
    }
  });
});

describe('fetch retry: backoff', () => {
  it('doubles from the base and stops at the interval (no jitter at random = 0)', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 40].map((n) => backoffDelay(n, policy, () => 0));
    assert.deepEqual(delays, [30_000, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000, 900_000]);
  });

  it('takes off at most the jitter fraction, never adding to the delay', () => {
    assert.equal(backoffDelay(1, policy, () => 1), 24_000);
    assert.equal(backoffDelay(2, policy, () => 0.5), 54_000);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(3, policy);
      assert.ok(d >= 96_000 && d <= 120_000, String(d));
    }
  });

  it('never goes below the base when the interval is shorter than the base', () => {
    assert.equal(backoffDelay(4, { baseMs: 30_000, capMs: 10_000, jitter: 0 }), 30_000);
  });
});

describe('fetch retry: what follows a failure', () => {
  const plan = (e: FetchError, attempt = 1) => retryPlan(e, attempt, policy, () => 0);

  it('retries timeouts, network errors, 5xx and bad bodies with backoff', () => {
    for (const kind of ['timeout', 'network', 'server', 'invalid_response'] as const) {
      assert.deepEqual(plan(new FetchError(kind, 'x'), 2), { action: 'retry', delayMs: 60_000 }, kind);
    }
  });

  it('waits Retry-After on 429, even beyond the interval, and backs off without it', () => {
    assert.deepEqual(plan(new FetchError('rate_limited', 'x', 429, 1000)), { action: 'retry', delayMs: 1000 });
    assert.deepEqual(plan(new FetchError('rate_limited', 'x', 429, 3_600_000)), { action: 'retry', delayMs: 3_600_000 });
    assert.deepEqual(plan(new FetchError('rate_limited', 'x', 429), 3), { action: 'retry', delayMs: 120_000 });
  });

  it('stops on a rejected key, and waits for the interval on other 4xx', () => {
    assert.deepEqual(plan(new FetchError('auth', 'x', 401)), { action: 'halt' });
    assert.deepEqual(plan(new FetchError('auth', 'x', 403)), { action: 'halt' });
    assert.deepEqual(plan(new FetchError('client', 'x', 404)), { action: 'wait-interval' });
  });
});
