/**
 * sensor-in's wiring of group membership (Node-RED, this machine's Mosquitto and Redis): with a
 * `$share/` topic and a Redis `hypervolt-hot-store` it heartbeats its membership and adopts a dead
 * member (status "adopting …", one log line at the start and one at the end); without the store
 * it is not a member at all.
 */
import assert from 'assert/strict';
import fs from 'fs';
import os from 'os';
import path from 'path';
import Redis from 'ioredis';
import mqtt from 'mqtt';
import helper from 'node-red-node-test-helper';
import sensorInNode = require('../../nodes/sensor-in/sensor-in');
import hotStoreNode = require('../../nodes/hypervolt-hot-store/hypervolt-hot-store');
import { RedisMembershipStore } from '../../nodes/sensor-in/membership-redis';
import { Spool } from '../../nodes/shared/spool/spool';
import { waitFor } from '../support/fakes/node-utils';
import { MQTT_BROKER_URL, REDIS_PREFIX, REDIS_URL, RUN_ID, TOPIC_PREFIX, dropMqttSession, requireService } from '../support/services';

helper.init(require.resolve('node-red'));

// The helper's RED._ returns the key; use the real catalog so status and log texts are checked as shown.
const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, '../../nodes/sensor-in/locales/en-US/sensor-in.json'), 'utf8')) as Record<string, unknown>;
function translate(key: string, subs?: Record<string, unknown>): string {
  const text = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], catalog);
  if (typeof text !== 'string') return key;
  return text.replace(/__(\w+)__/g, (_m, name: string) => String(subs?.[name]));
}
const withCatalog = (mod: (RED: any) => void) => (RED: any) => {
  RED._ = translate;
  return mod(RED);
};
const nodes = [withCatalog(sensorInNode), hotStoreNode];

/** Records what a node shows and logs, from now on. */
function watch(node: any): { statuses: string[]; logs: string[] } {
  const seen = { statuses: [] as string[], logs: [] as string[] };
  const status = node.status.bind(node);
  const log = node.log.bind(node);
  node.status = (s: { text?: string }) => {
    seen.statuses.push(String(s?.text ?? ''));
    status(s);
  };
  node.log = (m: string) => {
    seen.logs.push(String(m));
    log(m);
  };
  return seen;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = (what: string, cond: () => boolean, ms = 15_000) => waitFor(cond, what, ms);


describe('sensor-in in a group (node)', function () {
  this.timeout(60_000);
  let dir: string;
  let redis: Redis;
  const prefix = `${REDIS_PREFIX}sigroup:`;
  const sessions: string[] = [];

  before(async function () {
    await requireService(this, 'mqtt');
    await requireService(this, 'redis');
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    await helper.startServer();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-sensorin-group-'));
  });
  afterEach(async () => {
    await helper.unload();
    for (const s of sessions.splice(0)) await dropMqttSession(s).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    await helper.stopServer();
    if (redis) {
      const keys = await redis.keys(`${prefix}*`).catch(() => [] as string[]);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });

  const flowOf = (n: number, withStore: boolean) => {
    const group = `sig${n}${RUN_ID}`;
    const base = `${TOPIC_PREFIX}/sig${n}`;
    const clientId = `hvtest-sig-${RUN_ID}-${n}`;
    sessions.push(clientId);
    const flow: Record<string, unknown>[] = [
      { id: 'in', type: 'sensor-in', url: MQTT_BROKER_URL, clientId, topic: `$share/${group}/${base}/sensors/+/+`, qos: '1',
        protocolVersion: '5', spoolPath: path.join(dir, 'own', 'spool.db'), release: 'sent', memberTtl: '1', ...(withStore ? { store: 'hs' } : {}),
        wires: [['out']] },
      { id: 'out', type: 'helper' },
    ];
    if (withStore) flow.push({ id: 'hs', type: 'hypervolt-hot-store', url: REDIS_URL, prefix, size: '60', ttl: '3600' });
    return { flow, group, base, clientId };
  };

  it('is a member of its group and adopts a dead member: its queued messages and its spool into this flow', async () => {
    const { flow, group, base, clientId } = flowOf(1, true);
    const deadId = `hvtest-sig-${RUN_ID}-dead`;
    sessions.push(deadId);
    const deadSpoolFile = path.join(dir, 'dead', 'spool.db');
    const deadSpool = new Spool(deadSpoolFile);
    deadSpool.appendNow([1, 2, 3].map((i) => ({ topic: `${base}/sensors/r/ldr`, payload: Buffer.from(`spooled-${i}`), receivedAt: i })));
    deadSpool.close();

    await helper.load(nodes, flow);
    const { statuses, logs } = watch(helper.getNode('in'));
    const got: string[] = [];
    (helper.getNode('out') as any).on('input', (msg: { payload: Buffer }) => got.push(msg.payload.toString()));

    const store = new RedisMembershipStore(redis, prefix, group);
    await until('connected', () => statuses.some((s) => s.startsWith('connected')));
    const me = (await store.members()).find((m) => m.clientId === clientId);
    assert.ok(me?.alive, 'heartbeating');
    assert.equal(me.spool, path.join(dir, 'own', 'spool.db'));
    assert.equal(me.host, os.hostname());

    // A member that crashed with a share queued in its session, and its spool here.
    const dead = await mqtt.connectAsync(MQTT_BROKER_URL, { clientId: deadId, clean: false, protocolVersion: 5, reconnectPeriod: 0, properties: { sessionExpiryInterval: 600 } });
    await dead.subscribeAsync(`$share/${group}/${base}/sensors/+/+`, { qos: 1 });
    dead.stream.destroy();
    await store.heartbeat({ clientId: deadId, host: os.hostname(), spool: deadSpoolFile }, 1000);
    const pub = await mqtt.connectAsync(MQTT_BROKER_URL, { clientId: `hvtest-sig-${RUN_ID}-pub`, reconnectPeriod: 0 });
    const sent = Array.from({ length: 40 }, (_, i) => `m-${i}`);
    for (const p of sent) await pub.publishAsync(`${base}/sensors/r/ldr`, p, { qos: 1 });
    await pub.endAsync();

    await until('the adoption ended', () => logs.some((l) => l.startsWith(`adopted ${deadId}`)), 20_000);
    await until('everything delivered', () => got.length >= 43);
    assert.deepEqual([...new Set(got)].sort(), [...sent, 'spooled-1', 'spooled-2', 'spooled-3'].sort());
    assert.ok(statuses.some((s) => s.startsWith(`adopting ${deadId}: `)), `the status showed the adoption: ${statuses.join(' | ')}`);
    const lines = logs.filter((l) => l.includes(deadId));
    assert.equal(lines.length, 2, `one line at the start and one at the end: ${lines.join(' | ')}`);
    assert.match(lines[0], /^adopting the session of /);
    assert.match(lines[1], /messages from its session \(now deleted at the broker\), 3 entries from its spool, 0 left in it$/);
    assert.ok(!(await store.members()).some((m) => m.clientId === deadId), 'the dead member is forgotten');
  });

  it('without a group store it is not a member (works alone, as before)', async () => {
    const { flow, group, clientId } = flowOf(2, false);
    await helper.load(nodes, flow);
    const { statuses } = watch(helper.getNode('in'));
    await until('connected', () => statuses.some((s) => s.startsWith('connected')));
    await wait(500);
    assert.equal(await redis.exists(`${prefix}members:${group}:${clientId}`), 0);
  });
});
