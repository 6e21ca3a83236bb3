/**
 * Which MQTT broker the app uses (CONTRACT section 6): `MQTT_URL` if set; else a broker already
 * listening on 127.0.0.1:1883; else an embedded aedes broker started there. aedes is a
 * development dependency: the app runs from a clone, the palette package never needs it.
 */
import net from 'net';

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

/** `mqtt://user:pass@host:1883` → `mqtt://user:***@host:1883`, for logs. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return raw.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

export interface EmbeddedBrokerOptions {
  host?: string;
  port?: number;
  /** When both are set, clients must present them; otherwise the broker is open (it listens on loopback). */
  username?: string;
  password?: string;
  log?: (message: string) => void;
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
  const { username, password } = opts;
  const authenticate =
    username && password
      ? (_client: unknown, user: string | undefined, pass: Buffer | undefined, done: (err: Error | null, ok: boolean) => void) => {
          const ok = user === username && pass !== undefined && pass.toString('utf8') === password;
          if (ok) done(null, true);
          else done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
        }
      : undefined;
  const broker = createBroker(authenticate ? { authenticate } : {});
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
  if (env.MQTT_URL) return { url: env.MQTT_URL, kind: 'configured' };
  // Tests move the local broker port, since a real broker may hold 1883 on the test machine.
  const port = Number(env.HYPERVOLT_LOCAL_MQTT_PORT) || DEFAULT_BROKER_PORT;
  const probe = deps.probe ?? portOpen;
  if (await probe(DEFAULT_BROKER_HOST, port)) {
    return { url: `mqtt://${DEFAULT_BROKER_HOST}:${port}`, kind: 'local' };
  }
  const start = deps.start ?? startEmbeddedBroker;
  const embedded = await start({
    host: DEFAULT_BROKER_HOST,
    port,
    username: env.MQTT_USERNAME,
    password: env.MQTT_PASSWORD,
    log: deps.log,
  });
  return { url: embedded.url, kind: 'embedded', embedded };
}
