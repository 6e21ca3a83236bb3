/**
 * The Node-RED settings of the app (dist/settings.js) as Node-RED would load them, with the
 * environment of each case: the safe defaults of issue 8.
 */
import assert from 'assert/strict';
import fs from 'fs';
import type { IncomingMessage } from 'http';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';

helper.init(require.resolve('node-red'));

const SETTINGS = path.resolve(__dirname, '..', '..', 'settings.js');
const VARS = ['DATA_DIR', 'NODE_RED_CREDENTIAL_SECRET', 'ADMIN_USER', 'ADMIN_PASSWORD_HASH', 'API_TOKEN', 'API_READ_TOKEN', 'CORS_ORIGIN'];
const HASH = '$2b$08$uSWiLCZ.S5Xj9qAbiT/UA.2hVfbNe2ChKJy8udD2ZcxSD7evNQ8AS';

type VerifyCb = (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void;
interface AppSettings {
  [k: string]: unknown;
  diagnostics: { enabled: boolean; ui: boolean };
  telemetry: { enabled: boolean };
  functionExternalModules: boolean;
  externalModules: { modules: { allowInstall: boolean }; palette: { allowInstall: boolean } };
  credentialSecret: string;
  adminAuth?: { type: string; users: { username: string; password: string; permissions: string }[] };
  httpNodeCors?: { origin: unknown; credentials: boolean };
  webSocketNodeVerifyClient(info: { origin?: string; req: IncomingMessage }, cb: VerifyCb): void;
}

let dataDir: string;
const saved: Record<string, string | undefined> = {};

/** Loads a fresh copy of the settings with this environment (and a temporary DATA_DIR). */
function loadSettings(env: Record<string, string> = {}): AppSettings {
  for (const k of VARS) delete process.env[k];
  Object.assign(process.env, { DATA_DIR: dataDir }, env);
  delete require.cache[SETTINGS];
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(SETTINGS) as AppSettings;
  } finally {
    delete require.cache[SETTINGS];
  }
}

function verify(s: AppSettings, headers: Record<string, string>, url = '/ws/sensors/'): Promise<{ ok: boolean; code?: number; headers?: Record<string, string>; req: IncomingMessage }> {
  const req = { url, headers: { host: '127.0.0.1:1880', ...headers } } as unknown as IncomingMessage;
  return new Promise((resolve) =>
    s.webSocketNodeVerifyClient({ origin: headers.origin, req }, (ok, code, _message, h) => resolve({ ok, code, headers: h, req })),
  );
}

