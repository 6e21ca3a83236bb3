/**
 * REST handlers for `/api/energy-sources/` (CONTRACT section 4): list by priority (highest
 * first), the `available` action, create, and GET | PUT | PATCH by id. No DELETE (405).
 */
import { created, notFound, ok } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import { paginatedResponse } from '../query-params';
import type { Database, EnergySource, EnergySourceRow } from '../db/types';
import { ENERGY_SOURCE, rowJson, validateBody } from '../schema';
import { answering, asConflict, conflictResponse, invalid, lastPathSegment, methodNotAllowed, methodOf, pageParams, parseId } from './common';
import type { ApiContext } from './common';

export const AVAILABLE_ACTION = 'available';

export const energySourceJson = (row: EnergySourceRow): EnergySourceRow => rowJson<EnergySourceRow>(ENERGY_SOURCE, row);

/** `GET /api/energy-sources/`: paginated, highest priority first. */
export function listEnergySources(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const p = pageParams(req.query);
    const result = await db.energySources.list({ page: p.page, pageSize: p.pageSize });
    return paginatedResponse(req, p.page, { ...result, rows: result.rows.map(energySourceJson) });
  });
}

/** `GET /api/energy-sources/available/`: the available sources, highest priority first, as an array. */
export async function availableEnergySources(db: Database, _req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return ok((await db.energySources.available()).map(energySourceJson));
}

/** `POST /api/energy-sources/`: 201; a source_type that exists: 400 `{"source_type": [...]}`. */
export async function createEnergySource(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const v = validateBody(ENERGY_SOURCE, req.body, 'create', { now: ctx.now });
  if (!v.ok) return invalid(v.errors);
  try {
    return created(energySourceJson(await db.energySources.create(v.value as unknown as EnergySource)));
  } catch (err) {
    return conflictResponse(ENERGY_SOURCE, asConflict(err));
  }
}

/** `GET | PUT | PATCH /api/energy-sources/{id}/`. */
export async function energySourceDetail(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const method = methodOf(req);
  if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT' && method !== 'PATCH') {
    return methodNotAllowed(method, ['GET', 'PUT', 'PATCH']);
  }
  const id = parseId(req.params?.id);
  const existing = id === undefined ? undefined : await db.energySources.get(id);
  if (!existing || id === undefined) return notFound();
  if (method === 'GET' || method === 'HEAD') return ok(energySourceJson(existing));
  const v = validateBody(ENERGY_SOURCE, req.body, method === 'PUT' ? 'replace' : 'partial', { now: ctx.now });
  if (!v.ok) return invalid(v.errors);
  try {
    const row =
      method === 'PUT'
        ? await db.energySources.replace(id, v.value as unknown as EnergySource)
        : Object.keys(v.value).length === 0
          ? existing
          : await db.energySources.patch(id, v.value as Partial<EnergySource>);
    return row ? ok(energySourceJson(row)) : notFound();
  } catch (err) {
    return conflictResponse(ENERGY_SOURCE, asConflict(err));
  }
}

/**
 * The whole resource for one node operation behind every `/api/energy-sources/...` route: no
 * `id` → list (GET) or create (POST); `available` → the action (GET only); else the detail.
 */
export async function energySources(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const method = methodOf(req);
  const id = req.params?.id || (lastPathSegment(req.url) === AVAILABLE_ACTION ? AVAILABLE_ACTION : undefined);
  if (id === undefined || id === '') {
    if (method === 'GET' || method === 'HEAD') return listEnergySources(db, req, ctx);
    if (method === 'POST') return createEnergySource(db, req, ctx);
    return methodNotAllowed(method, ['GET', 'POST']);
  }
  if (id === AVAILABLE_ACTION) {
    return method === 'GET' || method === 'HEAD' ? availableEnergySources(db, req, ctx) : methodNotAllowed(method, ['GET']);
  }
  return energySourceDetail(db, req, ctx);
}
