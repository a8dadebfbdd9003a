import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeClientFrame,
  PONG_TEXT,
  type ConfigOf,
  type Logger,
  type nodeConfigSchema,
} from '@chat/shared';

export type NodeConfig = ConfigOf<typeof nodeConfigSchema>;

export interface ChatNodeDeps {
  readonly logger: Logger;
}

export interface ChatNode {
  /** Listens on the configured host and port; resolves with the bound address. */
  start(): Promise<AddressInfo>;
  stop(): Promise<void>;
}

const CHAT_PATH = /^\/chat\/([^/?#]+)$/;

/** Skeleton chat node: health endpoint and the seed keep-alive. Grown into the full node by issue 3. */
export function createChatNode(config: NodeConfig, deps: ChatNodeDeps): ChatNode {
  const log = deps.logger.child({ subsystem: 'node' });
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: config.maxPayloadBytes,
  });
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const userId = CHAT_PATH.exec((req.url ?? '').split('?')[0] ?? '')?.[1];
    if (userId === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      ws.on('message', (data, isBinary) => {
        if (isBinary) return;
        const inbound = decodeClientFrame((data as Buffer).toString('utf8'), { userId });
        if (inbound.kind === 'ping') ws.send(PONG_TEXT);
      });
    });
  });

  return {
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      const address = server.address() as AddressInfo;
      log.info({ host: address.address, port: address.port }, 'chat node listening');
      return address;
    },
    async stop() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
