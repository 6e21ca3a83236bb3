/**
 * The Mosquitto configuration in examples/mosquitto/ on a real, private Mosquitto: the example
 * mosquitto.conf (only its paths and port changed) with the example `acl` file as it is, and a
 * password file made by mosquitto_passwd as the README says.
 */
import assert from 'assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import fs from 'fs';
import mqtt from 'mqtt';
import os from 'os';
import path from 'path';
import { freePort } from '../support/app';
import { portOpen } from '../../app/broker';

const EXAMPLE_DIR = path.resolve(__dirname, '..', '..', '..', 'examples', 'mosquitto');
const USERS: Record<string, string> = {
  hypervolt: 'pipeline-pass',
  'pi-living_room': 'lr-pass',
  'pi-kitchen': 'k-pass',
  'ai-engine': 'ai-pass',
};

function has(cmd: string): boolean {
  return !spawnSync(cmd, ['-h'], { stdio: 'ignore' }).error;
}

/** The example configuration pointed at the test's files and port; fails if a line it changes is gone. */
function testConfig(example: string, o: { port: number; passwd: string; acl: string; dataDir: string }): string {
  let text = example;
  const swap = (re: RegExp, line: string) => {
    assert.match(text, re, `examples/mosquitto/mosquitto.conf has ${re}`);
    text = text.replace(re, line);
  };
  swap(/^password_file .*$/m, `password_file ${o.passwd}`);
  swap(/^acl_file .*$/m, `acl_file ${o.acl}`);
  swap(/^listener 1883$/m, `listener ${o.port} 127.0.0.1`);
  swap(/^persistence_location .*$/m, `persistence_location ${o.dataDir}/`);
  // As root, Mosquitto would switch to the `mosquitto` user, who cannot read the test's files.
  if (process.getuid?.() === 0) text += '\nuser root\n';
  return text;
}

