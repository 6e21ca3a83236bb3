/**
 * Node `cold-store`: writes readings (batched) and grid data to the database of a
 * `hypervolt-database` config node, and answers the REST operations on readings, the retention
 * cleanup and the health check. Logic in cold-store-ops.ts and reading-batcher.ts.
 */
import path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { Reading, ReadingRow } from '../shared/types';
import { DatabaseProvider, DatabaseUnavailableError } from '../hypervolt-database/database-connection';
import { ReadingBatcher, isPermanentFailure } from './reading-batcher';
import { dataDir, envText } from '../shared/node-settings';
import { ReadingSpill } from './reading-spill';
import { SpillingWriter } from './spilling-writer';
import { completions } from '../shared/spool/tracker';
import { parsePositiveInt, parseRetentionDays } from './cold-store-input';
import * as ops from './cold-store-ops';
import { metrics } from '../shared/metrics';
import { jsonBytes } from '../shared/http';

interface ColdStoreDef extends NodeDef {
  database?: string;
  operation?: string;
  batchSize?: string | number;
  flushMs?: string | number;
  /** `idle` (default): flush whenever no flush is in flight; `timer`: wait for batch size or flushMs. */
  flushWhen?: string;
  /** `rows` (default): the output carries the stored rows; `none`: the msg passes on as it came. */
  output?: string;
  /** Answers to HTTP requests: `object` (default) in msg.payload, or `json`: JSON bytes (a Buffer) for `http response`. */
  body?: string;
  maxQueued?: string | number;
  /** `on` (default where there is a data directory): spill to a local file while the database is down; `off`. */
  spill?: string;
  /** The spill file (may hold `${VAR}`); default `{DATA_DIR or userDir}/cold-spill-{node id}.db`. */
  spillPath?: string;
  /** Readings kept in memory during an outage before spilling (default 1000). */
  spillAfter?: string | number;
  /** Readings the spill file may hold (default 1 000 000). */
  maxSpilled?: string | number;
  retentionDays?: string | number;
  dataType?: string;
}

