import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { NODE_API, type ReadyzBody } from '@chat/shared';
import type { Cleanup } from '../kafka/harness.js';

/**
 * A misbehaving chat node for router fault tests. It answers /readyz like a node (the contract's full
 * body, accepting), and its WebSocket
 * behaviour depends on the user id's prefix:
 *   ok-*      a real WebSocket echo (text frames come back)
 *   silent-*  never answers the upgrade
 *   reset-*   destroys the socket without answering
 *   die-*     completes the upgrade, then destroys the socket after 50 ms
 * It counts the upgrade sockets it holds, so tests can check that nothing leaked, and keeps every
 * upgrade's path and headers (what the router told it).
 */
export class FakeUpstream {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  readonly upgrades: { url: string; headers: IncomingHttpHeaders }[] = [];
  port = 0;

  private constructor(readonly nodeId: string) {
    const wss = new WebSocketServer({ noServer: true });
    this.server = createServer((req, res) => {
      if (req.method === NODE_API.readyz.method && req.url === NODE_API.readyz.path) {
        const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      } else res.writeHead(404).end();
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.sockets.add(socket);
      this.upgrades.push({ url: req.url ?? '', headers: req.headers });
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      // http.Server sockets allow half-open: close ours when the router closes its side.
      socket.once('end', () => socket.destroy());
      const user = (req.url ?? '').split('/').pop() ?? '';
      // Read (and drop) what arrives, so the peer going away is noticed.
      if (user.startsWith('silent-')) return void socket.resume();
      if (user.startsWith('reset-')) return void socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => undefined);
        if (user.startsWith('die-')) setTimeout(() => socket.destroy(), 50);
        else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
    });
  }

  /** Listens on a free port of 127.0.0.1; `nodeId` is what its /readyz names (default `fake`). */
  static async start(cleanup: Cleanup, nodeId = 'fake'): Promise<FakeUpstream> {
    const fake = new FakeUpstream(nodeId);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', () => resolve()));
    fake.port = (fake.server.address() as AddressInfo).port;
    cleanup.after(() => fake.close());
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops listening and drops every socket: the port now refuses connections. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
