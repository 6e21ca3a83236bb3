/**
 * The hot store in Redis, shared by every instance of the pipeline.
 *
 * Keys (all under `prefix`, default `hypervolt:`):
 * - `window:{sensor_type}:{sensor_id}`: a sorted set scored by the reading's timestamp in ms,
 *   members `{ms}|{value}`; at most `size` members; expires `ttlSeconds` after its last push.
 * - `sensors`: the registry, a sorted set of `type:id` scored by the server time of the last push.
 * - `context`: a hash of named JSON values (latest carbon intensity, weather); no expiry.
 * - `leader:{name}`: a leadership lock (the token of the store that holds it), with expiry.
 * - channel `broadcast`: pub/sub, one JSON array of messages per PUBLISH, after a line
 *   `@{origin}` naming the store that sent it; received on a second connection of the store's own
 *   (a subscribed connection can send nothing else). A store delivers its own messages to its own
 *   listeners at once and skips them when they come back from Redis: one round trip less on the
 *   way to its WebSocket clients, the same exactly-once for every instance.
 *
 * The pushes of one tick are ONE Lua script call (atomic, no read-modify-write from the client). Times in the registry come from the Redis server (TIME) so that several
 * instances with skewed clocks agree on who is active.
 */
import { randomUUID } from 'crypto';
import Redis, { type RedisOptions } from 'ioredis';
import { BroadcastListeners, TickBatcher, unsubscribeHandle, type BroadcastListener, type Unsubscribe } from './broadcast';
import { LEAD_SCRIPT, RELEASE_SCRIPT, assertLeadArgs } from './leadership';
import type { Reading, WindowEntry, WindowSnapshot } from '../shared/types';
import { isoFromEpochMs } from '../shared/iso-time';
import { withTimeout } from '../shared/timers';
import {
  assertContextName,
  assertSensorKey,
  parseSensorName,
  prepareEntries,
  sensorName,
  type PreparedEntry,
} from './window-entry';
import { snapshotOf } from './window-stats';
import { StoreStateHolder } from './store-state';
import {
  DEFAULT_PREFIX,
  DEFAULT_TTL_SECONDS,
  DEFAULT_WINDOW_SIZE,
  type SensorKey,
  type StoreLogger,
  type StoreState,
  type StoreStateListener,
  type WindowStore,
} from './window-store';

/**
 * Pushes readings into their windows, the pushes of one event-loop tick in one call: KEYS[1] the
 * registry, KEYS[2..] one window per reading; ARGV[1] size, ARGV[2] ttl ms, then per reading:
 * score (ms), member, registry member.
 * Same timestamp → the old entry goes (a redelivery or a corrected value replaces it); then the
 * window is trimmed to the newest `size` by rank, which also drops a reading older than the
 * oldest of a full window. Each window's TTL and the registry (one ZADD of every sensor, all at
 * the same time) are set once per call, not once per reading: the same end state in fewer
 * commands. Returns per reading, in order, 0 when the same entry (the member is
 * `ms|value`: same timestamp and value) was in the window already, 1 otherwise: atomic, so of two
 * instances pushing the same reading exactly one sees 1 (a window pushed twice in one call sees
 * its first push at its second).
 */
