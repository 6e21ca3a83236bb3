/**
 * Node-RED settings of the HyperVolt app, compiled to dist/settings.js. Node-RED `require()`s a
 * settings file, so this module reads the environment when it is loaded: app/main.ts reads
 * `.env` and fills in the defaults first (a stock `node-red --settings dist/settings.js` would
 * need every variable the flow uses set by hand, and gets no embedded broker, 404/405 fallback,
 * security headers, editor guard, rate limits or WebSocket limits: use `npm start`).
 */
import fs from 'fs';
import type { IncomingMessage } from 'http';
import path from 'path';
import { apiMiddleware } from './app/api-middleware';
import { credentialSecret } from './app/credentials';
import { checkUpgrade, corsOptions, parseOrigins, securityHeaders, splitWsProtocols, tokensFromEnv } from './app/security';

const env = process.env;
/** The repository root: this file runs as dist/settings.js. */
const ROOT = path.resolve(__dirname, '..');
const dataDir = path.resolve(ROOT, env.DATA_DIR || 'data');
const userDir = path.join(dataDir, 'node-red');
fs.mkdirSync(userDir, { recursive: true });

const tokens = tokensFromEnv(env);
const origins = parseOrigins(env.CORS_ORIGIN);

const adminAuth =
  env.ADMIN_USER && env.ADMIN_PASSWORD_HASH
    ? {
        type: 'credentials',
        users: [{ username: env.ADMIN_USER, password: env.ADMIN_PASSWORD_HASH, permissions: '*' }],
      }
    : undefined;

const settings = {
  uiPort: Number(env.PORT || 1880),
  uiHost: env.HOST || '127.0.0.1',
  httpAdminRoot: '/admin/',
  httpNodeRoot: '/',
  userDir,
  flowFile: path.join(ROOT, 'flows', 'hypervolt.json'),
  flowFilePretty: true,
  // This package itself, as the palette would install it: Node-RED reads package.json's
  // `node-red` section, so the nodes load with their locales, help and examples (pointing
  // nodesDir at dist/nodes would load bare files under the module "node-red", without help).
  // Plus Dashboard 2.0 (@flowfuse/node-red-dashboard, a devDependency: the app runs from a
  // clone), whose ui-* nodes only the app's flow uses, on its "HyperVolt dashboard" tab.
  nodesDir: [ROOT, path.dirname(require.resolve('@flowfuse/node-red-dashboard/package.json'))],
  credentialSecret: credentialSecret(env, dataDir),
  ...(adminAuth ? { adminAuth } : {}),

  diagnostics: { enabled: false, ui: false },
  telemetry: { enabled: false },
  runtimeState: { enabled: false, ui: false },
  functionExternalModules: false,
  functionTimeout: 0,
  externalModules: {
    palette: { allowInstall: true },
    modules: { allowInstall: false },
  },
  editorTheme: {
    page: { title: 'HyperVolt pipeline' },
    header: { title: 'HyperVolt pipeline' },
    projects: { enabled: false },
  },
  exportGlobalContextKeys: false,

  // The largest request body: the API middleware reads at most 1 MiB itself; this is the limit
  // of the body parsers of any other `http in` route and of the editor's admin API (a deploy
  // of a flow file larger than 1 MiB would need more).
  apiMaxLength: '1mb',
  ...(corsOptions(origins) ? { httpNodeCors: corsOptions(origins) } : {}),
  httpNodeMiddleware: apiMiddleware(tokens),
  // The WebSocket upgrade: Origin allow-list and tokens (`?token=`, a `bearer.<token>`
  // subprotocol, or `Authorization: Bearer`). The limits (clients, message size, send buffer,
  // ping) are app/ws-guard.ts, which `npm start` installs on the HTTP server.
  webSocketNodeVerifyClient(
    info: { origin?: string; req: IncomingMessage; secure?: boolean },
    cb: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void,
  ) {
    const req = info.req;
    const protocol = req.headers['sec-websocket-protocol'];
    const denial = checkUpgrade(
      { origin: info.origin, url: req.url, host: req.headers.host, authorization: req.headers.authorization, protocol },
      tokens,
      origins,
    );
    if (denial) {
      cb(false, denial.status, denial.message, securityHeaders('/ws/'));
      return;
    }
    // `ws` answers with the first offered subprotocol: a token must never be sent back (it would
    // land in proxy logs and in this test suite's canary check), so it is taken out of the offer.
    const split = splitWsProtocols(protocol);
    if (split.token !== undefined) {
      if (split.others.length > 0) req.headers['sec-websocket-protocol'] = split.others.join(', ');
      else delete req.headers['sec-websocket-protocol'];
    }
    cb(true);
  },

  logging: {
    console: { level: env.LOG_LEVEL || 'info', metrics: false, audit: false },
  },
};

export = settings;
