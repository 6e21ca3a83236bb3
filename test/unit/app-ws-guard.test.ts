import assert from 'assert/strict';
import http from 'http';
import net, { type AddressInfo } from 'net';
import WebSocket, { WebSocketServer } from 'ws';
import { coalesceWritesPerTurn, installWsGuard, normalizeWsPath } from '../../app/ws-guard';

describe('app ws guard', () => {
  it('normalizeWsPath adds the trailing slash under /ws/ only', () => {
    assert.equal(normalizeWsPath('/ws/sensors'), '/ws/sensors/');
    assert.equal(normalizeWsPath('/ws/sensors?token=a'), '/ws/sensors/?token=a');
    assert.equal(normalizeWsPath('/ws/sensors/?token=a'), '/ws/sensors/?token=a');
    assert.equal(normalizeWsPath('/admin/comms'), '/admin/comms');
  });

  describe('coalesceWritesPerTurn', () => {
    let server: net.Server;
    let peer: Promise<net.Socket>;
    let socket: net.Socket;

    beforeEach(async () => {
      server = net.createServer();
      peer = new Promise((r) => server.once('connection', r));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
    });
    afterEach(async () => {
      socket.destroy();
      (await peer).destroy();
      await new Promise<void>((r) => server.close(() => r()));
    });

    /** Counts the chunks the socket hands to the system in each write (`_write`: 1, `_writev`: n). */
    const spyWrites = (s: net.Socket) => {
      const calls: number[] = [];
      const inner = s as unknown as { _write: (...a: unknown[]) => void; _writev: (chunks: unknown[], cb: unknown) => void };
      const w = inner._write;
      const wv = inner._writev;
      inner._write = function (this: unknown, ...a: unknown[]) {
        calls.push(1);
        return w.apply(this, a);
      };
      inner._writev = function (this: unknown, chunks: unknown[], cb: unknown) {
        calls.push(chunks.length);
        return wv.call(this, chunks, cb);
      };
      return calls;
    };
    const received = async (n: number) => {
      const p = await peer;
      let got = '';
      for await (const d of p) {
        got += (d as Buffer).toString();
        if (got.length >= n) break;
      }
      return got;
    };

    it('sends what one turn wrote in one write, in order, once the turn is over', async () => {
      coalesceWritesPerTurn(socket);
      const calls = spyWrites(socket);
      socket.write('a');
      socket.write('bc');
      socket.write('d');
      assert.equal(socket.writableCorked, 1, 'held during the turn');
      assert.deepEqual(calls, []);
      await new Promise((r) => setImmediate(r));
      assert.equal(socket.writableCorked, 0);
      assert.deepEqual(calls, [3]);
      assert.equal(await received(4), 'abcd');
      // The next turn starts a new hold.
      socket.write('e');
      assert.equal(socket.writableCorked, 1);
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(calls, [3, 1]);
    });

    it('keeps a cork of the writer\'s own (nested) and sends a big burst at once', async () => {
      coalesceWritesPerTurn(socket, 1024);
      const calls = spyWrites(socket);
      socket.cork(); // as ws does around a frame's header and payload
      socket.write('h');
      socket.write(Buffer.alloc(2000, 0x61));
      assert.equal(socket.writableCorked, 1, 'past maxHeldBytes only the writer\'s own cork is left');
      socket.uncork();
      assert.deepEqual(calls, [2], 'the burst went out without waiting for the turn to end');
      socket.write('z');
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(calls, [2, 1]);
      assert.equal(await received(2002), `h${'a'.repeat(2000)}z`);
    });

    it('leaves a destroyed socket alone', async () => {
      coalesceWritesPerTurn(socket);
      socket.destroy();
      socket.on('error', () => undefined);
      socket.write('x');
      assert.equal(socket.writableCorked, 0);
      await new Promise((r) => setImmediate(r));
    });
  });

  describe('on a server', () => {
    let server: http.Server;
    let wss: WebSocketServer;
    let guard: ReturnType<typeof installWsGuard>;
    let port: number;
    const paths: string[] = [];

    beforeEach(async () => {
      server = http.createServer();
      guard = installWsGuard(server, {
        maxBufferedBytes: 64 * 1024,
        checkEveryMs: 20,
        findServer: (pathname) => (pathname === '/ws/sensors/' ? wss : undefined),
      });
      wss = new WebSocketServer({ noServer: true });
      // like Node-RED's listener: exact path match, registered after the guard
      server.on('upgrade', (req, socket, head) => {
        paths.push(req.url ?? '');
        if (req.url?.split('?')[0] !== '/ws/sensors/') return void socket.destroy();
        // A refusal as Node-RED's ws 7 writes one (verifyClient): the answer, then destroy at once.
        if (req.url.includes('deny')) {
          socket.write('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
          return void socket.destroy();
        }
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    afterEach(async () => {
      guard.close();
      for (const c of wss.clients) c.terminate();
      wss.close();
      await new Promise<void>((r) => server.close(() => r()));
      paths.length = 0;
    });

    it('lets /ws/sensors (no slash) reach the /ws/sensors/ listener', async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/sensors?x=1`);
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      assert.deepEqual(paths, ['/ws/sensors/?x=1']);
      ws.close();
    });

    it('sends the frames of one turn together, and each arrives whole and in order', async () => {
      const connected = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
      const client = new WebSocket(`ws://127.0.0.1:${port}/ws/sensors/`);
      await new Promise((r) => client.once('open', r));
      const serverSide = await connected;
      const got: string[] = [];
      const all = new Promise<void>((r) => client.on('message', (d: Buffer) => got.push(d.toString()) === 200 && r()));
      const raw = (serverSide as unknown as { _socket: net.Socket })._socket;
      for (let i = 0; i < 200; i++) serverSide.send(JSON.stringify({ i, pad: 'x'.repeat(i * 7) }));
      assert.equal(raw.writableCorked, 1, 'held until the turn is over');
      await all;
      assert.deepEqual(got.map((t) => JSON.parse(t).i), Array.from({ length: 200 }, (_, i) => i));
      client.close();
    });

    it('a refused handshake still gets its answer (nothing is held before the connection is made)', async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/sensors/?deny=1`);
      const status = await new Promise<number | undefined>((resolve, reject) => {
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode));
        ws.once('open', () => reject(new Error('opened')));
        ws.once('error', reject);
      });
      assert.equal(status, 401);
      ws.terminate();
    });

    it('drops a client that stops reading', async () => {
      const connected = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
      const slow = new WebSocket(`ws://127.0.0.1:${port}/ws/sensors/`);
      await new Promise((r) => slow.once('open', r));
      const serverSide = await connected;
      // Stop reading on the client: its socket buffers fill, then the server's.
      (slow as unknown as { _socket: { pause(): void } })._socket.pause();
      const closed = new Promise<void>((r) => serverSide.once('close', () => r()));
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = setInterval(() => {
        for (let i = 0; i < 16; i++) serverSide.send(chunk);
      }, 5);
      try {
        await closed;
      } finally {
        clearInterval(pump);
        slow.terminate();
      }
      assert.equal(guard.sockets(), 0);
    });
  });
});
