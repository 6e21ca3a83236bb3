/**
 * Rate limits (issue 9): one contract, two limiters. The in-memory `TokenBucketLimiter` and the
 * `RedisTokenBucketLimiter` on the real Redis must answer the same; the middleware gives the same
 * 429 on either; two middleware instances (as two app instances) on one Redis prefix share the
 * limit, where two in-memory ones each allow it; and when Redis is down or slow the requests are
 * counted by the instance's in-memory limiter (local limits, never none), logged once per outage.
 */
import assert from 'assert/strict';
import http from 'http';
import type { AddressInfo } from 'net';
import fc from 'fast-check';
import Redis from 'ioredis';
import { httpHardening } from '../../app/hardening';
import {
  TokenBucketLimiter,
  chainLimiters,
  clientKey,
  rateLimitMiddleware,
  throttledBody,
  type RateLimiter,
  type RateLimits,
  type SharedRateLimits,
} from '../../app/rate-limit';
import { RedisRateLimits, RedisTokenBucketLimiter, rateLimitKey, rateLimitRedisOptions } from '../../app/rate-limit-redis';
import { deleteRedisKeys, REDIS_PREFIX, REDIS_URL, requireService, RUN_ID } from '../support/services';

const SUITE_PREFIX = `${REDIS_PREFIX}rl:`;
let prefixCount = 0;
/** A key prefix of its own for each limiter set: no test sees another's buckets. */
const freshPrefix = () => `${SUITE_PREFIX}${++prefixCount}:`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


interface Logged {
  warn: string[];
  info: string[];
  log: { warn(m: string): void; info(m: string): void };
}
function logger(): Logged {
  const l: Logged = { warn: [], info: [], log: { warn: (m) => l.warn.push(m), info: (m) => l.info.push(m) } };
  return l;
}

