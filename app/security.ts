/**
 * Who may call the API: bearer tokens for REST, `?token=` (or a `bearer.` subprotocol) and an
 * Origin check for WebSocket upgrades (CONTRACT sections 3 and 6), CORS and the security headers
 * of every response. Pure decisions, no Express: settings.ts and app/hardening.ts wire them in.
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

/** True for paths under the REST API. */
export function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/');
}

/** The paths the tokens guard: the REST API and the Prometheus metrics (a read like any other). */
export function isGuardedPath(path: string): boolean {
  return isApiPath(path) || path === '/metrics' || path === '/metrics/';
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

/**
 * The `cors` options for `httpNodeCors`, or undefined when no origin is allowed cross-site.
 * Never credentials: the API takes bearer tokens in `Authorization`, not cookies, so a browser
 * never needs `credentials: 'include'`; and `*` with credentials would let any site use a
 * logged-in browser. `Retry-After` is exposed so a page can honour a 429.
 */
export function corsOptions(
  origins: string[],
): { origin: string | string[]; methods: string; credentials: false; exposedHeaders: string; maxAge: number } | undefined {
  if (origins.length === 0) return undefined;
  return {
    origin: origins.includes('*') ? '*' : origins,
    methods: 'GET,HEAD,PUT,PATCH,POST,DELETE',
    credentials: false,
    exposedHeaders: 'Retry-After',
    maxAge: 600,
  };
}

/**
 * The CORS headers of an actual (not preflight) API response to a request from `origin`, the same
 * as `corsOptions` gives the routes of the flow: set by the app on every /api/ answer so that its
 * own answers (401, 404, 413, 429...) are readable by an allowed page too.
 */
export function corsHeaders(origin: string | undefined, origins: string[]): Record<string, string> {
  if (origins.length === 0) return {};
  if (origins.includes('*')) return { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'Retry-After' };
  const o = (origin ?? '').trim().replace(/\/+$/, '');
  if (o && origins.includes(o)) {
    return { 'access-control-allow-origin': o, 'access-control-expose-headers': 'Retry-After', vary: 'Origin' };
  }
  return { vary: 'Origin' };
}

/** On every response of the app: no sniffing, no framing, no referrer, no cross-site embedding. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-site',
});

/** Also on API and WebSocket answers: JSON is never cached, never a document that runs anything. */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
});

/** The security headers for a response to `path`. */
export function securityHeaders(path: string): Record<string, string> {
  const api = isGuardedPath(path) || path === '/ws' || path.startsWith('/ws/');
  return api ? { ...SECURITY_HEADERS, ...API_SECURITY_HEADERS } : { ...SECURITY_HEADERS };
}

/** True when `origin` (e.g. `http://h:1880`) names the same host and port as the `Host` header. */
export function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin.trim()).host.toLowerCase() === host.trim().toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Whether a browser `Origin` may use the API or the WebSocket: no Origin (not a browser) passes; a
 * page of this host passes; else it must be listed in CORS_ORIGIN (or CORS_ORIGIN is `*`).
 */
export function originAllowed(origin: string | undefined, allowed: string[], host: string | undefined): boolean {
  if (!origin) return true;
  const o = origin.trim().replace(/\/+$/, '');
  if (allowed.includes('*') || allowed.includes(o)) return true;
  return sameOrigin(o, host);
}

/** The host name of a `Host` header, without port or IPv6 brackets. */
export function hostnameOf(hostHeader: string | undefined): string {
  const h = (hostHeader ?? '').trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h.slice(1) : h.slice(1, end);
  }
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

