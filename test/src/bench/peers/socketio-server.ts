// Benchmark peer: one Socket.IO server of a cluster joined by the official Redis adapter. Each user joins
// a room named after itself; a direct message is `io.to(receiver).emit(...)`, which the adapter publishes
// to Redis for every server, the way Socket.IO clusters deliver to users on other servers.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const pub = createClient({ url: process.env.CHAT_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379' });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.adapter(createAdapter(pub, sub));
io.on('connection', (socket) => {
  const user = String(socket.handshake.query.user ?? '');
  void socket.join(user);
  socket.on('send', (frame: { cid: string; to: string; body: string }, ack?: (r: unknown) => void) => {
    io.to(frame.to).emit('message', { type: 'message', from: user, to: frame.to, body: frame.body });
    ack?.({ status: 'accepted' });
  });
});
http.listen(0, '127.0.0.1', () =>
  process.send?.({ type: 'ready', port: (http.address() as AddressInfo).port }),
);
process.on('SIGTERM', () => {
  void Promise.all([pub.quit(), sub.quit()]).finally(() => process.exit(0));
});
