// Benchmark peer: the simplest possible chat server on bare `ws`, one process, a map from user to socket.
// The ceiling for one node: no router, no bus, no limits, no metrics.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const users = new Map<string, WebSocket>();
const server = createServer();
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const user = (req.url ?? '').split('/').pop() ?? '';
  users.set(user, ws);
  ws.on('message', (data) => {
    const frame = JSON.parse((data as Buffer).toString()) as { cid: string; to: string; body: string };
    users
      .get(frame.to)
      ?.send(JSON.stringify({ type: 'message', from: user, to: frame.to, body: frame.body }));
    ws.send(JSON.stringify({ type: 'ack', cid: frame.cid, status: 'delivered' }));
  });
  ws.on('close', () => users.delete(user));
});
server.listen(0, '127.0.0.1', () =>
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port }),
);
process.on('SIGTERM', () => process.exit(0));
