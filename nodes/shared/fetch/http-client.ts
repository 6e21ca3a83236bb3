/**
 * A small JSON-over-HTTP GET client for the outside APIs, on axios: a deadline per request,
 * abort on close, and every failure turned into a `FetchError` whose message holds no key.
 */
import http from 'http';
import https from 'https';
import axios, { type AxiosInstance } from 'axios';
import { systemClock, type Clock } from '../clock';
import { apiErrorMessage, FetchError, kindOfStatus, sanitize } from './errors';
import { parseRetryAfter } from './retry';

export const DEFAULT_TIMEOUT_MS = 10_000;
/** Bodies beyond this are refused: the APIs answer a few kB. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface GetJsonOptions {
  query?: Record<string, string | number>;
  headers?: Record<string, string>;
  /** Deadline for the whole request (connect to last byte); default 10 s. */
  timeoutMs?: number;
  /** Aborts the request (the node is closing). */
  signal?: AbortSignal;
}

export interface ApiClientOptions {
  baseUrl: string;
  /** Name of the API in messages, e.g. `Electricity Maps`. */
  apiName: string;
  /** Values that must never appear in a message (the API key). */
  secrets?: readonly (string | undefined)[];
  /** Injected axios instance (tests); by default one of our own with keep-alive agents. */
  axios?: AxiosInstance;
  clock?: Clock;
}

/** Checks a base URL setting: http or https, nothing else. */
export function checkBaseUrl(baseUrl: string, apiName: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new FetchError('config', `${apiName}: base URL is not a URL: ${sanitize(baseUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FetchError('config', `${apiName}: base URL must start with http:// or https://`);
  }
  return baseUrl.replace(/\/+$/, '');
}

export class ApiClient {
  readonly baseUrl: string;
  private readonly http: AxiosInstance;
  private readonly agents: { http: http.Agent; https: https.Agent } | undefined;
  private readonly secrets: readonly (string | undefined)[];
  private readonly clock: Clock;

  constructor(private readonly options: ApiClientOptions) {
    this.baseUrl = checkBaseUrl(options.baseUrl, options.apiName);
    this.secrets = options.secrets ?? [];
    this.clock = options.clock ?? systemClock;
    if (options.axios) {
      this.http = options.axios;
    } else {
      this.agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
      this.http = axios.create({ httpAgent: this.agents.http, httpsAgent: this.agents.https });
    }
  }

  /** GETs `path` (relative to the base URL) and returns the parsed JSON body of a 2xx answer. */
  async getJson(path: string, opts: GetJsonOptions = {}): Promise<unknown> {
    const api = this.options.apiName;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // One controller for both the deadline and the caller's abort, so we know which one fired.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    if (opts.signal?.aborted) controller.abort();
    opts.signal?.addEventListener('abort', onAbort);
    let res;
    try {
      res = await this.http.request<string>({
        method: 'GET',
        url: this.baseUrl + path,
        params: opts.query,
        headers: { Accept: 'application/json', ...opts.headers },
        signal: controller.signal,
        responseType: 'text',
        transformResponse: [(d: unknown) => d],
        validateStatus: () => true,
        // A redirect could carry the auth header to another host: treat it as an error instead.
        maxRedirects: 0,
        maxContentLength: MAX_BODY_BYTES,
        // Proxies are set through the base URL setting, not picked up from the environment.
        proxy: false,
      });
    } catch (err) {
      if (timedOut) throw new FetchError('timeout', `${api}: no answer within ${timeoutMs} ms`);
      if (opts.signal?.aborted) throw new FetchError('aborted', `${api}: request aborted`);
      const e = err as { code?: string; message?: string };
      if (e.code === 'ERR_BAD_RESPONSE' || /maxContentLength/i.test(e.message ?? '')) {
        throw new FetchError('invalid_response', `${api}: response too large or unreadable`);
      }
      const detail = e.code ? `${e.code}` : sanitize(String(e.message ?? 'request failed'), this.secrets);
      throw new FetchError('network', `${api}: network error (${detail})`);
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }

    const text = typeof res.data === 'string' ? res.data : String(res.data ?? '');
    let body: unknown;
    let parsed = false;
    try {
      body = JSON.parse(text);
      parsed = true;
    } catch {
      body = undefined;
    }
    if (res.status >= 200 && res.status < 300) {
      if (!parsed) throw new FetchError('invalid_response', `${api}: response is not JSON`, res.status);
      return body;
    }
    const kind = kindOfStatus(res.status);
    const retryAfterMs =
      kind === 'rate_limited'
        ? parseRetryAfter(res.headers['retry-after'] as string | undefined, this.clock.now())
        : undefined;
    const said = apiErrorMessage(body);
    const what = kind === 'auth' ? 'API key rejected' : kind === 'rate_limited' ? 'rate limited' : 'request failed';
    const message = `${api}: ${what} (HTTP ${res.status})${said ? `: ${truncate(said, 200)}` : ''}`;
    throw new FetchError(kind, sanitize(message, this.secrets), res.status, retryAfterMs);
  }

  /** Closes the keep-alive connections this client owns. */
  close(): void {
    this.agents?.http.destroy();
    this.agents?.https.destroy();
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