describe('security: Node-RED settings', () => {
  before(() => {
    for (const k of VARS) saved[k] = process.env[k];
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hv-settings-'));
  });
  after(() => {
    for (const k of VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('diagnostics and telemetry off; function nodes may not load or install modules', () => {
    const s = loadSettings();
    assert.deepEqual(s.diagnostics, { enabled: false, ui: false });
    assert.equal(s.telemetry.enabled, false);
    assert.equal(s.functionExternalModules, false);
    assert.equal(s.externalModules.modules.allowInstall, false);
  });

  it('credentials are encrypted with NODE_RED_CREDENTIAL_SECRET, else a generated secret kept 0600 in DATA_DIR', () => {
    assert.equal(loadSettings({ NODE_RED_CREDENTIAL_SECRET: 'from-env' }).credentialSecret, 'from-env');
    const generated = loadSettings().credentialSecret;
    assert.match(generated, /^[0-9a-f]{64}$/);
    const file = path.join(dataDir, 'credential-secret');
    assert.equal(fs.readFileSync(file, 'utf8').trim(), generated);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(loadSettings().credentialSecret, generated, 'the same on the next start');
  });

  it('the editor login comes from ADMIN_USER and ADMIN_PASSWORD_HASH; none without them', () => {
    assert.equal(loadSettings().adminAuth, undefined);
    const s = loadSettings({ ADMIN_USER: 'admin', ADMIN_PASSWORD_HASH: HASH });
    assert.deepEqual(s.adminAuth, { type: 'credentials', users: [{ username: 'admin', password: HASH, permissions: '*' }] });
  });

  it('CORS: none by default; CORS_ORIGIN=* allows any origin but never with credentials', () => {
    assert.equal(loadSettings().httpNodeCors, undefined);
    const any = loadSettings({ CORS_ORIGIN: '*' }).httpNodeCors!;
    assert.equal(any.origin, '*');
    assert.equal(any.credentials, false);
    const list = loadSettings({ CORS_ORIGIN: 'https://twin.example, http://localhost:3000' }).httpNodeCors!;
    assert.deepEqual(list.origin, ['https://twin.example', 'http://localhost:3000']);
    assert.equal(list.credentials, false);
  });

  describe('webSocketNodeVerifyClient', () => {
    it('refuses without the token, with the security headers', async () => {
      const s = loadSettings({ API_READ_TOKEN: 'r-token', API_TOKEN: 'w-token' });
      const r = await verify(s, {});
      assert.equal(r.ok, false);
      assert.equal(r.code, 401);
      assert.equal(r.headers?.['x-content-type-options'], 'nosniff');
      assert.equal(r.headers?.['cache-control'], 'no-store');
      assert.equal((await verify(s, { 'sec-websocket-protocol': 'hypervolt, bearer.wrong' })).code, 401);
    });

    it('accepts the token as a subprotocol and takes it out of the offer (never echoed back)', async () => {
      const s = loadSettings({ API_READ_TOKEN: 'r-token', API_TOKEN: 'w-token' });
      const r = await verify(s, { 'sec-websocket-protocol': 'hypervolt, bearer.r-token' });
      assert.equal(r.ok, true);
      assert.equal(r.req.headers['sec-websocket-protocol'], 'hypervolt');
      const alone = await verify(s, { 'sec-websocket-protocol': 'bearer.w-token' });
      assert.equal(alone.ok, true);
      assert.equal(alone.req.headers['sec-websocket-protocol'], undefined);
      const query = await verify(s, { 'sec-websocket-protocol': 'hypervolt' }, '/ws/sensors/?token=r-token');
      assert.equal(query.ok, true);
      assert.equal(query.req.headers['sec-websocket-protocol'], 'hypervolt', 'other offers untouched');
    });

    it('refuses a foreign Origin (403) even with the token', async () => {
      const s = loadSettings({ API_READ_TOKEN: 'r-token', CORS_ORIGIN: 'https://twin.example' });
      assert.equal((await verify(s, { origin: 'https://evil.example' }, '/ws/sensors/?token=r-token')).code, 403);
      assert.equal((await verify(s, { origin: 'https://twin.example' }, '/ws/sensors/?token=r-token')).ok, true);
    });
  });

  describe('what Node-RED does with these settings', function () {
    this.timeout(20_000);

    /** Which of a plain function node and one asking for `child_process` Node-RED creates. */
    async function created(functionExternalModules: boolean): Promise<{ plain: boolean; withLib: boolean }> {
      helper.settings({ functionExternalModules });
      await helper.startServer();
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const functionNode = require('@node-red/nodes/core/function/10-function.js');
        await helper.load(functionNode, [
          { id: 'plain', type: 'function', func: 'return msg;', wires: [] },
          { id: 'withLib', type: 'function', func: 'return msg;', libs: [{ var: 'cp', module: 'child_process' }], wires: [] },
        ]);
        return { plain: Boolean(helper.getNode('plain')), withLib: Boolean(helper.getNode('withLib')) };
      } finally {
        await helper.unload();
        await helper.stopServer();
        helper.settings({});
      }
    }

    it('a function node that asks for a module is not created', async () => {
      assert.deepEqual(await created(loadSettings().functionExternalModules), { plain: true, withLib: false });
      assert.deepEqual(await created(true), { plain: true, withLib: true }, 'the control: Node-RED\'s default would allow it');
    });

    it('a flow that needs a module not installed is refused, nothing is installed', async () => {
      const s = loadSettings();
      const externalModules = require(
        require.resolve('@node-red/registry/lib/externalModules', { paths: [path.dirname(require.resolve('node-red'))] }),
      ) as { init(s: object): void; register(t: string, p: string): void; checkFlowDependencies(f: object[]): Promise<void> };
      const userDir = path.join(dataDir, 'node-red');
      externalModules.init({ externalModules: s.externalModules, userDir });
      externalModules.register('function', 'libs');
      await externalModules.checkFlowDependencies([{ id: 'a', type: 'function', libs: [{ var: 'fs', module: 'fs' }] }]); // a built-in: fine
      await assert.rejects(
        externalModules.checkFlowDependencies([{ id: 'b', type: 'function', libs: [{ var: 'x', module: 'hv-no-such-module-8d1f' }] }]),
        (errors: { error: { code: string } }[]) => {
          assert.equal(errors[0].error.code, 'install_not_allowed');
          return true;
        },
      );
      assert.equal(fs.existsSync(path.join(userDir, 'externalModules', 'node_modules', 'hv-no-such-module-8d1f')), false);
    });
  });
});
