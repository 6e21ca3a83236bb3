/**
 * Node `hot-window`: pushes readings into the hot store, answers the buffer endpoint, builds the
 * AI context, stores grid context rows, reports health, publishes to and emits from the store's
 * broadcast channel (WebSocket fan-out across instances) and gates scheduled work on leadership.
 * The work is in hot-window-ops.ts, broadcast.ts and leadership.ts.
 *
 * Pushes are not awaited one after another: every msg starts its push at once, and the store
 * sends all the pushes of one tick as one script call (`pushMany`; no batching timer, so no added
 * latency and nothing held back on close).
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { applyApiResponse, ok, unavailable } from '../shared/http';
import { systemClock } from '../shared/clock';
import type { HotStoreConfigNode } from '../hypervolt-hot-store/hot-store-config';
import {
  broadcastMessages, buildContext, checkHealth, leaderGateSettings, newOnlyPayload, parseBroadcastFormat, parseOperation,
  parsePassOn, pushPayload, readBuffer, setContextRows, withHealth, UNAVAILABLE_DETAIL, type HotWindowOperation,
} from './hot-window-ops';
import { LeaderGate } from './leadership';
import { ThrottledStatus } from './hot-window-status';
import { completions } from '../shared/spool/tracker';
import type { DatabaseProvider } from '../hypervolt-database/database-connection';
import { WindowRebuilder } from './window-rebuild';

type Msg = NodeMessage & Record<string, unknown>;
type Send = (msg: NodeMessage) => void;

export = function (RED: NodeAPI) {
  function HotWindowNode(
    this: Node,
    def: NodeDef & {
      store?: string; operation?: string; lock?: string; ttl?: string; passOn?: string; format?: string; database?: string;
    },
  ) {
    RED.nodes.createNode(this, def);
    const node = this;
    const t = (key: string, vars?: Record<string, string | number>) => RED._(`hot-window.${key}`, vars);
    const storeNode = def.store ? (RED.nodes.getNode(def.store) as HotStoreConfigNode | null) : null;
    let operation: HotWindowOperation;
    let gateSettings = { lock: '', ttlMs: 0 };
    try {
      operation = parseOperation(def.operation);
      if (operation === 'leader-gate') gateSettings = leaderGateSettings(def.lock, def.ttl);
      if (!storeNode || typeof storeNode.getStore !== 'function') throw new Error(t('errors.no-store'));
    } catch (err) {
      const error = err as Error;
      node.status({ fill: 'red', shape: 'ring', text: error.message });
      node.on('input', (_msg, _send, done) => done(error));
      return;
    }
    const store = storeNode.getStore();
    const passOn = parsePassOn(def.passOn);
    const format = parseBroadcastFormat(def.format);
    const counts = operation === 'push' || operation === 'broadcast' || operation === 'on-broadcast';
    const countKey = operation === 'push' ? 'status.readings' : 'status.messages';
    let gate: LeaderGate | undefined;
    const status = new ThrottledStatus(
      (s) => node.status(s),
      {
        connected: (count) => {
          if (gate) return t(gate.isLeader ? 'status.leader' : 'status.standby', { lock: gate.lock });
          return count === undefined ? t('status.connected') : t(countKey, { count });
        },
        connecting: t('status.connecting'),
        disconnected: t('status.disconnected'),
        closed: t('status.closed'),
      },
      store.state,
      counts,
    );
    const unsubscribe = storeNode.onState((state, err) => status.setState(state, err));
    // push with a database: windows lost by the store are rebuilt from the cold store (window-rebuild.ts).
    const database = operation === 'push' && def.database ? (RED.nodes.getNode(def.database) as unknown as DatabaseProvider | null) : null;
    const rebuilder = database
      ? new WindowRebuilder({
          store,
          recent: async (sensors, limit) =>
            (await database.getDatabase()).readings.newestBefore(
              sensors.map((s) => ({ sensor_type: s.key.sensor_type, sensor_id: s.key.sensor_id, before: s.before })),
              limit,
            ),
          logger: { log: (m) => node.log(m), warn: (m) => node.warn(m) },
        })
      : undefined;

    const handlers: Record<HotWindowOperation, (msg: Msg, send: Send) => Promise<void>> = {
      push: async (msg, send) => {
        // A spooled message's entry also waits for this push, so maxPending bounds this path too.
        const msgid = msg._msgid as string | undefined;
        completions.hold(msgid);
        let pushed: Awaited<ReturnType<typeof pushPayload>>;
        try {
          pushed = await pushPayload(store, msg.payload);
        } catch (err) {
          completions.release(msgid);
          throw err;
        }
        // Released one turn after the send, once the next node (a broadcast) took its own hold.
        const release = () => void setImmediate(() => completions.release(msgid));
        const { count, fresh } = pushed;
        rebuilder?.notice(pushed.readings); // not awaited: a rebuild never holds a msg back
        status.succeeded(count);
        if (passOn === 'all') {
          send(msg);
          return release();
        }
        // `new` only: a redelivered reading (already in its window) goes no further.
        const payload = newOnlyPayload(msg.payload, fresh);
        if (payload !== undefined) {
          msg.payload = payload;
          send(msg);
        }
        release();
      },
      read: async (msg, send) => {
        const { response, error } = await readBuffer(store, msg);
        applyApiResponse(msg, response);
        send(msg); // the client gets its 503 even when the store failed
        if (error) throw error;
        status.succeeded();
      },
      context: async (msg, send) => {
        try {
          const payload = await buildContext(store, systemClock.now());
          if (msg.req) applyApiResponse(msg, ok(payload));
          else msg.payload = payload;
        } catch (err) {
          if (!msg.req) throw err;
          applyApiResponse(msg, unavailable(UNAVAILABLE_DETAIL));
          send(msg);
          throw err;
        }
        send(msg);
        status.succeeded();
      },
      'set-context': async (msg, send) => {
        await setContextRows(store, msg.payload);
        send(msg);
        status.succeeded();
      },
      health: async (msg, send) => {
        msg.health = withHealth(msg.health, await checkHealth(store, 1000));
        send(msg); // a down store is an answer here, not an error
      },
      broadcast: async (msg) => {
        const messages = broadcastMessages(msg.payload, format);
        const msgid = msg._msgid as string | undefined;
        completions.hold(msgid); // as push: the spool entry waits for the publish too
        try {
          await store.publish(messages);
        } finally {
          completions.release(msgid);
        }
        status.succeeded(messages.length);
      },
      // Emits what the channel carries (below); a msg sent to it has nothing to do.
      'on-broadcast': async () => undefined,
      'leader-gate': async (msg, send) => {
        if (await gate!.check()) send(msg);
      },
    };

    let unsubscribeBroadcast: (() => void) | undefined;
    if (operation === 'on-broadcast') {
      let handedOn: Promise<void> | null = null;
      unsubscribeBroadcast = store.subscribe((message) => {
        node.send({ payload: message });
        status.succeeded(1);
        // Node-RED delivers each msg sent above in an immediate of its own; the batch's messages
        // are all sent before a microtask runs, so an immediate queued from there runs after every
        // one of their deliveries (immediates run in order). Until then this instance's publish
        // waits, and with it the readings' spool entries: the WebSocket sends of a burst are
        // within sensor-in's maxPending, not an unbounded queue of msgs in Node-RED.
        handedOn ??= new Promise<void>((resolve) => {
          queueMicrotask(() => {
            handedOn = null;
            setImmediate(resolve);
          });
        });
        return handedOn;
      });
    }
    if (operation === 'leader-gate') {
      gate = new LeaderGate(store, gateSettings.lock, gateSettings.ttlMs, (leading, err) => {
        if (err) return status.failed(err);
        // In the log too: which instance runs a schedule is what an operator asks first.
        node.log(t(leading ? 'log.leader' : 'log.standby', { lock: gateSettings.lock }));
        status.succeeded();
      });
      gate.start();
    }

    node.on('input', (msg, send, done) => {
      handlers[operation](msg as Msg, send).then(
        () => done(),
        (err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          status.failed(error);
          done(error);
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      unsubscribeBroadcast?.();
      gate?.stop();
      unsubscribe();
      status.close();
      const rebuilt = rebuilder ? rebuilder.close() : Promise.resolve();
      rebuilt.then(done, done);
    });
  }
  RED.nodes.registerType('hot-window', HotWindowNode);
};
