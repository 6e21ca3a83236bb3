/**
 * The HyperVolt app: Node-RED embedded in an HTTP server, with our settings, our nodes and the
 * shipped flow (`npm start` runs this after building). The sequence:
 *   .env → defaults → refuse unsafe exposure → pick the MQTT broker (maybe start one) →
 *   settings → credentials placeholders → Node-RED on an Express app → listen → start flows.
 * SIGINT/SIGTERM stop the flows (nodes flush and close), then the server and broker; exit 0.
 */
import type { Express, NextFunction, Request, Response } from 'express';
import http from 'http';
import path from 'path';
import v8 from 'v8';
import { apiFallback, jsonErrorHandler, type RouteLayer } from './api-fallback';
import { chooseBroker, redactUrl, type BrokerChoice } from './broker';
import { seedCredentials } from './credentials';
import { checkEnv, envDefaults, exposureProblem, heapFlags, heapGrowthFlag, loadEnvFile, splitUrlCredentials } from './env';
import { clientErrorHandler, flowSecurityWarnings, httpHardening, securityEnvDefaults, securityEnvProblems, wsGuardOptions } from './hardening';
import { installWsGuard, type NodeRedNodes } from './ws-guard';

/** dist/app/main.js → the repository root. */
const ROOT = path.resolve(__dirname, '..', '..');

interface NodeRed {
  init(server: http.Server, settings: object): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly httpAdmin: Express;
  readonly httpNode: Express & { _router?: { stack: RouteLayer[] } };
}

type AppSettings = { httpAdminRoot: string; httpNodeRoot: string; userDir: string; flowFile: string; credentialSecret: string };

function stamp(): string {
  const d = new Date();
  const month = d.toLocaleString('en-GB', { month: 'short' });
  const t = d.toTimeString().slice(0, 8);
  return `${d.getDate()} ${month} ${t}`;
}
/** Same line format as Node-RED's own log, so one log reads as one. */
const log = {
  info: (m: string) => console.log(`${stamp()} - [info] [hypervolt] ${m}`),
  warn: (m: string) => console.warn(`${stamp()} - [warn] [hypervolt] ${m}`),
  error: (m: string) => console.error(`${stamp()} - [error] [hypervolt] ${m}`),
};

function fail(message: string, code = 1): never {
  log.error(message);
  process.exit(code);
}

