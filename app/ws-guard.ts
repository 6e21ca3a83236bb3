/**
 * What the core WebSocket nodes do not do, added at the HTTP server (CONTRACT section 3, issue 8):
 * - `/ws/sensors` and `/ws/sensors/` are the same endpoint ("trailing slash optional"): the
 *   listener matches its path exactly, so an upgrade without the slash is given one.
 * - A cap on the number of clients: past `maxClients` an upgrade gets 503.
 * - An upgrade to a `/ws/` path no listener serves gets 404 instead of hanging.
 * - A cap on the size of a client's message (`maxPayload`): bigger ones close the socket (1009).
 * - A slow client never stalls the pipeline or grows memory without bound: the core node queues
 *   every broadcast per client, so a client whose unsent data passes a limit is disconnected (it
 *   can reconnect; it has missed updates either way).
 * - A ping every `pingIntervalMs`: a client that has not answered the previous one is gone.
 *
 * How it reaches the sockets: this guard's `upgrade` listener runs before Node-RED's (it is added
 * first), so for each upgrade it looks up the `ws` server of the websocket-listener node that owns
 * the path (`findServer`, see `nodeRedWsServer`), sets that server's `maxPayload` (read by `ws` for
 * every handshake it completes) and listens to its `connection` event, all before Node-RED hands
 * the socket to it. Nothing of Node-RED or `ws` is patched, and a listener node recreated by a
 * deploy is picked up on its first upgrade. Token and Origin checks stay in
 * `settings.webSocketNodeVerifyClient`.
 */
import type { IncomingMessage, Server } from 'http';
import { STATUS_CODES } from 'http';
import type { Duplex } from 'stream';
import { readCount } from './rate-limit';
import { securityHeaders } from './security';

export const WS_DEFAULTS = Object.freeze({
  maxClients: 200,
  /** Client → server message size; the flow expects small JSON messages at most. */
  maxPayload: 64 * 1024,
  /** Unsent bytes per client above which it is dropped. */
  maxBufferedBytes: 1024 * 1024,
  pingIntervalMs: 30_000,
});

/** Most bytes `coalesceWritesPerTurn` holds back before it sends them. */
export const COALESCE_MAX_BYTES = 64 * 1024;

/** An upgrade the guard answered itself is renamed to this path, which no listener serves. */
export const REFUSED_UPGRADE_URL = '/.hypervolt-refused-upgrade';

/** Adds the trailing slash to `/ws/...` upgrade paths that lack one. Pure. */
export function normalizeWsPath(url: string): string {
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  const rest = q === -1 ? '' : url.slice(q);
  if (!pathname.startsWith('/ws/') || pathname.endsWith('/')) return url;
  return `${pathname}/${rest}`;
}