const PUSH_MANY_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[1])
local ttl = ARGV[2]
local out = {}
local windows = {}
local registry = {}
local seen = {}
for i = 2, #KEYS do
  local a = 3 + (i - 2) * 3
  local score = ARGV[a]
  local member = ARGV[a + 1]
  local existed = redis.call('ZSCORE', KEYS[i], member)
  if existed then
    out[i - 1] = 0
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], score, score)
    redis.call('ZADD', KEYS[i], score, member)
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(size + 1))
    out[i - 1] = 1
  end
  if not seen[KEYS[i]] then
    seen[KEYS[i]] = true
    windows[#windows + 1] = KEYS[i]
    registry[#registry + 1] = now
    registry[#registry + 1] = ARGV[a + 2]
  end
end
for _, key in ipairs(windows) do redis.call('PEXPIRE', key, ttl) end
if #registry > 0 then redis.call('ZADD', KEYS[1], unpack(registry)) end
redis.call('PEXPIRE', KEYS[1], ttl)
return out
`;

/**
 * Restores stored readings (the window rebuild): KEYS[1..] one window per reading; ARGV[1] size,
 * ARGV[2] ttl ms, then per reading: score (ms), member. The member is `ms|value|r`, which no push
 * writes: PUSH_MANY_SCRIPT does not find it as the same entry, so the reading's own push replaces
 * it and counts as new. A window holding an entry at that timestamp is left as it is.
 */
const RESTORE_MANY_SCRIPT = `
local size = tonumber(ARGV[1])
local ttl = ARGV[2]
for i = 1, #KEYS do
  local a = 3 + (i - 1) * 2
  local score = ARGV[a]
  if redis.call('ZCOUNT', KEYS[i], score, score) == 0 then
    redis.call('ZADD', KEYS[i], score, ARGV[a + 1])
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -(size + 1))
  end
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return #KEYS
`;

/** The suffix of a restored entry's member (see RESTORE_MANY_SCRIPT). */
const RESTORED_SUFFIX = '|r';

/** Readings in one PUSH_MANY_SCRIPT call at most (a tick with more makes several calls). */
const PUSH_MANY_MAX = 500;

/** KEYS[1] registry; ARGV[1] ttl ms. Drops members idle longer than the TTL, returns the rest. */
const ACTIVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

interface WindowCommands {
  /** numKeys, keys (registry, windows), then size, ttl ms and (score, member, name) per reading. */
  hypervoltWindowPushMany(...args: Array<string | number>): Promise<number[]>;
  /** numKeys, keys (windows), then size, ttl ms and (score, member) per reading. */
  hypervoltWindowRestoreMany(...args: Array<string | number>): Promise<number>;
  hypervoltActiveSensors(registry: string, ttlMs: number): Promise<string[]>;
  hypervoltLead(lock: string, token: string, ttlMs: number): Promise<number>;
  hypervoltRelease(lock: string, token: string): Promise<number>;
}
export interface RedisWindowStoreOptions {
  /** A client of the caller's: the store uses it and leaves it open on close. */
  client?: Redis;
  /** Otherwise a URL (`redis://host:port/db`) for a client the store owns. */
  url?: string;
  /** Merged over `defaultRedisOptions()` for an owned client. */
  redisOptions?: RedisOptions;
  prefix?: string;
  size?: number;
  ttlSeconds?: number;
  logger?: StoreLogger;
  /** `ping()` rejects after this long (default 2000 ms) even if the client would wait. */
  pingTimeoutMs?: number;
}

/**
 * Fail fast rather than queue: with Redis down a push rejects at once (the node reports it) instead
 * of piling up in an unbounded offline queue; reconnects go on in the background with backoff.
 * `lazyConnect` lets the owner decide when to connect. No auto-pipelining: the store gathers the
 * pushes and broadcasts of a tick itself (one command each), and ioredis's auto-pipeline would only
 * wrap each of those commands in a pipeline of its own and send it one event-loop turn later
 * (measured at 1 000 readings/s: 6 % less pipeline CPU without it, p50 publish -> WebSocket
 * 4.4-5.3 -> 3.9-4.1 ms).
 */
export function defaultRedisOptions(): RedisOptions {
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    // A hung Redis (no answer, connection open) fails a command after this long instead of never:
    // a push then releases the reading's spool entry, so the cold path is not held up by it.
    commandTimeout: 1500,
    enableAutoPipelining: false,
    retryStrategy: (times: number) => Math.min(times * 250, 5000),
  };
}

/** A redis URL without its password, for logs. */
function describeUrl(url: string | undefined): string {
  if (!url) return 'redis';
  try {
    const u = new URL(url);
    u.password = '';
    u.username = '';
    return u.toString();
  } catch {
    return 'redis';
  }
}

