/**
 * Durable MQTT subscription, free of Node-RED: every message is appended to the spool (group
 * commit) and on disk before its QoS 1 PUBACK is sent, so a crash at any point loses nothing the
 * broker handed over; what was spooled and not yet stored is replayed on the next start. The
 * flow gets a message as soon as its commit is done, while the disk sync runs.
 *
 * mqtt.js processes incoming packets one at a time and sends the PUBACK when `handleMessage`
 * calls back, so holding that callback would commit one message per transaction. Instead the
 * callback is called at once with a "deferred" marker (mqtt.js then sends no PUBACK and moves on
 * to the next packet) and the PUBACK is written by us after the spool commit, on the same
 * connection only: after a reconnect the broker redelivers whatever was not acknowledged.
 *
 * Flow control: above `maxPending` spooled entries the message at hand is held, unacknowledged,
 * and mqtt.js is not told it was handled, so it parses no further packet and reads no more from
 * the socket: TCP's flow control leaves the rest with the broker, whatever its in-flight window
 * (Mosquitto 2.0.11 was measured sending 26 000+ unacknowledged messages past a receive maximum of
 * 1 000 once acknowledgements flowed; holding all of them cost hundreds of MB). Intake goes on
 * below 90 %.
 *
 * Adoption (./adoption.ts) uses a second subscriber on a dead member's client id: no replay, no
 * SUBSCRIBE, no reconnect (a broker session takeover by the returning owner ends it for good),
 * `unsubscribe` and then `close({ deleteSession: true })`.
 */
import fs from 'fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { SpoolEntry, Spool } from '../shared/spool/spool';

export type SubscriberState = 'connecting' | 'connected' | 'disconnected' | 'paused' | 'spool-error' | 'closed';

export interface DurableSubscriberOptions {
  url: string;
  clientId: string;
  topic: string;
  /** 0 or 1 (QoS 2 would need PUBREC/PUBCOMP handling: capped at 1). */
  qos?: number;
  protocolVersion?: 4 | 5;
  username?: string;
  password?: string;
  /** For `mqtts://`: a CA to verify the broker with, and a client certificate and key (PEM). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** Session kept by the broker after a disconnect (MQTT 5), seconds. Default 30 days. */
  sessionExpirySeconds?: number;
  spool: Spool;
  /** Stop acknowledging above this many spooled entries. Default 50 000. */
  maxPending?: number;
  /** A spooled message, new or replayed, to send into the flow. */
  onMessage: (entry: SpoolEntry, replayed: boolean) => void;
  onState?: (state: SubscriberState, detail?: string) => void;
  connect?: (url: string, opts: IClientOptions) => MqttClient;
  /** Replay page size. Default 500. */
  pageSize?: number;
  /** Replay the spool at start. Default true (false: the spool is another subscriber's, already replayed). */
  replay?: boolean;
  /** SUBSCRIBE to `topic` on every connect. Default true (false: take over a session's subscription as it is). */
  subscribe?: boolean;
  /** Reconnect after a lost connection. Default true (false: one connection; `ended` once it is gone). */
  reconnect?: boolean;
}

interface Held {
  packet: mqtt.IPublishPacket;
  generation: number;
}

interface HeldBack extends Held {
  /** Tells mqtt.js the packet was handled: it goes on parsing (and reading the socket). */
  proceed: () => void;
}

const DEFERRED = new Error('acknowledged after the spool commit');

function noLog(): void {
  // mqtt.js's debug log, not wanted (see connect)
}

/** How often a paused subscriber looks whether the flow made room (a spool count: cheap). */
const RESUME_CHECK_MS = 20;

/**
 * Reads the PEM files named for `mqtts://` once, at start: none named → undefined. A file that
 * cannot be read throws, naming the setting, so the node can say why it does not connect.
 */
