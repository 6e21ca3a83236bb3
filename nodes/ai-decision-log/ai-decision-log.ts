/**
 * Node `ai-decision-log`: records AI decisions (from a flow, MQTT `{prefix}/ai/decisions` or
 * `POST /api/ai-decisions/`), publishes their commands, and answers the REST operations on
 * decisions and `POST /api/commands/`. The logic is in decision-log-ops.ts.
 * Outputs: 1 the row / HTTP answer, 2 one MQTT message per command, 3 `{type: 'ai_decision'}`.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from 'node-red';
import { DatabaseUnavailableError } from '../hypervolt-database/database-connection';
import type { DatabaseProvider } from '../hypervolt-database/database-connection';
import { normalizeTopicPrefix } from '../shared/api/commands';
import { metrics } from '../shared/metrics';
import { parseOperation, runDecisionOperation } from './decision-log-ops';
import type { DecisionOperation, Msg } from './decision-log-ops';

interface DecisionLogDef extends NodeDef {
  database?: string;
  operation?: string;
  topicPrefix?: string;
  /** TypedInput type of `topicPrefix`: `str` (also when missing, as in older flows), `env` or `msg`. */
  topicPrefixType?: string;
}

export = function (RED: NodeAPI) {
  function AiDecisionLogNode(this: Node, config: DecisionLogDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const t = (key: string, vars?: Record<string, string | number>) => RED._(`ai-decision-log.${key}`, vars);
    let op: DecisionOperation;
    let topicPrefix: string;
    const prefixType = config.topicPrefixType === 'env' || config.topicPrefixType === 'msg' ? config.topicPrefixType : 'str';
    try {
      op = parseOperation(config.operation);
      // A msg-sourced prefix is read per msg; until then (and when the msg has none) the default.
      topicPrefix = normalizeTopicPrefix(
        prefixType === 'msg' ? '' : prefixType === 'env' ? RED.util.evaluateNodeProperty(config.topicPrefix ?? '', 'env', node, {}) : config.topicPrefix,
      );
    } catch (err) {
      const error = err as Error;
      node.status({ fill: 'red', shape: 'ring', text: error.message });
      node.on('input', (_msg, _send, done) => done(error));
      return;
    }
    const provider = config.database ? (RED.nodes.getNode(config.database) as unknown as DatabaseProvider | null) : null;
    const getDatabase = provider
      ? () => provider.getDatabase()
      : () => Promise.reject(new DatabaseUnavailableError(t('errors.no-database')));
    const recorded = metrics.counter('hypervolt_ai_decisions_recorded_total', 'AI decisions stored.');
    const published = metrics.counter('hypervolt_commands_published_total', 'Device commands sent to MQTT.');
    let count = 0;
    let commandCount = 0;
    node.status(op === 'command' || provider ? { fill: 'grey', shape: 'ring', text: t(`operation.${op}`) } : { fill: 'red', shape: 'ring', text: t('errors.no-database') });
    provider?.connection.register(node.id);

    node.on('input', (msg, send, done) => {
      let prefix = topicPrefix;
      if (prefixType === 'msg') {
        let value: unknown;
        try {
          value = RED.util.evaluateNodeProperty(config.topicPrefix ?? '', 'msg', node, msg);
        } catch {
          value = undefined; // a missing parent (msg.site.prefix without msg.site): no prefix given
        }
        try {
          prefix = normalizeTopicPrefix(value);
        } catch (err) {
          done(err as Error);
          return;
        }
      }
      runDecisionOperation(op, msg as unknown as Msg, { getDatabase, now: Date.now(), topicPrefix: prefix }).then(
        (out) => {
          const commands = out.commands.map((c) => ({ _msgid: msg._msgid, ...c }) as unknown as NodeMessage);
          const broadcast = out.broadcast ? ({ _msgid: msg._msgid, payload: out.broadcast } as NodeMessage) : null;
          send([out.result as unknown as NodeMessage, commands.length ? commands : null, broadcast]);
          if (out.broadcast) {
            count += 1;
            recorded.inc();
          }
          commandCount += commands.length;
          if (commands.length) published.inc(undefined, commands.length);
          if (out.error) {
            node.status({ fill: 'yellow', shape: 'ring', text: t('status.unavailable') });
            return done(out.error);
          }
          node.status({ fill: 'green', shape: 'dot', text: t('status.counts', { decisions: count, commands: commandCount }) });
          done();
        },
        (err: Error) => {
          node.status({ fill: 'red', shape: 'ring', text: t('status.error', { code: (err as { code?: string }).code ?? 'ERROR' }) });
          done(err);
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      provider?.connection.deregister(node.id);
      done();
    });
  }

  RED.nodes.registerType('ai-decision-log', AiDecisionLogNode);
};
