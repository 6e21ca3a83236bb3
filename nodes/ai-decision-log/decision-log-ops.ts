/**
 * The logic of the `ai-decision-log` node, free of Node-RED: record a decision (from an AI flow,
 * MQTT or HTTP), publish its commands, answer the REST operations on decisions, and accept a
 * device command. Each operation returns the messages of the node's three outputs:
 * 1. the row or the HTTP answer, 2. one MQTT message per command, 3. `{type: 'ai_decision', data}`
 * for the WebSocket.
 */
import { apiRequestFromMsg, applyApiResponse, unavailable } from '../shared/http';
import { DB_UNAVAILABLE, serve } from '../shared/api/common';
import type { ApiContext, ApiHandler } from '../shared/api/common';
import { getDecision, latestDecision, listDecisions, patchDecision, recentDecisions, recordDecision } from '../shared/api/decisions';
import { acceptCommand } from '../shared/api/commands';
import type { CommandMessage } from '../shared/api/commands';
import type { Database } from '../shared/db/types';
import type { FieldErrors } from '../shared/schema';

export type DecisionOperation = 'record' | 'list' | 'recent' | 'latest' | 'get' | 'set-applied' | 'command';
export const DECISION_OPERATIONS: readonly DecisionOperation[] = ['record', 'list', 'recent', 'latest', 'get', 'set-applied', 'command'];

/** Largest decision text taken from MQTT or a flow (the HTTP body limit is the same). */
export const MAX_DECISION_BYTES = 1024 * 1024;

export type Msg = Record<string, unknown>;

export function parseOperation(value: unknown): DecisionOperation {
  if (value === undefined || value === '') return 'record';
  if ((DECISION_OPERATIONS as readonly unknown[]).includes(value)) return value as DecisionOperation;
  throw new Error(`unknown operation "${String(value)}"`);
}

/** A decision or command from MQTT or a flow was not valid: `errors` are the DRF-style field errors. */
export class InvalidBodyError extends Error {
  readonly code = 'INVALID_BODY';
  constructor(
    what: string,
    readonly errors: FieldErrors,
  ) {
    super(`invalid ${what}: ${JSON.stringify(errors)}`);
    this.name = 'InvalidBodyError';
  }
}

/** `msg.payload` as a decision body: an object, or JSON text / a Buffer of it (MQTT). */
export function bodyFromPayload(payload: unknown): unknown {
  let text: string;
  if (Buffer.isBuffer(payload) || payload instanceof Uint8Array) {
    if (payload.byteLength > MAX_DECISION_BYTES) throw new InvalidBodyError('payload', { non_field_errors: [`The payload is larger than ${MAX_DECISION_BYTES} bytes.`] });
    const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    } catch {
      throw new InvalidBodyError('payload', { non_field_errors: ['The payload is not valid UTF-8.'] });
    }
  } else if (typeof payload === 'string') {
    if (payload.length > MAX_DECISION_BYTES) throw new InvalidBodyError('payload', { non_field_errors: [`The payload is larger than ${MAX_DECISION_BYTES} bytes.`] });
    text = payload;
  } else {
    return payload;
  }
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new InvalidBodyError('payload', { non_field_errors: [`JSON parse error - ${(err as Error).message}`] });
  }
}

export interface Outputs {
  /** Output 1: the row, or the msg carrying the HTTP answer. */
  result: Msg | null;
  /** Output 2: the MQTT messages of the commands. */
  commands: CommandMessage[];
  /** Output 3: the WebSocket broadcast. */
  broadcast: { type: 'ai_decision'; data: unknown } | null;
  /** Reported with done(err) after the outputs are sent (an HTTP 503); absent when all went well. */
  error?: Error;
}

export interface DecisionContext extends ApiContext {
  getDatabase: () => Promise<Database>;
  topicPrefix: string;
}

const READ_HANDLERS: Record<'list' | 'recent' | 'latest' | 'get' | 'set-applied', ApiHandler> = {
  list: listDecisions,
  recent: recentDecisions,
  latest: latestDecision,
  get: getDecision,
  'set-applied': patchDecision,
};

const isHttp = (msg: Msg) => msg.req !== undefined && msg.req !== null && typeof msg.req === 'object';

/**
 * Runs an operation on `msg` (changed in place for output 1). Rejects only when nothing should
 * be sent: an invalid decision or command that did not come over HTTP, or a database failure
 * while recording one that did not (an HTTP request always gets its answer: 400 or 503).
 */
export async function runDecisionOperation(op: DecisionOperation, msg: Msg, ctx: DecisionContext): Promise<Outputs> {
  const http = isHttp(msg);
  const none: Outputs = { result: msg, commands: [], broadcast: null };
  if (op === 'command') {
    const body = http ? apiRequestFromMsg(msg).body : bodyFromPayload(msg.payload);
    const accepted = acceptCommand({ body }, ctx);
    if (!accepted.message && !http) throw new InvalidBodyError('command', accepted.response.body as FieldErrors);
    if (http) applyApiResponse(msg, accepted.response);
    else msg.payload = accepted.response.body;
    return { ...none, commands: accepted.message ? [accepted.message] : [] };
  }
  if (op === 'record') {
    const body = http ? apiRequestFromMsg(msg).body : bodyFromPayload(msg.payload);
    let recorded;
    try {
      const db = await ctx.getDatabase();
      recorded = await recordDecision(db, body, ctx);
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (!http) throw error;
      applyApiResponse(msg, unavailable(DB_UNAVAILABLE));
      return { ...none, error };
    }
    if (!recorded.row) {
      if (!http) throw new InvalidBodyError('AI decision', recorded.response.body as FieldErrors);
      applyApiResponse(msg, recorded.response);
      return none;
    }
    if (http) applyApiResponse(msg, recorded.response);
    else msg.payload = recorded.row;
    return { result: msg, commands: recorded.messages, broadcast: { type: 'ai_decision', data: recorded.row } };
  }
  const served = await serve(READ_HANDLERS[op], ctx.getDatabase, apiRequestFromMsg(msg), ctx);
  applyApiResponse(msg, served.response);
  return { ...none, error: served.error };
}
