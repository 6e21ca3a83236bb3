/**
 * Two things the core WebSocket nodes do not do, added at the HTTP server:
 * - `/ws/sensors` and `/ws/sensors/` are the same endpoint ("trailing slash optional"): the
 *   listener matches its path exactly, so an upgrade without the slash is given one.
 * - A slow client never stalls the pipeline or grows memory without bound: the core node
 *   queues every broadcast per client, so a client whose unsent data passes a limit is
 *   disconnected (it can reconnect; it has missed updates either way).
 */
import type { IncomingMessage, Server } from 'http';
import type { Duplex } from 'stream';

/** Adds the trailing slash to `/ws/...` upgrade paths that lack one. Pure. */
export function normalizeWsPath(url: string): string {
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  const rest = q === -1 ? '' : url.slice(q);
  if (!pathname.startsWith('/ws/') || pathname.endsWith('/')) return url;
  return `${pathname}/${rest}`;
}

export interface WsGuardOptions {
  /** Unsent bytes per client above which it is dropped. */
  maxBufferedBytes?: number;
  checkEveryMs?: number;
  log?: (message: string) => void;
}

/**
 * Installs the guard on `server`. Must run before Node-RED adds its own upgrade listener (listeners
 * run in order), so the path is fixed before the WebSocket nodes look at it.
 */
export function installWsGuard(server: Server, opts: WsGuardOptions = {}): { close(): void; sockets(): number } {
  const limit = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  const sockets = new Set<Duplex & { writableLength?: number }>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    if (req.url) req.url = normalizeWsPath(req.url);
    if (!(req.url ?? '').startsWith('/ws/')) return; // the editor's own socket is not ours to police
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const timer = setInterval(() => {
    for (const s of sockets) {
      if ((s.writableLength ?? 0) > limit) {
        opts.log?.(`dropping a WebSocket client that is ${s.writableLength} bytes behind (limit ${limit})`);
        sockets.delete(s);
        s.destroy();
      }
    }
  }, opts.checkEveryMs ?? 250);
  timer.unref();
  return {
    close: () => clearInterval(timer),
    sockets: () => sockets.size,
  };
}
