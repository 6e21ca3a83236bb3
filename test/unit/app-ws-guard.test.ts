import assert from 'assert/strict';
import http from 'http';
import type { AddressInfo } from 'net';
import WebSocket, { WebSocketServer } from 'ws';
import { installWsGuard, normalizeWsPath } from '../../app/ws-guard';

describe('app ws guard', () => {
  it('normalizeWsPath adds the trailing slash under /ws/ only', () => {
    assert.equal(normalizeWsPath('/ws/sensors'), '/ws/sensors/');
    assert.equal(normalizeWsPath('/ws/sensors?token=a'), '/ws/sensors/?token=a');
    assert.equal(normalizeWsPath('/ws/sensors/?token=a'), '/ws/sensors/?token=a');
    assert.equal(normalizeWsPath('/admin/comms'), '/admin/comms');
  });

  describe('on a server', () => {
    let server: http.Server;
    let wss: WebSocketServer;
    let guard: ReturnType<typeof installWsGuard>;
    let port: number;
    const paths: string[] = [];

    beforeEach(async () => {
      server = http.createServer();
      guard = installWsGuard(server, { maxBufferedBytes: 64 * 1024, checkEveryMs: 20 });
      wss = new WebSocketServer({ noServer: true });
      // like Node-RED's listener: exact path match, registered after the guard
      server.on('upgrade', (req, socket, head) => {
        paths.push(req.url ?? '');
        if (req.url?.split('?')[0] !== '/ws/sensors/') return void socket.destroy();
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
