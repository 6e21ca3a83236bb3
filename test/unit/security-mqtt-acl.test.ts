import assert from 'assert/strict';
import fs from 'fs';
import mqtt from 'mqtt';
import os from 'os';
import path from 'path';
import { loadAcl, startEmbeddedBroker, type EmbeddedBroker } from '../../app/broker';
import { loadBcrypt } from '../../app/hash-password';
import { AclPolicy, filterWithin, parseAcl, pipelineRules, stripShare, topicMatches, validFilter } from '../../app/mqtt-acl';

describe('security: MQTT ACL (embedded broker)', () => {
  it('validFilter', () => {
    for (const f of ['a', 'a/b', 'a/+/c', 'a/#', '#', '+', '+/+', '$SYS/#']) assert.equal(validFilter(f), true, f);
    for (const f of ['', 'a/#/b', 'a/b#', 'a/+b', 'a\u0000']) assert.equal(validFilter(f), false, JSON.stringify(f));
  });

  it('topicMatches (a concrete topic)', () => {
    assert.equal(topicMatches('HyperVolt/sensors/kitchen/#', 'HyperVolt/sensors/kitchen/ldr'), true);
    assert.equal(topicMatches('HyperVolt/sensors/kitchen/#', 'HyperVolt/sensors/kitchen'), true, '# also matches the parent');
    assert.equal(topicMatches('HyperVolt/sensors/kitchen/#', 'HyperVolt/sensors/living_room/ldr'), false);
    assert.equal(topicMatches('HyperVolt/sensors/+/ldr', 'HyperVolt/sensors/hall/ldr'), true);
    assert.equal(topicMatches('HyperVolt/sensors/+/ldr', 'HyperVolt/sensors/hall/x/ldr'), false);
    assert.equal(topicMatches('HyperVolt/sensors/kitchen', 'HyperVolt/sensors/kitchen/ldr'), false);
    assert.equal(topicMatches('#', '$SYS/broker'), false, 'wildcards never match $ topics');
    assert.equal(topicMatches('$SYS/#', '$SYS/broker'), true);
  });

  it('filterWithin (a subscription inside a pattern)', () => {
    const p = 'HyperVolt/errors/kitchen/#';
    assert.equal(filterWithin('HyperVolt/errors/kitchen/#', p), true);
    assert.equal(filterWithin('HyperVolt/errors/kitchen/+', p), true);
    assert.equal(filterWithin('HyperVolt/errors/kitchen/ldr', p), true);
    assert.equal(filterWithin('HyperVolt/errors/kitchen', p), true);
    assert.equal(filterWithin('HyperVolt/errors/#', p), false);
    assert.equal(filterWithin('HyperVolt/errors/+/ldr', p), false);
    assert.equal(filterWithin('#', p), false);
    assert.equal(filterWithin('HyperVolt/sensors/+/+', 'HyperVolt/sensors/+/+'), true);
    assert.equal(filterWithin('HyperVolt/sensors/hall/ldr', 'HyperVolt/sensors/+/+'), true);
    assert.equal(filterWithin('HyperVolt/sensors/#', 'HyperVolt/sensors/+/+'), false);
    assert.equal(filterWithin('$SYS/#', '#'), false);
    assert.equal(stripShare('$share/g1/HyperVolt/sensors/+/+'), 'HyperVolt/sensors/+/+');
    assert.equal(stripShare('HyperVolt/x'), 'HyperVolt/x');
  });

  it('parseAcl checks the file and names the problem', () => {
    assert.throws(() => parseAcl('{'), /not valid JSON/);
    assert.throws(() => parseAcl('[]'), /expected \{"users"/);
    assert.throws(() => parseAcl('{"users": {"p": {"publish": "a/#"}}}'), /"publish" must be a list/);
    assert.throws(() => parseAcl('{"users": {"p": {"subscribe": ["a/#/b"]}}}'), /not a valid topic filter/);
    assert.throws(() => parseAcl('{"users": {"p": {"password_hash": "plain"}}}'), /bcrypt/);
    const acl = parseAcl('{"users": {"p": {"publish": ["a/#"]}}}');
    assert.deepEqual(acl.users.get('p'), { passwordHash: undefined, publish: ['a/#'], subscribe: [] });
  });

  it('AclPolicy: listed users by their rules, the pipeline by default rules, anyone else nothing', () => {
    const policy = new AclPolicy(parseAcl('{"users": {"pi-hall": {"publish": ["HV/sensors/hall/#"], "subscribe": ["HV/commands/#"]}}}'), 'hv', 'HV');
    assert.equal(policy.canPublish('pi-hall', 'HV/sensors/hall/ldr'), true);
    assert.equal(policy.canPublish('pi-hall', 'HV/sensors/attic/ldr'), false);
    assert.equal(policy.canPublish('pi-hall', 'HV/commands/lamp'), false);
    assert.equal(policy.canSubscribe('pi-hall', 'HV/commands/+'), true);
    assert.equal(policy.canSubscribe('pi-hall', 'HV/sensors/#'), false);
    assert.deepEqual(pipelineRules('HV'), { publish: ['HV/commands/#', 'HV/errors/#'], subscribe: ['HV/#'] });
    assert.equal(policy.canPublish('hv', 'HV/commands/lamp'), true);
    assert.equal(policy.canPublish('hv', 'HV/errors/hall/ldr'), true);
    assert.equal(policy.canPublish('hv', 'HV/sensors/hall/ldr'), false);
    assert.equal(policy.canSubscribe('hv', '$share/g/HV/sensors/+/+'), true);
    assert.equal(policy.canSubscribe('hv', '#'), false);
    assert.equal(policy.canPublish('stranger', 'HV/sensors/hall/ldr'), false);
    assert.equal(policy.canPublish(undefined, 'HV/sensors/hall/ldr'), false);
  });

  describe('enforced by the embedded aedes broker', function () {
    this.timeout(30_000);
    let dir: string;
    let broker: EmbeddedBroker;
    const clients: mqtt.MqttClient[] = [];

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-acl-'));
      const bcrypt = loadBcrypt();
      const file = path.join(dir, 'acl.json');
      fs.writeFileSync(
        file,
        JSON.stringify({
          users: {
            'pi-living_room': {
              password_hash: await bcrypt.hash('lr-pass', 4),
              publish: ['HyperVolt/sensors/living_room/#'],
              subscribe: ['HyperVolt/errors/living_room/#', 'HyperVolt/commands/#'],
            },
            'pi-kitchen': {
              password_hash: await bcrypt.hash('k-pass', 4),
              publish: ['HyperVolt/sensors/kitchen/#'],
              subscribe: ['HyperVolt/errors/kitchen/#', 'HyperVolt/commands/#'],
            },
          },
        }),
      );
      const env = { MQTT_ACL_FILE: file, MQTT_USERNAME: 'hypervolt', MQTT_PASSWORD: 'pipeline-pass', MQTT_TOPIC_PREFIX: 'HyperVolt' };
      broker = await startEmbeddedBroker({ port: 0, username: env.MQTT_USERNAME, password: env.MQTT_PASSWORD, acl: loadAcl(env) });
    });
    after(async () => {
      for (const c of clients) c.end(true);
      await broker?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    function login(username?: string, password?: string): Promise<mqtt.MqttClient> {
      return new Promise((resolve, reject) => {
        const c = mqtt.connect(broker.url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, username, password });
        clients.push(c);
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
    }

    /** Messages a client receives, by topic. */
    function inbox(c: mqtt.MqttClient): string[] {
      const got: string[] = [];
      c.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
      return got;
    }

    async function until(check: () => boolean, ms = 3000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!check()) {
        if (Date.now() > deadline) throw new Error('not within time');
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    /** Publishes where the client may not: aedes refuses it and drops the connection. */
    async function refused(c: mqtt.MqttClient, topic: string): Promise<void> {
      const gone = new Promise<void>((r) => c.once('close', () => r()));
      c.publish(topic, 'denied');
      await gone;
    }

    it('refuses anonymous clients, unknown users and wrong passwords', async () => {
      await assert.rejects(login(), /Not authorized|Bad username/i);
      await assert.rejects(login('pi-living_room', 'wrong'), /Not authorized|Bad username/i);
      await assert.rejects(login('nobody', 'x'), /Not authorized|Bad username/i);
      await assert.rejects(login('hypervolt', 'wrong'), /Not authorized|Bad username/i);
    });

    it('a Pi publishes only under its own location, never commands', async () => {
      const pipeline = await login('hypervolt', 'pipeline-pass');
      const seen = inbox(pipeline);
      await pipeline.subscribeAsync('HyperVolt/sensors/+/+', { qos: 1 });

      const lr = await login('pi-living_room', 'lr-pass');
      await lr.publishAsync('HyperVolt/sensors/living_room/ldr', 'ok-1', { qos: 1 });
      await refused(lr, 'HyperVolt/sensors/kitchen/ldr');
      const lr2 = await login('pi-living_room', 'lr-pass');
      await refused(lr2, 'HyperVolt/commands/lamp');
      const lr3 = await login('pi-living_room', 'lr-pass');
      await lr3.publishAsync('HyperVolt/sensors/living_room/ldr', 'ok-2', { qos: 1 });
      await until(() => seen.length >= 2);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(seen, ['HyperVolt/sensors/living_room/ldr ok-1', 'HyperVolt/sensors/living_room/ldr ok-2']);
    });

    it('the pipeline publishes commands and errors; each Pi reads commands and only its own errors', async () => {
      const kitchen = await login('pi-kitchen', 'k-pass');
      const got = inbox(kitchen);
      const granted = await kitchen.subscribeAsync(['HyperVolt/commands/#', 'HyperVolt/errors/kitchen/#']);
      assert.deepEqual(granted.map((g) => g.qos), [0, 0]);
      for (const forbidden of ['HyperVolt/errors/living_room/#', 'HyperVolt/sensors/#', '#']) {
        // SUBACK 0x80: refused (mqtt.js rejects on it)
        await assert.rejects(kitchen.subscribeAsync(forbidden), (err: { packet?: { granted?: number[] } }) => {
          assert.deepEqual(err.packet?.granted, [128], forbidden);
          return true;
        });
      }
      const pipeline = await login('hypervolt', 'pipeline-pass');
      await pipeline.publishAsync('HyperVolt/errors/living_room/ldr', 'not-for-kitchen', { qos: 1 });
      await pipeline.publishAsync('HyperVolt/errors/kitchen/ldr', 'e', { qos: 1 });
      await pipeline.publishAsync('HyperVolt/commands/lamp_1', 'c', { qos: 1 });
      await until(() => got.length >= 2);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(got, ['HyperVolt/errors/kitchen/ldr e', 'HyperVolt/commands/lamp_1 c']);
    });

    it('the pipeline may not publish readings', async () => {
      const pipeline = await login('hypervolt', 'pipeline-pass');
      await refused(pipeline, 'HyperVolt/sensors/kitchen/ldr');
    });
  });
});
