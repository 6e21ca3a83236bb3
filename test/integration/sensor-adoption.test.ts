/**
 * Adoption of a dead group member's session on the real services: the membership keys on this
 * machine's Redis, and a survivor (sensor-in's joinGroup: DurableSubscriber, Spool, Redis) draining
 * a dead member's persistent session on a private Mosquitto (bench/broker.ts: unlimited queues, so
 * only our code can lose a message), replaying its spool, deleting its session; and the owner
 * coming back mid-adoption, which ends the adoption without a tug of war.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import { startBroker, type Broker } from '../../bench/broker';
import type { MembershipEvent, AdoptionResult } from '../../nodes/sensor-in/adoption';
import { DurableSubscriber } from '../../nodes/sensor-in/durable-subscriber';
import { joinGroup, type GroupMember } from '../../nodes/sensor-in/group';
import { RedisMembershipStore } from '../../nodes/sensor-in/membership-redis';
import { Spool, type SpoolSink } from '../../nodes/shared/spool/spool';
import { REDIS_PREFIX, REDIS_URL, RUN_ID, TOPIC_PREFIX, requireService } from '../support/services';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
async function until<T>(what: string, check: () => T | undefined | false, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto'];

describe('sensor-in adoption on Redis and Mosquitto', function () {
  this.timeout(60_000);
  let redis: Redis;
  let broker: Broker | undefined;
  let dir: string;
  const prefix = `${REDIS_PREFIX}adopt:`;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];

  before(async function () {
    await requireService(this, 'redis');
    if (!MOSQUITTO.some((p) => fs.existsSync(p))) {
      if (process.env.CI === 'true') throw new Error('mosquitto is not installed (the test starts a private broker)');
      this.skip();
    }
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-adopt-it-'));
    broker = await startBroker(dir, { maxInflight: 20 });
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  });
  after(async () => {
    await broker?.stop().catch(() => undefined);
    if (redis) {
      const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('RedisMembershipStore: heartbeats expire, one lock holder, renew and unlock by token, forget only the dead', async () => {
    const store = new RedisMembershipStore(redis, prefix, `g1${RUN_ID}`);
    const m = (id: string) => ({ clientId: id, host: 'h', spool: `/d/${id}.db` });
    await store.heartbeat(m('a'), 300);
    await store.heartbeat(m('b'), 5000);
    assert.deepEqual((await store.members()).sort((x, y) => x.clientId.localeCompare(y.clientId)), [
      { ...m('a'), alive: true }, { ...m('b'), alive: true },
    ]);
    await sleep(400);
    const after = await store.members();
    assert.equal(after.find((x) => x.clientId === 'a')?.alive, false, 'a stopped heartbeating: dead');
    assert.equal(after.find((x) => x.clientId === 'a')?.spool, '/d/a.db', 'still known, with its spool');
    assert.equal(await store.lock('a', 't1', 300), true);
    assert.equal(await store.lock('a', 't2', 300), false, 'one holder');
    assert.equal(await store.renew('a', 't2', 300), false, 'not renewed by another');
    assert.equal(await store.renew('a', 't1', 5000), true);
    await sleep(400);
    assert.equal(await store.locked('a'), true, 'renewed beyond its first expiry');
    await store.unlock('a', 't2');
    assert.equal(await store.locked('a'), true, 'not released by another');
    await store.unlock('a', 't1');
    assert.equal(await store.locked('a'), false);
    assert.equal(await store.forget('b'), false, 'b is alive: not forgotten');
    assert.equal(await store.forget('a'), true);
    assert.deepEqual((await store.members()).map((x) => x.clientId), ['b']);
  });

  /** A survivor: its own spool and subscriber, and its group membership (what sensor-in builds). */
  async function survivor(name: string, group: string, topic: string, ttlMs: number, protocolVersion: 4 | 5 = 5) {
    const spool = new Spool(path.join(dir, name, 'spool.db'));
    const delivered: Array<{ payload: string; sink: SpoolSink }> = [];
    const events: MembershipEvent[] = [];
    // The flow: stores each entry at once (so its spool entry is removed).
    const deliver = (entry: { id: number; payload: Buffer }, sink: SpoolSink) => {
      delivered.push({ payload: entry.payload.toString(), sink });
      sink.removeSoon(entry.id);
    };
    const subscriber = {
      url: broker!.url, clientId: `hvtest-${RUN_ID}-${name}`, topic, spool, protocolVersion,
      onMessage: (e: { id: number; topic: string; payload: Buffer; receivedAt: number }) => deliver(e, spool),
    };
    const sub = new DurableSubscriber(subscriber);
    const member: GroupMember = joinGroup({
      redis: { url: REDIS_URL, prefix }, group, ttlMs, subscriber, spoolFile: spool.file, deliver,
      onEvent: (e) => events.push(e), onSpoolError: () => undefined,
    });
    cleanups.push(async () => {
      await member.close();
      await sub.close();
      spool.close();
    });
    await member.membership.start();
    await sub.start();
    await until('connected', () => sub.connected);
    await sleep(200); // the SUBACK
    return { spool, sub, member, delivered, events, adopted: () => events.find((e) => e.type === 'adopted') as { result: AdoptionResult } | undefined };
  }

  /** A member that subscribed to the share with a persistent session, then crashed (no DISCONNECT). */
  async function deadMember(id: string, topic: string, protocolVersion: 4 | 5 = 5) {
    const c = await mqtt.connectAsync(broker!.url, {
      clientId: id, clean: false, protocolVersion, reconnectPeriod: 0, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
    });
    await c.subscribeAsync(topic, { qos: 1 });
    c.stream.destroy();
    await sleep(200);
    cleanups.push(() => broker!.purgeSession(id));
  }

  /**
   * Keeps a member alive in the group (heartbeating as if it still ran) until the returned function
   * is called: nobody adopts it while a test is still counting what reached the survivor directly.
   */
  async function keepAlive(group: string, member: { clientId: string; spool: string }, ttlMs: number): Promise<() => void> {
    const store = new RedisMembershipStore(redis, prefix, group);
    const beat = () => store.heartbeat({ ...member, host: os.hostname() }, ttlMs).catch(() => undefined);
    await beat();
    const timer = setInterval(beat, ttlMs / 3);
    const stop = () => clearInterval(timer);
    cleanups.push(stop);
    return stop;
  }

  /**
   * What reached the survivor directly, once it stops growing: the broker acknowledges a publish
   * before it has delivered it to the survivor, so the count right after the publish can be short.
   */
  async function settled(delivered: unknown[], quietMs = 750): Promise<number> {
    let n = -1;
    let since = Date.now();
    for (;;) {
      if (delivered.length !== n) { n = delivered.length; since = Date.now(); }
      if (Date.now() - since >= quietMs) return n;
      await sleep(20);
    }
  }

  async function publish(topic: string, payloads: string[]): Promise<void> {
    const c = await mqtt.connectAsync(broker!.url, { clientId: `hvtest-${RUN_ID}-pub-${Math.random().toString(36).slice(2, 8)}`, protocolVersion: 5, reconnectPeriod: 0 });
    for (const p of payloads) await c.publishAsync(topic, p, { qos: 1 });
    await c.endAsync();
  }

  it('a survivor drains a dead member\'s session and spool into its own flow, deletes the session: nothing lost', async () => {
    const group = `g2${RUN_ID}`;
    const base = `${TOPIC_PREFIX}/adopt2`;
    const topic = `$share/${group}/${base}/sensors/+/+`;
    const ttlMs = 1000;
    const deadId = `hvtest-${RUN_ID}-dead2`;
    // The dead member had taken 25 messages (acknowledged after its spool commit), not stored them.
    const deadSpoolFile = path.join(dir, 'dead2', 'spool.db');
    const deadSpool = new Spool(deadSpoolFile);
    deadSpool.appendNow(Array.from({ length: 25 }, (_, i) => ({ topic: `${base}/sensors/r/ldr`, payload: Buffer.from(`spooled-${i}`), receivedAt: i })));
    deadSpool.close();
    await deadMember(deadId, topic);
    const dies = await keepAlive(group, { clientId: deadId, spool: deadSpoolFile }, ttlMs);

    const s = await survivor('live2', group, topic, ttlMs);
    const sent = Array.from({ length: 200 }, (_, i) => `m-${i}`);
    await publish(`${base}/sensors/r/ldr`, sent); // half is queued for the dead session
    const direct = await settled(s.delivered);
    dies();
    assert.ok(direct < 200, `the dead session kept a share (${200 - direct} queued)`);

    const t0 = Date.now();
    const { result } = await until('the adoption', s.adopted, 20_000);
    assert.equal(result.outcome, 'adopted');
    assert.equal(result.clientId, deadId);
    assert.equal(result.sessionPresent, true);
    assert.equal(result.fromSession, 200 - direct, 'every message queued for the dead session');
    assert.equal(result.fromSpool, 25);
    assert.equal(result.spoolLeft, 0);
    const got = new Set(s.delivered.map((d) => d.payload));
    for (const p of sent) assert.ok(got.has(p), `${p} delivered`);
    for (let i = 0; i < 25; i++) assert.ok(got.has(`spooled-${i}`));
    const fromDeadSpool = s.delivered.filter((d) => d.payload.startsWith('spooled-'));
    assert.ok(fromDeadSpool.every((d) => d.sink !== s.spool), 'replayed entries complete in the dead member\'s spool');
    const check = new Spool(deadSpoolFile);
    assert.equal(check.count, 0, 'the dead member\'s spool is drained');
    check.close();
    assert.equal(s.spool.count, 0, 'and the survivor\'s own spool too');
    console.log(`      [adoption] drained ${result.fromSession} queued messages and ${result.fromSpool} spooled in ${result.ms} ms (${Date.now() - t0} ms after the survivor started looking)`);

    // The session is gone at the broker, and the dead member is no longer in the group.
    const back = await mqtt.connectAsync(broker!.url, { clientId: deadId, clean: false, protocolVersion: 5, reconnectPeriod: 0, properties: { sessionExpiryInterval: 0 } });
    const present = (back as unknown as { connackPacket?: { sessionPresent?: boolean } }).connackPacket;
    await back.endAsync();
    assert.equal(present?.sessionPresent, false, 'the broker deleted the adopted session');
    assert.deepEqual((await new RedisMembershipStore(redis, prefix, group).members()).map((m) => m.clientId), [`hvtest-${RUN_ID}-live2`]);
    // New messages all go to the live member now.
    const before = s.delivered.length;
    await publish(`${base}/sensors/r/ldr`, Array.from({ length: 20 }, (_, i) => `after-${i}`));
    await until('all new messages at the survivor', () => s.delivered.length - before >= 20, 5000);
    await sleep(1500);
    assert.equal(broker!.sys().dropped, 0, 'the broker dropped nothing');
  });

  it('MQTT 3.1.1: the adopted session is discarded by a clean-session connect after the drain', async () => {
    const group = `g4${RUN_ID}`;
    const base = `${TOPIC_PREFIX}/adopt4`;
    const topic = `$share/${group}/${base}/sensors/+/+`;
    const deadId = `hvtest-${RUN_ID}-dead4`;
    await deadMember(deadId, topic, 4);
    const dies = await keepAlive(group, { clientId: deadId, spool: '' }, 1000);
    const s = await survivor('live4', group, topic, 1000, 4);
    const sent = Array.from({ length: 60 }, (_, i) => `v4-${i}`);
    await publish(`${base}/sensors/r/ldr`, sent);
    const direct = await settled(s.delivered);
    dies();
    const { result } = await until('the adoption', s.adopted, 20_000);
    assert.equal(result.outcome, 'adopted');
    assert.equal(result.fromSession, 60 - direct);
    assert.ok(result.fromSession > 0);
    assert.deepEqual([...new Set(s.delivered.map((d) => d.payload))].sort(), [...sent].sort());
    const back = await mqtt.connectAsync(broker!.url, { clientId: deadId, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    const present = (back as unknown as { connackPacket?: { sessionPresent?: boolean } }).connackPacket;
    await back.endAsync();
    assert.equal(present?.sessionPresent, false, 'the broker discarded the adopted session');
  });

  it('the owner coming back mid-adoption takes its session over; the adopter stops without reconnecting', async () => {
    const group = `g3${RUN_ID}`;
    const base = `${TOPIC_PREFIX}/adopt3`;
    const topic = `$share/${group}/${base}/sensors/+/+`;
    const ttlMs = 1000;
    const deadId = `hvtest-${RUN_ID}-dead3`;
    await deadMember(deadId, topic);
    const dies = await keepAlive(group, { clientId: deadId, spool: '' }, ttlMs);
    const s = await survivor('live3', group, topic, ttlMs);
    await publish(`${base}/sensors/r/ldr`, Array.from({ length: 100 }, (_, i) => `m-${i}`));
    const queued = 100 - (await settled(s.delivered));
    dies();
    // The adopter takes the queue, then waits to be idle (2 s) before deleting the session.
    await until('the adoption drained the queue', () => (s.member.membership.adopting?.taken ?? 0) >= queued, 20_000);
    // The owner restarts: heartbeats (as its sensor-in does first), then connects with its client id.
    await keepAlive(group, { clientId: deadId, spool: '' }, ttlMs);
    const owner = mqtt.connect(broker!.url, { clientId: deadId, clean: false, protocolVersion: 5, reconnectPeriod: 0, properties: { sessionExpiryInterval: 3600 } });
    let closes = 0;
    owner.on('close', () => closes++);
    owner.on('error', () => undefined);
    cleanups.push(() => owner.endAsync(true));
    const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => owner.once('connect', resolve));
    assert.equal(connack.sessionPresent, true, 'the owner gets its session back (not yet deleted)');
    const { result } = await until('the adoption ended', s.adopted, 10_000);
    assert.equal(result.outcome, 'interrupted');
    assert.equal(result.fromSession, queued);
    await sleep(3000); // a reconnecting adopter would take the session back within this
    assert.equal(closes, 0, 'the owner keeps its connection: the adopter did not come back');
    assert.equal(owner.connected, true);
    assert.equal(s.member.membership.adopting, null);
  });
});