export class RedisWindowStore implements WindowStore {
  readonly kind = 'redis' as const;
  readonly size: number;
  readonly ttlSeconds: number;
  readonly prefix: string;
  private readonly ttlMs: number;
  private readonly client: Redis & WindowCommands;
  private readonly ownsClient: boolean;
  private readonly logger?: StoreLogger;
  private readonly pingTimeoutMs: number;
  private readonly label: string;
  private readonly stateHolder: StoreStateHolder;
  private readonly registryKey: string;
  private readonly contextKey: string;
  private readonly detach: () => void;
  private lastError?: Error;
  private firstConnect?: Promise<void>;
  private lastLoggedError?: string;
  private closed = false;
  /** Pub/sub channel of the broadcast, shared by every instance on this prefix. */
  readonly broadcastChannel: string;
  /** Identifies this store as a lock holder (one per instance, new at every start). */
  private readonly leaderToken = randomUUID();
  /** The first line of this store's broadcasts (`@{token}` and a newline). */
  private readonly origin = `@${this.leaderToken}\n`;
  private readonly heldLocks = new Set<string>();
  private readonly broadcast: TickBatcher;
  /** Pushes of the current tick, sent together (pushMany). */
  private pushTick: { entries: PreparedEntry[]; waiters: Array<{ start: number; count: number; resolve: (flags: boolean[]) => void; reject: (err: Error) => void }> } | null = null;
  private readonly listeners: BroadcastListeners;
  /** The subscribed connection while anyone listens, and when its first SUBSCRIBE succeeded. */
  private subscriber?: Redis;
  private subscribed?: Promise<void>;
  private subscriberError?: string;

  constructor(options: RedisWindowStoreOptions) {
    this.size = options.size ?? DEFAULT_WINDOW_SIZE;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    if (!Number.isInteger(this.size) || this.size < 1) throw new RangeError('size must be a positive integer');
    if (!(this.ttlSeconds > 0)) throw new RangeError('ttlSeconds must be positive');
    this.ttlMs = Math.round(this.ttlSeconds * 1000);
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.registryKey = `${this.prefix}sensors`;
    this.contextKey = `${this.prefix}context`;
    this.broadcastChannel = `${this.prefix}broadcast`;
    this.logger = options.logger;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 2000;
    this.label = describeUrl(options.url);

    if (options.client) {
      this.client = options.client as Redis & WindowCommands;
      this.ownsClient = false;
    } else if (options.url) {
      const opts = { ...defaultRedisOptions(), ...options.redisOptions };
      this.client = new Redis(options.url, opts) as Redis & WindowCommands;
      this.ownsClient = true;
    } else {
      throw new TypeError('RedisWindowStore needs a client or a url');
    }
    this.client.defineCommand('hypervoltWindowPushMany', { lua: PUSH_MANY_SCRIPT }); // numberOfKeys: the first argument
    this.client.defineCommand('hypervoltWindowRestoreMany', { lua: RESTORE_MANY_SCRIPT }); // numberOfKeys: the first argument
    this.client.defineCommand('hypervoltActiveSensors', { numberOfKeys: 1, lua: ACTIVE_SCRIPT });
    this.client.defineCommand('hypervoltLead', { numberOfKeys: 1, lua: LEAD_SCRIPT });
    this.client.defineCommand('hypervoltRelease', { numberOfKeys: 1, lua: RELEASE_SCRIPT });
    this.broadcast = new TickBatcher(async (text) => {
      // This instance's own listeners get the batch at once, not through Redis; the publish waits
      // for them to hand it on as well (flow control: see BroadcastListener).
      const handedOn = this.listeners.deliver(text);
      await this.run(() => this.client.publish(this.broadcastChannel, `${this.origin}${text}`));
      await handedOn;
    });
    this.listeners = new BroadcastListeners((err) => this.logger?.warn(`hot store broadcast: ${err.message}`));
    this.stateHolder = new StoreStateHolder(this.client.status === 'ready' ? 'connected' : 'disconnected');
    this.detach = this.attachListeners();
  }

  get state(): StoreState {
    return this.stateHolder.state;
  }

  onStateChange(listener: StoreStateListener): () => void {
    return this.stateHolder.on(listener);
  }

