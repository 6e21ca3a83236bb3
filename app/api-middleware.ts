/**
 * `httpNodeMiddleware` for the REST API: the bearer-token check, then the request body.
 *
 * Why the body is read here: the `http in` node parses bodies itself (body-parser, raw-body) and
 * answers any parse error with an HTML 500 from its own route error handler, which nothing
 * mounted later can intercept. Reading the body first (and marking it read with `req._body`, which
 * those parsers respect) lets the API answer as CONTRACT section 4 says: 400 for invalid JSON,
 * 413 for more than 1 MiB, 415 for a body that is not JSON, always JSON.
 */
import type { IncomingMessage, ServerResponse } from 'http';
import { bearerToken, checkApiAccess, isApiPath, isGuardedPath, type Tokens } from './security';

export const MAX_BODY_BYTES = 1024 * 1024;

type Req = IncomingMessage & { path?: string; body?: unknown; _body?: boolean };
type Next = (err?: unknown) => void;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/** The result of reading a request body: parsed JSON, or the error answer. */
export type BodyResult = { ok: true; body: unknown } | { ok: false; status: number; detail: string };

/** True for `application/json` and `application/*+json` (and a missing type: clients that forget it). */
export function isJsonType(contentType: string | undefined): boolean {
  if (!contentType) return true;
  const type = contentType.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.!#$&^_-]+\+json$/.test(type);
}

/** Decodes and parses a complete body as the API expects it. Pure. */
export function parseJsonBody(raw: Buffer, contentType: string | undefined): BodyResult {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (raw.length === 0) return { ok: true, body: {} };
  if (!isJsonType(contentType)) {
    const type = (contentType ?? '').split(';')[0].trim();
    return { ok: false, status: 415, detail: `Unsupported media type "${type}" in request.` };
  }
  if (charset && charset !== 'utf-8' && charset !== 'utf8') {
    return { ok: false, status: 415, detail: `Unsupported charset "${charset}": send UTF-8.` };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(raw);
  } catch {
    return { ok: false, status: 400, detail: 'JSON parse error - the body is not valid UTF-8' };
  }
  try {
    return { ok: true, body: JSON.parse(text) };
  } catch (err) {
    return { ok: false, status: 400, detail: `JSON parse error - ${(err as Error).message}` };
  }
}

/** Reads the whole body, stopping at `limit` bytes (the rest is not buffered). */
export function readBody(req: IncomingMessage, limit: number): Promise<{ raw: Buffer } | { tooLarge: true } | { aborted: true }> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      resolve({ tooLarge: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const finish = (r: { raw: Buffer } | { tooLarge: true } | { aborted: true }) => {
      if (finished) return;
      finished = true;
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onAbort);
      req.removeListener('aborted', onAbort);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        finish({ tooLarge: true });
        req.resume(); // drain and discard the rest so the answer can be read
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish({ raw: Buffer.concat(chunks, size) });
    const onAbort = () => finish({ aborted: true });
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onAbort);
    req.once('aborted', onAbort);
  });
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The middleware for `settings.httpNodeMiddleware`; only `/api/...` (and `/metrics` for the token) are touched. */
export function apiMiddleware(tokens: Tokens, limit = MAX_BODY_BYTES) {
  return function hypervoltApi(req: Req, res: ServerResponse, next: Next): void {
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    if (!isGuardedPath(path)) {
      next();
      return;
    }
    const denial = checkApiAccess(req.method ?? 'GET', bearerToken(req.headers.authorization), tokens);
    if (denial) {
      const headers: Record<string, string> = denial.status === 401 ? { 'www-authenticate': 'Bearer realm="api"' } : {};
      sendJson(res, denial.status, denial.body, headers);
      return;
    }
    if (!isApiPath(path) || !BODY_METHODS.has((req.method ?? '').toUpperCase()) || req._body) {
      next();
      return;
    }
    readBody(req, limit).then(
      (r) => {
        if ('aborted' in r) return; // the client went away; nobody to answer
        if ('tooLarge' in r) {
          sendJson(res, 413, { detail: `Request body too large: the limit is ${limit} bytes.` }, { connection: 'close' });
          return;
        }
        const parsed = parseJsonBody(r.raw, req.headers['content-type']);
        if (!parsed.ok) {
          sendJson(res, parsed.status, { detail: parsed.detail });
          return;
        }
        req.body = parsed.body;
        req._body = true; // body-parser, multer and the raw parser of `http in` skip a read body
        next();
      },
      (err) => next(err),
    );
  };
}
