/**
 * Device commands (CONTRACT section 2): `POST /api/commands/` and the `commands` of an AI
 * decision become MQTT messages on `{prefix}/commands/{device_id}`, QoS 1, not retained,
 * payload `{"command", "value", "timestamp"}`.
 */
import { accepted } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import { COMMAND, validateBody } from '../schema';
import { invalid } from './common';
import type { ApiContext } from './common';

export const DEFAULT_TOPIC_PREFIX = 'HyperVolt';

export interface DeviceCommand {
  device_id: string;
  command: string;
  value: unknown;
}

/** What an `mqtt out` node publishes. */
export interface CommandMessage {
  topic: string;
  payload: { command: string; value: unknown; timestamp: string };
  qos: 1;
  retain: false;
}

/**
 * The topic prefix from a node setting: `${MQTT_TOPIC_PREFIX}` unset arrives as '' → `HyperVolt`.
 * Surrounding slashes are dropped; a prefix with MQTT wildcards cannot be published to.
 */
export function normalizeTopicPrefix(prefix: unknown): string {
  const p = typeof prefix === 'string' ? prefix.trim().replace(/^\/+|\/+$/g, '') : '';
  if (p === '') return DEFAULT_TOPIC_PREFIX;
  if (/[+#\u0000]/.test(p)) throw new Error(`topic prefix "${p}" may not contain +, # or NUL`);
  return p;
}

export function commandTopic(prefix: string, deviceId: string): string {
  return `${prefix}/commands/${deviceId}`;
}

/** One MQTT message per command, in order. `deviceId`s are validated (no `/`, `+`, `#`). */
export function commandMessages(commands: readonly DeviceCommand[], prefix: string, now: number): CommandMessage[] {
  const timestamp = new Date(now).toISOString();
  return commands.map((c) => ({
    topic: commandTopic(prefix, c.device_id),
    payload: { command: c.command, value: c.value ?? null, timestamp },
    qos: 1,
    retain: false,
  }));
}

export interface AcceptedCommand {
  response: ApiResponse;
  /** The message to publish; absent when the body was invalid. */
  message?: CommandMessage;
}

/** `POST /api/commands/` `{"device_id", "command", "value"}` → 202 and the message to publish, or 400. */
export function acceptCommand(req: Pick<ApiRequest, 'body'>, ctx: ApiContext): AcceptedCommand {
  const v = validateBody(COMMAND, req.body, 'create', { now: ctx.now });
  if (!v.ok) return { response: invalid(v.errors) };
  const cmd = v.value as unknown as DeviceCommand;
  const prefix = normalizeTopicPrefix(ctx.topicPrefix);
  const [message] = commandMessages([cmd], prefix, ctx.now);
  return {
    response: accepted({ status: 'accepted', device_id: cmd.device_id, command: cmd.command, topic: message.topic }),
    message,
  };
}
