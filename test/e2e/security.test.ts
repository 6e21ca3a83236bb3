/**
 * Issue 8 end to end, on the app as `npm start` runs it: the auth matrix (every endpoint of the
 * shipped flow × no token, a wrong one, the read token, the write token, and the WebSocket), CORS
 * and Origin checks, security headers, rate limits, WebSocket limits, the editor login, and a
 * secret canary run that exercises every failure path and then looks for the secrets everywhere.
 */
import assert from 'assert/strict';
import { spawn } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import fs from 'fs';
import http from 'http';
import mqtt from 'mqtt';
import net from 'net';
import os from 'os';
import path from 'path';
import WebSocket from 'ws';
import { decryptCredentials } from '../../app/credentials';
import { loadBcrypt } from '../../app/hash-password';
import { INVALID_TOKEN, NO_CREDENTIALS, NO_PERMISSION } from '../../app/security';
import { freePort, runAppToExit, startApp, type RunningApp } from '../support/app';
import { FakeElectricityMaps } from '../support/fakes/electricitymaps';
import { FakeOpenWeatherMap } from '../support/fakes/openweathermap';
import { RUN_ID } from '../support/services';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const FLOW_FILE = path.join(ROOT, 'flows', 'hypervolt.json');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Every HTTP answer the tests received (status line, headers, body), for the canary check. */
const received: string[] = [];

function record(a: Answer): Answer {
  received.push(`${a.status}\n${JSON.stringify(a.headers)}\n${a.body}`);
  return a;
}