/** An HTTP server running one middleware; `send` makes a request from a given loopback address. */
interface Served {
  send(method: string, path: string, from: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>;
  reached(): number;
  close(): Promise<void>;
}
async function serve(mw: (req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void): Promise<Served> {
  let reached = 0;
  const server = http.createServer((req, res) =>
    mw(req, res, () => {
      reached += 1;
      req.resume();
      res.end('ok');
    }),
  );
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  const port = (server.address() as AddressInfo).port;
  return {
    reached: () => reached,
    close: () => new Promise<void>((r) => server.close(() => r())),
    send: (method, path, from) =>
      new Promise((resolve, reject) => {
        const body = method === 'GET' ? undefined : '{"device_id": "d"}';
        // Content-Length always: Node sends a DELETE body without one (then it reads as a next request).
        const headers = body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {};
        const req = http.request({ host: '127.0.0.1', port, method, path, headers, localAddress: from, agent: false }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end(body);
      }),
  };
}

type LimiterFactory = (opts: { perMinute: number; now: () => number }) => RateLimiter;

/** The behaviour both limiters share, on a clock the test moves. */
function describeLimiterContract(name: string, factory: () => LimiterFactory) {
  describe(`RateLimiter contract: ${name}`, () => {
    it('allows a minute of requests at once, then refills at perMinute/60 per second', async () => {
      let now = 1_000_000;
      const b = factory()({ perMinute: 6, now: () => now });
      for (let i = 0; i < 6; i++) assert.deepEqual(await b.take('a'), { ok: true, remaining: 5 - i }, `request ${i + 1}`);
      assert.deepEqual(await b.take('a'), { ok: false, retryAfterSeconds: 10 });
      now += 9_999;
      assert.deepEqual(await b.take('a'), { ok: false, retryAfterSeconds: 1 });
      now += 1;
      assert.deepEqual(await b.take('a'), { ok: true, remaining: 0 }, 'available after the announced wait');
      assert.equal((await b.take('a')).ok, false);
    });

    it('keeps clients apart', async () => {
      const b = factory()({ perMinute: 1, now: () => 0 });
      assert.equal((await b.take('a')).ok, true);
      assert.equal((await b.take('a')).ok, false);
      assert.equal((await b.take('b')).ok, true);
    });

    it('never holds more than a minute of tokens', async () => {
      let now = 0;
      const b = factory()({ perMinute: 2, now: () => now });
      assert.equal((await b.take('a')).ok, true);
      now = 3_600_000;
      assert.deepEqual(await b.take('a'), { ok: true, remaining: 1 });
      assert.deepEqual(await b.take('a'), { ok: true, remaining: 0 });
      assert.equal((await b.take('a')).ok, false);
    });

    it('a clock that goes back refills nothing', async () => {
      let now = 100_000;
      const b = factory()({ perMinute: 60, now: () => now });
      for (let i = 0; i < 60; i++) await b.take('a');
      now = 50_000;
      assert.deepEqual(await b.take('a'), { ok: false, retryAfterSeconds: 1 });
    });

    it('refuses a non-positive rate', () => {
      assert.throws(() => factory()({ perMinute: 0, now: () => 0 }), RangeError);
    });
  });
}

/** Resolves once the shared limits' connection is ready (before that a request is counted locally). */
async function ready(shared: RedisRateLimits): Promise<void> {
  const end = Date.now() + 5000;
  while (shared.client.status !== 'ready') {
    if (Date.now() > end) throw new Error(`redis connection: ${shared.client.status}`);
    await sleep(10);
  }
}

/** The middleware's answers, whichever limiter counts; `shared` gets the test's clock. */
function describeMiddlewareContract(name: string, shared?: (now: () => number) => RedisRateLimits) {
  describe(`rateLimitMiddleware: ${name}`, () => {
    let served: Served;
    let mw: ReturnType<typeof rateLimitMiddleware>;
    let store: RedisRateLimits | undefined;
    let now = 0;
    const logs = logger();
    before(async () => {
      store = shared?.(() => now);
      if (store) await ready(store);
      mw = rateLimitMiddleware({ writesPerMin: 3, commandsPerMin: 2 }, { now: () => now, shared: store, warn: logs.log.warn });
      served = await serve(mw);
    });
    after(async () => {
      await mw.close();
      await served.close();
    });
    afterEach(() => {
      assert.deepEqual(logs.warn, []);
      // In Redis, every request was counted there: the in-memory fallback buckets stay empty.
      if (store) assert.deepEqual(mw.buckets(), { writes: 0, commands: 0 });
    });

    it('commands: tighter; writes: counted per client; reads never; 429 as DRF with Retry-After', async () => {
      const { send } = served;
      now = 0;
      assert.equal((await send('POST', '/api/commands/', '127.0.0.11')).status, 200);
      assert.equal((await send('POST', '/api/commands/', '127.0.0.11')).status, 200);
      const limited = await send('POST', '/api/commands/', '127.0.0.11');
      assert.equal(limited.status, 429);
      assert.equal(limited.headers['retry-after'], '30');
      assert.match(String(limited.headers['content-type']), /^application\/json/);
      assert.deepEqual(JSON.parse(limited.body), throttledBody(30));
      // The two commands counted as writes too: one write left for this client.
      assert.equal((await send('PATCH', '/api/preferences/x/', '127.0.0.11')).status, 200);
      assert.equal((await send('DELETE', '/api/preferences/x/', '127.0.0.11')).status, 429);
      for (let i = 0; i < 5; i++) assert.equal((await send('GET', '/api/health/', '127.0.0.11')).status, 200);
      assert.equal((await send('POST', '/api/commands/', '127.0.0.12')).status, 200, 'another client is not affected');
      for (let i = 0; i < 5; i++) assert.equal((await send('POST', '/admin/flows', '127.0.0.11')).status, 200, 'outside /api/');
      now += 30_000;
      assert.equal((await send('POST', '/api/commands/', '127.0.0.11')).status, 200, 'after the announced wait');
    });

    it('a throttled request never reaches the routes', async () => {
      now = 1_000_000;
      const before = served.reached();
      for (let i = 0; i < 3; i++) assert.equal((await served.send('POST', '/api/sensor-readings/', '127.0.0.13')).status, 200);
      assert.equal((await served.send('POST', '/api/sensor-readings/', '127.0.0.13')).status, 429);
      assert.equal(served.reached(), before + 3);
      // In memory: one bucket per client seen (.11, .12, .13 wrote; .11 and .12 sent commands).
      if (!store) assert.deepEqual(mw.buckets(), { writes: 3, commands: 2 });
    });
  });
}

describe('rate limits in Redis', function () {
  let admin: Redis;
  /** Clients the tests open; closed after each test. */
  let clients: Redis[] = [];
  let closers: Array<() => Promise<void>> = [];
  const client = () => {
    const c = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  before(async function () {
    await requireService(this, 'redis');
    admin = new Redis(REDIS_URL);
  });
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c()));
    await Promise.all(clients.splice(0).map((c) => c.quit().catch(() => c.disconnect())));
  });
  after(async () => {
    if (!admin) return;
    await deleteRedisKeys(admin, `${SUITE_PREFIX}*`);
    assert.deepEqual(await admin.keys(`${SUITE_PREFIX}*`), []);
    await admin.quit();
  });

  describeLimiterContract('TokenBucketLimiter (in memory)', () => ({ perMinute, now }) => new TokenBucketLimiter({ perMinute, now }));
  describeLimiterContract('RedisTokenBucketLimiter', () => {
    const c = client();
    const prefix = freshPrefix();
    return ({ perMinute, now }) => new RedisTokenBucketLimiter({ client: c, prefix, buckets: [{ bucket: 'writes', perMinute }], now });
  });

  it('the Redis limiter answers exactly as the in-memory one for any sequence of requests, clients and clock steps', async () => {
    const c = client();
    const rate = fc.constantFrom(1, 2, 3, 7, 60, 599, 600);
    const step = fc.record({
      who: fc.constantFrom('a', 'b', '2001:db8::/64'),
      command: fc.boolean(),
      dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20_000 })),
    });
    await fc.assert(
      fc.asyncProperty(rate, rate, fc.array(step, { maxLength: 40 }), async (writesPerMin, commandsPerMin, steps) => {
        let now = 1_700_000_000_000;
        const clock = () => now;
        // In memory: a write takes from writes; a command from commands, then (if it passed) from writes.
        const w = new TokenBucketLimiter({ perMinute: writesPerMin, now: clock });
        const memory = { write: chainLimiters([w]), command: chainLimiters([new TokenBucketLimiter({ perMinute: commandsPerMin, now: clock }), w]) };
        const prefix = freshPrefix();
        const writes = { bucket: 'writes', perMinute: writesPerMin };
        const redis = {
          write: new RedisTokenBucketLimiter({ client: c, prefix, buckets: [writes], now: clock }),
          command: new RedisTokenBucketLimiter({ client: c, prefix, buckets: [{ bucket: 'commands', perMinute: commandsPerMin }, writes], now: clock }),
        };
        for (const { who, command, dt } of steps) {
          now += dt;
          const kind = command ? 'command' : 'write';
          assert.deepEqual(await redis[kind].take(who), memory[kind].take(who), `${kind} at +${now - 1_700_000_000_000} ms for ${who}`);
        }
      }),
      { numRuns: 60 },
    );
  });

  describe('RedisTokenBucketLimiter specifics', () => {
    it('one key per bucket and client, under the prefix, client encoded; it expires when the bucket would be full', async () => {
      const prefix = freshPrefix();
      const b = new RedisTokenBucketLimiter({ client: client(), prefix, buckets: [{ bucket: 'commands', perMinute: 6 }], now: () => 5_000 });
      await b.take('192.168.1.7');
      const key = `${prefix}ratelimit:commands:${Buffer.from('192.168.1.7').toString('base64url')}`;
      assert.deepEqual(b.keysFor('192.168.1.7'), [key]);
      assert.deepEqual(await admin.keys(`${prefix}*`), [key]);
      assert.equal(await admin.get(key), '5 5000');
      const pttl = await admin.pttl(key);
      assert.ok(pttl > 9_000 && pttl <= 10_000, `one token short refills in 10 s: pttl ${pttl}`);
      assert.throws(() => new RedisTokenBucketLimiter({ client: client(), prefix, buckets: [{ bucket: 'a:b', perMinute: 1 }] }), RangeError);
    });

    it('an idle bucket vanishes once full again, and a vanished bucket is a full one', async () => {
      const prefix = freshPrefix();
      // 60 000 a minute: one token a millisecond; one taken, the key lives 1 ms.
      const b = new RedisTokenBucketLimiter({ client: client(), prefix, buckets: [{ bucket: 'writes', perMinute: 60_000 }] });
      assert.deepEqual(await b.take('a'), { ok: true, remaining: 59_999 });
      await sleep(50);
      assert.deepEqual(await admin.keys(`${prefix}*`), []);
      assert.deepEqual(await b.take('a'), { ok: true, remaining: 59_999 });
    });

    it('any client string is a safe key part and its own bucket', async () => {
      const prefix = freshPrefix();
      const b = new RedisTokenBucketLimiter({ client: client(), prefix, buckets: [{ bucket: 'writes', perMinute: 1 }], now: () => 0 });
      const odd = ['a:b', 'a b', '*', '[x]?', 'a\nb', 'ü', '{tag}', 'x'.repeat(300), clientKey('fe80::1%eth0'), clientKey(undefined)];
      for (const who of odd) assert.equal((await b.take(who)).ok, true, JSON.stringify(who));
      for (const who of odd) assert.equal((await b.take(who)).ok, false, JSON.stringify(who));
      const keys = await admin.keys(`${prefix}*`);
      assert.equal(keys.length, odd.length);
      for (const k of keys) assert.match(k.slice(prefix.length), /^ratelimit:writes:[A-Za-z0-9_-]+$/);
      assert.equal(rateLimitKey('p:', 'writes', 'a:b'), 'p:ratelimit:writes:YTpi');
    });

    it('a request is one script call, a command too (two buckets): the client sends EVALSHA and nothing else', async () => {
      const prefix = freshPrefix();
      const c = client();
      const b = new RedisTokenBucketLimiter({ client: c, prefix, buckets: [{ bucket: 'writes', perMinute: 100 }] });
      const chain = new RedisTokenBucketLimiter({ client: c, prefix, buckets: [{ bucket: 'commands', perMinute: 10 }, { bucket: 'writes', perMinute: 100 }] });
      await b.take('warm'); // loads the script on this connection first
      const seen: Array<{ source: string; command: string }> = [];
      const monitor = await admin.monitor();
      try {
        monitor.on('monitor', (_time: string, args: string[], source: string) => {
          if (args.some((a) => a.startsWith(prefix))) seen.push({ source, command: args[0].toLowerCase() });
        });
        for (let i = 0; i < 3; i++) await b.take(`c${i}`);
        for (let i = 0; i < 2; i++) await chain.take(`c${i}`);
        const end = Date.now() + 3000;
        while (seen.filter((s) => s.source !== 'lua').length < 5 && Date.now() < end) await sleep(10);
        await sleep(100);
      } finally {
        monitor.disconnect();
      }
      assert.deepEqual(seen.filter((s) => s.source !== 'lua').map((s) => s.command), ['evalsha', 'evalsha', 'evalsha', 'evalsha', 'evalsha']);
      const inScript = seen.filter((s) => s.source === 'lua').map((s) => s.command);
      // Two buckets for each command: GET and SET of each, inside the one call.
      assert.equal(inScript.filter((x) => x === 'get').length, 3 + 2 * 2);
      assert.equal(inScript.filter((x) => x === 'set').length, 3 + 2 * 2);
    });

    it("on the Redis server's clock (the app's setting): refills in real time", async function () {
      this.timeout(10_000);
      const b = new RedisTokenBucketLimiter({ client: client(), prefix: freshPrefix(), buckets: [{ bucket: 'writes', perMinute: 60 }] });
      for (let i = 0; i < 60; i++) assert.equal((await b.take('a')).ok, true, `request ${i + 1}`);
      assert.deepEqual(await b.take('a'), { ok: false, retryAfterSeconds: 1 });
      await sleep(1_200);
      assert.equal((await b.take('a')).ok, true, 'a token a second');
      assert.equal((await b.take('a')).ok, false);
    });

    it('two limiters on two connections with one prefix share the buckets; two in memory do not', async () => {
      const prefix = freshPrefix();
      const make = () => new RedisTokenBucketLimiter({ client: client(), prefix, buckets: [{ bucket: 'writes', perMinute: 6 }], now: () => 0 });
      const [one, two] = [make(), make()];
      let allowed = 0;
      for (let i = 0; i < 10; i++) if ((await (i % 2 ? two : one).take('a')).ok) allowed += 1;
      assert.equal(allowed, 6);
      const [m1, m2] = [new TokenBucketLimiter({ perMinute: 6, now: () => 0 }), new TokenBucketLimiter({ perMinute: 6, now: () => 0 })];
      let local = 0;
      for (let i = 0; i < 20; i++) if ((i % 2 ? m2 : m1).take('a').ok) local += 1;
      assert.equal(local, 12);
    });
  });

  describeMiddlewareContract('in memory');
  describeMiddlewareContract('in Redis', (now) => new RedisRateLimits({ url: REDIS_URL, prefix: freshPrefix(), now }));

  describe('two instances on one Redis', () => {
    const limits: RateLimits = { writesPerMin: 5, commandsPerMin: 3 };

    async function pair(shared: () => SharedRateLimits | undefined): Promise<{ one: Served; two: Served }> {
      const mws = [rateLimitMiddleware(limits, { shared: shared() }), rateLimitMiddleware(limits, { shared: shared() })];
      const [one, two] = await Promise.all(mws.map((m) => serve(m)));
      closers.push(async () => {
        await Promise.all(mws.map((m) => m.close()));
        await one.close();
        await two.close();
      });
      return { one, two };
    }
    /** Sends `n` requests from one client, alternating between the instances; counts the 200s. */
    async function allowedOf(p: { one: Served; two: Served }, n: number, method: string, path: string, from: string): Promise<number> {
      let ok = 0;
      for (let i = 0; i < n; i++) {
        const r = await (i % 2 ? p.two : p.one).send(method, path, from);
        assert.ok(r.status === 200 || r.status === 429, `status ${r.status}`);
        if (r.status === 200) ok += 1;
      }
      return ok;
    }

    it('together allow perMinute for one client, where two in-memory instances allow twice that', async () => {
      const prefix = freshPrefix();
      const logs = logger();
      const stores: RedisRateLimits[] = [];
      const inRedis = await pair(() => {
        stores.push(new RedisRateLimits({ url: REDIS_URL, prefix, log: logs.log }));
        return stores.at(-1);
      });
      const inMemory = await pair(() => undefined);
      await Promise.all(stores.map(ready));
      assert.equal(await allowedOf(inRedis, 12, 'POST', '/api/sensor-readings/', '127.0.0.21'), 5);
      assert.equal(await allowedOf(inRedis, 8, 'POST', '/api/commands/', '127.0.0.22'), 3);
      assert.equal(await allowedOf(inMemory, 12, 'POST', '/api/sensor-readings/', '127.0.0.21'), 10);
      assert.equal(await allowedOf(inMemory, 8, 'POST', '/api/commands/', '127.0.0.22'), 6);
      assert.deepEqual(logs.warn, [], 'Redis answered every request');
      const key = rateLimitKey(prefix, 'writes', '127.0.0.21');
      assert.equal(await admin.exists(key), 1);
    });

    it('chosen by configuration: httpHardening with REDIS_URL shares the limits, without it each instance has its own', async () => {
      const prefix = freshPrefix();
      const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix, RATE_LIMIT_WRITES_PER_MIN: '4', RATE_LIMIT_COMMANDS_PER_MIN: '2' };
      const logs = logger();
      const chainOf = (e: Record<string, string>) => {
        const chain = httpHardening(e, '/admin/', logs.log);
        closers.push(() => chain.close());
        return (req: http.IncomingMessage, res: http.ServerResponse, done: () => void) => {
          let i = 0;
          const next = (): void => {
            const mw = chain[i++];
            if (mw) mw(req, res, next);
            else done();
          };
          next();
        };
      };
      const shared = { one: await serve(chainOf(env)), two: await serve(chainOf(env)) };
      const { REDIS_URL: _unset, ...noRedis } = env;
      const alone = { one: await serve(chainOf(noRedis)), two: await serve(chainOf(noRedis)) };
      closers.push(async () => {
        for (const s of [shared.one, shared.two, alone.one, alone.two]) await s.close();
      });
      await sleep(500); // the connections are ready (before that a request is counted locally: the count would be 8)
      assert.equal(await allowedOf(shared, 10, 'PUT', '/api/preferences/x/', '127.0.0.23'), 4);
      assert.equal(await allowedOf(alone, 10, 'PUT', '/api/preferences/x/', '127.0.0.23'), 8);
      assert.deepEqual(await admin.keys(`${prefix}*`), [rateLimitKey(prefix, 'writes', '127.0.0.23')]);
      assert.equal(logs.info.filter((m) => /counted in Redis at redis:\/\/127\.0\.0\.1:6379\/\d+, shared/.test(m)).length, 2);
      assert.equal(logs.info.filter((m) => /counted in memory, per instance \(REDIS_URL not set\)/.test(m)).length, 2);
      assert.deepEqual(logs.warn, []);
    });
  });

  describe('when Redis cannot answer', () => {
    it('down: local limits (not none), no 500, one log line for the outage; close() is quick', async function () {
      this.timeout(15_000);
      const logs = logger();
      const shared = new RedisRateLimits({ url: 'redis://127.0.0.1:1/0', prefix: freshPrefix(), log: logs.log });
      assert.ok(shared.client.listenerCount('error') >= 1, 'an error listener');
      const mw = rateLimitMiddleware({ writesPerMin: 3, commandsPerMin: 2 }, { shared });
      const s = await serve(mw);
      closers.push(() => s.close());
      const statuses: number[] = [];
      const t0 = Date.now();
      for (let i = 0; i < 6; i++) statuses.push((await s.send('POST', '/api/commands/', '127.0.0.31')).status);
      for (let i = 0; i < 3; i++) statuses.push((await s.send('DELETE', '/api/preferences/x/', '127.0.0.32')).status);
      assert.ok(Date.now() - t0 < 3000, `answered at once: ${Date.now() - t0} ms for 9 requests`);
      assert.deepEqual(statuses, [200, 200, 429, 429, 429, 429, 200, 200, 200]);
      assert.equal((await s.send('DELETE', '/api/preferences/x/', '127.0.0.32')).status, 429);
      await sleep(1_000); // several reconnect attempts fail meanwhile
      assert.equal(logs.warn.length, 1, logs.warn.join('\n'));
      assert.match(logs.warn[0], /^rate limits: Redis unavailable \(.*ECONNREFUSED.*\): counting in memory, per instance/);
      assert.equal(shared.outage, true);
      const c0 = Date.now();
      await mw.close();
      assert.ok(Date.now() - c0 < 1000, `close took ${Date.now() - c0} ms`);
      // Closed while waiting to reconnect: ioredis leaves the status as it was but tries no more.
      let attempts = 0;
      shared.client.on('reconnecting', () => (attempts += 1));
      shared.client.on('connect', () => (attempts += 1));
      await sleep(1_300);
      assert.equal(attempts, 0, 'no reconnect attempt after close');
      assert.deepEqual(logs.warn.length, 1);
    });

    it('slow: counted locally after the timeout, Redis skipped a while, then used again; one warning, one recovery line', async function () {
      this.timeout(15_000);
      const logs = logger();
      const c = new Redis(REDIS_URL, rateLimitRedisOptions());
      c.on('error', () => undefined);
      clients.push(c);
      await new Promise((r) => c.once('ready', r));
      const prefix = freshPrefix();
      const shared = new RedisRateLimits({ client: c, prefix, log: logs.log, timeoutMs: 150, retryMs: 1_300, now: () => 0 });
      const local = new TokenBucketLimiter({ perMinute: 5, now: () => 0 });
      const limiter = shared.limiter([{ bucket: 'writes', local }]);
      assert.deepEqual(await limiter.take('c'), { ok: true, remaining: 4 }, 'Redis');
      // Block only this connection (CLIENT PAUSE would stall every client of the shared server).
      const blocked = c.blpop(`${prefix}never`, 1).catch(() => null);
      let t = Date.now();
      assert.deepEqual(await limiter.take('c'), { ok: true, remaining: 4 }, 'a fresh local bucket');
      const waited = Date.now() - t;
      assert.ok(waited >= 140 && waited < 1000, `gave up after ${waited} ms`);
      t = Date.now();
      assert.deepEqual(await limiter.take('c'), { ok: true, remaining: 3 }, 'local again');
      assert.ok(Date.now() - t < 100, 'without trying Redis');
      assert.equal(logs.warn.length, 1);
      assert.match(logs.warn[0], /no answer within 150 ms/);
      await blocked;
      await sleep(700); // past retryMs after the failure
      // Redis counted: the first take, the one that timed out (it ran once BLPOP ended), this one.
      assert.deepEqual(await limiter.take('c'), { ok: true, remaining: 2 }, 'Redis again');
      assert.equal(logs.info.length, 1);
      assert.match(logs.info[0], /Redis answers again/);
      assert.equal(logs.warn.length, 1);
      assert.equal(local.size, 1);
      await shared.close();
      assert.equal(c.status, 'ready', "the caller's client stays open");
    });

    it('close() of its own connection QUITs it', async () => {
      const name = `hvtest-rl-${RUN_ID}`;
      const shared = new RedisRateLimits({ url: REDIS_URL, prefix: freshPrefix(), redisOptions: { connectionName: name } });
      const opts = shared.client.options;
      assert.equal(opts.enableOfflineQueue, false);
      assert.ok((opts.maxRetriesPerRequest ?? 99) <= 1 && (opts.connectTimeout ?? 0) > 0 && (opts.connectTimeout ?? 0) <= 5000);
      const end = Date.now() + 3000;
      while (shared.client.status !== 'ready' && Date.now() < end) await sleep(20);
      const named = async () => ((await admin.client('LIST')) as string).split('\n').filter((l) => l.includes(`name=${name} `)).length;
      assert.equal(await named(), 1);
      await shared.close();
      assert.equal(shared.client.status, 'end');
      assert.equal(await named(), 0);
    });
  });
});
