/**
 * Node `sensor-in`: a durable MQTT in. Each message is appended to a local SQLite spool, sent into
 * the flow once committed and acknowledged (QoS 1 PUBACK) once on disk (./durable-subscriber.ts), and tracked until
 * sensor-validate and cold-store have settled every reading (../shared/spool/tracker.ts); what was
 * spooled and not settled is replayed on the next start.
 *
 * With a shared subscription (`$share/{group}/...`) and a Redis hot store, the instance is a
 * member of its group and adopts the session (and spool) of a member that died (./adoption.ts).
 */
import path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { HotStoreConfigNode } from '../hypervolt-hot-store/hot-store-config';
import { dataDir, envText } from '../shared/node-settings';
import { Spool, type SpoolEntry, type SpoolSink } from '../shared/spool/spool';
import { completions, type SpoolRef } from '../shared/spool/tracker';
import { shareGroupOf } from './adoption';
import { DurableSubscriber, readTlsFiles, type DurableSubscriberOptions, type SubscriberState } from './durable-subscriber';
import { joinGroup, memberTtlMs, membershipMessage, type GroupMember } from './group';

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
  /** `message` (default): one msg per MQTT message; `batch`: one msg per event-loop turn (see below). */
  output?: string;
  /** PEM files for mqtts:// (each may be `${VAR}`): CA, client certificate, client key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** A `hypervolt-hot-store` on Redis: group membership and adoption (with a `$share/` topic). */
  store?: string;
  /** Seconds a member's heartbeat lives (e.g. `${HYPERVOLT_LEADER_TTL_SECONDS}`). Default 15. */
  memberTtl?: string | number;
}

/** Most MQTT messages in one batch msg (`output: batch`). */
const MAX_BATCH = 500;

/** One MQTT message in a batch msg's `payload` (`output: batch`). */
interface SpooledMessage {
  topic: string;
  payload: Buffer;
  receivedAt: number;
  spoolId: number;
}

/** What the completion tracker keeps of a delivered entry. */
function refOf(entry: SpoolEntry, sink: SpoolSink): SpoolRef {
  return { sink, id: entry.id, topic: entry.topic, payload: entry.payload };
}