function loopbackName(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost') || name === '::1') return true;
  const v4 = name.startsWith('::ffff:') ? name.slice(7) : name;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

export interface AdminRequestInfo {
  origin?: string;
  host?: string;
  /** Whether the request carries `Forwarded`, `X-Forwarded-For` or `X-Real-IP` (came through a proxy). */
  forwarded?: boolean;
}

export const CROSS_ORIGIN_EDITOR = 'Cross-origin requests to the editor are refused.';
export const EDITOR_LOCAL_ONLY =
  'The editor has no login (ADMIN_USER, ADMIN_PASSWORD_HASH), so it only answers requests made directly on this machine.';

/**
 * Why a request to the editor or its admin API must be refused, or null. Without an editor login
 * anyone who can make a request can deploy code, and Node-RED answers its admin API with
 * `Access-Control-Allow-Origin: *`, so any web page the user visits could drive a Node-RED on
 * 127.0.0.1. So without a login only requests made on this machine are answered:
 * - not from a page of another origin (its `Origin` is not this host);
 * - addressed to a loopback name (DNS rebinding gives a foreign page a same-origin `Host` like
 *   `evil.example:1880`);
 * - not relayed by a proxy (a reverse proxy in front of 127.0.0.1 would publish the editor).
 * With a login the admin API needs its bearer token, which no other site's page can obtain.
 */
export function adminRequestProblem(info: AdminRequestInfo, editorLogin: boolean): string | null {
  if (editorLogin) return null;
  if (info.origin && !sameOrigin(info.origin, info.host)) return CROSS_ORIGIN_EDITOR;
  if (info.forwarded || !loopbackName(hostnameOf(info.host))) return EDITOR_LOCAL_ONLY;
  return null;
}

export const ORIGIN_NOT_ALLOWED = 'Origin not allowed.';

/**
 * A browser can send a POST without preflight from any page (a form, or `fetch` in `no-cors` mode
 * with no Content-Type), so a write from an origin that CORS_ORIGIN does not allow is refused
 * outright (403) instead of merely having its answer hidden.
 */
export function writeOriginProblem(method: string, origin: string | undefined, allowed: string[], host: string | undefined): string | null {
  if (!WRITE_METHODS.has(method.toUpperCase())) return null;
  return originAllowed(origin, allowed, host) ? null : ORIGIN_NOT_ALLOWED;
}

export interface UpgradeInfo {
  origin?: string;
  /** The request URL, e.g. `/ws/sensors/?token=abc`. */
  url?: string;
  host?: string;
  authorization?: string;
  /** The `Sec-WebSocket-Protocol` header, which may carry `bearer.<token>`. */
  protocol?: string;
}

/**
 * Browsers cannot set headers on a WebSocket, so besides `?token=` (which can end up in proxy
 * logs) a token may travel as a subprotocol: `new WebSocket(url, ['hypervolt', 'bearer.' + token])`.
 */
export const WS_TOKEN_PROTOCOL_PREFIX = 'bearer.';

/** Splits a `Sec-WebSocket-Protocol` header into the token (first `bearer.` entry) and the others. */
export function splitWsProtocols(header: string | string[] | undefined): { token?: string; others: string[] } {
  const h = Array.isArray(header) ? header.join(',') : header ?? '';
  let token: string | undefined;
  const others: string[] = [];
  for (const p of h.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (p.toLowerCase().startsWith(WS_TOKEN_PROTOCOL_PREFIX)) {
      if (token === undefined && p.length > WS_TOKEN_PROTOCOL_PREFIX.length) token = p.slice(WS_TOKEN_PROTOCOL_PREFIX.length);
    } else {
      others.push(p);
    }
  }
  return { token, others };
}

/** The token of an upgrade: `?token=`, else a `bearer.` subprotocol, else `Authorization: Bearer`. */
export function upgradeToken(info: UpgradeInfo): string | undefined {
  let token: string | undefined;
  try {
    token = new URL(info.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
  } catch {
    token = undefined;
  }
  return token ?? splitWsProtocols(info.protocol).token ?? bearerToken(info.authorization);
}

/** The `ws` verifyClient decision for an upgrade: null to accept, else status and reason. */
export function checkUpgrade(info: UpgradeInfo, tokens: Tokens, origins: string[]): { status: number; message: string } | null {
  if (!originAllowed(info.origin, origins, info.host)) return { status: 403, message: 'Origin not allowed' };
  if (tokens.readToken) {
    const token = upgradeToken(info);
    const ok = token !== undefined && [tokens.readToken, tokens.apiToken].some((t) => t !== undefined && sameToken(token, t));
    if (!ok) return { status: 401, message: 'Unauthorized' };
  }
  return null;
}