describe('security: the example Mosquitto configuration', function () {
  this.timeout(30_000);
  let dir: string;
  let broker: ChildProcess | undefined;
  let port = 0;
  let log = '';
  const clients: mqtt.MqttClient[] = [];

  before(async function () {
    if (!has('mosquitto') || !has('mosquitto_passwd')) {
      if (process.env.CI === 'true') throw new Error('mosquitto and mosquitto_passwd are needed');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-mosquitto-'));
    const passwd = path.join(dir, 'hypervolt.passwd');
    let first = true;
    for (const [user, pw] of Object.entries(USERS)) {
      const args: string[] = first ? ['-c', '-b', passwd, user, pw] : ['-b', passwd, user, pw];
      const r = spawnSync('mosquitto_passwd', args, { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      first = false;
    }
    port = await freePort();
    const conf = path.join(dir, 'mosquitto.conf');
    const example = fs.readFileSync(path.join(EXAMPLE_DIR, 'mosquitto.conf'), 'utf8');
    fs.writeFileSync(conf, testConfig(example, { port, passwd, acl: path.join(EXAMPLE_DIR, 'acl'), dataDir: dir }));
    broker = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    broker.stdout!.on('data', (d) => (log += d));
    broker.stderr!.on('data', (d) => (log += d));
    const deadline = Date.now() + 10_000;
    while (!(await portOpen('127.0.0.1', port, 200))) {
      if (broker.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    for (const c of clients) c.end(true);
    if (broker && broker.exitCode === null) {
      const gone = new Promise((r) => broker!.once('exit', r));
      broker.kill('SIGTERM');
      await gone;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function login(username?: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
    return new Promise((resolve, reject) => {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
        protocolVersion: 5,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        username,
        password: username ? USERS[username] : undefined,
        ...opts,
      });
      clients.push(c);
      c.once('connect', () => resolve(c));
      c.once('error', reject);
    });
  }

  function inbox(c: mqtt.MqttClient): string[] {
    const got: string[] = [];
    c.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    return got;
  }

  async function settle(check: () => boolean): Promise<void> {
    const deadline = Date.now() + 3000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error('not within 3 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 150)); // anything that should not arrive would by now
  }

  /** A QoS 1 publish Mosquitto refuses: MQTT 5 PUBACK "Not authorized" (0x87). */
  async function refused(c: mqtt.MqttClient, topic: string): Promise<void> {
    await assert.rejects(c.publishAsync(topic, 'denied', { qos: 1 }), (err: { code?: number }) => {
      assert.equal(err.code, 0x87, `${topic}: ${String(err)}`);
      return true;
    });
  }

  it('refuses anonymous clients and wrong passwords', async () => {
    await assert.rejects(login(undefined), /Not authorized|Bad user name or password/i);
    await assert.rejects(login('pi-kitchen', { password: 'wrong' }), /Not authorized|Bad user name or password/i);
  });

  it('a Pi writes only its own location, never commands; the pipeline reads readings (also as a shared subscription)', async () => {
    const pipeline = await login('hypervolt');
    const seen = inbox(pipeline);
    await pipeline.subscribeAsync('$share/hv/HyperVolt/sensors/+/+', { qos: 1 });
    const lr = await login('pi-living_room');
    await lr.publishAsync('HyperVolt/sensors/living_room/ldr', 'mine', { qos: 1 });
    await refused(lr, 'HyperVolt/sensors/kitchen/ldr');
    await refused(lr, 'HyperVolt/commands/lamp_1');
    await refused(lr, 'HyperVolt/errors/living_room/ldr');
    await settle(() => seen.length >= 1);
    assert.deepEqual(seen, ['HyperVolt/sensors/living_room/ldr mine']);
  });

  it('the pipeline writes commands and errors (not readings); each Pi reads commands and only its own errors', async () => {
    const lr = await login('pi-living_room');
    const kitchen = await login('pi-kitchen');
    const lrGot = inbox(lr);
    const kGot = inbox(kitchen);
    await lr.subscribeAsync(['HyperVolt/commands/#', 'HyperVolt/errors/#'], { qos: 1 });
    await kitchen.subscribeAsync(['HyperVolt/commands/#', 'HyperVolt/errors/#', 'HyperVolt/sensors/#'], { qos: 1 });
    const pipeline = await login('hypervolt');
    await pipeline.publishAsync('HyperVolt/errors/kitchen/ldr', 'k-error', { qos: 1 });
    await pipeline.publishAsync('HyperVolt/commands/lamp_1', 'cmd', { qos: 1 });
    await refused(pipeline, 'HyperVolt/sensors/kitchen/ldr');
    await settle(() => lrGot.length >= 1 && kGot.length >= 2);
    assert.deepEqual(lrGot, ['HyperVolt/commands/lamp_1 cmd'], 'not the kitchen error');
    assert.deepEqual(kGot, ['HyperVolt/errors/kitchen/ldr k-error', 'HyperVolt/commands/lamp_1 cmd']);
  });

  it('a Pi cannot read the other Pis\' readings', async () => {
    const lr = await login('pi-living_room');
    const got = inbox(lr);
    await lr.subscribeAsync('HyperVolt/sensors/#', { qos: 1 }).catch(() => undefined); // granted or not, nothing may arrive
    const kitchen = await login('pi-kitchen');
    await kitchen.publishAsync('HyperVolt/sensors/kitchen/ldr', 'k', { qos: 1 });
    // A message it may read, sent after the reading: once it is in, the reading would be too.
    await lr.subscribeAsync('HyperVolt/commands/marker', { qos: 1 });
    const pipeline = await login('hypervolt');
    await pipeline.publishAsync('HyperVolt/commands/marker', 'm', { qos: 1 });
    await settle(() => got.length >= 1);
    assert.deepEqual(got, ['HyperVolt/commands/marker m']);
  });

  it('the AI engine writes decisions, which the pipeline reads', async () => {
    const pipeline = await login('hypervolt');
    const seen = inbox(pipeline);
    await pipeline.subscribeAsync('HyperVolt/ai/decisions', { qos: 1 });
    const ai = await login('ai-engine');
    await ai.publishAsync('HyperVolt/ai/decisions', '{}', { qos: 1 });
    await refused(ai, 'HyperVolt/sensors/kitchen/ldr');
    await settle(() => seen.length >= 1);
    assert.deepEqual(seen, ['HyperVolt/ai/decisions {}']);
  });
});