export function readTlsFiles(paths: { ca?: string; cert?: string; key?: string }): DurableSubscriberOptions['tls'] {
  const out: NonNullable<DurableSubscriberOptions['tls']> = {};
  for (const k of ['ca', 'cert', 'key'] as const) {
    const file = paths[k];
    if (!file) continue;
    try {
      out[k] = fs.readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the TLS ${k} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

export class DurableSubscriber {
  private client: MqttClient | null = null;
  /** Increments on every CONNACK: a PUBACK belongs to the connection that received the message. */
  private generation = 0;
  /** Held while paused: one per connection at most (mqtt.js waits for it before the next packet). */
  private held: HeldBack[] = [];
  /** The acknowledgements gathered in this turn (see ackWhenDurable). */
  private ackRound: { packets: Held[]; promise: Promise<void> } | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;
  private paused = false;
  private spoolFailed = false;
  private pollTimer: NodeJS.Timeout | null = null;
  /** Set while `close({ deleteSession })` ends the connection: what still arrives is spooled, not dropped. */
  private finishing = false;
  private lost = false;
  /** The broker had a session for this client id at the first CONNACK (null before it). */
  sessionPresent: boolean | null = null;
  readonly maxPending: number;
  acked = 0;
  received = 0;
  replayed = 0;

  constructor(private readonly opts: DurableSubscriberOptions) {
    this.maxPending = opts.maxPending && opts.maxPending > 0 ? opts.maxPending : 50_000;
  }

  get pending(): number {
    return this.opts.spool.isClosed ? 0 : this.opts.spool.count;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Messages held unacknowledged, or appends not yet committed (and so not yet acknowledged). */
  get busy(): boolean {
    return this.held.length > 0 || this.inFlight.size > 0;
  }

  /** Without reconnect: the one connection was made and is gone (or never came: see `sessionPresent`). */
  get ended(): boolean {
    return this.lost;
  }

  /** Replays what the spool holds (oldest first, in pages), then connects and subscribes. */
  async start(): Promise<void> {
    let after = 0;
    for (;;) {
      if (this.opts.replay === false) break;
      if (this.closed) return;
      const page = this.opts.spool.pending(after, this.opts.pageSize ?? 500);
      if (page.length === 0) break;
      for (const e of page) {
        this.replayed++;
        this.opts.onMessage(e, true);
      }
      after = page[page.length - 1].id;
      await new Promise((r) => setImmediate(r)); // let the flow work between pages
    }
    if (this.closed) return;
    this.connect();
  }

  private connect(): void {
    const o = this.opts;
    const v5 = o.protocolVersion !== 4;
    const options: IClientOptions = {
      clientId: o.clientId,
      clean: false,
      protocolVersion: v5 ? 5 : 4,
      reconnectPeriod: o.reconnect === false ? 0 : 1000,
      connectTimeout: 10_000,
      resubscribe: false,
      // mqtt.js logs through `debug` several times per packet; off, those calls still cost their
      // arguments each (a few % of the allocations per reading). Kept when DEBUG asks for mqttjs.
      ...(/mqttjs/.test(process.env.DEBUG ?? '') ? {} : { log: noLog }),
      ...(o.username ? { username: o.username } : {}),
      ...(o.password ? { password: o.password } : {}),
      ...(v5 ? { properties: { sessionExpiryInterval: o.sessionExpirySeconds ?? 30 * 24 * 3600 } } : {}),
      // mqtts:// always verifies the broker's certificate (system CAs, or the given CA).
      ...(o.tls ? { ...o.tls, rejectUnauthorized: true } : {}),
    };
    const client = (o.connect ?? mqtt.connect)(o.url, options);
    this.client = client;
    this.state('connecting');
    client.handleMessage = (packet, callback) => {
      this.receive(packet as mqtt.IPublishPacket, this.generation, () => callback(packet.qos > 0 ? DEFERRED : undefined));
    };
    client.on('connect', (connack) => {
      this.generation++;
      if (this.sessionPresent === null) this.sessionPresent = connack.sessionPresent === true;
      this.held = []; // unacknowledged on the old connection: the broker sends them again (and that stream is gone)
      if (o.subscribe !== false) {
        client.subscribe(o.topic, { qos: Math.min(1, Math.max(0, o.qos ?? 1)) as 0 | 1 }, (err) => {
          if (err && !this.closed) this.state('disconnected', err.message);
        });
      }
      this.showState();
    });
    client.on('close', () => {
      if (o.reconnect === false) this.lost = true;
      if (!this.closed) this.state('disconnected');
    });
    client.on('offline', () => {
      if (!this.closed) this.state('disconnected');
    });
    client.on('error', (err) => {
      if (!this.closed) this.state('disconnected', err.message);
    });
  }

  /**
   * `proceed` lets mqtt.js go on to its next packet; called at once, except while paused, when it
   * waits with the message for `resumeIfBelow`.
   */
  private receive(packet: mqtt.IPublishPacket, generation: number, proceed: () => void): void {
    if (this.closed && !this.finishing) return proceed(); // not acknowledged: redelivered to the next session
    this.received++;
    // While the session is being deleted nothing may be held: the broker would forget it.
    if (!this.finishing && (this.paused || this.pending >= this.maxPending)) {
      this.held.push({ packet, generation, proceed });
      if (!this.paused) {
        this.paused = true;
        // Checked often while paused (the flow may free room within milliseconds), not at all otherwise.
        this.pollTimer = setInterval(() => this.resumeIfBelow(), RESUME_CHECK_MS);
        this.showState();
      }
      return;
    }
    // Spooled first: mqtt.js may hand over its next packet from inside `proceed` (when it ends a
    // chunk, the socket's next one is parsed at once), and that one must come after this one.
    this.spoolAndAck(packet, generation);
    proceed();
  }

  private spoolAndAck(packet: mqtt.IPublishPacket, generation: number): void {
    const topic = packet.topic;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const receivedAt = Date.now();
    const spool = this.opts.spool;
    // Into the flow once committed; acknowledged once on disk (whenDurable: the WAL sync runs
    // meanwhile on the thread pool). Should the process die between the two, the broker sends
    // the message again and the cold store keeps one copy.
    const p = spool.append({ topic, payload, receivedAt }).then(
      (id) => {
        this.opts.onMessage({ id, topic, payload, receivedAt }, false);
        return this.ackWhenDurable(packet, generation);
      },
    ).then(
      () => {
        if (this.spoolFailed) {
          this.spoolFailed = false;
          this.showState();
        }
      },
      (err: Error) => {
        // Not acknowledged: drop the connection so the broker sends it again later.
        if (this.closed) {
          if (this.finishing) this.state('spool-error', err.message);
          return;
        }
        this.spoolFailed = true;
        this.state('spool-error', err.message);
        this.client?.stream?.destroy();
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /**
   * Joins the message to this turn's round of acknowledgements: the messages whose commits ended
   * in the same turn wait for one `whenDurable` and get their PUBACKs in one socket write.
   * Resolves once they were sent (or were not to be: QoS 0, or an older connection's message);
   * rejects when the sync failed.
   */
  private ackWhenDurable(packet: mqtt.IPublishPacket, generation: number): Promise<void> {
    let round = this.ackRound;
    if (!round) {
      const packets: Held[] = [];
      // A microtask: the appends of one commit all resolve in the current run of microtasks, before it.
      const promise = new Promise<void>((resolve) => queueMicrotask(resolve))
        .then(() => {
          this.ackRound = null;
          return this.opts.spool.whenDurable();
        })
        .then(() => this.ackMany(packets));
      round = { packets, promise };
      this.ackRound = round;
    }
    round.packets.push({ packet, generation });
    return round.promise;
  }

  /**
   * PUBACKs of the current connection's messages, written as one buffer: 4 bytes each (type,
   * remaining length 2, packet id; MQTT 5 lets a success PUBACK leave out its reason code). Written
   * to the connection's stream directly: mqtt.js writes each of its packets in one synchronous
   * call, so ours cannot land inside one of them, and a PUBACK carries no state for mqtt.js.
   */
  private ackMany(held: readonly Held[]): void {
    const client = this.client;
    if (!client || !client.connected) return;
    const stream = client.stream as NodeJS.WritableStream & { writable?: boolean; destroyed?: boolean };
    if (!stream || stream.destroyed || stream.writable === false) return;
    let n = 0;
    const buf = Buffer.allocUnsafe(held.length * 4);
    for (const { packet, generation } of held) {
      if (packet.qos === 0 || packet.messageId === undefined || generation !== this.generation) continue;
      buf[n] = 0x40;
      buf[n + 1] = 0x02;
      buf.writeUInt16BE(packet.messageId, n + 2);
      n += 4;
    }
    if (n === 0) return;
    stream.write(n === buf.length ? buf : buf.subarray(0, n));
    this.acked += n / 4;
  }

  private resumeIfBelow(): void {
    if (!this.paused || this.closed) return;
    if (this.pending >= this.maxPending * 0.9) return;
    this.paused = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.releaseHeld();
    this.showState();
  }

  /** Spools what was held on the current connection and lets mqtt.js go on. */
  private releaseHeld(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (h.generation !== this.generation) continue;
      this.spoolAndAck(h.packet, h.generation);
      h.proceed();
    }
  }

  private showState(): void {
    if (this.closed) return;
    if (this.spoolFailed) return;
    if (!this.client?.connected) this.state('disconnected');
    else this.state(this.paused ? 'paused' : 'connected');
  }

  private state(s: SubscriberState, detail?: string): void {
    try {
      this.opts.onState?.(s, detail);
    } catch {
      // a status listener's bug must not stop ingest
    }
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** Removes a subscription from the session (the broker then routes that filter's messages elsewhere). */
  async unsubscribe(topic: string): Promise<void> {
    const client = this.client;
    if (!client?.connected) throw new Error('not connected');
    await client.unsubscribeAsync(topic);
  }

  /**
   * Ends the connection without unsubscribing (the session keeps the subscription and queues
   * what arrives meanwhile), waits for the appends in flight, leaves held messages unacknowledged.
   *
   * `deleteSession`: the broker deletes the session (MQTT 5: DISCONNECT with session expiry 0;
   * MQTT 3.1.1: a clean-session connect after it). Messages still arriving before the DISCONNECT
   * are spooled (the session and its copies are gone after it); held ones are spooled first.
   */
  async close(opts: { deleteSession?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
    if (opts.deleteSession && this.client) return this.closeDeletingSession(this.client);
    this.held = [];
    // Bounded: an append that never ends (a hung disk) must not hold Node-RED's close.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    const client = this.client;
    this.client = null;
    if (client) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => client.end(true, {}, () => resolve()), 2000);
        client.end(false, {}, () => {
          clearTimeout(force);
          resolve();
        });
      });
    }
    this.state('closed');
  }

  private async closeDeletingSession(client: MqttClient): Promise<void> {
    this.finishing = true;
    this.paused = false;
    this.releaseHeld();
    const v5 = this.opts.protocolVersion !== 4;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => client.end(true, {}, () => resolve()), 5000);
      client.end(false, v5 ? { properties: { sessionExpiryInterval: 0 } } : {}, () => {
        clearTimeout(force);
        resolve();
      });
    });
    this.client = null;
    // What arrived up to the DISCONNECT: committed to the spool before we report closed.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    this.finishing = false;
    if (!v5) await this.purgeSession();
    this.state('closed');
  }

  /**
   * MQTT 3.1.1 has no session expiry: a clean-session connect discards the stored session. (Should
   * the owner reconnect in the few ms between, this would discard its new session too, with what is
   * in flight to it: MQTT 5 has no such window.)
   */
  private purgeSession(): Promise<void> {
    const o = this.opts;
    return new Promise<void>((resolve) => {
      const c = (o.connect ?? mqtt.connect)(o.url, {
        clientId: o.clientId,
        clean: true,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        ...(o.username ? { username: o.username } : {}),
        ...(o.password ? { password: o.password } : {}),
        ...(o.tls ? { ...o.tls, rejectUnauthorized: true } : {}),
      });
      const done = () => {
        c.removeAllListeners();
        c.on('error', () => undefined);
        resolve();
      };
      c.once('connect', () => c.end(false, {}, done));
      c.once('error', () => c.end(true, {}, done));
      c.once('close', () => c.end(true, {}, done));
    });
  }
}