/** A complete HTTP/1.1 answer to write on an upgrade socket. Pure. */
export function httpRefusal(status: number, message: string, headers: Record<string, string> = {}): string {
  const body = `${message}\n`;
  const all: Record<string, string> = {
    ...headers,
    connection: 'close',
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
  };
  const lines = Object.entries(all).map(([k, v]) => `${k}: ${v}`);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** The parts of a `ws` WebSocket the guard uses. */
export interface WsClientLike {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', listener: () => void): unknown;
}

/** The parts of a `ws` WebSocketServer the guard uses. */
export interface WsServerLike {
  options: { maxPayload?: number };
  clients?: Set<WsClientLike>;
  on(event: 'connection', listener: (ws: WsClientLike, req?: IncomingMessage) => void): unknown;
}

export interface WsLimits {
  maxClients: number;
  maxPayload: number;
  maxBufferedBytes: number;
  pingIntervalMs: number;
}

/** `WS_MAX_CLIENTS` (200). The other limits are fixed (WS_DEFAULTS). */
export function wsLimitsFromEnv(env: Record<string, string | undefined>): { limits: WsLimits; problems: string[] } {
  const max = readCount(env, 'WS_MAX_CLIENTS', WS_DEFAULTS.maxClients, 1);
  return { limits: { ...WS_DEFAULTS, maxClients: max.value }, problems: max.problem ? [max.problem] : [] };
}

export interface WsGuardOptions extends Partial<WsLimits> {
  /** How often the send buffers are checked. */
  checkEveryMs?: number;
  /** For upgrades outside `/ws/` (the editor's): why to refuse one (403), or null to leave it alone. */
  checkOther?: (req: IncomingMessage) => string | null;
  /** The `ws` server serving an upgrade path, or undefined when none does (then: 404). */
  findServer?: (pathname: string) => WsServerLike | undefined;
  log?: (message: string) => void;
  /** Sends the frames written in one event-loop turn in one system call (default true). */
  coalesceWrites?: boolean;
}

export interface WsGuard {
  close(): void;
  /** Sockets of `/ws/` upgrades (pending and open). */
  sockets(): number;
  /** WebSocket clients being pinged. */
  clients(): number;
}

/**
 * Installs the guard on `server`. Must run before Node-RED adds its own upgrade listener (listeners
 * run in order), so the path is fixed and the limits are set before the WebSocket nodes look.
 */
export function installWsGuard(server: Server, opts: WsGuardOptions = {}): WsGuard {
  const maxBuffered = opts.maxBufferedBytes ?? WS_DEFAULTS.maxBufferedBytes;
  const maxClients = opts.maxClients ?? WS_DEFAULTS.maxClients;
  const maxPayload = opts.maxPayload ?? WS_DEFAULTS.maxPayload;
  const sockets = new Set<Duplex & { writableLength?: number }>();
  /** false: pinged, no pong yet. */
  const alive = new Map<WsClientLike, boolean>();
  const adopted = new WeakSet<WsServerLike>();
  /** The socket of each `/ws/` upgrade, until its WebSocket connection is made. */
  const upgrades = new WeakMap<IncomingMessage, Duplex>();
  const coalesce = opts.coalesceWrites !== false;

  const track = (ws: WsClientLike) => {
    if (alive.has(ws)) return;
    alive.set(ws, true);
    ws.on('pong', () => alive.has(ws) && alive.set(ws, true));
    ws.on('close', () => alive.delete(ws));
  };

  const adopt = (wss: WsServerLike) => {
    if (adopted.has(wss)) return;
    adopted.add(wss);
    if (!(wss.options.maxPayload !== undefined && wss.options.maxPayload > 0 && wss.options.maxPayload <= maxPayload)) {
      wss.options.maxPayload = maxPayload;
    }
    wss.on('connection', (ws, req) => {
      track(ws);
      // From the handshake on: a refusal (401, 403) is written and the socket destroyed at once,
      // which would lose what a cork held.
      const socket = req && upgrades.get(req);
      if (socket && coalesce) coalesceWritesPerTurn(socket);
    });
    for (const ws of wss.clients ?? []) track(ws);
  };

  const refuse = (req: IncomingMessage, socket: Duplex, status: number, message: string, extra: Record<string, string> = {}) => {
    req.url = REFUSED_UPGRADE_URL; // no later upgrade listener (Node-RED's) touches this socket
    socket.on('error', () => undefined);
    socket.end(httpRefusal(status, message, { ...securityHeaders('/ws/'), ...extra }), () => socket.destroy());
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    if (req.url) req.url = normalizeWsPath(req.url);
    const url = req.url ?? '';
    if (!url.startsWith('/ws/')) {
      const problem = opts.checkOther?.(req);
      if (problem) refuse(req, socket, 403, problem);
      return; // otherwise not ours to police (the editor's own socket)
    }
    if (sockets.size >= maxClients) {
      opts.log?.(`refusing a WebSocket client: ${sockets.size} connected (WS_MAX_CLIENTS ${maxClients})`);
      refuse(req, socket, 503, 'Too many WebSocket clients', { 'retry-after': '10' });
      return;
    }
    if (opts.findServer) {
      const q = url.indexOf('?');
      let wss: WsServerLike | undefined;
      try {
        wss = opts.findServer(q === -1 ? url : url.slice(0, q));
      } catch {
        wss = undefined;
      }
      if (!wss) {
        refuse(req, socket, 404, 'Not Found');
        return;
      }
      adopt(wss);
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    upgrades.set(req, socket);
  });

  const bufferTimer = setInterval(() => {
    for (const s of sockets) {
      if ((s.writableLength ?? 0) > maxBuffered) {
        opts.log?.(`dropping a WebSocket client that is ${s.writableLength} bytes behind (limit ${maxBuffered})`);
        sockets.delete(s);
        s.destroy();
      }
    }
  }, opts.checkEveryMs ?? 250);
  bufferTimer.unref();

  const pingTimer = setInterval(() => {
    for (const [ws, answered] of alive) {
      if (!answered) {
        alive.delete(ws);
        ws.terminate(); // no pong since the last ping: the peer is gone
        continue;
      }
      alive.set(ws, false);
      try {
        ws.ping();
      } catch {
        alive.delete(ws);
        ws.terminate();
      }
    }
  }, opts.pingIntervalMs ?? WS_DEFAULTS.pingIntervalMs);
  pingTimer.unref();

  return {
    close: () => {
      clearInterval(bufferTimer);
      clearInterval(pingTimer);
    },
    sockets: () => sockets.size,
    clients: () => alive.size,
  };
}

/**
 * Holds what is written to `socket` in one event-loop turn and sends it in one system call when the
 * turn's immediates have run: the core websocket-out node sends each msg as a frame of its own, a
 * write each, and a burst of readings is a burst of msgs. The first write of a turn corks the
 * socket and queues the uncork with `setImmediate`; Node-RED delivers a batch's msgs in
 * immediates queued before that, so their frames go out together, with no timer and no added
 * wait beyond the turn; at `maxHeldBytes` what is held goes out at once. Nothing is held when
 * nothing is written. The socket's own `write` is wrapped (the only change to it); `cork` and
 * `uncork` nest, so a frame `ws` corks itself still works. Call it once the WebSocket connection
 * is made: a handshake refusal written and destroyed at once would lose what a cork held.
 */
export function coalesceWritesPerTurn(socket: Duplex & { writableLength?: number }, maxHeldBytes = COALESCE_MAX_BYTES): void {
  let held = false;
  const release = () => {
    if (!held) return;
    held = false;
    if (!socket.destroyed) socket.uncork();
  };
  const write = socket.write;
  socket.write = function (this: Duplex, ...args: Parameters<Duplex['write']>) {
    if (!held && !socket.destroyed && socket.writable) {
      held = true;
      socket.cork();
      setImmediate(release);
    }
    const ok = write.apply(this, args);
    // A burst goes out in parts of about this size: what is held stays small next to the
    // slow-client limit (a turn under overload can carry megabytes of frames).
    if ((socket.writableLength ?? 0) >= maxHeldBytes) release();
    return ok;
  } as Duplex['write'];
}

/** The parts of the embedded Node-RED (`require('node-red')`) that `nodeRedWsServer` reads. */
export interface NodeRedNodes {
  nodes: {
    eachNode(cb: (config: { id: string; type: string }) => void): void;
    getNode(id: string): unknown;
  };
}

/**
 * The `ws` server of the running websocket-listener node whose full path is `pathname` (the
 * listener node keeps it as `server`, and its path with the httpNodeRoot as `fullPath`).
 */
export function nodeRedWsServer(red: NodeRedNodes, pathname: string): WsServerLike | undefined {
  let found: WsServerLike | undefined;
  try {
    red.nodes.eachNode((config) => {
      if (found || config.type !== 'websocket-listener') return;
      const node = red.nodes.getNode(config.id) as { fullPath?: string; isServer?: boolean; server?: WsServerLike } | null;
      if (node?.isServer !== false && node?.fullPath === pathname && node.server && typeof node.server.on === 'function' && node.server.options) {
        found = node.server;
      }
    });
  } catch {
    return undefined; // no flows loaded yet
  }
  return found;
}
