/**
 * Why a fetch from an outside API failed, in a shape that is safe to show anywhere: the
 * message never carries the API key (axios errors carry `config.headers` and URLs with
 * `appid=`, so they are never passed on; we build our own errors from a sanitised message).
 */

/** What went wrong, which decides what happens next (see `retryPlan`). */
export type FetchErrorKind =
  | 'timeout' // no answer in time: retried with backoff
  | 'network' // connection refused, DNS, reset: retried with backoff
  | 'server' // 5xx: retried with backoff
  | 'rate_limited' // 429: retried after Retry-After
  | 'auth' // 401/403: the key is wrong; no retry until a redeploy or a manual trigger
  | 'client' // any other 4xx (or a redirect): no retry before the next regular fetch
  | 'invalid_response' // a body of the wrong shape or not JSON: retried with backoff, nothing stored
  | 'no_key' // no API key configured: nothing is fetched
  | 'config' // a node setting is invalid (zone, lat/lon, base URL)
  | 'aborted'; // the node was closed while the request ran

export const FETCH_ERROR_KINDS: readonly FetchErrorKind[] = [
  'timeout',
  'network',
  'server',
  'rate_limited',
  'auth',
  'client',
  'invalid_response',
  'no_key',
  'config',
  'aborted',
];

export class FetchError extends Error {
  override readonly name = 'FetchError';
  /** Same as `kind`, for `msg.error.code` style consumers (Catch nodes). */
  readonly code: FetchErrorKind;

  constructor(
    readonly kind: FetchErrorKind,
    message: string,
    /** HTTP status when the API answered. */
    readonly status?: number,
    /** For 429: how long the API asked us to wait, in ms (from Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.code = kind;
  }

  /** A short reason for a status line: the HTTP status when there is one, else the kind. */
  get reason(): string {
    return this.status !== undefined ? String(this.status) : this.kind;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, kind: this.kind, status: this.status, message: this.message };
  }
}

// Query parameters and headers that carry keys in the APIs we call (and common spellings).
const SECRET_PARAM_RE = /\b(appid|auth-token|api[_-]?key|access[_-]?token|token)(["']?\s*[=:]\s*["']?)([^&\s"',;}]+)/gi;

/**
 * Removes API keys from a text: every known secret value, and the value of any `appid=`,
 * `auth-token:` and similar parameter, whatever it is.
 */
export function sanitize(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // Short strings would mangle ordinary words; real keys are long.
    if (secret && secret.length >= 4) out = out.split(secret).join('***');
  }
  return out.replace(SECRET_PARAM_RE, (_m, name: string, sep: string) => `${name}${sep}***`);
}

/** A message from an API's error body (`{"error": ...}`, `{"message": ...}`), if there is one. */
export function apiErrorMessage(body: unknown): string | undefined {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    for (const k of ['message', 'error', 'detail']) {
      if (typeof b[k] === 'string' && b[k]) return b[k] as string;
    }
  }
  return undefined;
}

/** The kind of failure an HTTP status means. */
export function kindOfStatus(status: number): FetchErrorKind {
  if (status === 401 || status === 403) return 'auth';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'server';
  return 'client';
}
