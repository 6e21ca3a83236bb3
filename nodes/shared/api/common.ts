/**
 * What every REST handler of `nodes/shared/api/` shares: the handler signature, DRF-style error
 * answers, and `serve`, which turns any failure of the database into 503 (never a 500).
 *
 * Handlers are pure: `(db, req, ctx) → Promise<ApiResponse>`. A client's mistake is a 4xx answer,
 * never a throw; a database failure is thrown for `serve` to answer 503.
 */
import { badBody, badQuery, notFound, unavailable } from '../http';
import type { ApiRequest, ApiResponse } from '../http';
import { parsePage, parsePageSize, QueryParamError } from '../query-params';
import { ConflictError } from '../db/types';
import type { Database } from '../db/types';
import type { FieldErrors, ResourceSchema } from '../schema';

export interface ApiContext {
  /** The request time, epoch ms. */
  now: number;
  /** MQTT topic prefix of published commands (default `HyperVolt`). */
  topicPrefix?: string;
}

export type ApiHandler = (db: Database, req: ApiRequest, ctx: ApiContext) => Promise<ApiResponse>;

export const DB_UNAVAILABLE = 'database unavailable';

/** Runs a handler body; a `QueryParamError` becomes its 400/404 answer. */
export async function answering(fn: () => Promise<ApiResponse>): Promise<ApiResponse> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof QueryParamError) return err.response;
    throw err;
  }
}

export interface Served {
  response: ApiResponse;
  /** The failure behind a 503, for the node's `done(err)`. */
  error?: Error;
}

/**
 * Gets the database and runs the handler. Never throws: anything that goes wrong below the
 * handler (database down, a query failing, a bug) is 503 `{"detail": "database unavailable"}`
 * with the cause returned, so no client ever sees a 500 or an internal message.
 */
export async function serve(
  handler: ApiHandler,
  getDatabase: () => Promise<Database>,
  req: ApiRequest,
  ctx: ApiContext,
): Promise<Served> {
  try {
    const db = await getDatabase();
    return { response: await handler(db, req, ctx) };
  } catch (err) {
    return { response: unavailable(DB_UNAVAILABLE), error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/** 405 `{"detail": "Method \"X\" not allowed."}` with an `Allow` header when the methods are known. */
export function methodNotAllowed(method: string, allow?: readonly string[]): ApiResponse {
  const m = String(method || 'GET').toUpperCase().replace(/[^A-Z-]/g, '').slice(0, 20);
  const res: ApiResponse = { status: 405, body: { detail: `Method "${m}" not allowed.` } };
  if (allow && allow.length) res.headers = { allow: [...allow, 'OPTIONS'].join(', ') };
  return res;
}

export { notFound, badQuery };

/** 400 with field errors. */
export function invalid(errors: FieldErrors): ApiResponse {
  return badBody(errors);
}

/** DRF's unique-validator message: `{"preference_key": ["user preference with this preference key already exists."]}`. */
export function conflictResponse(schema: ResourceSchema, err: ConflictError): ApiResponse {
  return badBody({ [err.field]: [`${schema.verboseName} with this ${err.field.replace(/_/g, ' ')} already exists.`] });
}

/** Rethrows anything but a `ConflictError`. */
export function asConflict(err: unknown): ConflictError {
  if (err instanceof ConflictError) return err;
  throw err;
}

/** `?page=&page_size=` only (lists without filters or ordering; other parameters are ignored, as in DRF). */
export function pageParams(query: Record<string, unknown> | undefined): { page: number; pageSize: number } {
  return { page: parsePage(query), pageSize: parsePageSize(query) };
}

/** A route's `{id}`: a positive safe integer, or undefined (404, as Django's `<int:pk>` would not route it). */
export function parseId(raw: unknown): number | undefined {
  if (typeof raw !== 'string' || !/^\d{1,16}$/.test(raw)) return undefined;
  const id = Number(raw);
  return Number.isSafeInteger(id) && id >= 1 ? id : undefined;
}

/** The request's method, upper case. */
export function methodOf(req: ApiRequest): string {
  return String(req.method || 'GET').toUpperCase();
}

/** The last non-empty segment of the request path (`/api/preferences/get_preference/` → `get_preference`). */
export function lastPathSegment(url: string): string {
  let path: string;
  try {
    path = new URL(url, 'http://localhost').pathname;
  } catch {
    return '';
  }
  const parts = path.split('/').filter((p) => p !== '');
  return parts.length ? parts[parts.length - 1] : '';
}