/** One HTTP request; `from` picks the client's loopback address (a different client for the rate limits). */
function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; from?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // An explicit length: Node's client sends a DELETE body without one, which the server cannot frame.
    const headers = opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)), ...opts.headers } : opts.headers;
    const req = http.request(url, { method: opts.method ?? 'GET', headers, localAddress: opts.from, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(record({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

function json(a: Answer): any {
  return JSON.parse(a.body);
}

/** The raw answer to a WebSocket upgrade (as a browser's would be seen on the wire). */
function rawUpgrade(port: number, path: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      const all: Record<string, string> = {
        host: `127.0.0.1:${port}`,
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        'sec-websocket-version': '13',
        ...headers,
      };
      s.write(`GET ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
    });
    let text = '';
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (text.startsWith('HTTP/1.1 101') && text.includes('\r\n\r\n')) s.destroy(); // accepted: the head is all we want
    });
    s.on('close', () => {
      received.push(text);
      resolve(text);
    });
    s.on('error', reject);
    setTimeout(() => s.destroy(), 5000);
  });
}

function upgradeStatus(raw: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
}

/** Opens a WebSocket client; resolves with it, or with the status of a refused upgrade. */
function wsConnect(url: string, protocols?: string[], opts: WebSocket.ClientOptions = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, opts);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.once('error', reject);
  });
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-site',
};

function assertSecurityHeaders(a: Answer, what: string, api = true): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(a.headers[k], v, `${what}: ${k} (answer ${a.status} ${JSON.stringify(a.headers)} ${a.body.slice(0, 200)})`);
  if (api) assert.equal(a.headers['cache-control'], 'no-store', `${what}: cache-control`);
  assert.equal(a.headers['x-powered-by'], undefined, `${what}: no X-Powered-By`);
}

/** The `http in` endpoints of the shipped flow, with path parameters filled in. */
function flowEndpoints(): { method: string; path: string }[] {
  const flow = JSON.parse(fs.readFileSync(FLOW_FILE, 'utf8')) as { type: string; method?: string; url?: string }[];
  return flow
    .filter((n) => n.type === 'http in' && n.url && n.method)
    .map((n) => ({
      method: n.method!.toUpperCase(),
      path: n.url!.replace(/:(\w+)\([^)]*\)/g, '1').replace(/:(\w+)/g, 'x'),
    }));
}

function hashPassword(password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'app', 'hash-password.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`hash-password exited ${code}`))));
    child.stdin.end(`${password}\n`);
  });
}

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('e2e: security', function () {
  this.timeout(120_000);

  describe('exposed on 0.0.0.0 with an editor login, tokens, CORS and limits', () => {
    const READ = `read-${RUN_ID}`;
    const WRITE = `write-${RUN_ID}`;
    const ADMIN_PASSWORD = `admin-${RUN_ID}`;
    const TWIN = 'https://twin.example';
    let app: RunningApp | undefined;
    const sockets: WebSocket[] = [];

    before(async () => {
      const hash = await hashPassword(ADMIN_PASSWORD); // npm run hash-password, as the README says
      app = await startApp({
        HOST: '0.0.0.0',
        ADMIN_USER: 'admin',
        ADMIN_PASSWORD_HASH: hash,
        API_TOKEN: WRITE,
        API_READ_TOKEN: READ,
        CORS_ORIGIN: TWIN,
        RATE_LIMIT_WRITES_PER_MIN: '120',
        RATE_LIMIT_COMMANDS_PER_MIN: '60',
        WS_MAX_CLIENTS: '4',
        HYPERVOLT_LOCAL_MQTT_PORT: String(await freePort()),
        MQTT_CLIENT_ID: `hvtest-${RUN_ID}-sec`,
        ELECTRICITY_MAPS_BASE_URL: 'http://127.0.0.1:9',
        OPENWEATHER_BASE_URL: 'http://127.0.0.1:9',
      });
    });
    after(async () => {
      for (const s of sockets) s.terminate();
      await app?.stop();
    });

    function open(ws: WebSocket | number): WebSocket {
      assert.ok(ws instanceof WebSocket, `expected an open WebSocket, got ${String(ws)}`);
      sockets.push(ws);
      return ws;
    }

    it('the auth matrix: every endpoint of the flow × no token, wrong token, read token, write token', async () => {
      const endpoints = flowEndpoints();
      assert.ok(endpoints.length >= 10, `the flow's endpoints: ${endpoints.length}`);
      const rows: string[] = [];
      for (const [i, { method, path: p }] of endpoints.entries()) {
        const write = method !== 'GET';
        const send = (token?: string) =>
          request(`${app!.url}${p}`, {
            method,
            from: `127.0.1.${1 + (i % 250)}`, // a client per endpoint: the rate limits stay out of the way
            headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(write ? { 'content-type': 'application/json' } : {}) },
            body: write ? '{}' : undefined,
          });
        const none = await send();
        const wrong = await send('not-a-token');
        const read = await send(READ);
        const full = await send(WRITE);
        rows.push(`${method} ${p}: ${none.status} ${wrong.status} ${read.status} ${full.status}`);
        for (const [a, what] of [[none, 'none'], [wrong, 'wrong'], [read, 'read'], [full, 'write']] as const) {
          assertSecurityHeaders(a, `${method} ${p} (${what})`);
          assert.notEqual(a.status, 500, `${method} ${p} (${what}): never a 500`);
        }
        assert.equal(none.status, 401, `${method} ${p} without a token`);
        assert.deepEqual(json(none), { detail: NO_CREDENTIALS });
        assert.match(String(none.headers['www-authenticate']), /^Bearer/);
        assert.equal(wrong.status, 401, `${method} ${p} with a wrong token`);
        assert.deepEqual(json(wrong), { detail: INVALID_TOKEN });
        if (write) {
          assert.equal(read.status, 403, `${method} ${p} with the read token`);
          assert.deepEqual(json(read), { detail: NO_PERMISSION });
        } else {
          assert.ok(![401, 403].includes(read.status), `${method} ${p} with the read token: ${read.status}`);
        }
        assert.ok(![401, 403].includes(full.status), `${method} ${p} with the write token: ${full.status}`);
      }
      assert.ok(rows.length === endpoints.length, rows.join('\n'));
    });

    it('the auth matrix of the WebSocket: no token, wrong, read and write tokens by query, subprotocol or header', async () => {
      const url = `${app!.wsUrl}/ws/sensors/`;
      assert.equal(await wsConnect(url), 401);
      assert.equal(await wsConnect(`${url}?token=wrong`), 401);
      assert.equal(await wsConnect(url, ['hypervolt', 'bearer.wrong']), 401);
      open(await wsConnect(`${url}?token=${READ}`)).close();
      open(await wsConnect(`${url}?token=${WRITE}`)).close();
      open(await wsConnect(url, [], { headers: { authorization: `Bearer ${READ}` } })).close();
      const viaProtocol = open(await wsConnect(url, ['hypervolt', `bearer.${READ}`]));
      assert.equal(viaProtocol.protocol, 'hypervolt', 'the server picks the non-secret subprotocol');
      viaProtocol.close();
      const raw = await rawUpgrade(app!.port, '/ws/sensors/', { 'sec-websocket-protocol': `hypervolt, bearer.${READ}` });
      assert.equal(upgradeStatus(raw), 101);
      assert.ok(!raw.includes(READ), 'the token is not sent back in the 101 answer');
      const refused = await rawUpgrade(app!.port, '/ws/sensors/');
      assert.equal(upgradeStatus(refused), 401);
      assert.match(refused, /\r\nx-frame-options: DENY\r\n/i);
      assert.match(refused, /\r\nx-content-type-options: nosniff\r\n/i);
    });

    it('/metrics needs the read token like the API', async () => {
      const none = await request(`${app!.url}/metrics`);
      if (none.status === 404) return; // not in the flow (yet)
      assert.equal(none.status, 401);
      assert.equal((await request(`${app!.url}/metrics`, { headers: { authorization: `Bearer ${READ}` } })).status, 200);
    });

    it('the editor: loads, needs its login (made with npm run hash-password), no diagnostics, headers on every answer', async () => {
      const page = await request(`${app!.url}/admin/`);
      assert.equal(page.status, 200);
      assert.match(page.body, /<title>HyperVolt pipeline<\/title>/);
      assertSecurityHeaders(page, 'GET /admin/', false);
      assert.equal(page.headers['access-control-allow-origin'], '*', "Node-RED's own CORS on the editor (no credentials)");
      const flows = await request(`${app!.url}/admin/flows`);
      assert.equal(flows.status, 401);
      assertSecurityHeaders(flows, 'GET /admin/flows', false);
      assert.equal((await request(`${app!.url}/admin/diagnostics`)).status, 401);
      const login = await request(`${app!.url}/admin/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: '*', username: 'admin', password: ADMIN_PASSWORD }),
      });
      assert.equal(login.status, 200);
      const auth = { authorization: `Bearer ${json(login).access_token}` };
      assert.equal((await request(`${app!.url}/admin/flows`, { headers: auth })).status, 200);
      const diagnostics = await request(`${app!.url}/admin/diagnostics`, { headers: auth });
      assert.equal(diagnostics.status, 403);
      assert.equal(json(diagnostics).code, 'diagnostics.disabled');
      // A page of another site gets nothing without the token (Node-RED's CORS `*` notwithstanding).
      const cross = await request(`${app!.url}/admin/flows`, { headers: { origin: 'https://evil.example' } });
      assert.equal(cross.status, 401);
    });

    it('the editor works in a real browser with these headers and guards: login, workspace, live connection', async function () {
      if (!fs.existsSync(CHROMIUM)) {
        if (process.env.CI) throw new Error(`${CHROMIUM} is missing: the editor check must run under CI`);
        this.skip();
      }
      const { chromium } = await import('playwright-core');
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
      try {
        const page = await browser.newPage();
        const problems: string[] = [];
        // Script errors, anything our guards refused, anything the browser blocked (the 401 before
        // the login and the editor's look-ups on the internet are expected).
        page.on('pageerror', (e) => problems.push(e.message));
        page.on('response', (r) => r.status() === 403 && problems.push(`403 ${r.url()}`));
        page.on('console', (m) => /refused|blocked|frame|content security|cors/i.test(m.text()) && problems.push(m.text()));
        const comms = new Promise<void>((resolve) =>
          page.on('websocket', (ws) => {
            if (ws.url().includes('/admin/comms')) ws.once('framereceived', () => resolve());
          }),
        );
        await page.goto(`${app!.url}/admin/`);
        await page.fill('#node-dialog-login-username', 'admin');
        await page.fill('#node-dialog-login-password', ADMIN_PASSWORD);
        await page.click('#node-dialog-login-submit');
        await page.locator('#red-ui-header-button-deploy').waitFor({ state: 'visible', timeout: 20_000 });
        await page.locator('.red-ui-tab', { hasText: 'HyperVolt ingest' }).first().waitFor({ state: 'visible', timeout: 20_000 });
        await comms; // the editor's own WebSocket was let through
        assert.deepEqual(problems, [], 'no errors in the page');
      } finally {
        await browser.close();
      }
    });

    it('unknown paths and methods: JSON 404 / 405 with the headers', async () => {
      const auth = { authorization: `Bearer ${WRITE}` };
      const missing = await request(`${app!.url}/api/nope/`, { headers: auth });
      assert.equal(missing.status, 404);
      assertSecurityHeaders(missing, '404');
      const method = await request(`${app!.url}/api/health/`, { method: 'DELETE', headers: auth });
      assert.equal(method.status, 405);
      assertSecurityHeaders(method, '405');
      const root = await request(`${app!.url}/`);
      assertSecurityHeaders(root, 'GET /', false);
      assert.equal(upgradeStatus(await rawUpgrade(app!.port, '/ws/nope/')), 404);
      const garbage = await new Promise<string>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: app!.port }, () => s.write('NOT HTTP AT ALL\r\n\r\n'));
        let text = '';
        s.on('data', (d) => (text += d));
        s.on('close', () => resolve(text));
      });
      assert.match(garbage, /^HTTP\/1\.1 400 /, 'a request Node cannot parse');
      assert.match(garbage, /\r\nx-content-type-options: nosniff\r\n/i);
    });

    it('CORS: the allowed origin only, never with credentials; other origins may not write nor open the WebSocket', async () => {
      const preflight = await request(`${app!.url}/api/sensor-readings/`, {
        method: 'OPTIONS',
        headers: { origin: TWIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      assert.ok(preflight.status === 204 || preflight.status === 200, `preflight ${preflight.status}`);
      assert.equal(preflight.headers['access-control-allow-origin'], TWIN);
      assert.match(String(preflight.headers['access-control-allow-headers']), /authorization/i);
      assert.equal(preflight.headers['access-control-allow-credentials'], undefined);
      const evilPreflight = await request(`${app!.url}/api/sensor-readings/`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      assert.equal(evilPreflight.headers['access-control-allow-origin'], undefined);

      const read = await request(`${app!.url}/api/health/`, { headers: { origin: TWIN, authorization: `Bearer ${READ}` } });
      assert.equal(read.headers['access-control-allow-origin'], TWIN);
      assert.equal(read.headers['access-control-allow-credentials'], undefined);
      const denied = await request(`${app!.url}/api/health/`, { headers: { origin: TWIN } });
      assert.equal(denied.status, 401);
      assert.equal(denied.headers['access-control-allow-origin'], TWIN, 'the page can read why');
      const other = await request(`${app!.url}/api/health/`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${READ}` } });
      assert.equal(other.headers['access-control-allow-origin'], undefined);

      // A cross-site write without preflight (a form, or fetch no-cors without Content-Type): refused.
      const csrf = await request(`${app!.url}/api/maintenance/cleanup/`, {
        method: 'POST',
        headers: { origin: 'https://evil.example', authorization: `Bearer ${WRITE}` },
        body: '',
      });
      assert.equal(csrf.status, 403);
      assert.deepEqual(json(csrf), { detail: 'Origin not allowed.' });

      assert.equal(await wsConnect(`${app!.wsUrl}/ws/sensors/?token=${READ}`, [], { origin: 'https://evil.example' }), 403);
      open(await wsConnect(`${app!.wsUrl}/ws/sensors/?token=${READ}`, [], { origin: TWIN })).close();
    });

    it('rate limits per client: POST /api/commands/ (60/min) then 429 with Retry-After, allowed again after the wait', async () => {
      const post = (from: string) =>
        request(`${app!.url}/api/commands/`, {
          method: 'POST',
          from,
          headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json' },
          body: JSON.stringify({ device_id: 'lamp_1', command: 'set_brightness', value: 10 }),
        });
      const started = Date.now();
      let allowed = 0;
      let limited: Answer | undefined;
      while (!limited && allowed < 80) {
        const a = await post('127.0.0.2');
        if (a.status === 429) limited = a;
        else allowed += 1;
      }
      const seconds = (Date.now() - started) / 1000;
      assert.ok(limited, 'throttled');
      assert.ok(allowed >= 60 && allowed <= 60 + Math.ceil(seconds) + 1, `${allowed} allowed in ${seconds} s`);
      assert.equal(limited.headers['retry-after'], '1');
      assert.deepEqual(json(limited), { detail: 'Request was throttled. Expected available in 1 second.' });
      assertSecurityHeaders(limited, '429');
      assert.equal((await post('127.0.0.3')).status !== 429, true, 'another client is not throttled');
      await new Promise((r) => setTimeout(r, 1000 * Number(limited.headers['retry-after'])));
      assert.notEqual((await post('127.0.0.2')).status, 429, 'allowed again after Retry-After');
    });

    it('rate limits per client: writes (120/min) then 429; reads are not limited', async () => {
      const write = () =>
        request(`${app!.url}/api/sensor-readings/`, {
          method: 'POST',
          from: '127.0.0.4',
          headers: { authorization: `Bearer ${WRITE}`, 'content-type': 'application/json' },
          body: '{"sensor_type": "ldr"}',
        });
      let allowed = 0;
      let limited: Answer | undefined;
      while (!limited && allowed < 160) {
        const a = await write();
        if (a.status === 429) limited = a;
        else allowed += 1;
      }
      assert.ok(limited && allowed >= 120, `${allowed} allowed`);
      assert.match(String(limited.headers['retry-after']), /^[12]$/);
      const reads = await Promise.all(
        Array.from({ length: 30 }, () => request(`${app!.url}/api/health/`, { from: '127.0.0.4', headers: { authorization: `Bearer ${READ}` } })),
      );
      assert.ok(reads.every((r) => r.status !== 429));
    });

    it('WebSocket: a message over 64 KiB closes the client (1009); up to 64 KiB is handled', async () => {
      const ws = open(await wsConnect(`${app!.wsUrl}/ws/sensors/?token=${READ}`));
      const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
      ws.send(`{${'x'.repeat(64 * 1024 - 1)}`); // invalid JSON of exactly 64 KiB
      assert.deepEqual(JSON.parse(await reply), { type: 'error', message: 'Invalid JSON' });
      const gone = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      ws.send('x'.repeat(64 * 1024 + 1));
      assert.equal(await gone, 1009);
    });

    it(`WebSocket: at most WS_MAX_CLIENTS clients (4), then 503 until one leaves`, async () => {
      for (const s of sockets.splice(0)) s.terminate();
      await new Promise((r) => setTimeout(r, 300)); // the server sees those go
      const four: WebSocket[] = [];
      for (let i = 0; i < 4; i++) four.push(open(await wsConnect(`${app!.wsUrl}/ws/sensors/?token=${READ}`)));
      const raw = await rawUpgrade(app!.port, `/ws/sensors/?token=${READ}`);
      assert.equal(upgradeStatus(raw), 503);
      assert.match(raw, /\r\nretry-after: \d+\r\n/i);
      assert.match(raw, /\r\nx-content-type-options: nosniff\r\n/i);
      const gone = new Promise((r) => four[0].once('close', r));
      four[0].close();
      await gone;
      await until('a free slot', async () => {
        const ws = await wsConnect(`${app!.wsUrl}/ws/sensors/?token=${READ}`);
        if (typeof ws === 'number') return undefined;
        open(ws);
        return true;
      }, 5000);
    });
  });

  describe('refusing to expose the editor', () => {
    it('HOST=:: (every interface) without an editor login: exits non-zero, saying why', async () => {
      const { code, logs } = await runAppToExit({ HOST: '::', MQTT_URL: 'mqtt://127.0.0.1:1' });
      assert.notEqual(code, 0);
      assert.match(logs, /refusing to listen on HOST=:: without an editor login/);
      assert.doesNotMatch(logs, /Welcome to Node-RED/);
    });

    it('an invalid security setting stops the app at start, naming it', async () => {
      const { code, logs } = await runAppToExit({ WS_MAX_CLIENTS: 'many', RATE_LIMIT_COMMANDS_PER_MIN: '-5', MQTT_URL: 'mqtt://127.0.0.1:1' });
      assert.equal(code, 2);
      assert.match(logs, /WS_MAX_CLIENTS must be a whole number/);
      assert.match(logs, /RATE_LIMIT_COMMANDS_PER_MIN must be a whole number/);
    });
  });

  describe('the secret canary: secrets appear in no file, log line or answer after every failure path', () => {
    const canary = (name: string) => `CANARY${name}${randomBytes(8).toString('hex')}`;
    const CANARIES = {
      ELECTRICITY_MAPS_API_KEY: canary('em'),
      OPENWEATHER_API_KEY: canary('owm'),
      API_TOKEN: canary('write'),
      API_READ_TOKEN: canary('read'),
      MQTT_PASSWORD: canary('mqtt'),
      NODE_RED_CREDENTIAL_SECRET: canary('cred'),
      PI_PASSWORD: canary('pi'),
    };
    let app: RunningApp | undefined;
    let em: FakeElectricityMaps;
    let owm: FakeOpenWeatherMap;
    let brokerPort = 0;
    let aclDir: string;
    let flowHashBefore: string;
    const clients: mqtt.MqttClient[] = [];

    before(async () => {
      flowHashBefore = createHash('sha256').update(fs.readFileSync(FLOW_FILE)).digest('hex');
      em = await FakeElectricityMaps.start({ apiKey: CANARIES.ELECTRICITY_MAPS_API_KEY });
      owm = await FakeOpenWeatherMap.start({ apiKey: CANARIES.OPENWEATHER_API_KEY });
      // Every failure an outside API can give, first at start, then on refreshes.
      for (const fake of [em, owm] as const) {
        for (const s of [401, 429, 500, 'garbage', 'malformed', 'timeout'] as const) fake.next(s);
      }
      aclDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-canary-acl-'));
      const aclFile = path.join(aclDir, 'acl.json');
      fs.writeFileSync(
        aclFile,
        JSON.stringify({
          users: {
            'pi-hall': {
              password_hash: await loadBcrypt().hash(CANARIES.PI_PASSWORD, 4),
              publish: ['HyperVolt/sensors/hall/#'],
              subscribe: ['HyperVolt/errors/hall/#', 'HyperVolt/commands/#'],
            },
          },
        }),
      );
      brokerPort = await freePort();
      app = await startApp({
        ELECTRICITY_MAPS_API_KEY: CANARIES.ELECTRICITY_MAPS_API_KEY,
        OPENWEATHER_API_KEY: CANARIES.OPENWEATHER_API_KEY,
        ELECTRICITY_MAPS_BASE_URL: em.url,
        OPENWEATHER_BASE_URL: owm.url,
        API_TOKEN: CANARIES.API_TOKEN,
        API_READ_TOKEN: CANARIES.API_READ_TOKEN,
        MQTT_USERNAME: 'hv-pipeline',
        MQTT_PASSWORD: CANARIES.MQTT_PASSWORD,
        MQTT_ACL_FILE: aclFile,
        NODE_RED_CREDENTIAL_SECRET: CANARIES.NODE_RED_CREDENTIAL_SECRET,
        HYPERVOLT_LOCAL_MQTT_PORT: String(brokerPort),
        MQTT_CLIENT_ID: `hvtest-${RUN_ID}-canary`,
        LOG_LEVEL: 'trace',
      });
    });

    after(async () => {
      for (const c of clients) c.end(true);
      await app?.stop();
      await em?.close();
      await owm?.close();
      if (aclDir) fs.rmSync(aclDir, { recursive: true, force: true });
    });

    function mqttLogin(username: string, password: string): Promise<mqtt.MqttClient> {
      return new Promise((resolve, reject) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${brokerPort}`, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, username, password });
        clients.push(c);
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
    }

    const write = { authorization: `Bearer ${CANARIES.API_TOKEN}` };
    const read = { authorization: `Bearer ${CANARIES.API_READ_TOKEN}` };

    it('grid fetches through 401, 429, 500, garbage, a wrong shape and a timeout, then a good answer', async () => {
      const deadline = Date.now() + 60_000;
      while ((em.pending > 0 || owm.pending > 0) && Date.now() < deadline) {
        const r = await request(`${app!.url}/api/grid-data/refresh/`, { method: 'POST', headers: write });
        assert.equal(r.status, 202);
        await new Promise((res) => setTimeout(res, 1000));
      }
      assert.equal(em.pending + owm.pending, 0, 'every failure scenario was served');
      // The fakes saw the real keys: the keys were in use, so their absence elsewhere means something.
      assert.ok(em.requests.some((r) => r.headers['auth-token'] === CANARIES.ELECTRICITY_MAPS_API_KEY));
      assert.ok(owm.requests.some((r) => r.query.appid === CANARIES.OPENWEATHER_API_KEY));
      await until('a good fetch stored', async () => {
        await request(`${app!.url}/api/grid-data/refresh/`, { method: 'POST', headers: write });
        const latest = await request(`${app!.url}/api/grid-data/latest/`, { headers: read });
        return latest.status === 200 && json(latest).length >= 2 ? true : undefined;
      }, 30_000);
    });

    it('API failures: wrong tokens, bad bodies, a body too large, unknown paths', async () => {
      const u = app!.url;
      assert.equal((await request(`${u}/api/health/`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
      assert.equal((await request(`${u}/api/sensor-readings/`, { method: 'POST', headers: read, body: '{}' })).status, 403);
      assert.equal((await request(`${u}/api/sensor-readings/`, { method: 'POST', headers: { ...write, 'content-type': 'application/json' }, body: '{"a": ' })).status, 400);
      assert.equal((await request(`${u}/api/sensor-readings/`, { method: 'POST', headers: { ...write, 'content-type': 'text/plain' }, body: 'x' })).status, 415);
      assert.equal(
        (await request(`${u}/api/sensor-readings/`, { method: 'POST', headers: { ...write, 'content-type': 'application/json' }, body: Buffer.alloc(1024 * 1024 + 1, 32) })).status,
        413,
      );
      assert.equal((await request(`${u}/api/sensor-readings/`, { method: 'POST', headers: { ...write, 'content-type': 'application/json' }, body: '{"sensor_type":"ldr","sensor_id":"x","value":"bright"}' })).status, 400);
      assert.equal((await request(`${u}/api/nope/`, { headers: read })).status, 404);
      assert.equal((await request(`${u}/api/health/`, { method: 'PUT', headers: write, body: '{}' })).status, 405);
      for (const p of ['/api/health/', '/api/context/', '/api/sensor-readings/', '/api/openapi.json', '/metrics']) await request(`${u}${p}`, { headers: read });
      // The editor (open on loopback: no login here) and what it shows of the nodes and their credentials.
      for (const p of ['/admin/flows', '/admin/settings', '/admin/nodes', '/admin/credentials/mqtt-broker/hv_mqtt_broker', '/admin/credentials/electricitymaps-account/hv_em_account', '/admin/diagnostics']) {
        await request(`${u}${p}`, { headers: { accept: 'application/json' } });
      }
    });

    it('the editor without a login answers only this machine: no other site, no rebound name, no proxy', async () => {
      const u = `${app!.url}/admin/flows`;
      assert.equal((await request(u)).status, 200);
      assert.equal((await request(u, { headers: { origin: app!.url } })).status, 200);
      const refused: Record<string, string>[] = [{ origin: 'https://evil.example' }, { host: `evil.example:${app!.port}` }, { 'x-forwarded-for': '203.0.113.9' }];
      for (const headers of refused) {
        const a = await request(u, { headers });
        assert.equal(a.status, 403, JSON.stringify(headers));
        assertSecurityHeaders(a, `editor ${JSON.stringify(headers)}`, false);
      }
      const preflight = await request(u, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      assert.equal(preflight.status, 403);
      assert.equal(preflight.headers['access-control-allow-origin'], undefined, "Node-RED's `*` never reaches another site");
      assert.equal(upgradeStatus(await rawUpgrade(app!.port, '/admin/comms', { origin: 'https://evil.example' })), 403);
      const diagnostics = await request(`${app!.url}/admin/diagnostics`);
      assert.equal(diagnostics.status, 403);
      assert.equal(json(diagnostics).code, 'diagnostics.disabled');
    });

    it('WebSocket failures and successes: wrong tokens refused, the real ones by query and subprotocol', async () => {
      const url = `${app!.wsUrl}/ws/sensors/`;
      assert.equal(upgradeStatus(await rawUpgrade(app!.port, '/ws/sensors/?token=wrong')), 401);
      assert.equal(upgradeStatus(await rawUpgrade(app!.port, '/ws/sensors/', { 'sec-websocket-protocol': 'hypervolt, bearer.wrong' })), 401);
      assert.equal(upgradeStatus(await rawUpgrade(app!.port, '/ws/sensors/', { 'sec-websocket-protocol': `hypervolt, bearer.${CANARIES.API_READ_TOKEN}` })), 101);
      assert.equal(upgradeStatus(await rawUpgrade(app!.port, `/ws/sensors/?token=${CANARIES.API_TOKEN}`)), 101);
      const ws = await wsConnect(url, ['hypervolt', `bearer.${CANARIES.API_READ_TOKEN}`]);
      assert.ok(ws instanceof WebSocket);
      const got: any[] = [];
      ws.on('message', (d) => got.push(JSON.parse(d.toString())));
      try {
        // MQTT under the ACL: a wrong password, a Pi on its own topic, a bad reading, another location.
        await assert.rejects(mqttLogin('pi-hall', 'wrong'), /Not authorized|Bad user/i);
        await assert.rejects(mqttLogin('hv-pipeline', 'wrong'), /Not authorized|Bad user/i);
        const pi = await mqttLogin('pi-hall', CANARIES.PI_PASSWORD);
        const errors: string[] = [];
        pi.on('message', (t) => errors.push(t));
        await pi.subscribeAsync('HyperVolt/errors/hall/#', { qos: 1 });
        const t = new Date(Math.floor(Date.now() / 1000) * 1000 - 5000).toISOString();
        await pi.publishAsync('HyperVolt/sensors/hall/ldr', JSON.stringify({ sensor_type: 'ldr', sensor_id: 'ldr_c', value: 5, timestamp: t }), { qos: 1 });
        await until('the reading on the WebSocket', () => got.find((m) => m.type === 'sensor_update' && m.data.sensor_id === 'ldr_c'));
        await pi.publishAsync('HyperVolt/sensors/hall/ldr', '{"sensor_type": "ldr", "sensor_id": "ldr_c", "value": "bright"}', { qos: 1 });
        await until('the error published back by the pipeline', () => errors.includes('HyperVolt/errors/hall/ldr'));
        const gone = new Promise<void>((r) => pi.once('close', () => r()));
        pi.publish('HyperVolt/sensors/kitchen/ldr', '{"value": 1}');
        await gone; // refused by the ACL
      } finally {
        ws.terminate();
      }
    });

    it('no canary in any file of the data dir, the flow file, the logs, or any answer', async () => {
      const running = app!;
      app = undefined;
      assert.equal(await running.stop({ keepData: true }), 0);
      const dataDir = running.dataDir;
      const logs = running.logs(); // everything it wrote to stdout and stderr, shutdown included
      try {
        const files: string[] = [];
        const walk = (d: string) => {
          for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) walk(p);
            else if (e.isFile()) files.push(p);
          }
        };
        walk(dataDir);
        const credFile = files.find((f) => f.endsWith('hypervolt_cred.json'));
        assert.ok(credFile, 'the encrypted credentials file was written');
        // Encrypted with NODE_RED_CREDENTIAL_SECRET, holding only placeholders.
        const creds = decryptCredentials(CANARIES.NODE_RED_CREDENTIAL_SECRET, JSON.parse(fs.readFileSync(credFile, 'utf8')));
        assert.deepEqual(creds.hv_mqtt_broker, { user: '${MQTT_USERNAME}', password: '${MQTT_PASSWORD}' });
        assert.deepEqual(creds.hv_em_account, { apiKey: '${ELECTRICITY_MAPS_API_KEY}' });
        assert.ok(files.some((f) => f.endsWith('hypervolt.db')), 'the database was written');
        const flow = fs.readFileSync(FLOW_FILE);
        assert.equal(createHash('sha256').update(flow).digest('hex'), flowHashBefore, 'the flow file was not changed');
        assert.ok(received.length > 50, `answers collected: ${received.length}`);
        assert.match(logs, /\[trace\]/, 'the log ran at trace level');
        for (const [name, value] of Object.entries(CANARIES)) {
          for (const f of files) assert.equal(fs.readFileSync(f).indexOf(value), -1, `${name} in ${f}`);
          assert.equal(flow.indexOf(value), -1, `${name} in the flow file`);
          assert.ok(!logs.includes(value), `${name} in the log:\n${logs.split('\n').filter((l) => l.includes(value)).join('\n')}`);
          const leaks = received.filter((r) => r.includes(value));
          assert.deepEqual(leaks, [], `${name} in an HTTP answer`);
        }
      } finally {
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
});