export = function (RED: NodeAPI) {
  function ColdStoreNode(this: Node, config: ColdStoreDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const op = (ops.OPERATIONS as readonly string[]).includes(config.operation ?? '')
      ? (config.operation as ops.Operation)
      : 'write-readings';
    const t = (key: string, params?: Record<string, string | number>) => RED._(`cold-store.${key}`, params);
    const provider = config.database ? (RED.nodes.getNode(config.database) as unknown as DatabaseProvider | null) : null;
    const getDatabase: ops.DatabaseSource = provider
      ? () => provider.getDatabase()
      : () => Promise.reject(new DatabaseUnavailableError(t('errors.no-database')));

    const flushSeconds = metrics.summary('hypervolt_cold_store_flush_seconds', 'Time to write one batch of readings.');
    // Rows cost a RETURNING, a lookup of duplicates and an object per reading: only when used.
    const jsonBody = config.body === 'json';
    const wantRows = ops.wantsRows(config.output, (node as unknown as { wires?: unknown }).wires);
    const batcher =
      op === 'write-readings'
        ? new ReadingBatcher<Reading, ReadingRow | null>({
            flush: ops.readingFlush(getDatabase, (seconds) => flushSeconds.observe(seconds, { node: node.id }), wantRows),
            maxBatch: parsePositiveInt(config.batchSize, 500),
            maxDelayMs: parsePositiveInt(config.flushMs, 100),
            flushWhenIdle: config.flushWhen !== 'timer',
            maxQueued: parsePositiveInt(config.maxQueued, 100_000),
            isRetryable: ops.isRetryableDbError,
            onEvent: (e) => {
              if (e.type === 'down') node.warn(t('log.down', { waiting: e.waiting, error: e.error }));
              else node.log(t('log.up', { written: e.written, seconds: Math.round(e.downForMs / 1000) }));
              status.request();
            },
          })
        : null;
    const writer = batcher ? new SpillingWriter({
      batcher,
      spill: openSpill(),
      spillAfter: parsePositiveInt(config.spillAfter, 1000),
      maxSpilled: parsePositiveInt(config.maxSpilled, 1_000_000),
      onError: (err) => node.warn(t('log.spill-error', { error: err.message })),
      onDrained: (count) => {
        node.log(t('log.drained', { count }));
        status.request();
      },
    }) : null;
    // The writer's counters, for a metrics flow (and the node tests).
    const writerStats = () => ({ ...batcher!.stats(), spilled: writer!.spilled, drained: writer!.spill?.drained ?? 0 });
    if (writer) Object.assign(node, { stats: writerStats });
    const uncollect = writer ? metrics.collect(`cold-store:${node.id}`, () => ops.writerFamilies(node.id, writerStats())) : undefined;
    const needsDatabase = !ops.NO_DATABASE_OPERATIONS.includes(op);
    const dataType = (ops.RECENT_GRID_TYPES as readonly string[]).includes(config.dataType ?? '') ? config.dataType : 'carbon_intensity';

    /** The spill file, where there is a place for it (created on the first spill, not before). */
    function openSpill(): ReadingSpill | null {
      if (config.spill === 'off') return null;
      const file = envText(RED, node, config.spillPath);
      const dir = dataDir(RED, node);
      if (!file && !dir) return null;
      try {
        return new ReadingSpill(file || path.join(dir, `cold-spill-${node.id}.db`));
      } catch (err) {
        node.warn(t('log.spill-error', { error: (err as Error).message }));
        return null;
      }
    }

    let refusedShown = 0;
    const status = new ops.Throttle(() => {
      const dbState = provider ? provider.state : 'down';
      const stats = writer ? writerStats() : undefined;
      const s = stats ? ops.writeStatus(stats, dbState, refusedShown) : needsDatabase ? ops.queryStatus(dbState) : ops.readyStatus();
      if (stats) refusedShown = stats.refused;
      node.status({ fill: s.fill, shape: s.shape, text: t(`status.${s.key}`, s.params) });
    }, 500);
    status.run();
    provider?.connection.register(node.id);
    const unsubscribe = provider?.connection.onState(() => status.request());

    /**
     * The spool's side of a write's outcome: stored; refused by the database for good (dead-lettered);
     * or anything else (queue full, closing): the spool keeps the message and replays it on the next
     * start (stored once).
     */
    const settle = (msgid: string | undefined, readings: Reading[], err: Error | null | undefined) => {
      if (!err) completions.stored(msgid, readings.length);
      else if (isPermanentFailure(err)) completions.failed(msgid, readings, err.message);
      else completions.forget(msgid);
    };

    /** Writes each reading as its own message, settling each; resolves with the first error. */
    const eachAlone = (msgid: string | undefined, readings: Reading[]): Promise<Error | undefined> =>
      Promise.all(
        readings.map(
          (r) =>
            new Promise<Error | undefined>((resolve) => {
              writer!.add([r], (err) => {
                status.request();
                settle(msgid, [r], err);
                resolve(err ?? undefined);
              });
            }),
        ),
      ).then((errors) => errors.find((e) => e !== undefined));

    node.on('input', (msg, send, done) => {
      const m = msg as unknown as ops.Msg;
      if (!batcher) {
        const ctx = { getDatabase, retentionDays: parseRetentionDays(config.retentionDays), now: Date.now(), dataType, jsonText: jsonBody };
        ops.runOperation(op, m, ctx).then(
          (err) => {
            if (jsonBody && m.req !== undefined && typeof m.payload === 'object' && m.payload !== null && !Buffer.isBuffer(m.payload)) {
              m.payload = jsonBytes(m.payload); // serialised once for identical concurrent reads
            }
            send(msg);
            done(err);
          },
          (err: Error) => done(err),
        );
        return;
      }
      let parsed: { readings: Reading[]; single: boolean };
      try {
        parsed = ops.readingsFromPayload(m.payload);
      } catch (err) {
        completions.failed(msg._msgid, [m.payload], (err as Error).message); // spooled: dead-lettered
        done(err as Error);
        return;
      }
      writer!.add(parsed.readings, (err, rows, spilled) => {
        status.request();
        if (err) {
          // A msg of many readings (sensor-in's batches) refused for good: each reading again on
          // its own, so the batcher's bisect isolates the poison one and the others are stored.
          if (isPermanentFailure(err) && parsed.readings.length > 1 && m.req === undefined) {
            eachAlone(msg._msgid, parsed.readings).then((first) => done(first ?? err));
            return;
          }
          settle(msg._msgid, parsed.readings, err);
          return done(err);
        }
        settle(msg._msgid, parsed.readings, null);
        // In the spill file, durable, not yet in the database: nothing stored to send on.
        if (spilled) return done();
        if (wantRows) m.payload = parsed.single ? rows?.[0] : rows;
        send(msg);
        done();
      }, m.req === undefined); // an HTTP request waits for its rows: never spilled
      status.request();
    });

    node.on('close', (removed: boolean, done: () => void) => {
      unsubscribe?.();
      uncollect?.();
      if (removed) flushSeconds.remove({ node: node.id });
      const finish = () => {
        status.stop();
        provider?.connection.deregister(node.id);
        done();
      };
      // Write what is still queued before the database closes (the config node waits for us).
      (writer ? writer.close() : Promise.resolve()).then(finish, finish);
    });
  }

  RED.nodes.registerType('cold-store', ColdStoreNode);
};