/** Loads Express from Node-RED's own dependencies (it is not one of ours). */
function loadExpress(): () => Express {
  const nodeRedDir = path.dirname(require.resolve('node-red'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(require.resolve('express', { paths: [nodeRedDir] }));
}

function describeBroker(choice: BrokerChoice): string {
  switch (choice.kind) {
    case 'configured':
      return `MQTT broker: ${redactUrl(choice.url)} (MQTT_URL)`;
    case 'local':
      return `MQTT broker: ${choice.url} (a broker is already listening there; set MQTT_URL to use another)`;
    case 'embedded':
      return (
        `MQTT broker: embedded aedes at ${choice.url} (no broker was listening; MQTT 3.1.1, ` +
        'sessions last while the app runs; set MQTT_URL for an external broker)'
      );
  }
}

export async function main(): Promise<void> {
  const env = process.env;

  // 1. .env (the real environment wins), then defaults for every variable the flow names.
  const envFile = env.ENV_FILE ? path.resolve(env.ENV_FILE) : path.join(ROOT, '.env');
  let loaded: string[] | null;
  try {
    loaded = loadEnvFile(envFile, env);
  } catch (err) {
    fail(`cannot read ${envFile}: ${(err as Error).message}`, 2);
  }
  if (loaded) log.info(`read ${loaded.length} setting(s) from ${envFile}`);
  Object.assign(env, envDefaults(env, ROOT), securityEnvDefaults(env));

  const problems = [...checkEnv(env), ...securityEnvProblems(env)];
  if (problems.length > 0) fail(`invalid configuration:\n  - ${problems.join('\n  - ')}`, 2);
  const exposure = exposureProblem(env);
  if (exposure) fail(exposure, 2);
  const heapFlag = heapGrowthFlag(env, process.execArgv);
  if (heapFlag) v8.setFlagsFromString(heapFlag);
  log.info(`V8 heap flags: ${heapFlags(process.execArgv, heapFlag).join(' ') || "none (V8's defaults)"}`);

  // 2. The broker.
  let broker: BrokerChoice;
  try {
    broker = await chooseBroker(env, { log: log.warn });
  } catch (err) {
    fail(`cannot start the embedded MQTT broker: ${(err as Error).message}`);
  }
  // Credentials in the URL move to MQTT_USERNAME/MQTT_PASSWORD (unless those are set): Node-RED
  // logs the broker URL.
  const split = splitUrlCredentials(broker.url);
  env.MQTT_URL = split.url;
  if (split.username && !env.MQTT_USERNAME) env.MQTT_USERNAME = split.username;
  if (split.password && !env.MQTT_PASSWORD) env.MQTT_PASSWORD = split.password;
  if (broker.kind === 'embedded' && env.MQTT_PROTOCOL_VERSION !== '4') {
    env.MQTT_PROTOCOL_VERSION = '4'; // aedes speaks MQTT 3.1.1 only
  }
  log.info(describeBroker(broker));
  log.info(`hot window store: ${env.REDIS_URL ? redactUrl(env.REDIS_URL) : 'in-process (REDIS_URL not set)'}`);
  log.info(`database: ${/^postgres/i.test(env.DATABASE_URL ?? '') ? redactUrl(env.DATABASE_URL!) : env.DATABASE_URL}`);
  const closeBroker = async () => {
    if (broker.embedded) await broker.embedded.close().catch(() => undefined);
  };

  // 3. Settings (read the environment as it is now) and the credentials placeholders.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require('../settings') as AppSettings;
  try {
    const note = seedCredentials({ flowFile: settings.flowFile, userDir: settings.userDir, secret: settings.credentialSecret, env });
    if (note) log.info(note);
  } catch (err) {
    log.warn(`could not prepare node credentials: ${(err as Error).message}`);
  }
  for (const warning of flowSecurityWarnings(settings.flowFile, env)) log.warn(warning);

  // 4. Node-RED on our HTTP server.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const RED = require('node-red') as NodeRed;
  const express = loadExpress();
  const app = express();
  app.disable('x-powered-by');
  const hardening = httpHardening(env, settings.httpAdminRoot, log); // headers, editor guard, CORS, write Origin, rate limits
  app.use(hardening);
  const server = http.createServer(app);
  server.on('clientError', clientErrorHandler); // unparsable requests get the security headers too
  // Before Node-RED's upgrade listener: client cap, message size, send buffer, ping (app/ws-guard.ts).
  const wsGuard = installWsGuard(server, { ...wsGuardOptions(env, RED as unknown as NodeRedNodes, settings.httpAdminRoot), log: log.warn });
  RED.init(server, settings);
  app.use(settings.httpAdminRoot, RED.httpAdmin);
  // The API answers `Cache-Control: no-store`: an ETag (a hash of every body) would only cost time.
  RED.httpNode.set('etag', false);
  app.use(settings.httpNodeRoot, RED.httpNode);
  app.get('/', (_req: Request, res: Response) => res.redirect(302, settings.httpAdminRoot));
  app.use(apiFallback(() => RED.httpNode._router?.stack ?? []));
  app.use(jsonErrorHandler(log.error) as (err: unknown, req: Request, res: Response, next: NextFunction) => void);

  const host = env.HOST ?? '127.0.0.1';
  const port = Number(env.PORT);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await hardening.close();
    await closeBroker();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') fail(`port ${port} on ${host} is already in use (another Node-RED?): stop it or set PORT`);
    if (e.code === 'EACCES') fail(`no permission to listen on ${host}:${port}: use a port above 1023`);
    fail(`cannot listen on ${host}:${port}: ${e.message}`);
  }
  const addr = server.address();
  const actualPort = addr && typeof addr === 'object' ? addr.port : port;
  const shown = host.includes(':') ? `[${host}]` : host || 'localhost';

  // 5. Stop cleanly on a signal: flows first (nodes flush their batches), then the rest.
  let stopping = false;
  const stop = async (signal: string, exitCode = 0) => {
    if (stopping) {
      log.warn(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${signal}: stopping`);
    try {
      await RED.stop();
    } catch (err) {
      log.error(`stopping Node-RED: ${(err as Error).message}`);
    }
    wsGuard.close();
    server.close();
    server.closeAllConnections();
    await hardening.close(); // the rate limits' Redis connection
    await closeBroker();
    log.info('stopped');
    process.exit(exitCode);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  try {
    await RED.start();
  } catch (err) {
    log.error(`Node-RED failed to start: ${(err as Error).stack ?? err}`);
    await stop('startup failure', 1);
    return;
  }
  log.info(
    `listening: editor http://${shown}:${actualPort}/admin/ , ` +
      `API http://${shown}:${actualPort}/api/ , WebSocket ws://${shown}:${actualPort}/ws/sensors/`,
  );
}

/** Runs the app; scripts/start.js calls this (so does `node dist/app/main.js`). */
export function run(): void {
  main().catch((err) => fail(`startup failed: ${(err as Error).stack ?? err}`));
}

if (require.main === module) run();