/** A count as "3 120" in the status. */
function grouped(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
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
    const env = (v: unknown) => envText(RED, node, v);
    const fromEnv = (name?: string) => (name ? String(RED.util.getSetting(node, name) ?? '') : '');
    const creds = node.credentials ?? {};
    const spoolFile = path.resolve(env(config.spoolPath) || path.join(dataDir(RED, node) || '.', 'spool.db'));
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
    let member: GroupMember | undefined;
    const show = () => {
      const p = { pending: sub.pending, rate, held: sub.heldCount };
      const adopting = member?.membership.adopting;
      if (adopting && state !== 'spool-error') {
        node.status({ fill: 'blue', shape: 'dot', text: t('status.adopting', { id: adopting.clientId, count: grouped(adopting.taken) }) });
      } else if (state === 'connected') node.status({ fill: 'green', shape: 'dot', text: t('status.connected', p) });
      else if (state === 'paused') node.status({ fill: 'green', shape: 'ring', text: t('status.paused', p) });
      else if (state === 'spool-error') node.status({ fill: 'red', shape: 'dot', text: t('status.spoolError') });
      else if (state === 'connecting') node.status({ fill: 'yellow', shape: 'ring', text: t('status.connecting', p) });
      else node.status({ fill: 'red', shape: 'ring', text: t('status.disconnected', p) });
    };

    type Delivered = { entry: SpoolEntry; sink: SpoolSink };
    /** Sends one msg for `items`, tracked until settled (or released at once, `release: sent`). */
    const sendTracked = (items: readonly Delivered[], fields: Record<string, unknown>) => {
      const msgid = RED.util.generateId();
      if (release === 'stored') completions.track(msgid, items.map(({ entry, sink }) => refOf(entry, sink)));
      node.send({ _msgid: msgid, ...fields } as never);
      if (release === 'sent') for (const { entry, sink } of items) sink.removeSoon(entry.id);
    };

    /**
     * `output: batch`: the messages committed in one event-loop turn (one spool commit) go on as
     * ONE msg, `payload` an array of `{topic, payload, receivedAt, spoolId}` and `batch: "mqtt"`
     * (sensor-validate validates each against its own topic): under load, Node-RED's per-msg
     * routing (hooks, a clone per extra wire, done tracking) is paid per batch, not per reading.
     * No latency is added: the batch leaves in the same turn (a microtask after the commit).
     */
    const batchOutput = config.output === 'batch';
    let batch: Delivered[] = [];
    const flushBatch = () => {
      if (batch.length === 0) return;
      const items = batch;
      batch = [];
      if (closing) return; // spooled, not settled: replayed on the next start
      const payload: SpooledMessage[] = items.map(({ entry }) => ({ topic: entry.topic, payload: entry.payload, receivedAt: entry.receivedAt, spoolId: entry.id }));
      sendTracked(items, { batch: 'mqtt', payload });
    };

    /** Into the flow; the entry leaves `sink` (our spool, or an adopted dead member's) once settled. */
    const deliver = (entry: SpoolEntry, sink: SpoolSink) => {
      if (batchOutput) {
        batch.push({ entry, sink });
        if (batch.length === 1) queueMicrotask(flushBatch);
        else if (batch.length >= MAX_BATCH) flushBatch();
        return;
      }
      sendTracked([{ entry, sink }], { topic: entry.topic, payload: entry.payload, spoolId: entry.id, receivedAt: entry.receivedAt });
    };
    const topic = env(config.topic);
    const subOptions: DurableSubscriberOptions = {
      url: env(config.url) || 'mqtt://127.0.0.1:1883',
      clientId: env(config.clientId) || `hypervolt-sensor-in-${node.id}`,
      topic,
      qos: Number(env(config.qos) || 1),
      protocolVersion: env(config.protocolVersion) === '4' ? 4 : 5,
      username: creds.username || fromEnv(config.usernameEnv) || undefined,
      password: creds.password || fromEnv(config.passwordEnv) || undefined,
      maxPending: Number(env(config.maxPending)) || 50_000,
      tls,
      spool,
      onMessage: (entry) => deliver(entry, spool),
    };
    const sub = new DurableSubscriber({
      ...subOptions,
      onState: (s, detail) => {
        if (detail && s !== state) node.warn(t('log.' + s, { error: detail }));
        state = s;
        show();
      },
    });

    // Group membership and adoption: a shared subscription, and Redis to agree on who adopts.
    const share = shareGroupOf(topic);
    const hotStore = config.store ? (RED.nodes.getNode(config.store) as HotStoreConfigNode | null) : null;
    const redisSettings = hotStore?.redis ?? null;
    if (share && redisSettings) {
      member = joinGroup({
        redis: redisSettings,
        group: share.group,
        ttlMs: memberTtlMs(env(config.memberTtl)),
        subscriber: subOptions,
        spoolFile,
        deliver,
        onSpoolError: (err) => node.warn(t('errors.spool', { error: err.message })),
        onEvent: (e) => {
          const m = membershipMessage(e, t);
          if (m.level === 'warn') node.warn(m.text);
          else node.log(m.text);
          show();
        },
      });
    }

    const timer = setInterval(() => {
      rate = sub.acked - lastAcked;
      lastAcked = sub.acked;
      show();
    }, 1000);
    if (!topic) {
      node.status({ fill: 'red', shape: 'dot', text: t('status.noTopic') });
    }
    let closing = false;
    // Replay only once every node of the flow exists (messages sent earlier would be dropped).
    // A member first waits while a survivor still adopts its own session (a quick restart).
    const start = () => {
      if (!topic) return;
      (member ? member.membership.start() : Promise.resolve())
        .then(() => (closing ? undefined : sub.start()))
        .catch((err: Error) => node.error(t('errors.spool', { error: err.message })));
    };
    RED.events.once('flows:started', start);

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
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
      // An adoption in progress ends first (its session left for the next adopter, unacknowledged).
      const stopped = member ? member.close() : Promise.resolve();
      stopped.then(() => sub.close()).then(finish, finish);
    });
  }

  RED.nodes.registerType<Node<SensorInCreds>, SensorInDef, unknown, SensorInCreds>('sensor-in', SensorInNode, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });
};
