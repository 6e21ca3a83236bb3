/**
 * The HTTP side of the REST API, free of Node-RED: what a request handler gets and returns.
 * Nodes that serve `http in` flows turn a msg into an `ApiRequest`, call a handler, and put the
 * `ApiResponse` back as `msg.statusCode` and `msg.payload` for the `http response` node.
 */

import { JsonText } from './json-text';

export interface ApiRequest {
  method: string;
  /** Query parameters as parsed by Express: a repeated parameter arrives as an array. */
  query: Record<string, unknown>;
  /** Route parameters such as `{id}`. */
  params: Record<string, string>;
  body: unknown;
  /** Absolute URL of this request, used to build `next`/`previous` links. */
  url: string;
  /**
   * The caller sends the answer as JSON bytes (`jsonBytes`): a handler may then answer a body the
   * database already serialised (`JsonText`) instead of row objects.
   */
  jsonText?: boolean;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export const ok = (body: unknown): ApiResponse => ({ status: 200, body });
export const created = (body: unknown): ApiResponse => ({ status: 201, body });
export const accepted = (body: unknown): ApiResponse => ({ status: 202, body });
export const noContent = (): ApiResponse => ({ status: 204, body: '' });
/** 400 for an invalid query parameter: `{"error": "message"}`. */
export const badQuery = (message: string): ApiResponse => ({ status: 400, body: { error: message } });
/** 400 for an invalid body: `{"field": ["message"]}`. */
export const badBody = (errors: Record<string, string[]>): ApiResponse => ({ status: 400, body: errors });
export const notFound = (detail = 'Not found.'): ApiResponse => ({ status: 404, body: { detail } });
export const unavailable = (detail: string): ApiResponse => ({ status: 503, body: { detail } });

interface ExpressLikeRequest {
  method?: string;
  query?: Record<string, unknown>;
  params?: Record<string, string>;
  body?: unknown;
  protocol?: string;
  originalUrl?: string;
  url?: string;
  headers?: Record<string, string | string[] | undefined>;
  get?(name: string): string | undefined;
}

/** Builds an `ApiRequest` from the `msg.req` that an `http in` node attaches. */
export function apiRequestFromMsg(msg: { req?: unknown; payload?: unknown }): ApiRequest {
  const req = (msg.req ?? {}) as ExpressLikeRequest;
  const host = (req.get?.('host') ?? (req.headers?.host as string | undefined)) || 'localhost';
  const protocol = req.protocol || 'http';
  const path = req.originalUrl || req.url || '/';
  return {
    method: (req.method || 'GET').toUpperCase(),
    query: req.query ?? {},
    params: req.params ?? {},
    body: req.body !== undefined ? req.body : msg.payload,
    url: `${protocol}://${host}${path}`,
  };
}

/** Puts an `ApiResponse` on a msg for the `http response` node. */
export function applyApiResponse(
  msg: Record<string, unknown>,
  res: ApiResponse,
): void {
  msg.statusCode = res.status;
  msg.payload = res.body;
  const headers = { ...((msg.headers as Record<string, string>) ?? {}), ...(res.headers ?? {}) };
  if (res.status !== 204) headers['content-type'] = 'application/json; charset=utf-8';
  msg.headers = headers;
}

/** JSON bytes already made for an array answer, by its first row (see `rowsBytes`). */
const madeBytes = new WeakMap<object, { length: number; mid: unknown; last: unknown; bytes: Buffer }>();

/** An array of row objects: the answers whose serialisation is kept (see `rowsBytes`). */
function isRowArray(v: unknown): v is object[] {
  return Array.isArray(v) && v.length > 0 && typeof v[0] === 'object' && v[0] !== null;
}

/**
 * Concurrent identical reads share their row objects (the repositories' single flight), so an
 * array of rows is serialised once for all of them: the bytes are kept by the array's first row
 * and reused for an array with the same length and the same first, middle and last row, i.e. the
 * same slice of the same rows (row objects are never changed once read).
 */
function rowsBytes(rows: object[]): Buffer {
  const first = rows[0];
  const last = rows[rows.length - 1];
  const mid = rows[rows.length >> 1];
  const made = madeBytes.get(first);
  if (made && made.length === rows.length && made.last === last && made.mid === mid) return made.bytes;
  const bytes = Buffer.from(JSON.stringify(rows), 'utf8');
  madeBytes.set(first, { length: rows.length, mid, last, bytes });
  return bytes;
}

/**
 * A page (`{count, next, previous, results}`, or any plain object with a `results` array of rows):
 * its own keys written here, in their order, around the kept bytes of its rows, exactly as
 * `JSON.stringify` writes the whole (a key whose value does not serialise is left out). Each
 * request of a page has its own `next`/`previous` (they carry its host), so the envelope cannot be
 * kept; the rows, most of the bytes, can. Null for any other body, and for a value of its own with
 * a `toJSON` (which `JSON.stringify` would call with the key).
 */
function pageBytes(body: unknown): Buffer | null {
  if (typeof body !== 'object' || body === null || Object.getPrototypeOf(body) !== Object.prototype) return null;
  const page = body as Record<string, unknown>;
  if (!Object.prototype.hasOwnProperty.call(page, 'results') || !isRowArray(page.results) || typeof page.toJSON === 'function') return null;
  const parts: Buffer[] = [];
  let text = '{';
  let sep = '';
  for (const key of Object.keys(page)) {
    const value = page[key];
    if (key === 'results') {
      parts.push(Buffer.from(`${text}${sep}"results":`, 'utf8'), rowsBytes(value as object[]));
      text = '';
      sep = ',';
      continue;
    }
    if (typeof value === 'object' && value !== null && typeof (value as { toJSON?: unknown }).toJSON === 'function') return null;
    const json = JSON.stringify(value);
    if (json === undefined) continue;
    text += `${sep}${JSON.stringify(key)}:${json}`;
    sep = ',';
  }
  parts.push(Buffer.from(`${text}}`, 'utf8'));
  return Buffer.concat(parts);
}

/**
 * `body` as JSON bytes for the `http response` node (which sends a Buffer as it is, instead of
 * stringifying and encoding the object for each request): a body the database wrote as it is, an
 * array of rows or a page's rows serialised once for the requests that share them (`rowsBytes`),
 * anything else stringified. A caller gets a Buffer it must not write to.
 */
export function jsonBytes(body: unknown): Buffer {
  if (body instanceof JsonText) return body.toBuffer();
  if (isRowArray(body)) return rowsBytes(body);
  return pageBytes(body) ?? Buffer.from(JSON.stringify(body) ?? 'null', 'utf8');
}
