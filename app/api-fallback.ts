/**
 * What the API answers when no `http in` route took a request under `/api/`: 405 when the path
 * exists for other methods, else 404, both in JSON (CONTRACT section 4). Mounted after
 * `RED.httpNode`, so it never shadows a route of the flow, including routes a user adds later.
 * Also the last-resort error handler: JSON instead of Express's HTML page.
 */
import type { IncomingMessage, ServerResponse } from 'http';
import { isApiPath } from './security';
import { sendJson } from './api-middleware';

/** The parts of an Express 4 router layer this module reads. */
export interface RouteLayer {
  match(path: string): boolean;
  route?: { methods: Record<string, boolean> };
}

type Req = IncomingMessage & { path?: string };
type Next = (err?: unknown) => void;

/** The methods the routes of `stack` accept for `path`, upper case, sorted ('HEAD' with 'GET'). */
export function allowedMethods(stack: readonly RouteLayer[], path: string): string[] {
  const methods = new Set<string>();
  for (const layer of stack) {
    if (!layer.route) continue;
    let matches = false;
    try {
      matches = layer.match(path);
    } catch {
      matches = false; // a path that does not decode matches nothing
    }
    if (!matches) continue;
    for (const [m, on] of Object.entries(layer.route.methods)) {
      if (!on || m === '_all') continue;
      methods.add(m.toUpperCase());
      if (m === 'get') methods.add('HEAD');
    }
  }
  methods.delete('OPTIONS');
  return [...methods].sort();
}

/** `getStack` returns the live route stack of the Node-RED http app (routes come and go on deploy). */
export function apiFallback(getStack: () => readonly RouteLayer[]) {
  return function hypervoltApiFallback(req: Req, res: ServerResponse, next: Next): void {
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    if (!isApiPath(path)) {
      next();
      return;
    }
    const allowed = allowedMethods(getStack(), path);
    const method = (req.method ?? 'GET').toUpperCase();
    if (allowed.length > 0 && !allowed.includes(method)) {
      sendJson(res, 405, { detail: `Method "${method}" not allowed.` }, { allow: [...allowed, 'OPTIONS'].join(', ') });
      return;
    }
    sendJson(res, 404, { detail: 'Not found.' });
  };
}

/** Express error handler: a client error keeps its 4xx status, anything else is a logged 500. */
export function jsonErrorHandler(log: (message: string) => void) {
  return function hypervoltErrorHandler(err: unknown, req: Req, res: ServerResponse, next: Next): void {
    const e = err as { status?: number; statusCode?: number; expose?: boolean; message?: string };
    const status = e?.status ?? e?.statusCode;
    if (res.headersSent) {
      next(err);
      return;
    }
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendJson(res, status, { detail: e.expose !== false && e.message ? e.message : 'Bad request.' });
      return;
    }
    log(`error serving ${req.method} ${req.url}: ${(err as Error)?.stack ?? String(err)}`);
    sendJson(res, 500, { detail: 'Internal server error.' });
  };
}
