/**
 * The REST API through real `http in` and `http response` nodes (Express, body parsing) with
 * the cold-store and ai-decision-log operations, wired from the route table exactly as the
 * endpoint list tells the shipped flow to: one `http in` per (method, path), and every method a
 * path does not offer wired to `method-not-allowed`. Then a hostile table: no request gets a 5xx.
 *
 * The app's `httpNodeMiddleware` (app/api-middleware.ts) is installed as in settings.ts: it reads
 * JSON bodies itself so that invalid JSON is a 400 and a body over 1 MiB a 413. Without it, a
 * body-parser error reaches the `http in` node's own route error handler, which answers
 * `res.sendStatus(500)` (21-httpin.js), which is why the app installs it.
 */
import assert from 'assert/strict';
import http from 'http';
import type { AddressInfo } from 'net';
import helper from 'node-red-node-test-helper';
import coldStoreNode = require('../../nodes/cold-store/cold-store');
import decisionLogNode = require('../../nodes/ai-decision-log/ai-decision-log');
import databaseNode = require('../../nodes/hypervolt-database/hypervolt-database');
import { endpointTable } from '../../nodes/shared/api/routes';
import type { HttpMethod } from '../../nodes/shared/api/routes';
import { apiMiddleware } from '../../app/api-middleware';
import { backends } from '../integration/db-support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const httpInNode = require('@node-red/nodes/core/network/21-httpin.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

/** Captures the Express app the `http in` nodes register their routes on (RED.httpNode). */
let httpApp: http.RequestListener | undefined;
const captureHttpApp = (RED: any) => {
  httpApp = RED.httpNode;
};
const NODES = [captureHttpApp, httpInNode, coldStoreNode, decisionLogNode, databaseNode, catchNode];
const METHODS: HttpMethod[] = ['get', 'post', 'put', 'patch', 'delete'];
const SERVED_BY_US = new Set(['cold-store', 'ai-decision-log']);

