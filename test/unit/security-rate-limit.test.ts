import assert from 'assert/strict';
import http from 'http';
import type { AddressInfo } from 'net';
import {
  RATE_LIMIT_DEFAULTS,
  TokenBucketLimiter,
  clientKey,
  isCommandsPath,
  rateLimitMiddleware,
  rateLimitsFromEnv,
  throttledBody,
  chainLimiters,
  type BucketName,
  type ChainedBucket,
  type SharedRateLimits,
  type TakeResult,
} from '../../app/rate-limit';
import { redisUrlProblem } from '../../app/rate-limit-redis';
import { httpHardening } from '../../app/hardening';

describe('security: rate limits', () => {
  // The token bucket's and the middleware's answers are a contract both limiters (in memory and in
  // Redis) are tested against: test/integration/rate-limit-redis.test.ts. Here, what only the
  // in-memory one has.
  describe('TokenBucketLimiter', () => {
    it('memory is bounded: the least recently seen client is forgotten first', () => {
      const b = new TokenBucketLimiter({ perMinute: 1, maxKeys: 3, now: () => 0 });
      for (const k of ['a', 'b', 'c']) b.take(k);
      b.take('a'); // a is now the most recent; b the oldest
      b.take('d');
      assert.equal(b.size, 3);
      assert.equal(b.take('b').ok, true, 'b was forgotten (a fresh bucket)');
      assert.equal(b.take('a').ok, false, 'a was kept');
    });

    it('sweep forgets buckets idle for a minute (full again) and keeps the others', () => {
      let now = 0;
      const b = new TokenBucketLimiter({ perMinute: 10, now: () => now });
      b.take('old');
      now = 30_000;
      b.take('young');
      now = 60_000;
      assert.equal(b.sweep(), 1);
      assert.equal(b.size, 1);
      now = 90_000;
      assert.equal(b.sweep(), 1);
      assert.equal(b.size, 0);
    });
  });

  it('clientKey: IPv4 as it is, IPv4-mapped unwrapped, IPv6 by /64', () => {
    assert.equal(clientKey('192.168.1.7'), '192.168.1.7');
    assert.equal(clientKey('::ffff:192.168.1.7'), '192.168.1.7');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:DB8:0001:0002::9%eth0'), '2001:db8:1:2::/64');
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey(undefined), 'unknown');
  });

  it('throttledBody is DRF\'s message', () => {
    assert.deepEqual(throttledBody(7), { detail: 'Request was throttled. Expected available in 7 seconds.' });
    assert.deepEqual(throttledBody(1), { detail: 'Request was throttled. Expected available in 1 second.' });
  });

  it('isCommandsPath', () => {
    assert.equal(isCommandsPath('/api/commands/'), true);
    assert.equal(isCommandsPath('/api/commands'), true);
    assert.equal(isCommandsPath('/api/commandsx'), false);
    assert.equal(isCommandsPath('/api/ai-decisions/'), false);
  });

  it('rateLimitsFromEnv: defaults 600 and 60, 0 turns off, junk is a problem', () => {
    assert.deepEqual(rateLimitsFromEnv({}), { limits: { ...RATE_LIMIT_DEFAULTS }, problems: [] });
    assert.deepEqual(rateLimitsFromEnv({}).limits, { writesPerMin: 600, commandsPerMin: 60 });
    assert.deepEqual(rateLimitsFromEnv({ RATE_LIMIT_WRITES_PER_MIN: '0', RATE_LIMIT_COMMANDS_PER_MIN: ' 5 ' }).limits, {
      writesPerMin: 0,
      commandsPerMin: 5,
    });
    assert.equal(rateLimitsFromEnv({ RATE_LIMIT_WRITES_PER_MIN: '1.5' }).problems.length, 1);
    assert.equal(rateLimitsFromEnv({ RATE_LIMIT_COMMANDS_PER_MIN: 'x' }).problems.length, 1);
    assert.deepEqual(rateLimitsFromEnv({ RATE_LIMIT_WRITES_PER_MIN: '' }).limits.writesPerMin, 600);
  });

  it('redisUrlProblem: redis:// or rediss:// with a numeric database, else why not', () => {
    for (const ok of ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379/', 'redis://:pw@redis:6379/3', 'rediss://user:pw@r.example:6380/0']) {
      assert.equal(redisUrlProblem(ok), null, ok);
    }
    assert.equal(redisUrlProblem('not a url'), 'is not a URL');
    assert.equal(redisUrlProblem('redis://host:99999'), 'is not a URL');
    assert.equal(redisUrlProblem('http://127.0.0.1:6379'), 'is not redis:// or rediss://');
    assert.equal(redisUrlProblem('redis://127.0.0.1:6379/abc'), 'has a database index that is not a number');
  });

  it('httpHardening: a REDIS_URL the rate limits cannot use is warned about (password hidden) and memory used', async () => {
    const logs: string[] = [];
    const log = { info: (m: string) => logs.push(`info ${m}`), warn: (m: string) => logs.push(`warn ${m}`) };
    const chain = httpHardening({ REDIS_URL: 'redis://:s3cret@127.0.0.1:6379/abc', RATE_LIMIT_WRITES_PER_MIN: '1' }, '/admin/', log);
    await chain.close();
    assert.deepEqual(logs, [
      'warn rate limits: REDIS_URL "redis://:***@127.0.0.1:6379/abc" has a database index that is not a number: counting in memory, per instance',
      'info rate limits: counted in memory, per instance',
    ]);
    logs.length = 0;
    await httpHardening({}, '/admin/', log).close();
    await httpHardening({ REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_WRITES_PER_MIN: '0', RATE_LIMIT_COMMANDS_PER_MIN: '0' }, '/admin/', log).close();
    assert.deepEqual(logs, ['info rate limits: counted in memory, per instance (REDIS_URL not set)', 'info rate limits: off']);
  });

  describe('rateLimitMiddleware with a shared store (its waiting and failure paths; the Redis store: test/integration/rate-limit-redis.test.ts)', () => {
    /** A stand-in store: answers through a promise after `delayMs`, or fails as told. */
    class FakeShared implements SharedRateLimits {
      fail: 'no' | 'reject' | 'throw' = 'no';
      delayMs = 5;
      closed = 0;
      calls: string[] = [];
      private readonly counted = new Map<BucketName, TokenBucketLimiter>();
      limiter(chain: readonly ChainedBucket[]) {
        for (const { bucket, local } of chain) {
          if (!this.counted.has(bucket)) this.counted.set(bucket, new TokenBucketLimiter({ perMinute: local.capacity, now: () => 0 }));
        }
        const name = chain.map((b) => b.bucket).join('+');
        const counted = chainLimiters(chain.map((b) => this.counted.get(b.bucket)!));
        return {
          take: (key: string): Promise<TakeResult> => {
            this.calls.push(`${name}:${key}`);
            if (this.fail === 'throw') throw new Error(`${name} exploded`);
            if (this.fail === 'reject') return Promise.reject(new Error(`${name} unreachable`));
            return new Promise((r) => setTimeout(() => r(counted.take(key)), this.delayMs));
          },
        };
      }
      async close() {
        this.closed += 1;
      }
    }
    let server: http.Server;
    let port: number;
    let shared: FakeShared;
    let mw: ReturnType<typeof rateLimitMiddleware>;
    let reached = 0;
    const warnings: string[] = [];

    before(async () => {
      shared = new FakeShared();
      mw = rateLimitMiddleware({ writesPerMin: 2, commandsPerMin: 1 }, { shared, warn: (m) => warnings.push(m) });
      server = http.createServer((req, res) =>
        mw(req, res, () => {
          reached += 1;
          req.resume();
          res.end('ok');
        }),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      await new Promise<void>((r) => server.close(() => r()));
    });

    function post(path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
      return new Promise((resolve, reject) => {
        const body = '{"device_id": "d"}';
        const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    }

    it('waits for the store: its verdict decides, with the same 429 answer; a command is one call for its two buckets', async () => {
      shared.fail = 'no';
      shared.calls = [];
      const before = reached;
      assert.equal((await post('/api/commands/')).status, 200);
      const limited = await post('/api/commands/');
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '60');
      assert.deepEqual(JSON.parse(limited.body), throttledBody(60));
      assert.deepEqual(shared.calls, ['commands+writes:127.0.0.1', 'commands+writes:127.0.0.1'], 'one call per request');
      assert.equal((await post('/api/sensor-readings/')).status, 200, 'one write left after one command');
      assert.equal((await post('/api/sensor-readings/')).status, 429);
      assert.equal(reached - before, 2);
      assert.deepEqual(mw.buckets(), { writes: 0, commands: 0 }, 'the in-memory buckets were not used');
      assert.equal(mw.shared, true);
      assert.deepEqual(warnings, []);
    });

    it('a store that rejects or throws lets the request through (never a 500) and says so', async () => {
      shared.fail = 'reject';
      const r1 = await post('/api/commands/');
      assert.equal(r1.status, 200);
      shared.fail = 'throw';
      const r2 = await post('/api/sensor-readings/');
      assert.equal(r2.status, 200);
      assert.deepEqual(warnings, [
        'rate limits: commands+writes unreachable; the request is let through',
        'rate limits: writes exploded; the request is let through',
      ]);
      warnings.length = 0;
    });

    it('close() closes the store', async () => {
      await mw.close();
      assert.equal(shared.closed, 1);
    });
  });
});
