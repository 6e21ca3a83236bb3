import assert from 'assert/strict';
import http from 'http';
import net from 'net';
import type { AddressInfo } from 'net';
import WebSocket, { WebSocketServer } from 'ws';
import {
  REFUSED_UPGRADE_URL,
  WS_DEFAULTS,
  httpRefusal,
  installWsGuard,
  nodeRedWsServer,
  wsLimitsFromEnv,
  type WsGuard,
  type WsServerLike,
} from '../../app/ws-guard';

/** Opens a WebSocket; resolves with it, or with the HTTP status of a refused upgrade. */
function connect(url: string, opts: WebSocket.ClientOptions = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.once('error', (err) => reject(err));
  });
}

/** The raw answer to an upgrade request (status line, headers, body). */
function rawUpgrade(port: number, path: string, extra: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      const headers = {
        host: `127.0.0.1:${port}`,
        upgrade: 'websocket',
        connection: 'Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        ...extra,
      };
      s.write(`GET ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`);
    });
    let text = '';
    s.on('data', (d) => (text += d.toString()));
    s.on('close', () => resolve(text));
    s.on('error', reject);
    setTimeout(() => s.destroy(), 3000);
  });
}

function closed(ws: WebSocket): Promise<{ code: number }> {
  return new Promise((resolve) => ws.once('close', (code) => resolve({ code })));
}

