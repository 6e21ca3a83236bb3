/**
 * The broker choice and the embedded aedes broker, on free ports (never the standard 1883,
 * which a real Mosquitto may hold on this machine).
 */
import assert from 'assert/strict';
import mqtt from 'mqtt';
import net from 'net';
import { chooseBroker, portOpen, redactUrl, startEmbeddedBroker, type EmbeddedBroker } from '../../app/broker';

function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, protocolVersion: 4, ...opts });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

describe('app broker', () => {
  let broker: EmbeddedBroker | undefined;
  const clients: mqtt.MqttClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.endAsync(true);
    await broker?.close();
    broker = undefined;
  });

  it('embedded broker: pub/sub with QoS 1 through it', async () => {
    broker = await startEmbeddedBroker({ port: 0 });
    assert.match(broker.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    const sub = await connect(broker.url, { clientId: 'hv-sub' });
    const pub = await connect(broker.url, { clientId: 'hv-pub' });
    clients.push(sub, pub);
    await sub.subscribeAsync('HyperVolt/sensors/+/+', { qos: 1 });
    const got = new Promise<{ topic: string; payload: string }>((resolve) =>
      sub.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() })),
    );
    await pub.publishAsync('HyperVolt/sensors/living_room/ldr', '{"value":1}', { qos: 1 });
    assert.deepEqual(await got, { topic: 'HyperVolt/sensors/living_room/ldr', payload: '{"value":1}' });
  });

  it('embedded broker with MQTT_USERNAME/MQTT_PASSWORD: only those may connect', async () => {
    broker = await startEmbeddedBroker({ port: 0, username: 'hv', password: 'pw' });
    await assert.rejects(connect(broker.url), /Bad username or password|Not authorized/i);
    await assert.rejects(connect(broker.url, { username: 'hv', password: 'wrong' }), /Bad username or password|Not authorized/i);
    const ok = await connect(broker.url, { username: 'hv', password: 'pw' });
    clients.push(ok);
    assert.equal(ok.connected, true);
  });

  it('close frees the port', async () => {
    broker = await startEmbeddedBroker({ port: 0 });
    const c = await connect(broker.url);
    clients.push(c);
    const port = broker.port;
    await broker.close();
    broker = undefined;
    assert.equal(await portOpen('127.0.0.1', port, 500), false);
  });

  describe('chooseBroker', () => {
    const never = () => Promise.reject(new Error('must not be called'));

    it('MQTT_URL wins without probing', async () => {
      const c = await chooseBroker({ MQTT_URL: 'mqtt://broker:1883' }, { probe: never, start: never });
      assert.deepEqual(c, { url: 'mqtt://broker:1883', kind: 'configured' });
    });

    it('uses a broker already listening on 127.0.0.1:1883', async () => {
      const probed: string[] = [];
      const c = await chooseBroker({}, { probe: async (h, p) => (probed.push(`${h}:${p}`), true), start: never });
      assert.deepEqual(probed, ['127.0.0.1:1883']);
      assert.deepEqual(c, { url: 'mqtt://127.0.0.1:1883', kind: 'local' });
    });

    it('the local port can be moved (for tests)', async () => {
      const probed: number[] = [];
      const c = await chooseBroker({ HYPERVOLT_LOCAL_MQTT_PORT: '18830' }, { probe: async (_h, p) => (probed.push(p), true), start: never });
      assert.deepEqual(probed, [18830]);
      assert.equal(c.url, 'mqtt://127.0.0.1:18830');
    });

    it('else starts the embedded broker there, with the credentials', async () => {
      let opts: unknown;
      const fake: EmbeddedBroker = { url: 'mqtt://127.0.0.1:1883', port: 1883, close: async () => undefined };
      const c = await chooseBroker(
        { MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p' },
        { probe: async () => false, start: async (o) => ((opts = o), fake) },
      );
      assert.equal(c.kind, 'embedded');
      assert.equal(c.embedded, fake);
      assert.deepEqual(opts, { host: '127.0.0.1', port: 1883, username: 'u', password: 'p', log: undefined });
    });
  });

  it('portOpen', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    assert.equal(await portOpen('127.0.0.1', port), true);
    await new Promise<void>((r) => server.close(() => r()));
    assert.equal(await portOpen('127.0.0.1', port, 500), false);
  });

  it('redactUrl hides passwords', () => {
    assert.equal(redactUrl('mqtt://user:secret@host:1883'), 'mqtt://user:***@host:1883');
    assert.equal(redactUrl('redis://:pw@127.0.0.1:6379/2'), 'redis://:***@127.0.0.1:6379/2');
    assert.equal(redactUrl('mqtt://host:1883'), 'mqtt://host:1883');
  });
});
