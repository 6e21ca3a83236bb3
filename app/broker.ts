/**
 * Which MQTT broker the app uses (CONTRACT section 6): `MQTT_URL` if set; else a broker already
 * listening on 127.0.0.1:1883; else an embedded aedes broker started there. aedes is a
 * development dependency: the app runs from a clone, the palette package never needs it.
 */
import fs from 'fs';
import net from 'net';
import { loadBcrypt, type Bcrypt } from './hash-password';
import { AclPolicy, parseAcl } from './mqtt-acl';
import { sameToken } from './security';

export const DEFAULT_BROKER_HOST = '127.0.0.1';
export const DEFAULT_BROKER_PORT = 1883;

export interface EmbeddedBroker {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface BrokerChoice {
  url: string;
  kind: 'configured' | 'local' | 'embedded';
  embedded?: EmbeddedBroker;
}

/** True when something accepts TCP connections at host:port within `timeoutMs`. */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const finish = (open: boolean) => {
      sock.destroy();
      resolve(open);
    };
    sock.setTimeout(timeoutMs, () => finish(false));
    sock.once('connect', () => finish(true));
    sock.once('error', () => finish(false));
  });
}

export { redactUrl } from '../nodes/shared/redact';

export interface EmbeddedBrokerOptions {
  host?: string;
  port?: number;
  /** When both are set, clients must present them; otherwise the broker is open (it listens on loopback). */
  username?: string;
  password?: string;
  /**
   * MQTT_ACL_FILE's rules: every client must log in (the pipeline as username/password above,
   * devices as the file's users) and may publish and subscribe only where its rules allow.
   */
  acl?: AclPolicy;
  /** Checks the file's password hashes; Node-RED's bcrypt by default. */
  bcrypt?: Bcrypt;
  log?: (message: string) => void;
}

type AuthDone = (err: Error | null, ok: boolean) => void;

/** aedes' authentication hooks for the options (none: an open broker). */
export function brokerAuth(opts: Pick<EmbeddedBrokerOptions, 'username' | 'password' | 'acl' | 'bcrypt'>): object {
  const { username, password, acl } = opts;
  const refuse = (done: AuthDone) => done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
  /** The user each connected client logged in as. */
  const users = new WeakMap<object, string>();
  const pipelineLogin = (user: string | undefined, pass: Buffer | undefined) =>
    Boolean(username && password && user === username && pass !== undefined && sameToken(pass.toString('utf8'), password));

  if (!acl) {
    if (!(username && password)) return {};
    return {
      authenticate: (_client: object, user: string | undefined, pass: Buffer | undefined, done: AuthDone) =>
        pipelineLogin(user, pass) ? done(null, true) : refuse(done),
    };
  }
  let bcrypt = opts.bcrypt;
  return {
    authenticate: (client: object, user: string | undefined, pass: Buffer | undefined, done: AuthDone) => {
      if (user !== undefined && pipelineLogin(user, pass)) {
        users.set(client, user);
        done(null, true);
        return;
      }
      const hash = user === undefined ? undefined : acl.passwordHash(user);
      if (!hash || pass === undefined) {
        refuse(done);
        return;
      }
      try {
        bcrypt ??= loadBcrypt();
      } catch {
        refuse(done);
        return;
      }
      bcrypt.compare(pass.toString('utf8'), hash).then(
        (ok) => {
          if (!ok) return refuse(done);
          users.set(client, user!);
          done(null, true);
        },
        () => refuse(done),
      );
    },
    authorizePublish: (client: object | null, packet: { topic: string }, done: (err?: Error | null) => void) => {
      const user = client ? users.get(client) : undefined;
      if (packet.topic.startsWith('$SYS') || !acl.canPublish(user, packet.topic)) {
        done(new Error(`not authorized to publish to ${packet.topic}`));
        return;
      }
      done(null);
    },
    authorizeSubscribe: (client: object, sub: { topic: string }, done: (err: Error | null, sub: unknown) => void) => {
      done(null, acl.canSubscribe(users.get(client), sub.topic) ? sub : null); // null: SUBACK failure (0x80)
    },
  };
}

/** Starts aedes on host:port (port 0: any free port). Resolves once it listens. */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = opts.host ?? DEFAULT_BROKER_HOST;
  let createBroker: (o?: object) => AedesLike;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const aedes = require('aedes');
    createBroker = aedes.createBroker ?? aedes;
  } catch {
    throw new Error('no MQTT broker: set MQTT_URL, run one on 127.0.0.1:1883, or install the development dependencies (aedes) with `npm install`');
  }
  const broker = createBroker(brokerAuth(opts));
  broker.on('clientError', (client: { id?: string }, err: Error) => opts.log?.(`embedded broker: client ${client?.id ?? '?'}: ${err.message}`));
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? DEFAULT_BROKER_PORT, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log?.(`embedded broker: ${err.message}`));
  const port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return {
    url: `mqtt://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        broker.close(() => undefined);
      }),
  };
}

interface AedesLike {
  handle: (socket: net.Socket) => void;
  on(event: string, listener: (...args: never[]) => void): void;
  close(cb?: () => void): void;
}

/**
 * Picks the broker. `probe` and `start` are injectable so the decision can be tested without a
 * broker on the standard port.
 */
export async function chooseBroker(
  env: Record<string, string | undefined>,
  deps: {
    probe?: (host: string, port: number) => Promise<boolean>;
    start?: (o: EmbeddedBrokerOptions) => Promise<EmbeddedBroker>;
    log?: (message: string) => void;
  } = {},
): Promise<BrokerChoice> {
  const aclIgnored = () => {
    if (env.MQTT_ACL_FILE) deps.log?.('MQTT_ACL_FILE applies to the embedded broker only: an external broker enforces its own rules (see examples/mosquitto/)');
  };
  if (env.MQTT_URL) {
    aclIgnored();
    return { url: env.MQTT_URL, kind: 'configured' };
  }
  // Tests move the local broker port, since a real broker may hold 1883 on the test machine.
  const port = Number(env.HYPERVOLT_LOCAL_MQTT_PORT) || DEFAULT_BROKER_PORT;
  const probe = deps.probe ?? portOpen;
  if (await probe(DEFAULT_BROKER_HOST, port)) {
    aclIgnored();
    return { url: `mqtt://${DEFAULT_BROKER_HOST}:${port}`, kind: 'local' };
  }
  const start = deps.start ?? startEmbeddedBroker;
  const embedded = await start({
    host: DEFAULT_BROKER_HOST,
    port,
    username: env.MQTT_USERNAME,
    password: env.MQTT_PASSWORD,
    ...(env.MQTT_ACL_FILE ? { acl: loadAcl(env) } : {}),
    log: deps.log,
  });
  return { url: embedded.url, kind: 'embedded', embedded };
}

/** MQTT_ACL_FILE as the embedded broker's policy; throws with the file's name and the problem. */
export function loadAcl(env: Record<string, string | undefined>): AclPolicy {
  const file = env.MQTT_ACL_FILE!;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`MQTT_ACL_FILE ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return new AclPolicy(parseAcl(text), env.MQTT_USERNAME || undefined, env.MQTT_TOPIC_PREFIX || 'HyperVolt');
  } catch (err) {
    throw new Error(`MQTT_ACL_FILE ${file}: ${(err as Error).message}`);
  }
}
