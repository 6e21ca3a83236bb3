/**
 * A TCP fault proxy for the fault suite: the app talks to PostgreSQL, Redis or the broker through
 * it, so their failures can be simulated without touching the services shared with other test
 * runs on this machine.
 *   cut()     destroys every current connection (a restart, as the client sees it)
 *   refuse()  also resets every new connection until restore() (the service is down)
 *   stall()   forwards nothing either way and closes nothing (a hang: SIGSTOP, a dead network);
 *             new connections are accepted and held too. resume() delivers what was held, in
 *             order, closes included, as a kernel buffer would after SIGCONT.
 */
import net from 'net';

type Held = Buffer | 'end';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** Bytes (and a half-close) held while stalled, per direction. */
  toUpstream: Held[];
  toClient: Held[];
}

export interface FaultProxyStats {
  /** Connections accepted and forwarded since the start. */
  accepted: number;
  /** Connections reset on accept while refusing. */
  refused: number;
  /** Connections destroyed by cut(). */
  cut: number;
}

export class FaultProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<Pair>();
  private refusing = false;
  private stalled = false;
  readonly stats: FaultProxyStats = { accepted: 0, refused: 0, cut: 0 };
  port = 0;

  constructor(
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  /** Listens on 127.0.0.1 on a free port; resolves with that port. */
  async start(): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** `url` with its host and port replaced by this proxy's. */
  url(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  /** Open connections (each one a client of the real service). */
  get active(): number {
    return this.pairs.size;
  }

  /** The local ports of the proxy's connections to the real service (to find them in its client list). */
  upstreamPorts(): number[] {
    return [...this.pairs].map((p) => p.upstream.localPort).filter((p): p is number => typeof p === 'number');
  }

  cut(): void {
    for (const p of [...this.pairs]) {
      this.stats.cut++;
      this.drop(p);
    }
  }

  refuse(): void {
    this.refusing = true;
    this.cut();
  }

  restore(): void {
    this.refusing = false;
  }

  stall(): void {
    this.stalled = true;
  }

  resume(): void {
    this.stalled = false;
    for (const p of [...this.pairs]) {
      this.flush(p.toUpstream.splice(0), p.upstream);
      this.flush(p.toClient.splice(0), p.client);
    }
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.refusing) {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort });
    upstream.on('error', () => undefined);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair: Pair = { client, upstream, toUpstream: [], toClient: [] };
    this.pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket, held: Held[]) => {
      from.on('data', (chunk: Buffer) => {
        if (this.stalled || held.length > 0) held.push(chunk);
        else to.write(chunk);
      });
      from.on('end', () => {
        if (this.stalled || held.length > 0) held.push('end');
        else to.end();
      });
      // An abrupt close (reset, destroy) of one side: the other goes too, unless a hang holds it.
      from.on('close', () => {
        if (this.stalled) {
          if (held[held.length - 1] !== 'end') held.push('end');
          return;
        }
        this.drop(pair);
      });
    };
    forward(client, upstream, pair.toUpstream);
    forward(upstream, client, pair.toClient);
  }

  private flush(items: Held[], to: net.Socket): void {
    for (const item of items) {
      if (to.destroyed) return;
      if (item === 'end') to.end();
      else to.write(item);
    }
  }

  private drop(p: Pair): void {
    if (!this.pairs.delete(p)) return;
    p.client.destroy();
    p.upstream.destroy();
  }
}

/** Starts a proxy in front of the service at `url` (host and port taken from it). */
export async function startFaultProxy(url: string, defaultPort: number): Promise<FaultProxy> {
  const u = new URL(url);
  const proxy = new FaultProxy(u.hostname || '127.0.0.1', Number(u.port) || defaultPort);
  await proxy.start();
  return proxy;
}
