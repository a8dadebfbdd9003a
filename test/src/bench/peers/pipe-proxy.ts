// Benchmark peer: a raw TCP pipe in front of one chat node (net.Socket to net.Socket, no HTTP parsing):
// the floor cost of a proxy hop. Target from CHAT_BENCH_TARGET (host:port).
import { connect, createServer, type AddressInfo } from 'node:net';

const [host = '127.0.0.1', port = '0'] = (process.env.CHAT_BENCH_TARGET ?? '').split(':');
const server = createServer((client) => {
  const upstream = connect({ host, port: Number(port) });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', close);
  upstream.on('close', close);
});
server.listen(0, '127.0.0.1', () =>
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port }),
);
process.on('SIGTERM', () => process.exit(0));
