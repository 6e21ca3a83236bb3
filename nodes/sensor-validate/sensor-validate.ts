/**
 * Node-RED glue of `sensor-validate`: the rules live in ./validate.ts. Output 1 carries accepted
 * readings (one msg each, or one batch msg), output 2 one msg per rejection, addressed to the
 * errors topic. A rejection is expected data, not a node error: only a genuine failure goes to
 * done(err).
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { systemClock } from '../shared/clock';
import { countValidation } from '../shared/metrics';
import { completions } from '../shared/spool/tracker';
import {
  parseExtraTypes,
  parseRanges,
  parseRetentionDays,
  parseTopic,
  rejectionMessage,
  resolveOptions,
  validateMqttBatch,
  validatePayload,
  type Rejection as ValidationRejection,
  type ResolvedOptions,
} from './validate';

/** Most readings in one msg sent on from a batch (cold-store takes at most 10 000 per msg). */
const MAX_OUT_READINGS = 5000;

/** What the spool's dead letter of a rejected reading says: the code and message, and the reading. */
function deadLetterOf(r: ValidationRejection): { reason: string; reading: unknown } {
  return { reason: `${r.error.code}: ${r.error.message}`, reading: r.input };
}

function isMqttBatch(msg: NodeMessage): boolean {
  return (msg as { batch?: unknown }).batch === 'mqtt' && Array.isArray(msg.payload);
}

interface SensorValidateDef extends NodeDef {
  mode?: string;
  extraTypes?: string;
  ranges?: string;
  retentionDays?: number | string;
}

/** Status updates are throttled: at high rates, one `node.status` per message is pure overhead. */
const STATUS_INTERVAL_MS = 500;

export = function (RED: NodeAPI) {
  function SensorValidateNode(this: Node, config: SensorValidateDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const batchMode = config.mode === 'batch';

    let options: ResolvedOptions | null = null;
    let configError = '';
    try {
      if (config.mode && config.mode !== 'split' && config.mode !== 'batch') throw new Error(`unknown mode "${config.mode}"`);
      options = resolveOptions({
        extraTypes: parseExtraTypes(config.extraTypes),
        ranges: parseRanges(config.ranges),
        retentionDays: parseRetentionDays(config.retentionDays),
        clock: systemClock,
      });
    } catch (err) {
      configError = (err as Error).message;
      node.error(RED._('sensor-validate.errors.config', { error: configError }));
      node.status({ fill: 'red', shape: 'dot', text: RED._('sensor-validate.status.configError') });
    }

    let accepted = 0;
    let rejected = 0;
    let lastCode = '';
    let statusTimer: NodeJS.Timeout | null = null;
    let lastStatusAt = 0;

    const showStatus = () => {
      statusTimer = null;
      lastStatusAt = Date.now();
      const counts = { accepted, rejected, code: lastCode };
      node.status(
        lastCode === ''
          ? { fill: 'green', shape: 'dot', text: RED._('sensor-validate.status.counts', counts) }
          : { fill: 'red', shape: 'ring', text: RED._('sensor-validate.status.countsLastError', counts) },
      );
    };
    const scheduleStatus = () => {
      if (statusTimer !== null) return;
      const wait = STATUS_INTERVAL_MS - (Date.now() - lastStatusAt);
      if (wait <= 0) showStatus();
      else statusTimer = setTimeout(showStatus, wait);
    };
    if (options !== null) showStatus();

    node.on('input', (msg, send, done) => {
      if (options === null) {
        done(new Error(RED._('sensor-validate.errors.misconfigured', { error: configError })));
        return;
      }
      // A batch of MQTT messages (sensor-in, output "batch"): each against its own topic.
      if (isMqttBatch(msg)) {
        let batch;
        try {
          batch = validateMqttBatch(msg.payload as unknown[], options);
        } catch (err) {
          done(err as Error);
          return;
        }
        const rejects: NodeMessage[] = batch.rejected.map(({ rejection, topic }) => ({
          _msgid: msg._msgid,
          ...rejectionMessage(rejection, parseTopic(topic)?.prefix),
        }));
        if (completions.has(msg._msgid)) {
          const reasons = batch.rejected.map(({ rejection, entry }) => ({ ...deadLetterOf(rejection), entry }));
          completions.expect(msg._msgid, batch.accepted.length, reasons);
        }
        // The readings go on as arrays (at most MAX_OUT_READINGS each, one msg in the usual case),
        // all with this msg's id: the spool entries wait for every one of them.
        // `rejected` rides on the first of them.
        let out: NodeMessage | NodeMessage[] | null = null;
        const rejected = batch.rejected.map(({ rejection: r, entry }) => ({ entry, index: r.index, error: r.error }));
        if (batch.accepted.length > 0 && batch.accepted.length <= MAX_OUT_READINGS) {
          msg.payload = batch.accepted;
          msg.rejected = rejected;
          out = msg;
        } else if (batch.accepted.length > MAX_OUT_READINGS) {
          out = [];
          for (let i = 0; i < batch.accepted.length; i += MAX_OUT_READINGS) {
            out.push({ _msgid: msg._msgid, payload: batch.accepted.slice(i, i + MAX_OUT_READINGS), ...(i === 0 ? { rejected } : {}) });
          }
        }
        if (out !== null || rejects.length > 0) send([out, rejects.length > 0 ? rejects : null]);
        count(batch.accepted.length, batch.rejected.map(({ rejection }) => rejection));
        done();
        return;
      }
      let result;
      try {
        result = validatePayload(msg.payload, msg.topic, options, (msg as { receivedAt?: number }).receivedAt);
      } catch (err) {
        // Only input no client can send gets here (e.g. an object whose getter throws).
        done(err as Error);
        return;
      }
      const prefix = parseTopic(msg.topic)?.prefix;
      const rejects: NodeMessage[] = result.rejected.map((r) => ({ _msgid: msg._msgid, ...rejectionMessage(r, prefix) }));

      // A spooled message (sensor-in): its rejects are dead-lettered, its accepted count awaited.
      if (completions.has(msg._msgid)) {
        const reasons = result.rejected.map(deadLetterOf);
        completions.expect(msg._msgid, result.accepted.length, reasons);
      }

      let out: NodeMessage | NodeMessage[] | null = null;
      if (batchMode) {
        msg.payload = result.accepted;
        msg.rejected = result.rejected.map((r) => ({ index: r.index, error: r.error }));
        out = msg;
      } else if (result.accepted.length === 1) {
        msg.payload = result.accepted[0]; // one reading: the incoming msg carries it on
        out = msg;
      } else if (result.accepted.length > 1) {
        out = result.accepted.map((reading) => ({ _msgid: msg._msgid, topic: msg.topic, payload: reading }));
      }
      if (out !== null || rejects.length > 0) send([out, rejects.length > 0 ? rejects : null]);
      count(result.accepted.length, result.rejected);
      done();
    });

    function count(acceptedNow: number, rejectedNow: readonly ValidationRejection[]): void {
      accepted += acceptedNow;
      rejected += rejectedNow.length;
      countValidation(acceptedNow, rejectedNow.map((r) => r.error.code)); // for GET /metrics
      lastCode = rejectedNow.length > 0 ? rejectedNow[rejectedNow.length - 1].error.code : '';
      scheduleStatus();
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      if (statusTimer !== null) clearTimeout(statusTimer);
      statusTimer = null;
      done();
    });
  }

  RED.nodes.registerType('sensor-validate', SensorValidateNode);
};
