/**
 * REST handlers for `/api/preferences/` (CONTRACT section 4): a DRF ModelViewSet with
 * `lookup_field = preference_key` plus the `get_preference` action.
 */
import { badQuery, created, noContent, notFound, ok } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import { paginatedResponse, queryValue } from '../query-params';
import type { Database, UserPreference, UserPreferenceRow } from '../db/types';
import { rowJson, USER_PREFERENCE, validateBody } from '../schema';
import { answering, asConflict, conflictResponse, invalid, lastPathSegment, methodNotAllowed, methodOf, pageParams } from './common';
import type { ApiContext } from './common';

/** The action path segment: `/api/preferences/get_preference/` shadows a preference of that key (as DRF routes it). */
export const GET_PREFERENCE_ACTION = 'get_preference';

export const preferenceJson = (row: UserPreferenceRow): UserPreferenceRow => rowJson<UserPreferenceRow>(USER_PREFERENCE, row);

/** `GET /api/preferences/`: paginated, newest first. */
export function listPreferences(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const p = pageParams(req.query);
    const result = await db.preferences.list({ page: p.page, pageSize: p.pageSize });
    return paginatedResponse(req, p.page, { ...result, rows: result.rows.map(preferenceJson) });
  });
}

/** `GET /api/preferences/get_preference/?key=`: 400 without key, 404 `{"error": "Preference not found"}`. */
export function getPreferenceByQuery(db: Database, req: ApiRequest, _ctx?: ApiContext): Promise<ApiResponse> {
  return answering(async () => {
    const key = queryValue(req.query, 'key');
    if (key === undefined || key === '') return badQuery('key is required');
    const row = await db.preferences.getByKey(key);
    return row ? ok(preferenceJson(row)) : { status: 404, body: { error: 'Preference not found' } };
  });
}

/** `POST /api/preferences/`: 201; a key that exists: 400 `{"preference_key": [...]}`. */
export async function createPreference(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const v = validateBody(USER_PREFERENCE, req.body, 'create', { now: ctx.now });
  if (!v.ok) return invalid(v.errors);
  try {
    return created(preferenceJson(await db.preferences.create(v.value as unknown as UserPreference)));
  } catch (err) {
    return conflictResponse(USER_PREFERENCE, asConflict(err));
  }
}

/** `GET | PUT | PATCH | DELETE /api/preferences/{key}/`. */
export async function preferenceDetail(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const key = String(req.params?.key ?? '');
  const method = methodOf(req);
  if (method === 'GET' || method === 'HEAD') {
    const row = await db.preferences.getByKey(key);
    return row ? ok(preferenceJson(row)) : notFound();
  }
  if (method === 'DELETE') return (await db.preferences.delete(key)) ? noContent() : notFound();
  if (method !== 'PUT' && method !== 'PATCH') return methodNotAllowed(method, ['GET', 'PUT', 'PATCH', 'DELETE']);
  // DRF looks the row up before validating: an unknown key is a 404 whatever the body.
  if (!(await db.preferences.getByKey(key))) return notFound();
  const v = validateBody(USER_PREFERENCE, req.body, method === 'PUT' ? 'replace' : 'partial', { now: ctx.now });
  if (!v.ok) return invalid(v.errors);
  try {
    const row =
      method === 'PUT'
        ? await db.preferences.replace(key, v.value as unknown as UserPreference)
        : Object.keys(v.value).length === 0
          ? await db.preferences.getByKey(key)
          : await db.preferences.patch(key, v.value as Partial<UserPreference>);
    return row ? ok(preferenceJson(row)) : notFound();
  } catch (err) {
    return conflictResponse(USER_PREFERENCE, asConflict(err));
  }
}

/**
 * The whole resource by method and route parameter, for one node operation behind every
 * `/api/preferences/...` route: no `key` → list (GET) or create (POST); `key` = `get_preference`
 * → the action (GET only); any other `key` → the detail.
 */
export async function preferences(db: Database, req: ApiRequest, ctx: ApiContext): Promise<ApiResponse> {
  const method = methodOf(req);
  // A route of its own for the action (no `:key`) is recognised by its path.
  const key = req.params?.key || (lastPathSegment(req.url) === GET_PREFERENCE_ACTION ? GET_PREFERENCE_ACTION : undefined);
  if (key === undefined || key === '') {
    if (method === 'GET' || method === 'HEAD') return listPreferences(db, req, ctx);
    if (method === 'POST') return createPreference(db, req, ctx);
    return methodNotAllowed(method, ['GET', 'POST']);
  }
  if (key === GET_PREFERENCE_ACTION) {
    return method === 'GET' || method === 'HEAD' ? getPreferenceByQuery(db, req, ctx) : methodNotAllowed(method, ['GET']);
  }
  return preferenceDetail(db, req, ctx);
}