/** The flow of every endpoint our nodes serve, plus 405 routes, plus a Catch node. */
export function apiFlow(databaseUrl: string, topicPrefix = 'hvtest'): Record<string, unknown>[] {
  const flow: Record<string, unknown>[] = [
    { id: 'f1', type: 'tab', label: 'api' },
    { id: 'db', type: 'hypervolt-database', url: databaseUrl },
    { id: 'res', z: 'f1', type: 'http response', statusCode: '', headers: {}, wires: [] },
    { id: 'published', z: 'f1', type: 'helper' },
    { id: 'broadcast', z: 'f1', type: 'helper' },
    { id: 'on-catch', z: 'f1', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
  let n = 0;
  const byPath = new Map<string, { express: string; methods: Set<string> }>();
  for (const row of endpointTable()) {
    const entry = byPath.get(row.path) ?? { express: row.express, methods: new Set<string>() };
    entry.methods.add(row.method.toLowerCase());
    byPath.set(row.path, entry);
    if (!SERVED_BY_US.has(row.node)) continue;
    const id = `op${n++}`;
    const outputs = row.node === 'ai-decision-log' ? [['res'], ['published'], ['broadcast']] : [['res']];
    flow.push({ id: `in${id}`, z: 'f1', type: 'http in', url: row.express, method: row.method.toLowerCase(), upload: false, wires: [[id]] });
    flow.push({ id, z: 'f1', type: row.node, database: 'db', operation: row.operation, topicPrefix, ...(row.nodeProps ?? {}), wires: outputs });
  }
  flow.push({ id: 'nope', z: 'f1', type: 'cold-store', operation: 'method-not-allowed', wires: [['res']] });
  for (const { express, methods } of byPath.values()) {
    for (const m of METHODS) {
      if (!methods.has(m)) flow.push({ id: `in405${n++}`, z: 'f1', type: 'http in', url: express, method: m, upload: false, wires: [['nope']] });
    }
  }
  return flow.map((node) => (node.z ? { x: 100, y: 100, ...node } : node));
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One request with full control over method, raw path and raw body bytes. */
function send(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string | number> = { ...headers };
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const r = http.request({ host: '127.0.0.1', port, method, path, headers: h }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    r.on('error', reject);
    if (body !== undefined) r.write(body);
    r.end();
  });
}

const json = (v: unknown) => JSON.stringify(v);

describe('REST API through http in / http response nodes', function () {
  let server: http.Server | undefined;
  let port = 0;
  before(async () => {
    helper.settings({ httpNodeMiddleware: apiMiddleware({}), apiMaxLength: '1mb' });
    await helper.startServer();
  });
  after(async () => {
    helper.settings({});
    await helper.stopServer();
  });

  for (const backend of backends()) {
    describe(`on ${backend.name}`, function () {
      let caught: Record<string, any>[] = [];
      let published: Record<string, any>[] = [];
      before(async function () {
        const url = await backend.create(this, 'apihttp');
        await helper.load(NODES, apiFlow(url));
        caught = [];
        published = [];
        helper.getNode('caught').on('input', (m: any) => caught.push(m));
        helper.getNode('published').on('input', (m: any) => published.push(m));
        server = http.createServer(httpApp!);
        await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
        port = (server.address() as AddressInfo).port;
        // Wait for the database to open.
        for (let i = 0; i < 200 && helper.getNode('db').state !== 'up'; i++) await new Promise((r) => setTimeout(r, 25));
      });
      after(async () => {
        await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
        await helper.unload();
        await backend.destroy();
      });

      it('serves each resource end to end with the contract status codes and shapes', async () => {
        const p = await send(port, 'POST', '/api/preferences/', json({ preference_key: 'theme', preference_value: 'dark', id: 5 }));
        assert.equal(p.status, 201, p.text);
        assert.match(String(p.headers['content-type']), /application\/json/);
        assert.equal(p.json.preference_key, 'theme');
        assert.equal((await send(port, 'POST', '/api/preferences', json({ preference_key: 'theme', preference_value: 1 }))).status, 400, 'trailing slash optional');
        assert.deepEqual((await send(port, 'GET', '/api/preferences/get_preference/?key=theme')).json.preference_value, 'dark');
        assert.deepEqual((await send(port, 'GET', '/api/preferences/get_preference/')).json, { error: 'key is required' });
        assert.equal((await send(port, 'PATCH', '/api/preferences/theme/', json({ description: 'UI' }))).json.description, 'UI');
        assert.equal((await send(port, 'GET', '/api/preferences/')).json.count, 1);
        const del = await send(port, 'DELETE', '/api/preferences/theme/');
        assert.equal(del.status, 204);
        assert.equal(del.text, '');

        const es = await send(port, 'POST', '/api/energy-sources/', json({ source_type: 'solar', priority: 3 }));
        assert.equal(es.status, 201);
        assert.equal((await send(port, 'PUT', `/api/energy-sources/${es.json.id}/`, json({ source_type: 'solar', priority: 9 }))).json.priority, 9);
        assert.deepEqual((await send(port, 'GET', '/api/energy-sources/available/')).json.map((r: any) => r.priority), [9]);

        const d = await send(port, 'POST', '/api/ai-decisions/', json({ decision_type: 'general', decision: {}, confidence: 0.5, commands: [{ device_id: 'plug_1', command: 'off' }] }));
        assert.equal(d.status, 201, d.text);
        assert.deepEqual(d.json.decision, { commands: [{ device_id: 'plug_1', command: 'off', value: null }] });
        assert.equal(published.at(-1)!.topic, 'hvtest/commands/plug_1');
        assert.equal((await send(port, 'GET', '/api/ai-decisions/latest/')).json.id, d.json.id);
        assert.equal((await send(port, 'PATCH', `/api/ai-decisions/${d.json.id}/`, json({ applied: true }))).json.applied, true);
        assert.equal((await send(port, 'GET', `/api/ai-decisions/${d.json.id}/`)).json.applied, true);
        assert.equal((await send(port, 'GET', '/api/ai-decisions/recent/?hours=1')).json.length, 1);
        const cmd = await send(port, 'POST', '/api/commands/', json({ device_id: 'fan', command: 'on', value: 2 }));
        assert.deepEqual([cmd.status, cmd.json], [202, { status: 'accepted', device_id: 'fan', command: 'on', topic: 'hvtest/commands/fan' }]);

        assert.equal((await send(port, 'GET', '/api/grid-data/')).json.count, 0);
        assert.deepEqual((await send(port, 'GET', '/api/grid-data/weather/?hours=2')).json, []);
        const openapi = await send(port, 'GET', '/api/openapi.json');
        assert.equal(openapi.json.openapi, '3.1.0');
        const metrics = await send(port, 'GET', '/metrics');
        assert.equal(metrics.status, 200);
        assert.match(String(metrics.headers['content-type']), /^text\/plain;.*version=0\.0\.4/);
        assert.match(metrics.text, /^hypervolt_ai_decisions_recorded_total \d+$/m);
        const m405 = await send(port, 'DELETE', '/api/energy-sources/1/');
        assert.deepEqual([m405.status, m405.json, m405.headers.allow], [405, { detail: 'Method "DELETE" not allowed.' }, 'GET, HEAD, PATCH, PUT, OPTIONS']);
        assert.equal(caught.length, 0, JSON.stringify(caught.map((c) => c.error)));
      });

      it('a hostile table of requests: never a 5xx, always the expected answer', async () => {
        const big = json({ preference_key: 'big', preference_value: 'x'.repeat(1024 * 1024 + 10) });
        const deep = (n: number) => `{"preference_key": "deep", "preference_value": ${'['.repeat(n)}${']'.repeat(n)}}`;
        const invalidUtf8 = Buffer.concat([Buffer.from('{"preference_key": "'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('", "preference_value": 1}')]);
        const sqls = ["' OR 1=1 --", '1; DROP TABLE user_preferences', "x' UNION SELECT * FROM pg_user --", '$1', '\\x00'];
        type Case = [method: string, path: string, body: string | Buffer | undefined, expect: number | number[]];
        const cases: Case[] = [
          // bad numbers
          ['GET', '/api/grid-data/?page=0', undefined, 400],
          ['GET', '/api/grid-data/?page=-1', undefined, 400],
          ['GET', '/api/grid-data/?page=1.5', undefined, 400],
          ['GET', '/api/grid-data/?page=abc', undefined, 400],
          ['GET', '/api/grid-data/?page=1e3', undefined, 400],
          ['GET', '/api/grid-data/?page=99999999999999999999999', undefined, 404],
          ['GET', '/api/grid-data/?page=9007199254740991', undefined, 404],
          ['GET', '/api/grid-data/?page_size=0', undefined, 400],
          ['GET', '/api/grid-data/?page_size=100000000', undefined, 200],
          ['GET', '/api/grid-data/carbon_intensity/?hours=-1', undefined, 400],
          ['GET', '/api/grid-data/carbon_intensity/?hours=0', undefined, 400],
          ['GET', '/api/grid-data/carbon_intensity/?hours=8761', undefined, 400],
          ['GET', '/api/grid-data/carbon_intensity/?hours=NaN', undefined, 400],
          ['GET', '/api/grid-data/carbon_intensity/?hours=Infinity', undefined, 400],
          ['GET', '/api/grid-data/weather/?hours=1&limit=-3', undefined, 400],
          ['GET', '/api/grid-data/weather/?limit=99999999999999999999', undefined, 200],
          ['GET', '/api/ai-decisions/recent/?hours=1e400', undefined, 400],
          ['GET', '/api/ai-decisions/?applied=maybe', undefined, 400],
          // arrays and objects where scalars are expected
          ['GET', '/api/grid-data/?page[$gt]=1', undefined, 400],
          ['GET', '/api/grid-data/?data_type[]=a&data_type[]=b', undefined, 200],
          ['GET', '/api/ai-decisions/?ordering[a]=b', undefined, 400],
          ['POST', '/api/preferences/', json({ preference_key: ['a'], preference_value: 1 }), 400],
          ['POST', '/api/ai-decisions/', json({ decision_type: ['general'], decision: [], confidence: [0.5] }), 400],
          ['POST', '/api/energy-sources/', json({ source_type: { $ne: 1 }, priority: [1] }), 400],
          ['POST', '/api/commands/', json({ device_id: ['x'], command: { a: 1 } }), 400],
          ['PATCH', '/api/ai-decisions/1/', json({ applied: [true] }), [400, 404]],
          // SQL in every parameter
          ...sqls.map((s): Case => ['GET', `/api/grid-data/?data_type=${encodeURIComponent(s)}&zone=${encodeURIComponent(s)}`, undefined, 200]),
          ...sqls.map((s): Case => ['GET', `/api/preferences/${encodeURIComponent(s)}/`, undefined, 404]),
          ...sqls.map((s): Case => ['GET', `/api/ai-decisions/?ordering=${encodeURIComponent(s)}`, undefined, 400]),
          ['GET', `/api/preferences/get_preference/?key=${encodeURIComponent(sqls[0])}`, undefined, 404],
          ['GET', `/api/ai-decisions/latest/?decision_type=${encodeURIComponent(sqls[2])}`, undefined, 404],
          ['GET', `/api/grid-data/latest/?data_type=${encodeURIComponent(sqls[1])}`, undefined, 200],
          ['POST', '/api/preferences/', json({ preference_key: sqls[1], preference_value: sqls[2], description: sqls[0] }), 201],
          // NUL and invalid encodings
          ['GET', '/api/preferences/a%00b/', undefined, 404],
          ['GET', '/api/grid-data/?zone=%00', undefined, 200],
          ['GET', '/api/preferences/get_preference/?key=%00', undefined, 404],
          ['GET', '/api/preferences/%ZZ/', undefined, 400],
          ['GET', '/api/preferences/%C3%28/', undefined, 400],
          ['GET', '/api/grid-data/?zone=%FF%FE', undefined, 200],
          ['POST', '/api/preferences/', invalidUtf8, 400],
          ['POST', '/api/preferences/', json({ preference_key: 'nul\u0000', preference_value: 1 }), 400],
          ['POST', '/api/preferences/', json({ preference_key: 'sur', preference_value: '\ud800' }), 400],
          // unknown ids and keys
          ['GET', '/api/ai-decisions/999999999/', undefined, 404],
          ['PATCH', '/api/ai-decisions/99999999999999999999/', json({ applied: true }), 404],
          ['GET', '/api/energy-sources/0/', undefined, 404],
          ['PUT', '/api/energy-sources/424242/', json({ source_type: 'grid' }), 404],
          ['GET', '/api/energy-sources/abc/', undefined, 404],
          ['DELETE', '/api/preferences/never-there/', undefined, 404],
          // wrong methods
          ['DELETE', '/api/ai-decisions/', undefined, 405],
          ['PUT', '/api/ai-decisions/1/', json({}), 405],
          ['POST', '/api/grid-data/', json({}), 405],
          ['PATCH', '/api/commands/', json({}), 405],
          ['DELETE', '/api/openapi.json', undefined, 405],
          ['POST', '/metrics', json({}), 405],
          ['PUT', '/api/preferences/', json({}), 405],
          ['POST', '/api/energy-sources/available/', json({}), 405],
          ['GET', '/api/nowhere/', undefined, 404],
          // invalid JSON, big bodies, odd bodies
          ['POST', '/api/preferences/', '{"preference_key": ', 400],
          ['POST', '/api/ai-decisions/', '{decision_type: general}', 400],
          ['POST', '/api/commands/', 'null', 400],
          ['POST', '/api/preferences/', '"just a string"', 400],
          ['POST', '/api/preferences/', '[]', 400],
          ['POST', '/api/ai-decisions/', '12345', 400],
          ['POST', '/api/preferences/', big, 413],
          ['POST', '/api/preferences/', deep(40), 400],
          ['POST', '/api/preferences/', deep(100_000), 400],
          ['POST', '/api/ai-decisions/', json({ decision_type: 'general', decision: { x: 1 }, confidence: 0.5, commands: Array.from({ length: 101 }, (_, i) => ({ device_id: `d${i}`, command: 'c' })) }), 400],
          ['POST', '/api/ai-decisions/', json({ decision_type: 'general', decision: {}, confidence: 0.5, commands: [{ device_id: 'a/b/#', command: 'x' }] }), 400],
          ['POST', '/api/ai-decisions/', json({ decision_type: 'general', decision: {}, confidence: 0.5, timestamp: '2026-13-45T99:00:00Z' }), 400],
          ['POST', '/api/energy-sources/', json({ source_type: 'grid', priority: 1e300 }), 400],
          // __proto__ and friends
          ['POST', '/api/preferences/', '{"__proto__": {"isAdmin": true}, "preference_key": "proto", "preference_value": {"__proto__": {"x": 1}}}', 201],
          ['POST', '/api/energy-sources/', '{"constructor": {"prototype": {"polluted": 1}}, "source_type": "battery"}', 201],
          ['PATCH', '/api/preferences/proto/', '{"__proto__": null}', 200],
          ['POST', '/api/ai-decisions/', '{"__proto__": {"decision_type": "general", "decision": {}, "confidence": 0.5}}', 400],
        ];
        assert.ok(cases.length >= 50, `${cases.length} cases`);
        const failures: string[] = [];
        for (const [method, path, body, expect] of cases) {
          const res = await send(port, method, path, body);
          const wanted = Array.isArray(expect) ? expect : [expect];
          if (res.status >= 500 || !wanted.includes(res.status)) {
            failures.push(`${method} ${path.slice(0, 80)} ${typeof body === 'string' ? body.slice(0, 60) : ''} → ${res.status} ${res.text.slice(0, 120)} (wanted ${wanted})`);
          }
          // An undecodable route parameter never reaches a node: Express answers 400 itself (the
          // app's JSON error handler, app/api-fallback.ts, makes that JSON; this helper has none).
          const beforeNodes = path.includes('%ZZ') || path.includes('%C3%28');
          if (res.status >= 400 && path.startsWith('/api/') && res.status !== 404 && !beforeNodes) {
            // Every answer of ours (and of the app middleware) is JSON, never an HTML error page.
            if (res.json === undefined) failures.push(`${method} ${path.slice(0, 60)} → ${res.status} not JSON: ${res.text.slice(0, 80)}`);
          }
        }
        assert.deepEqual(failures, []);
        assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        // The SQL text was stored as data, and the tables are still there.
        const stored = await send(port, 'GET', `/api/preferences/${encodeURIComponent(sqls[1])}/`);
        assert.equal(stored.json.preference_value, sqls[2]);
        assert.equal((await send(port, 'GET', '/api/preferences/')).status, 200);
        const proto = await send(port, 'GET', '/api/preferences/proto/');
        assert.equal(proto.text.includes('"__proto__":{"x":1}'), true, proto.text);
        assert.equal(caught.length, 0, 'no node reported an error');
      });
    });
  }
});
