/**
 * REST handlers for `/api/ai-decisions/` (CONTRACT section 4). Decisions are an audit trail:
 * created, listed, and marked applied; nothing else about them ever changes.
 */
import { created, notFound, ok } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import { paginatedResponse, parseFilters, parseListParams, parseRecentParams } from '../query-params';
import type { ListParamSpec } from '../query-params';
import type { AiDecision, AiDecisionRow, Database, DecisionFilters } from '../db/types';
import { AI_DECISION, rowJson, validateBody } from '../schema';
import { answering, invalid, methodNotAllowed, methodOf, parseId } from './common';
import type { ApiContext } from './common';
import { commandMessages, normalizeTopicPrefix } from './commands';
import type { CommandMessage, DeviceCommand } from './commands';

export const DECISIONS_LIST_PARAMS: ListParamSpec = {
  filters: { decision_type: 'text', applied: 'boolean' },
  ordering: ['timestamp', 'created_at', 'confidence'],
  defaultOrdering: '-timestamp',
};

export const DEFAULT_DECISION_HOURS = 24;

export const ONLY_APPLIED = 'Only "applied" may be changed: AI decisions are an audit trail.';

export const decisionJson = (row: AiDecisionRow): AiDecisionRow => rowJson<AiDecisionRow>(AI_DECISION, row);

/** `GET /api/ai-decisions/`: paginated; filters decision_type, applied; ordering timestamp, created_at, confidence. */
export function listDecisions(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const p = parseListParams(req.query, DECISIONS_LIST_PARAMS);
    const result = await db.decisions.list({ filters: p.filters as DecisionFilters, ordering: p.ordering, page: p.page, pageSize: p.pageSize });
    return paginatedResponse(req, p.page, { ...result, rows: result.rows.map(decisionJson) });
  });
}

/** `GET /api/ai-decisions/recent/?hours=24&limit=&decision_type=`: newest first, a plain array. */
export function recentDecisions(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const p = parseRecentParams(req.query, { decision_type: 'text' }, DEFAULT_DECISION_HOURS);
    const rows = await db.decisions.recent({
      hours: p.hours,
      limit: p.limit,
      decision_type: p.filters.decision_type as string | undefined,
      now: ctx.now,
    });
    return ok(rows.map(decisionJson));
  });
}

/** `GET /api/ai-decisions/latest/?decision_type=`: one row, or 404 `{"detail": "Not found."}`. */
export function latestDecision(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const { decision_type } = parseFilters(req.query, { decision_type: 'text' });
    const row = await db.decisions.latest(decision_type as string | undefined);
    return row ? ok(decisionJson(row)) : notFound();
  });
}

/** `GET /api/ai-decisions/{id}/` (what a DRF user expects beside the PATCH). */
export async function getDecision(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  const id = parseId(req.params?.id);
  const row = id === undefined ? undefined : await db.decisions.get(id);
  return row ? ok(decisionJson(row)) : notFound();
}

export interface RecordedDecision {
  /** 201 with the row, or 400 with field errors. */
  response: ApiResponse;
  row?: AiDecisionRow;
  /** The commands to publish, once the row is stored. */
  messages: CommandMessage[];
}

/**
 * Validates and stores a decision body (from HTTP, MQTT or a flow). Its `commands` are stored in
 * `decision.commands` and returned as the MQTT messages to publish. Throws only when the
 * database fails.
 */
export async function recordDecision(db: Database, body: unknown, ctx: ApiContext): Promise<RecordedDecision> {
  const v = validateBody(AI_DECISION, body, 'create', { now: ctx.now });
  if (!v.ok) return { response: invalid(v.errors), messages: [] };
  const { commands, ...fields } = v.value as unknown as AiDecision & { commands?: DeviceCommand[] };
  const prefix = normalizeTopicPrefix(ctx.topicPrefix);
  const decision = commands === undefined ? fields.decision : { ...fields.decision, commands };
  const row = decisionJson(await db.decisions.insert({ ...fields, decision }));
  return { response: created(row), row, messages: commandMessages(commands ?? [], prefix, ctx.now) };
}

/** `POST /api/ai-decisions/`: 201 with the stored row (the caller publishes the commands). */
export async function createDecision(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  return (await recordDecision(db, req.body, ctx)).response;
}

/** `PATCH /api/ai-decisions/{id}/` `{"applied": true|false}`; any other field of a decision: 400. */
export async function patchDecision(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const method = methodOf(req);
  if (method === 'GET' || method === 'HEAD') return getDecision(db, req, ctx);
  if (method !== 'PATCH') return methodNotAllowed(method, ['GET', 'PATCH']);
  const id = parseId(req.params?.id);
  if (id === undefined || !(await db.decisions.get(id))) return notFound();
  const forbidden: Record<string, string> = {};
  for (const [name, field] of Object.entries(AI_DECISION.fields)) {
    if (!field.readOnly && name !== 'applied') forbidden[name] = ONLY_APPLIED;
  }
  const v = validateBody(AI_DECISION, req.body, 'partial', { now: ctx.now, forbidden });
  if (!v.ok) return invalid(v.errors);
  if (typeof v.value.applied !== 'boolean') return invalid({ applied: ['This field is required.'] });
  const row = await db.decisions.setApplied(id, v.value.applied);
  return row ? ok(decisionJson(row)) : notFound();
}