describe('security: WebSocket guard', () => {
  it('httpRefusal is a complete HTTP answer with the given headers', () => {
    const text = httpRefusal(503, 'Too many', { 'retry-after': '10', 'x-frame-options': 'DENY' });
    assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(text, /\r\nretry-after: 10\r\n/);
    assert.match(text, /\r\nx-frame-options: DENY\r\n/);
    assert.match(text, /\r\ncontent-length: 9\r\n/);
    assert.ok(text.endsWith('\r\n\r\nToo many\n'));
  });

  it('wsLimitsFromEnv: WS_MAX_CLIENTS, default 200, at least 1', () => {
    assert.deepEqual(wsLimitsFromEnv({}), { limits: { ...WS_DEFAULTS }, problems: [] });
    assert.equal(wsLimitsFromEnv({ WS_MAX_CLIENTS: '5' }).limits.maxClients, 5);
    assert.equal(wsLimitsFromEnv({ WS_MAX_CLIENTS: '0' }).problems.length, 1);
    assert.equal(WS_DEFAULTS.maxPayload, 64 * 1024);
    assert.equal(WS_DEFAULTS.maxBufferedBytes, 1024 * 1024);
    assert.equal(WS_DEFAULTS.pingIntervalMs, 30_000);
  });

  it('nodeRedWsServer finds the running listener node by its full path', () => {
    const server = { options: {}, on: () => undefined } as WsServerLike;
    const nodes: Record<string, unknown> = {
      a: { fullPath: '/ws/other/', server: { options: {}, on: () => undefined } },
      b: { fullPath: '/ws/sensors/', server },
      c: { fullPath: '/ws/sensors/' }, // a client node (no server)
    };
    const red = {
      nodes: {
        eachNode: (cb: (n: { id: string; type: string }) => void) => {
          cb({ id: 'f', type: 'function' });
          for (const id of Object.keys(nodes)) cb({ id, type: 'websocket-listener' });
        },
        getNode: (id: string) => nodes[id] ?? null,
      },
    };
    assert.equal(nodeRedWsServer(red, '/ws/sensors/'), server);
    assert.equal(nodeRedWsServer(red, '/ws/nope/'), undefined);
    const notStarted = { nodes: { eachNode: () => { throw new TypeError('no flows'); }, getNode: () => null } };
    assert.equal(nodeRedWsServer(notStarted, '/ws/sensors/'), undefined);
  });

  describe('on a server shaped like the app', () => {
    let server: http.Server;
    let wss: WebSocketServer;
    let guard: WsGuard;
    let port: number;
    const open: WebSocket[] = [];

    async function start(opts: Parameters<typeof installWsGuard>[1]): Promise<void> {
      server = http.createServer();
      wss = new WebSocketServer({ noServer: true }); // Node-RED creates its listener servers like this
      guard = installWsGuard(server, {
        findServer: (p) => (p === '/ws/sensors/' ? (wss as unknown as WsServerLike) : undefined),
        checkOther: (req) => (req.url?.startsWith('/admin/') && req.headers.origin ? 'Cross-origin' : null),
        ...opts,
      });
      // Node-RED's listener: exact path match, added after the guard.
      server.on('upgrade', (req, socket, head) => {
        if (req.url === REFUSED_UPGRADE_URL) return;
        if (req.url?.split('?')[0] !== '/ws/sensors/') return;
        wss.handleUpgrade(req, socket, head, (ws) => {
          ws.on('message', (data) => ws.send(data)); // echo
          ws.on('error', () => undefined); // as Node-RED's listener does (it reports it on the node)
          wss.emit('connection', ws, req);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    }

    afterEach(async () => {
      for (const ws of open.splice(0)) ws.terminate();
      guard.close();
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });

    async function client(path = '/ws/sensors/', opts: WebSocket.ClientOptions = {}): Promise<WebSocket> {
      const ws = await connect(`ws://127.0.0.1:${port}${path}`, opts);
      assert.ok(ws instanceof WebSocket, `expected an open WebSocket, got ${String(ws)}`);
      open.push(ws);
      return ws;
    }

    it('caps the number of clients: 503 with Retry-After and the security headers, then room again', async () => {
      await start({ maxClients: 2 });
      const a = await client();
      await client('/ws/sensors'); // no slash: the same endpoint, counted too
      const refused = await rawUpgrade(port, '/ws/sensors/');
      assert.match(refused, /^HTTP\/1\.1 503 /);
      assert.match(refused, /\r\nretry-after: 10\r\n/i);
      assert.match(refused, /\r\nx-content-type-options: nosniff\r\n/i);
      assert.match(refused, /\r\ncache-control: no-store\r\n/i);
      assert.equal(await connect(`ws://127.0.0.1:${port}/ws/sensors/`), 503);
      const gone = closed(a);
      a.close();
      await gone;
      await new Promise((r) => setTimeout(r, 50)); // the server side sees the close
      await client();
      assert.equal(guard.sockets(), 2);
    });

    it('an upgrade to a /ws/ path nobody serves: 404 at once, not a hanging socket', async () => {
      await start({});
      const answer = await rawUpgrade(port, '/ws/nope/');
      assert.match(answer, /^HTTP\/1\.1 404 /);
      assert.match(answer, /\r\nx-frame-options: DENY\r\n/i);
    });

    it('checkOther refuses editor upgrades it objects to (403), leaves others alone', async () => {
      await start({});
      assert.match(await rawUpgrade(port, '/admin/comms', { origin: 'https://evil.example' }), /^HTTP\/1\.1 403 /);
    });

    it('caps the size of a client message (maxPayload): bigger closes with 1009', async () => {
      await start({ maxPayload: 1024 });
      assert.equal(wss.options.maxPayload, 100 * 1024 * 1024, "ws's default before any upgrade");
      const ws = await client();
      assert.equal(wss.options.maxPayload, 1024, 'set on the listener server at its first upgrade');
      const echo = new Promise<Buffer>((r) => ws.once('message', (d) => r(d as Buffer)));
      ws.send(Buffer.alloc(1024, 1));
      assert.equal((await echo).length, 1024, 'a message of exactly the limit passes');
      const gone = closed(ws);
      ws.send(Buffer.alloc(1025, 1));
      assert.equal((await gone).code, 1009);
    });

    it('never raises a smaller maxPayload the server already has', async () => {
      await start({ maxPayload: 4096 });
      wss.options.maxPayload = 100;
      await client();
      assert.equal(wss.options.maxPayload, 100);
    });

    it('pings: a client that answers stays, one that does not is terminated', async () => {
      await start({ pingIntervalMs: 60 });
      const good = await client();
      const dead = await client('/ws/sensors/', { autoPong: false });
      const deadClosed = closed(dead);
      let goodClosed = false;
      good.once('close', () => (goodClosed = true));
      await deadClosed;
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(goodClosed, false, 'the answering client is kept');
      assert.equal(guard.clients(), 1);
    });

    it('drops a client that stops reading (send buffer over maxBufferedBytes)', async () => {
      await start({ maxBufferedBytes: 64 * 1024, checkEveryMs: 20 });
      const connected = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
      const slow = await client();
      const serverSide = await connected;
      (slow as unknown as { _socket: { pause(): void } })._socket.pause();
      const gone = new Promise<void>((r) => serverSide.once('close', () => r()));
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = setInterval(() => {
        for (let i = 0; i < 16; i++) serverSide.send(chunk);
      }, 5);
      try {
        await gone;
      } finally {
        clearInterval(pump);
      }
      assert.equal(guard.sockets(), 0);
    });
  });
});
