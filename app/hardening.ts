/**
 * The app-level protections of issue 8 that app/main.ts wires in, in one place:
 * - the environment: defaults and checks of the security variables;
 * - HTTP: the security headers on every response, CORS headers on every API answer, the editor
 *   guard (without a login: only requests made on this machine), the Origin check on writes, and
 *   the per-client rate limits on writes (in Redis, shared by every instance, when REDIS_URL is
 *   set; else in memory), mounted ahead of Node-RED so they cover the editor and paths no route
 *   answers (`httpNodeMiddleware` only runs on routes of the flow);
 * - the WebSocket guard's options (limits, Node-RED's listener servers, the editor's socket);
 * - a warning when MQTT over TLS would not verify the broker's certificate.
 */
import fs from 'fs';
import type { Duplex } from 'stream';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'http';
import { loadAcl, redactUrl } from './broker';
import { ENV_DEFAULTS } from './env';
import { rateLimitMiddleware, rateLimitsFromEnv } from './rate-limit';
import { RedisRateLimits, redisUrlProblem, type RateLimitLog } from './rate-limit-redis';
import { adminRequestProblem, corsHeaders, isApiPath, parseOrigins, securityHeaders, writeOriginProblem } from './security';
import { httpRefusal, nodeRedWsServer, wsLimitsFromEnv, type NodeRedNodes, type WsGuardOptions } from './ws-guard';
import { sendJson } from './api-middleware';

type Env = Record<string, string | undefined>;
type Req = IncomingMessage & { path?: string };
type Next = (err?: unknown) => void;
export type Middleware = (req: Req, res: ServerResponse, next: Next) => void;

/** The TLS files of the broker node's tls-config: '' when unset, so `${VAR}` in the flow resolves. */
export const MQTT_TLS_VARS = ['MQTT_CA_FILE', 'MQTT_CERT_FILE', 'MQTT_KEY_FILE'] as const;

export function securityEnvDefaults(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of MQTT_TLS_VARS) if (env[k] === undefined) out[k] = '';
  return out;
}

