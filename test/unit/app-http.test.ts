/**
 * The API middleware and the 404/405 fallback, on a real HTTP server with a tiny router: bodies
 * and error answers are what clients see, so they are tested over the wire.
 */
import assert from 'assert/strict';
import http from 'http';
import type { AddressInfo } from 'net';
import { allowedMethods, apiFallback, jsonErrorHandler, type RouteLayer } from '../../app/api-fallback';
import { apiMiddleware, isJsonType, parseJsonBody } from '../../app/api-middleware';

type Handler = (req: http.IncomingMessage & { body?: unknown; path?: string }, res: http.ServerResponse, next: (err?: unknown) => void) => void;

/** A route layer like Express 4's: `:name` segments and an optional trailing slash. */
function layer(path: string, methods: string[]): RouteLayer {
  const re = new RegExp('^' + path.replace(/:[a-z]+(\([^)]*\))?/g, (_m, r) => (r ? r : '[^/]+')).replace(/\/$/, '') + '/?$', 'i');
  return { match: (p) => re.test(p), route: { methods: Object.fromEntries(methods.map((m) => [m, true])) } };
}

function chain(handlers: Handler[]): http.RequestListener {
  return (req, res) => {
    let i = 0;
    const next = (err?: unknown) => {
      const h = handlers[i++];
      if (err) {
        jsonErrorHandler(() => undefined)(err, req, res, () => res.end());
        return;
      }
      if (h) h(req, res, next);
      else res.end(); // the end of the chain: an empty 200
    };
    next();
  };
}

describe('app http: API middleware and fallback', () => {
  let server: http.Server;
  let base: string;
  const stack = [layer('/api/things', ['get', 'post']), layer('/api/things/:id(\\d+)', ['get'])];
  let tokens: { apiToken?: string; readToken?: string } = {};

  before(async () => {
    const echo: Handler = (req, res, next) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (stack.some((l) => l.match(path) && l.route!.methods[(req.method ?? '').toLowerCase()])) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ body: req.body ?? null }));
        return;
      }
      next();
    };
    server = http.createServer((req, res) =>
      chain([(rq, rs, nx) => apiMiddleware(tokens, 1024)(rq, rs, nx), echo, apiFallback(() => stack)])(req, res),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  afterEach(() => {
    tokens = {};
  });

  const post = (path: string, body: string | Buffer, type = 'application/json', headers: Record<string, string> = {}) =>
    fetch(base + path, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { 'content-type': type, ...headers } });

  it('parses a JSON body', async () => {
    const r = await post('/api/things', '{"a": 1}');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { body: { a: 1 } });
  });

  it('invalid JSON: 400 {"detail": "JSON parse error - ..."}', async () => {
    const r = await post('/api/things', '{"a": ');
    assert.equal(r.status, 400);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    const body = (await r.json()) as { detail: string };
    assert.match(body.detail, /^JSON parse error - /);
  });

  it('a body over the limit: 413 in JSON', async () => {
    const r = await post('/api/things', JSON.stringify({ x: 'y'.repeat(2000) }));
    assert.equal(r.status, 413);
    assert.match(((await r.json()) as { detail: string }).detail, /too large/);
  });

  it('a chunked body over the limit: 413 too', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(base + '/api/things', { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('[' + '1,'.repeat(400));
      req.write('1,'.repeat(400));
      req.end('1]');
    });
    assert.equal(status, 413);
  });

  it('not JSON: 415; invalid UTF-8: 400', async () => {
    assert.equal((await post('/api/things', 'a=1', 'application/x-www-form-urlencoded')).status, 415);
    const r = await post('/api/things', Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]));
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { detail: string }).detail, /UTF-8/);
  });

  it('an empty body is an empty object', async () => {
    const r = await fetch(base + '/api/things', { method: 'POST' });
    assert.deepEqual(await r.json(), { body: {} });
  });

  it('tokens: 401 and 403 before the body is read', async () => {
    tokens = { apiToken: 'w', readToken: 'r' };
    let r = await post('/api/things', '{"a": ');
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="api"');
    assert.deepEqual(await r.json(), { detail: 'Authentication credentials were not provided.' });
    r = await post('/api/things', '{}', 'application/json', { authorization: 'Bearer r' });
    assert.equal(r.status, 403);
    r = await post('/api/things', '{"a":2}', 'application/json', { authorization: 'Bearer w' });
    assert.deepEqual(await r.json(), { body: { a: 2 } });
    assert.equal((await fetch(base + '/api/things')).status, 401);
    assert.equal((await fetch(base + '/api/things', { headers: { authorization: 'Bearer r' } })).status, 200);
  });

  it('leaves paths outside /api/ alone', async () => {
    tokens = { apiToken: 'w', readToken: 'r' };
    const r = await post('/other', 'not json');
    // the fallback passes it on too; the test chain then ends the response without a body
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '');
  });

  it('unknown API path: 404 {"detail": "Not found."}', async () => {
    const r = await fetch(base + '/api/nothing/');
    assert.equal(r.status, 404);
    assert.deepEqual(await r.json(), { detail: 'Not found.' });
    assert.equal((await fetch(base + '/api/things/abc/')).status, 404);
  });

  it('known path, wrong method: 405 with Allow', async () => {
    const r = await fetch(base + '/api/things/7/', { method: 'DELETE' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD, OPTIONS');
    assert.deepEqual(await r.json(), { detail: 'Method "DELETE" not allowed.' });
  });

  it('allowedMethods ignores layers that are not routes and paths that do not decode', () => {
    const bad: RouteLayer = {
      match: () => {
        throw new URIError('bad');
      },
      route: { methods: { get: true } },
    };
    const middleware: RouteLayer = { match: () => true };
    assert.deepEqual(allowedMethods([bad, middleware, ...stack], '/api/things/'), ['GET', 'HEAD', 'POST']);
  });

  it('parseJsonBody and isJsonType', () => {
    assert.equal(isJsonType('application/json; charset=utf-8'), true);
    assert.equal(isJsonType('application/vnd.api+json'), true);
    assert.equal(isJsonType(undefined), true);
    assert.equal(isJsonType('text/plain'), false);
    assert.deepEqual(parseJsonBody(Buffer.from('[1]'), 'application/json'), { ok: true, body: [1] });
    assert.equal((parseJsonBody(Buffer.from('{}'), 'application/json; charset=latin1') as { status: number }).status, 415);
    // keys like __proto__ stay plain data
    const r = parseJsonBody(Buffer.from('{"__proto__": {"polluted": true}}'), 'application/json') as { body: object };
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.ok(Object.prototype.hasOwnProperty.call(r.body, '__proto__'));
  });
});
