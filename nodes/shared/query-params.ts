/**
 * DRF-style query parameters, pure: parse `ApiRequest.query` into validated values, and build the
 * pagination envelope `{count, next, previous, results}` with absolute links.
 *
 * Express parses a repeated parameter (`?a=1&a=2`) into an array: like Django's
 * `QueryDict.get`, the last value wins. A bracketed parameter (`?a[b]=1`, parsed into an object)
 * is a 400. Unknown parameters are ignored (as in DRF). Every rejection is a `QueryParamError`
 * carrying the response (400 `{"error": ...}`, or 404 `{"detail": "Invalid page."}`).
 */
import { badQuery, notFound, ok } from './http';
import type { ApiRequest, ApiResponse } from './http';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_LIMIT = 1000;
export const MAX_LIMIT = 10_000;
export const MAX_HOURS = 8760;

export class QueryParamError extends Error {
  constructor(readonly response: ApiResponse) {
    super(
      typeof response.body === 'object' && response.body !== null
        ? String(Object.values(response.body as Record<string, unknown>)[0])
        : 'invalid query',
    );
    this.name = 'QueryParamError';
  }
}

const bad = (message: string) => new QueryParamError(badQuery(message));
export const invalidPage = () => new QueryParamError(notFound('Invalid page.'));

type Query = Record<string, unknown>;

/** The parameter's value, the last one when repeated; undefined when absent. */
export function queryValue(query: Query | undefined, name: string): string | undefined {
  if (!query || !Object.prototype.hasOwnProperty.call(query, name)) return undefined;
  let v = query[name];
  if (Array.isArray(v)) v = v[v.length - 1];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw bad(`${name} must be a single value`);
}

/** Absent and empty (`?sensor_type=`) both mean "not given", as with django-filter. */
function given(query: Query | undefined, name: string): string | undefined {
  const v = queryValue(query, name);
  return v === undefined || v.trim() === '' ? undefined : v;
}

const INTEGER = /^\s*\+?\d+\s*$/;
const NUMBER = /^\s*\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

export function parsePage(query: Query | undefined): number {
  const v = given(query, 'page');
  if (v === undefined) return 1;
  if (!INTEGER.test(v) || Number(v) < 1) throw bad('page must be a positive integer');
  const page = Number(v);
  // A page number too large to compute an offset with is past the end of any table.
  if (!Number.isSafeInteger(page)) throw invalidPage();
  return page;
}

/** 1 to 1000, default 100. Larger values are cut to 1000, as DRF's `max_page_size` does. */
export function parsePageSize(query: Query | undefined): number {
  const v = given(query, 'page_size');
  if (v === undefined) return DEFAULT_PAGE_SIZE;
  if (!INTEGER.test(v) || Number(v) < 1) throw bad(`page_size must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  return Math.min(Number(v), MAX_PAGE_SIZE);
}

/** 1 to 10000, default 1000; larger values are cut to 10000. */
export function parseLimit(query: Query | undefined): number {
  const v = given(query, 'limit');
  if (v === undefined) return DEFAULT_LIMIT;
  if (!INTEGER.test(v) || Number(v) < 1) throw bad(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  return Math.min(Number(v), MAX_LIMIT);
}

/** A positive number of hours, at most 8760; `fallback` when absent (undefined: required). */
export function parseHours(query: Query | undefined, fallback?: number): number {
  const v = given(query, 'hours');
  if (v === undefined) {
    if (fallback === undefined) throw bad('hours is required');
    return fallback;
  }
  const hours = Number(v);
  if (!NUMBER.test(v) || !(hours > 0) || hours > MAX_HOURS) {
    throw bad(`hours must be a positive number of at most ${MAX_HOURS}`);
  }
  return hours;
}

/** `true/false/1/0` (any case); undefined when absent. */
export function parseBoolean(query: Query | undefined, name: string): boolean | undefined {
  const v = given(query, name);
  if (v === undefined) return undefined;
  const t = v.trim().toLowerCase();
  if (t === 'true' || t === '1') return true;
  if (t === 'false' || t === '0') return false;
  throw bad(`${name} must be true or false`);
}

export type FilterKind = 'text' | 'boolean' | 'integer';

/** Exact-match filters from a whitelist: `{sensor_type: 'text', applied: 'boolean'}`. */
export function parseFilters(
  query: Query | undefined,
  allowed: Readonly<Record<string, FilterKind>>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [name, kind] of Object.entries(allowed)) {
    if (kind === 'boolean') {
      const b = parseBoolean(query, name);
      if (b !== undefined) out[name] = b;
      continue;
    }
    const v = given(query, name);
    if (v === undefined) continue;
    if (kind === 'integer') {
      if (!INTEGER.test(v) || !Number.isSafeInteger(Number(v))) throw bad(`${name} must be an integer`);
      out[name] = Number(v);
    } else {
      out[name] = v;
    }
  }
  return out;
}

/** `field` or `-field` over the whitelist; `fallback` when absent. */
export function parseOrdering(query: Query | undefined, allowed: readonly string[], fallback: string): string {
  const v = given(query, 'ordering');
  if (v === undefined) return fallback;
  const t = v.trim();
  const field = t.startsWith('-') ? t.slice(1) : t;
  if (!allowed.includes(field)) {
    throw bad(`ordering must be one of: ${allowed.flatMap((f) => [f, `-${f}`]).join(', ')}`);
  }
  return t;
}

export interface ListParamSpec {
  filters: Readonly<Record<string, FilterKind>>;
  ordering: readonly string[];
  defaultOrdering: string;
}

export interface ListParams {
  page: number;
  pageSize: number;
  ordering: string;
  filters: Record<string, string | number | boolean>;
}

/** Everything a paginated list endpoint takes. Throws `QueryParamError`. */
export function parseListParams(query: Query | undefined, spec: ListParamSpec): ListParams {
  return {
    page: parsePage(query),
    pageSize: parsePageSize(query),
    ordering: parseOrdering(query, spec.ordering, spec.defaultOrdering),
    filters: parseFilters(query, spec.filters),
  };
}

export interface RecentParams {
  hours: number;
  limit: number;
  filters: Record<string, string | number | boolean>;
}

/** `?hours=&limit=` plus optional exact filters. Throws `QueryParamError`. */
export function parseRecentParams(
  query: Query | undefined,
  filters: Readonly<Record<string, FilterKind>>,
  defaultHours?: number,
): RecentParams {
  return { hours: parseHours(query, defaultHours), limit: parseLimit(query), filters: parseFilters(query, filters) };
}

/**
 * The request's URL with `page` set (DRF drops it for page 1), every other parameter kept.
 * `requestUrl` is absolute (`ApiRequest.url`); a relative one is resolved against localhost.
 */
export function pageUrl(requestUrl: string, page: number): string {
  const u = new URL(requestUrl, 'http://localhost');
  if (page <= 1) u.searchParams.delete('page');
  else u.searchParams.set('page', String(page));
  return u.toString();
}

export interface PageOf<T> {
  count: number;
  rows: T[];
  hasNext: boolean;
}

/**
 * `{count, next, previous, results}` (200), or 404 `{"detail": "Invalid page."}` for a page past
 * the end. Page 1 of an empty list is a valid empty page.
 */
export function paginatedResponse<T>(req: Pick<ApiRequest, 'url'>, page: number, result: PageOf<T>): ApiResponse {
  if (page > 1 && result.rows.length === 0) return invalidPage().response;
  return ok({
    count: result.count,
    next: result.hasNext ? pageUrl(req.url, page + 1) : null,
    previous: page > 1 ? pageUrl(req.url, page - 1) : null,
    results: result.rows,
  });
}