  async connect(): Promise<void> {
    this.assertOpen();
    const status = this.client.status;
    if (status === 'ready') return;
    if (status === 'wait') {
      this.stateHolder.set('connecting');
      // Commands sent while this first attempt runs wait for it (see `run`), so a backlog that
      // arrives at start (MQTT persistent session) is not failed for being a few ms early.
      const attempt = this.client.connect();
      this.firstConnect = attempt.then(
        () => undefined,
        () => undefined,
      );
      try {
        await attempt;
      } finally {
        this.firstConnect = undefined;
      }
      return;
    }
    if (status === 'end') throw new Error('redis connection ended');
    // Already connecting or reconnecting: wait for the outcome of this attempt.
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        this.client.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        this.client.off('ready', onReady);
        reject(err);
      };
      this.client.once('ready', onReady);
      this.client.once('error', onError);
    });
  }

  /**
   * The pushes of one event-loop tick (all messages the flow handles in it) go to Redis as one
   * script call (per PUSH_MANY_MAX readings): one command and one Lua invocation instead of one per
   * reading. Sent from `setImmediate`, right after the tick: no timer, no added wait.
   */
  async pushMany(readings: readonly Reading[]): Promise<boolean[]> {
    this.assertOpen();
    const entries = prepareEntries(readings);
    if (entries.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      let tick = this.pushTick;
      if (!tick) {
        tick = this.pushTick = { entries: [], waiters: [] };
        setImmediate(() => this.sendPushTick());
      }
      tick.waiters.push({ start: tick.entries.length, count: entries.length, resolve, reject });
      for (const e of entries) tick.entries.push(e);
    });
  }

  private sendPushTick(): void {
    const tick = this.pushTick;
    this.pushTick = null;
    if (!tick) return;
    const { entries, waiters } = tick;
    this.run(async () => {
      const flags = await this.inScriptCalls(entries, (chunk) => {
        const keys: string[] = [this.registryKey];
        const args: Array<string | number> = [this.size, this.ttlMs];
        for (const e of chunk) {
          keys.push(this.windowKey(e.key));
          args.push(e.ms, `${e.ms}|${e.value}`, sensorName(e.key));
        }
        return this.client.hypervoltWindowPushMany(keys.length, ...keys, ...args);
      });
      return flags.flat();
    }).then(
      (flags) => {
        for (const w of waiters) {
          const mine: boolean[] = new Array(w.count);
          for (let k = 0; k < w.count; k++) mine[k] = flags[w.start + k] === 1;
          w.resolve(mine);
        }
      },
      (err: Error) => {
        for (const w of waiters) w.reject(err);
      },
    );
  }

  async restoreMany(readings: readonly Reading[]): Promise<void> {
    this.assertOpen();
    const entries = prepareEntries(readings);
    if (entries.length === 0) return;
    await this.run(() =>
      this.inScriptCalls(entries, (chunk) => {
        const keys: string[] = [];
        const args: Array<string | number> = [this.size, this.ttlMs];
        for (const e of chunk) {
          keys.push(this.windowKey(e.key));
          args.push(e.ms, `${e.ms}|${e.value}${RESTORED_SUFFIX}`);
        }
        return this.client.hypervoltWindowRestoreMany(keys.length, ...keys, ...args);
      }),
    );
  }

  /** One script call per PUSH_MANY_MAX entries, all sent before any answer (pipelined); their results in order. */
  private inScriptCalls<T>(entries: readonly PreparedEntry[], call: (chunk: readonly PreparedEntry[]) => Promise<T>): Promise<T[]> {
    const calls: Array<Promise<T>> = [];
    for (let i = 0; i < entries.length; i += PUSH_MANY_MAX) calls.push(call(entries.slice(i, i + PUSH_MANY_MAX)));
    return Promise.all(calls);
  }

  async read(key: SensorKey): Promise<WindowSnapshot> {
    this.assertOpen();
    assertSensorKey(key);
    const members = await this.run(() => this.client.zrange(this.windowKey(key), 0, -1));
    return snapshotOf(this.entriesOf(members), this.size);
  }

  async readMany(keys: readonly SensorKey[]): Promise<WindowSnapshot[]> {
    this.assertOpen();
    keys.forEach(assertSensorKey);
    if (keys.length === 0) return [];
    const results = await this.run(async () => {
      const pipeline = this.client.pipeline();
      for (const k of keys) pipeline.zrange(this.windowKey(k), 0, -1);
      return (await pipeline.exec()) ?? [];
    });
    return results.map(([err, members]) => {
      if (err) throw err;
      return snapshotOf(this.entriesOf(members as string[]), this.size);
    });
  }

  async activeSensors(): Promise<SensorKey[]> {
    this.assertOpen();
    const names = await this.run(() => this.client.hypervoltActiveSensors(this.registryKey, this.ttlMs));
    return names.map(parseSensorName);
  }

  async setContext(name: string, value: unknown): Promise<void> {
    this.assertOpen();
    assertContextName(name);
    const text = JSON.stringify(value ?? null);
    if (text === undefined) throw new TypeError('context value is not JSON-serialisable');
    await this.run(() => this.client.hset(this.contextKey, name, text));
  }

  async getContext(name: string): Promise<unknown | null> {
    this.assertOpen();
    assertContextName(name);
    const text = await this.run(() => this.client.hget(this.contextKey, name));
    return text === null ? null : JSON.parse(text);
  }

  async publish(messages: readonly unknown[]): Promise<void> {
    this.assertOpen();
    await this.broadcast.publish(messages);
  }

  subscribe(listener: BroadcastListener): Unsubscribe {
    this.assertOpen();
    const remove = this.listeners.add(listener);
    const ready = this.openSubscriber();
    return unsubscribeHandle(() => {
      remove();
      if (this.listeners.size === 0) this.closeSubscriber();
    }, ready);
  }

  async tryLead(name: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    assertLeadArgs(name, ttlMs);
    const held = (await this.run(() => this.client.hypervoltLead(this.lockKey(name), this.leaderToken, ttlMs))) === 1;
    if (held) this.heldLocks.add(name);
    else this.heldLocks.delete(name);
    return held;
  }

  /** The Redis key of a leadership lock. */
  lockKey(name: string): string {
    return `${this.prefix}leader:${name}`;
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await withTimeout(this.run(() => this.client.ping()), this.pingTimeoutMs, `redis ping timed out after ${this.pingTimeoutMs} ms`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.broadcast.close(); // what was published goes out before the connection closes
    await this.releaseLocks();
    this.closed = true;
    this.listeners.clear();
    this.closeSubscriber();
    if (this.ownsClient) {
      // quit() lets pending replies arrive; while disconnected it would not stop the reconnect
      // loop, so disconnect() then (and as the fallback).
      if (this.client.status === 'ready') {
        try {
          await withTimeout(this.client.quit(), 2000, 'redis quit timed out after 2000 ms');
        } catch {
          this.client.disconnect();
        }
      } else {
        this.client.disconnect();
      }
    } else {
      this.detach();
    }
    this.stateHolder.set('closed');
    this.stateHolder.clear();
  }

  /** The Redis key of a sensor's window. */
  windowKey(key: SensorKey): string {
    return `${this.prefix}window:${key.sensor_type}:${key.sensor_id}`;
  }

  /**
   * Sends commands: after the first connection attempt if it is still running; otherwise at once,
   * failing fast while Redis is away (no offline queue) with an error that says so.
   */
  private async run<T>(send: () => Promise<T>): Promise<T> {
    if (this.firstConnect) await this.firstConnect;
    try {
      return await send();
    } catch (err) {
      const status = this.client.status;
      if (status === 'ready') throw err;
      throw new Error(`redis not connected (${status})`, { cause: err });
    }
  }

  /**
   * A clean stop hands the schedules over at once instead of after the lock's expiry. Best
   * effort: with Redis away the locks simply expire.
   */
  private async releaseLocks(): Promise<void> {
    if (this.heldLocks.size === 0 || this.client.status !== 'ready') return;
    const names = [...this.heldLocks];
    this.heldLocks.clear();
    await withTimeout(
      Promise.all(names.map((n) => this.client.hypervoltRelease(this.lockKey(n), this.leaderToken))),
      1000,
      'releasing leadership timed out after 1000 ms',
    ).catch(() => undefined);
  }

  /**
   * The subscribed connection: a duplicate of the client (same server, db, credentials) that
   * queues its SUBSCRIBE until connected and subscribes again after every reconnect (ioredis's
   * autoResubscribe). Messages published while it is disconnected are missed (pub/sub is at most once).
   */
  private openSubscriber(): Promise<void> {
    if (this.subscriber && this.subscribed) return this.subscribed;
    const sub = this.client.duplicate({
      lazyConnect: false,
      enableOfflineQueue: true,
      enableAutoPipelining: false,
      autoResubscribe: true,
      maxRetriesPerRequest: null,
      commandTimeout: undefined, // its SUBSCRIBE waits for the connection, however long
    });
    this.subscriber = sub;
    sub.on('error', (err: Error) => {
      if (this.closed || err.message === this.subscriberError) return;
      this.subscriberError = err.message;
      this.logger?.warn(`hot store ${this.label} (broadcast subscriber): ${err.message}`);
    });
    sub.on('ready', () => {
      if (this.subscriberError) this.logger?.log(`hot store ${this.label} (broadcast subscriber): connected`);
      this.subscriberError = undefined;
    });
    sub.on('message', (channel: string, text: string) => {
      if (channel !== this.broadcastChannel) return;
      if (!text.startsWith('@')) return this.listeners.deliver(text); // no origin: a plain JSON array
      if (text.startsWith(this.origin)) return; // ours: delivered when it was published
      const eol = text.indexOf('\n');
      if (eol > 0) this.listeners.deliver(text.slice(eol + 1));
    });
    // Pending for good when the connection closes first: nobody is listening then anyway.
    this.subscribed = new Promise<void>((resolve) => {
      sub.subscribe(this.broadcastChannel).then(
        () => resolve(),
        (err: Error) => {
          if (!this.closed && this.subscriber === sub) this.logger?.warn(`hot store ${this.label}: subscribing to the broadcast failed: ${err.message}`);
        },
      );
    });
    return this.subscribed;
  }

  private closeSubscriber(): void {
    const sub = this.subscriber;
    this.subscriber = undefined;
    this.subscribed = undefined;
    sub?.disconnect();
  }

  private entriesOf(members: string[]): WindowEntry[] {
    return members.map((m) => {
      const bar = m.indexOf('|');
      const end = m.endsWith(RESTORED_SUFFIX) ? m.length - RESTORED_SUFFIX.length : m.length;
      return { value: Number(m.slice(bar + 1, end)), timestamp: isoFromEpochMs(Number(m.slice(0, bar))) };
    });
  }

  private attachListeners(): () => void {
    const onError = (err: Error) => {
      // Always listened to: an unhandled 'error' would crash Node-RED. Logged once per cause,
      // not on every reconnect attempt.
      this.lastError = err;
      if (this.closed || err.message === this.lastLoggedError) return;
      this.lastLoggedError = err.message;
      this.logger?.warn(`hot store ${this.label}: ${err.message}`);
    };
    const onReady = () => {
      if (this.closed) return;
      if (this.lastLoggedError) this.logger?.log(`hot store ${this.label}: connected`);
      this.lastError = undefined;
      this.lastLoggedError = undefined;
      this.stateHolder.set('connected');
    };
    const onClose = () => {
      if (!this.closed) this.stateHolder.set('disconnected', this.lastError);
    };
    const onEnd = () => {
      this.stateHolder.set(this.closed ? 'closed' : 'disconnected', this.lastError);
    };
    this.client.on('error', onError);
    this.client.on('ready', onReady);
    this.client.on('close', onClose);
    this.client.on('reconnecting', onClose);
    this.client.on('end', onEnd);
    return () => {
      this.client.off('error', onError);
      this.client.off('ready', onReady);
      this.client.off('close', onClose);
      this.client.off('reconnecting', onClose);
      this.client.off('end', onEnd);
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('hot store is closed');
  }
}
