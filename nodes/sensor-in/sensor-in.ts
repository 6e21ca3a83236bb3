/**
 * Node `sensor-in`: a durable MQTT in. Each message is appended to a local SQLite spool before
 * its QoS 1 PUBACK is sent (./durable-subscriber.ts), then sent into the flow and tracked until
 * sensor-validate and cold-store have settled every reading (../shared/spool/tracker.ts); what was
 * spooled and not settled is replayed on the next start.
 */
import path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Spool } from '../shared/spool/spool';
import { completions } from '../shared/spool/tracker';
import { DurableSubscriber, readTlsFiles, type SubscriberState } from './durable-subscriber';

interface SensorInDef extends NodeDef {
  url?: string;
  clientId?: string;
  topic?: string;
  qos?: string | number;
  protocolVersion?: string | number;
  usernameEnv?: string;
  passwordEnv?: string;
  spoolPath?: string;
  maxPending?: string | number;
  release?: string;
  /** PEM files for mqtts:// (each may be `${VAR}`): CA, client certificate, client key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

interface SensorInCreds {
  username?: string;
  password?: string;
}

export = function (RED: NodeAPI) {
  function SensorInNode(this: Node<SensorInCreds>, config: SensorInDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = (key: string, params?: Record<string, string | number>) => RED._(`sensor-in.${key}`, params);
    // `${VAR}` anywhere in a value (Node-RED itself only substitutes whole-value `${VAR}`).
    const env = (v: unknown) => {
      const s = String(v ?? '').trim();
      return s.includes('${') ? String(RED.util.evaluateNodeProperty(s, 'env', node, {} as never) ?? '').trim() : s;
    };
    const fromEnv = (name?: string) => (name ? String(RED.util.getSetting(node, name) ?? '') : '');
    const creds = node.credentials ?? {};
    const dataDir = String(RED.util.getSetting(node, 'DATA_DIR') ?? '') || String(RED.settings.userDir ?? '.');
    const spoolFile = path.resolve(env(config.spoolPath) || path.join(dataDir, 'spool.db'));
    const release = config.release === 'sent' ? 'sent' : 'stored';

    let spool: Spool;
    let tls: ReturnType<typeof readTlsFiles>;
    try {
      tls = readTlsFiles({ ca: env(config.caFile), cert: env(config.certFile), key: env(config.keyFile) });
      spool = new Spool(spoolFile, { onError: (err) => node.warn(t('errors.spool', { error: err.message })) });
    } catch (err) {
      node.error(t('errors.start', { error: (err as Error).message }));
      node.status({ fill: 'red', shape: 'dot', text: t('status.startError') });
      return;
    }

    let state: SubscriberState = 'connecting';
    let lastAcked = 0;
    let rate = 0;
    const show = () => {
      const p = { pending: sub.pending, rate, held: sub.heldCount };
      if (state === 'connected') node.status({ fill: 'green', shape: 'dot', text: t('status.connected', p) });
      else if (state === 'paused') node.status({ fill: 'green', shape: 'ring', text: t('status.paused', p) });
      else if (state === 'spool-error') node.status({ fill: 'red', shape: 'dot', text: t('status.spoolError') });
      else if (state === 'connecting') node.status({ fill: 'yellow', shape: 'ring', text: t('status.connecting', p) });
      else node.status({ fill: 'red', shape: 'ring', text: t('status.disconnected', p) });
    };

    const sub = new DurableSubscriber({
      url: env(config.url) || 'mqtt://127.0.0.1:1883',
      clientId: env(config.clientId) || `hypervolt-sensor-in-${node.id}`,
      topic: env(config.topic),
      qos: Number(env(config.qos) || 1),
      protocolVersion: env(config.protocolVersion) === '4' ? 4 : 5,
      username: creds.username || fromEnv(config.usernameEnv) || undefined,
      password: creds.password || fromEnv(config.passwordEnv) || undefined,
      maxPending: Number(env(config.maxPending)) || 50_000,
      tls,
      spool,
      onMessage: (entry) => {
        const msgid = RED.util.generateId();
        if (release === 'stored') completions.track(msgid, { sink: spool, id: entry.id, topic: entry.topic, payload: entry.payload });
        node.send({ _msgid: msgid, topic: entry.topic, payload: entry.payload, spoolId: entry.id, receivedAt: entry.receivedAt } as never);
        if (release === 'sent') spool.removeSoon(entry.id);
      },
      onState: (s, detail) => {
        if (detail && s !== state) node.warn(t('log.' + s, { error: detail }));
        state = s;
        show();
      },
    });
    const timer = setInterval(() => {
      rate = sub.acked - lastAcked;
      lastAcked = sub.acked;
      show();
    }, 1000);
    if (!env(config.topic)) {
      node.status({ fill: 'red', shape: 'dot', text: t('status.noTopic') });
    }
    // Replay only once every node of the flow exists (messages sent earlier would be dropped).
    const start = () => {
      if (env(config.topic)) sub.start().catch((err: Error) => node.error(t('errors.spool', { error: err.message })));
    };
    RED.events.once('flows:started', start);

    node.on('close', (_removed: boolean, done: () => void) => {
      clearInterval(timer);
      RED.events.off('flows:started', start);
      const finish = () => {
        completions.forgetSink(spool); // not yet stored: replayed on the next start
        try {
          spool.close();
        } catch (err) {
          node.warn(t('errors.spool', { error: (err as Error).message }));
        }
        done();
      };
      sub.close().then(finish, finish);
    });
  }

  RED.nodes.registerType<Node<SensorInCreds>, SensorInDef, unknown, SensorInCreds>('sensor-in', SensorInNode, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });
};
