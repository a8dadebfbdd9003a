// The refusals createRouter answers itself, before the proxy (not settled, full, stopping), on a real
// router on 127.0.0.1 port 0 in front of a stand-in node: the HTTP answer as before, and with
// ?refusal=close the completed handshake and a REFUSED_* close.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { createLogger, loadServiceConfig, routerConfigSchema, type ReadyzBody } from '@chat/shared';
import { StaticMembership } from './membership/static-membership.js';
import type { MembershipSource } from './membership/types.js';
import { createRouter } from './router.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const KEY_HEADERS =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
  'Sec-WebSocket-Version: 13\r\n';

/**
 * A stand-in node: answers /readyz, completes upgrades (or holds them while `holdUpgrades`), and holds
 * every `sessions/close` request until `answerCloses()`.
 */
async function stubNode(t: TestContext) {
  const upgrades: Socket[] = [];
  const closes: ServerResponse[] = [];
  let asked: () => void = () => undefined;
  const closeAsked = new Promise<void>((resolve) => (asked = resolve));
  let upgraded: () => void = () => undefined;
  const firstUpgrade = new Promise<void>((resolve) => (upgraded = resolve));
  const stub = { holdUpgrades: false, closeAsked, firstUpgrade, url: '', answerCloses: () => {} };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/readyz') {
      const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: 'n1' };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } else if (req.url === '/internal/sessions/close') {
      closes.push(res);
      asked();
    } else res.writeHead(404).end();
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    upgrades.push(socket);
    socket.on('error', () => undefined);
    socket.once('end', () => socket.destroy());
    upgraded();
    if (stub.holdUpgrades) return;
    const accept = createHash('sha1')
      .update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const s of upgrades) s.destroy();
    for (const res of closes) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.answerCloses = () => {
    for (const res of closes.splice(0))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"closing":1}');
  };
  return stub;
}

async function startRouter(t: TestContext, env: Record<string, string>, membership: MembershipSource) {
  const config = loadServiceConfig(routerConfigSchema, {
    CHAT_AUTH_MODE: 'off',
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    ...env,
  });
  const router = createRouter(config, { logger, membership });
  const { port } = await router.start();
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= router.stop(0));
  t.after(stop);
  const upgrades = async (result: string) =>
    (await router.metrics.upgrades.get()).values
      .filter((v) => v.labels.result === result)
      .reduce((n, v) => n + v.value, 0);
  return { router, port, stop, upgrades };
}

/** A connected raw socket, closed after the test. */
async function rawSocket(t: TestContext, port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

/**
 * Writes `request` on `socket` and reads the answer until the socket closes: the head, and after a 101
 * the close frame's code and reason (answered with the client's close).
 */
async function exchange(socket: Socket, request: string) {
  let data = Buffer.alloc(0);
  let frame: { code: number; reason: string } | undefined;
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    const at = data.indexOf('\r\n\r\n') + 4;
    if (frame || at < 4 || !data.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) return;
    const length = (data[at + 1] ?? 0) & 0x7f;
    if (data.length < at + 2 + length) return;
    frame = { code: data.readUInt16BE(at + 2), reason: data.toString('utf8', at + 4, at + 2 + length) };
    socket.write(Buffer.from([0x88, 0x80, 1, 2, 3, 4]));
  });
  const closed = once(socket, 'close');
  socket.write(request);
  await closed;
  const text = data.toString('latin1');
  return {
    head: text.slice(0, text.indexOf('\r\n\r\n')),
    body: text.slice(text.indexOf('\r\n\r\n') + 4),
    ...frame,
  };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${KEY_HEADERS}\r\n`;

describe('createRouter: refusals before the proxy', () => {
  test('not settled: 503 ROUTER_ERR_NO_NODE, or 4503 with ?refusal=close', async (t) => {
    const unsettled: MembershipSource = {
      kind: 'static',
      replayed: false,
      start: () => Promise.resolve(),
      stop: () => Promise.resolve(),
    };
    const r = await startRouter(t, {}, unsettled);
    const http = await exchange(await rawSocket(t, r.port), get('/chat/alice'));
    assert.match(http.head, /^HTTP\/1\.1 503 /);
    assert.match(http.head, /\r\nRetry-After: 1(\r\n|$)/);
    assert.equal(http.body, '{"error":"ROUTER_ERR_NO_NODE"}');
    const closed = await exchange(await rawSocket(t, r.port), get('/chat/alice?refusal=close'));
    assert.match(closed.head, /^HTTP\/1\.1 101 /);
    assert.equal(`${closed.code} ${closed.reason}`, '4503 ROUTER_ERR_NO_NODE retry_after_ms=1000');
    assert.equal(await r.upgrades('not_ready'), 2);
  });

  test('full (CHAT_ROUTER_MAX_CONNECTIONS): 503 ROUTER_ERR_FULL, or 4503 with ?refusal=close', async (t) => {
    const node = await stubNode(t);
    node.holdUpgrades = true;
    const membership = new StaticMembership([{ id: 'n1', url: node.url, weight: 1, state: 'active' }]);
    const r = await startRouter(t, { CHAT_ROUTER_MAX_CONNECTIONS: '1' }, membership);
    // One handshake in flight (the node holds it) fills the router.
    const holder = await rawSocket(t, r.port);
    holder.write(get('/chat/alice'));
    await node.firstUpgrade;
    const http = await exchange(await rawSocket(t, r.port), get('/chat/bob'));
    assert.match(http.head, /^HTTP\/1\.1 503 /);
    assert.equal(http.body, '{"error":"ROUTER_ERR_FULL"}');
    const closed = await exchange(await rawSocket(t, r.port), get('/chat/bob?refusal=close'));
    assert.equal(`${closed.code} ${closed.reason}`, '4503 ROUTER_ERR_FULL retry_after_ms=1000');
    assert.equal(await r.upgrades('full'), 2);
    holder.destroy(); // the router's server closes once every socket it accepted is gone
  });

  test('stopping: the bare 503 as before, or 4503 ROUTER_ERR_NO_NODE with ?refusal=close', async (t) => {
    const node = await stubNode(t);
    const membership = new StaticMembership([{ id: 'n1', url: node.url, weight: 1, state: 'active' }]);
    const r = await startRouter(t, {}, membership);
    // A proxied connection keeps the stopping router waiting for its node (which holds the request).
    const proxied = await rawSocket(t, r.port);
    proxied.write(get('/chat/alice'));
    await once(proxied, 'data');
    // Requests begun before the stop (their heads incomplete) are finished while it waits.
    const http = await rawSocket(t, r.port);
    const close = await rawSocket(t, r.port);
    http.write('GET /chat/bob HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    close.write('GET /chat/bob?refusal=close HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const stopped = r.stop();
    await node.closeAsked;
    const [a, b] = await Promise.all([
      exchange(http, `${KEY_HEADERS}\r\n`),
      exchange(close, `${KEY_HEADERS}\r\n`),
    ]);
    assert.match(a.head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(a.head, /\r\nContent-Length: 0(\r\n|$)/);
    assert.equal(a.code, undefined);
    assert.match(b.head, /^HTTP\/1\.1 101 /);
    assert.equal(`${b.code} ${b.reason}`, '4503 ROUTER_ERR_NO_NODE retry_after_ms=1000');
    assert.equal(await r.upgrades('no_node'), 2);
    node.answerCloses();
    proxied.destroy();
    await stopped;
  });
});
