/**
 * The common part of the fake outside APIs: a plain HTTP server on 127.0.0.1 (random port) that
 * records every request and answers from a programmable queue of scenarios, or normally when
 * the queue is empty. Each fake decides what "normally" and each scenario mean for its API.
 */
import http from 'http';
import type { AddressInfo } from 'net';

/**
 * What the next matching request gets: an HTTP status (200 = the normal answer, others the API's
 * error answer for that status), `timeout` (never answered), `malformed` (200 with a body of the
 * wrong shape), `garbage` (200, not JSON), or an exact answer.
 */
export type Scenario =
  | number
  | 'timeout'
  | 'malformed'
  | 'garbage'
  | { status: number; body?: unknown; headers?: Record<string, string> };

export interface ScenarioOptions {
  /** Only for requests to this path (e.g. `/v3/carbon-intensity/latest`); default: any request. */
  path?: string;
  /** For 429: the Retry-After header (seconds or an HTTP date); default `1`. */
  retryAfter?: string | number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  at: number;
}

export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  /** A value to send as JSON, or a string sent as it is. */
  body: unknown;
}

interface Queued {
  scenario: Scenario;
  opts: ScenarioOptions;
}

export abstract class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly queue: Queued[] = [];
  private readonly server: http.Server;
  private readonly waiters: { n: number; resolve: () => void }[] = [];
  private baseUrl = '';
  private unanswered = 0;

  constructor() {
    this.server = http.createServer((req, res) => this.onRequest(req, res));
  }

  /** `http://127.0.0.1:PORT` once started. */
  get url(): string {
    return this.baseUrl;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}`;
    return this;
  }

  /** Queues a scenario for the next request (to `opts.path`, if given). */
  next(scenario: Scenario, opts: ScenarioOptions = {}): this {
    this.queue.push({ scenario, opts });
    return this;
  }

  /** Scenarios queued and not used yet. */
  get pending(): number {
    return this.queue.length;
  }

  /** `timeout` requests whose connection the client still holds open (an abort closes it). */
  get hanging(): number {
    return this.unanswered;
  }

  /** Requests to one path. */
  requestsTo(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  /** Resolves once `n` requests in all have arrived; rejects after `timeoutMs`. */
  waitForRequests(n: number, timeoutMs = 5000): Promise<RecordedRequest[]> {
    if (this.requests.length >= n) return Promise.resolve(this.requests.slice());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`expected ${n} requests within ${timeoutMs} ms, got ${this.requests.length}`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(timer);
          resolve(this.requests.slice());
        },
      });
    });
  }

  /** Stops the server and drops every connection, answered or not. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The normal answer of the API to this request. */
  protected abstract answer(req: RecordedRequest): FakeResponse;
  /** The API's error answer for a status. */
  protected abstract errorAnswer(req: RecordedRequest, status: number, opts: ScenarioOptions): FakeResponse;
  /** A 200 answer of the right content type but the wrong shape for this path. */
  protected abstract malformedAnswer(req: RecordedRequest): FakeResponse;

  private takeScenario(path: string): Queued | undefined {
    const i = this.queue.findIndex((q) => q.opts.path === undefined || q.opts.path === path);
    return i < 0 ? undefined : this.queue.splice(i, 1)[0];
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams.entries()),
      headers: req.headers,
      at: Date.now(),
    };
    this.requests.push(recorded);
    for (const w of this.waiters.filter((w) => this.requests.length >= w.n)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
    const queued = this.takeScenario(recorded.path);
    let response: FakeResponse;
    if (!queued) {
      response = this.answer(recorded);
    } else {
      const s = queued.scenario;
      if (s === 'timeout') {
        // Never answered: the client's deadline (or abort) must end it.
        this.unanswered += 1;
        res.on('close', () => (this.unanswered -= 1));
        return;
      }
      if (s === 'garbage') {
        response = { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>502 Bad Gateway</body></html>' };
      } else if (s === 'malformed') {
        response = this.malformedAnswer(recorded);
      } else if (typeof s === 'number') {
        response = s === 200 ? this.answer(recorded) : this.errorAnswer(recorded, s, queued.opts);
      } else {
        response = { status: s.status, headers: s.headers, body: s.body ?? '' };
      }
    }
    const body = typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
    res.writeHead(response.status, {
      'content-type': 'application/json; charset=utf-8',
      ...response.headers,
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }
}
