/**
 * Who may call the API: bearer tokens for REST, `?token=` and an Origin check for WebSocket
 * upgrades (CONTRACT sections 3 and 6). Pure decisions, no Express: settings.ts wires them in.
 */
import { createHash, timingSafeEqual } from 'crypto';

export interface Tokens {
  /** API_TOKEN: writes need it; it also opens reads. */
  apiToken?: string;
  /** API_READ_TOKEN: reads need it (or the write token). */
  readToken?: string;
}

export interface Denial {
  status: 401 | 403;
  body: { detail: string };
}

export const NO_CREDENTIALS = 'Authentication credentials were not provided.';
export const INVALID_TOKEN = 'Invalid token.';
export const NO_PERMISSION = 'You do not have permission to perform this action.';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function tokensFromEnv(env: Record<string, string | undefined>): Tokens {
  return { apiToken: env.API_TOKEN || undefined, readToken: env.API_READ_TOKEN || undefined };
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h ?? '');
  return m ? m[1] : undefined;
}

/** True for paths under the REST API, the only ones the tokens guard. */
export function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/');
}

/**
 * Whether a request with this method and bearer token may go on (null) or why not.
 * - API_TOKEN set: POST/PUT/PATCH/DELETE need it: 401 without a token or with an unknown one,
 *   403 with the read token.
 * - API_READ_TOKEN set: reads need it or API_TOKEN. With only a read token configured, writes
 *   need it too (a write is never less protected than a read).
 * - OPTIONS (CORS preflight, which browsers send without credentials) always passes.
 */
export function checkApiAccess(method: string, token: string | undefined, tokens: Tokens): Denial | null {
  const m = method.toUpperCase();
  if (m === 'OPTIONS') return null;
  const { apiToken, readToken } = tokens;
  const isWrite = WRITE_METHODS.has(m);
  const accepted: string[] = [];
  if (isWrite && apiToken) accepted.push(apiToken);
  else if (isWrite && readToken) accepted.push(readToken);
  else if (!isWrite && readToken) accepted.push(readToken, ...(apiToken ? [apiToken] : []));
  if (accepted.length === 0) return null;
  if (token === undefined) return { status: 401, body: { detail: NO_CREDENTIALS } };
  if (accepted.some((t) => sameToken(token, t))) return null;
  if (isWrite && readToken && apiToken && sameToken(token, readToken)) return { status: 403, body: { detail: NO_PERMISSION } };
  return { status: 401, body: { detail: INVALID_TOKEN } };
}

/** `CORS_ORIGIN` as a list of origins (`a, b` → [a, b]); `*` allows any; empty → none. */
export function parseOrigins(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim().replace(/\/+$/, ''))
    .filter((s) => s !== '');
}

/** The `cors` options for `httpNodeCors`, or undefined when no origin is allowed cross-site. */
export function corsOptions(origins: string[]): { origin: string | string[]; methods: string; credentials: boolean } | undefined {
  if (origins.length === 0) return undefined;
  return {
    origin: origins.includes('*') ? '*' : origins,
    methods: 'GET,HEAD,PUT,PATCH,POST,DELETE',
    credentials: false,
  };
}

/**
 * Whether a WebSocket upgrade's `Origin` is acceptable: no Origin (not a browser) passes; with
 * CORS_ORIGIN set it must be listed; without, only a page served by this host may connect.
 */
export function originAllowed(origin: string | undefined, allowed: string[], host: string | undefined): boolean {
  if (!origin) return true;
  const o = origin.trim().replace(/\/+$/, '');
  if (allowed.length > 0) return allowed.includes('*') || allowed.includes(o);
  try {
    return host !== undefined && new URL(o).host.toLowerCase() === host.trim().toLowerCase();
  } catch {
    return false;
  }
}

export interface UpgradeInfo {
  origin?: string;
  /** The request URL, e.g. `/ws/sensors/?token=abc`. */
  url?: string;
  host?: string;
  authorization?: string;
}

/** The `ws` verifyClient decision for an upgrade: null to accept, else status and reason. */
export function checkUpgrade(info: UpgradeInfo, tokens: Tokens, origins: string[]): { status: number; message: string } | null {
  if (!originAllowed(info.origin, origins, info.host)) return { status: 403, message: 'Origin not allowed' };
  if (tokens.readToken) {
    let token: string | undefined;
    try {
      token = new URL(info.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
    } catch {
      token = undefined;
    }
    token = token ?? bearerToken(info.authorization);
    const ok = token !== undefined && [tokens.readToken, tokens.apiToken].some((t) => t !== undefined && sameToken(token!, t));
    if (!ok) return { status: 401, message: 'Unauthorized' };
  }
  return null;
}