/** Problems with the security settings that must stop the app at start. */
export function securityEnvProblems(env: Env): string[] {
  const problems = [...rateLimitsFromEnv(env).problems, ...wsLimitsFromEnv(env).problems];
  for (const k of MQTT_TLS_VARS) {
    const file = env[k];
    if (!file) continue;
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      problems.push(`${k}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  if (Boolean(env.MQTT_CERT_FILE) !== Boolean(env.MQTT_KEY_FILE)) {
    problems.push('MQTT_CERT_FILE and MQTT_KEY_FILE (a client certificate) must be set together');
  }
  if (env.MQTT_ACL_FILE) {
    if (!env.MQTT_USERNAME || !env.MQTT_PASSWORD) {
      problems.push("MQTT_ACL_FILE needs MQTT_USERNAME and MQTT_PASSWORD (the pipeline's own broker login)");
    }
    try {
      loadAcl(env);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return problems;
}

/** Security headers on every response; on /api/ also the CORS headers for the request's Origin. */
export function securityHeadersMiddleware(origins: string[]): Middleware {
  return function hypervoltSecurityHeaders(req, res, next) {
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    for (const [k, v] of Object.entries(securityHeaders(path))) res.setHeader(k, v);
    if (isApiPath(path)) {
      for (const [k, v] of Object.entries(corsHeaders(req.headers.origin, origins))) res.setHeader(k, v);
    }
    next();
  };
}

const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-real-ip'];

function isUnder(path: string, root: string): boolean {
  const r = root.endsWith('/') ? root.slice(0, -1) : root;
  return path === r || path.startsWith(`${r}/`);
}

/** Whether an editor request or upgrade must be refused (see `adminRequestProblem`). */
export function adminProblem(req: IncomingMessage, login: boolean): string | null {
  return adminRequestProblem(
    { origin: req.headers.origin, host: req.headers.host, forwarded: FORWARDING_HEADERS.some((h) => req.headers[h] !== undefined) },
    login,
  );
}

/** Without an editor login, refuses editor requests not made on this machine (see `adminRequestProblem`). */
export function adminGuardMiddleware(adminRoot: string, login: boolean): Middleware {
  return function hypervoltAdminGuard(req, res, next) {
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    const problem = isUnder(path, adminRoot) ? adminProblem(req, login) : null;
    if (problem) sendJson(res, 403, { detail: problem });
    else next();
  };
}

/** Refuses writes under /api/ from browser origins that CORS_ORIGIN does not allow (CSRF). */
export function writeOriginMiddleware(origins: string[]): Middleware {
  return function hypervoltWriteOrigin(req, res, next) {
    const path = req.path ?? new URL(req.url ?? '/', 'http://x').pathname;
    const problem = isApiPath(path) ? writeOriginProblem(req.method ?? 'GET', req.headers.origin, origins, req.headers.host) : null;
    if (problem) {
      req.resume();
      sendJson(res, 403, { detail: problem });
    } else next();
  };
}

/** Whether the editor has a login (ADMIN_USER and ADMIN_PASSWORD_HASH). */
export function editorLogin(env: Env): boolean {
  return Boolean(env.ADMIN_USER && env.ADMIN_PASSWORD_HASH);
}

/** The middleware `httpHardening` returns, in order, and `close` to release what it holds. */
export type Hardening = Middleware[] & {
  /** Stops the rate limits' timer and closes their Redis connection, if any. */
  close(): Promise<void>;
};

/**
 * The middleware app/main.ts mounts on the app before Node-RED: security headers, the editor
 * guard, the write Origin check, then the rate limits: counted in Redis under REDIS_KEY_PREFIX
 * (shared by every instance) when REDIS_URL is set and a limit is on, else in memory.
 */
export function httpHardening(env: Env, adminRoot = '/admin/', log?: RateLimitLog): Hardening {
  const origins = parseOrigins(env.CORS_ORIGIN);
  const limits = rateLimitsFromEnv(env).limits;
  const on = limits.writesPerMin > 0 || limits.commandsPerMin > 0;
  const url = env.REDIS_URL ?? '';
  // Like the hot store: a REDIS_URL that is no redis:// URL is warned about, and memory used.
  const problem = url && on ? redisUrlProblem(url) : null;
  const shared =
    url && on && !problem
      ? new RedisRateLimits({ url, prefix: env.REDIS_KEY_PREFIX ?? ENV_DEFAULTS.REDIS_KEY_PREFIX, log })
      : undefined;
  if (problem) {
    (log?.warn ?? console.warn)(`rate limits: REDIS_URL "${redactUrl(url)}" ${problem}: counting in memory, per instance`);
  }
  log?.info(
    shared
      ? `rate limits: counted in Redis at ${redactUrl(url)}, shared by every instance`
      : on
        ? `rate limits: counted in memory, per instance${url ? '' : ' (REDIS_URL not set)'}`
        : 'rate limits: off',
  );
  const rateLimit = rateLimitMiddleware(limits, { shared, warn: log ? (m) => log.warn(m) : undefined });
  const chain: Middleware[] = [
    securityHeadersMiddleware(origins),
    adminGuardMiddleware(adminRoot, editorLogin(env)),
    writeOriginMiddleware(origins),
    rateLimit,
  ];
  return Object.assign(chain, { close: () => rateLimit.close() });
}

/** The WebSocket guard's options for the app: limits from the environment, listeners from Node-RED. */
export function wsGuardOptions(env: Env, red: NodeRedNodes, adminRoot = '/admin/'): WsGuardOptions {
  const login = editorLogin(env);
  return {
    ...wsLimitsFromEnv(env).limits,
    findServer: (pathname) => nodeRedWsServer(red, pathname),
    checkOther: (req) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      return isUnder(path, adminRoot) ? adminProblem(req, login) : null;
    },
  };
}

/**
 * The HTTP server's `clientError` listener: the answer Node would give to a request it cannot
 * parse (400, 408, 431), with the security headers like every other answer.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  socket.end(httpRefusal(status, STATUS_CODES[status] ?? 'Bad Request', securityHeaders('/')), () => socket.destroy());
}

interface FlowNode {
  id?: unknown;
  type?: unknown;
  name?: unknown;
  usetls?: unknown;
  tls?: unknown;
  verifyservercert?: unknown;
}

/**
 * Why MQTT over TLS would be unsafe with this flow, or null. Node-RED's broker node without a
 * tls-config node connects to an `mqtts://` broker WITHOUT checking its certificate (it sets
 * `rejectUnauthorized` from a flag that defaults to false), and never reads a CA file.
 */
export function mqttTlsWarning(flow: readonly FlowNode[], env: Env): string | null {
  const url = env.MQTT_URL ?? '';
  const tlsUrl = /^(mqtts|wss):\/\//i.test(url);
  const files = MQTT_TLS_VARS.filter((k) => env[k]);
  if (!tlsUrl) {
    return files.length > 0 && url
      ? `${files.join(', ')} set but MQTT_URL is not mqtts:// : the MQTT connection is not encrypted`
      : null;
  }
  const unverified = flow.filter((n) => {
    if (n.type !== 'mqtt-broker') return false;
    const tls = flow.find((t) => t.type === 'tls-config' && t.id === n.tls);
    const on = (v: unknown) => v === true || v === 'true';
    return !(on(n.usetls) && tls && on(tls.verifyservercert));
  });
  if (unverified.length === 0) return null;
  const names = unverified.map((n) => String(n.name || n.id)).join(', ');
  return (
    `MQTT_URL is mqtts:// but the flow's broker node (${names}) has no tls-config node that verifies the server ` +
    'certificate: the connection is encrypted but the broker is NOT authenticated, and MQTT_CA_FILE, ' +
    'MQTT_CERT_FILE, MQTT_KEY_FILE are not used (README, Securing it)'
  );
}

/** The warnings about the flow file `mqttTlsWarning` gives; [] when the file cannot be read. */
export function flowSecurityWarnings(flowFile: string, env: Env): string[] {
  let flow: unknown;
  try {
    flow = JSON.parse(fs.readFileSync(flowFile, 'utf8'));
  } catch {
    return [];
  }
  const w = mqttTlsWarning(Array.isArray(flow) ? (flow as FlowNode[]) : [], env);
  return w ? [w] : [];
}
