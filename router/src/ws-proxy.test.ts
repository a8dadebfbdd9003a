// What the router's WebSocket hop does with a refused handshake, on a real server on 127.0.0.1 port 0:
// the status and code the client gets, the metrics, and the (rate-limited) log line. Placement and
// proxying are covered end to end in test/src/router/.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { ChatError, createLogger, type TokenVerifier } from '@chat/shared';
import { ConnectionTable } from './connections.js';
import { MemberTable } from './member-table.js';
import { RouterMetrics } from './metrics.js';
import { WsProxy } from './ws-proxy.js';

const ALLOWED = 'https://chat.example.com';

/** Rejects every token (as an invalid one). */
const rejectAll: TokenVerifier = {
  verify: () => Promise.reject(new ChatError('AUTH_ERR_INVALID_TOKEN', 'bad signature')),
};

async function startProxy(t: TestContext) {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const metrics = new RouterMetrics({ defaultMetrics: false });
  const members = new MemberTable({
    probeIntervalMs: 60_000,
    probeTimeoutMs: 1000,
    probeFailures: 1,
    metrics,
    logger,
  });
  const proxy = new WsProxy({
    routerId: 'r1',
    handshake: { verifier: rejectAll, allowQueryToken: false, allowedOrigins: [ALLOWED] },
    handshakeRatePerSec: 1000,
    affinityQuery: false,
    handshakeTimeoutMs: 1000,
    members,
    connections: new ConnectionTable(),
    metrics,
    logger,
    refusalLogIntervalMs: 10_000,
    now: () => now,
  });
  const server = createServer();
  server.on('upgrade', (req, socket: Socket, head: Buffer) => proxy.handle(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    proxy.close();
  });
  const port = (server.address() as AddressInfo).port;
  const value = async (counter: 'upgrades' | 'authFailures', labels: Record<string, string>) =>
    (await metrics[counter].get()).values
      .filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
      .reduce((n, v) => n + v.value, 0);
  return {
    lines,
    refusals: () => lines.filter((l) => l.msg === 'handshake refused'),
    advance: (ms: number) => void (now += ms),
    upgrade: (headers: string) => upgrade(t, port, headers),
    value,
  };
}

/** Sends an upgrade for /chat/alice with extra header lines; resolves with the whole answer. */
async function upgrade(t: TestContext, port: number, headers: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.write(
    'GET /chat/alice HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`,
  );
  let answer = '';
  socket.on('data', (b: Buffer) => (answer += b.toString()));
  await once(socket, 'close');
  return answer;
}

describe('WsProxy#handle: refused handshakes', () => {
  test('a foreign Origin: 403 AUTH_ERR_ORIGIN_FORBIDDEN, counted as origin_forbidden, logged at warn', async (t) => {
    const p = await startProxy(t);
    const answer = await p.upgrade('Origin: https://evil.example\r\nAuthorization: Bearer x\r\n');
    assert.match(answer, /^HTTP\/1\.1 403 /);
    assert.match(answer, /"error":"AUTH_ERR_ORIGIN_FORBIDDEN"/);
    assert.equal(await p.value('upgrades', { result: 'origin_forbidden' }), 1);
    assert.equal(await p.value('upgrades', { result: 'unauthorized' }), 0, 'not counted as a bad token');
    assert.equal(await p.value('authFailures', { code: 'AUTH_ERR_ORIGIN_FORBIDDEN' }), 1);
    const [line, ...more] = p.refusals();
    assert.equal(more.length, 0);
    assert.equal(line?.level, 'warn');
    assert.equal(line?.code, 'AUTH_ERR_ORIGIN_FORBIDDEN');
    assert.equal(line?.origin, 'https://evil.example', 'the operator sees which origin to allow or block');
    assert.equal(line?.user, 'alice');
    assert.equal(line?.suppressed, 0);
  });

  test('a flood of refusals: every one counted, one line per code per interval with the rest counted', async (t) => {
    const p = await startProxy(t);
    for (let i = 0; i < 5; i++) await p.upgrade('Origin: https://evil.example\r\n');
    for (let i = 0; i < 3; i++) await p.upgrade('Authorization: Bearer forged\r\n');
    assert.equal(await p.value('upgrades', { result: 'origin_forbidden' }), 5);
    assert.equal(await p.value('upgrades', { result: 'unauthorized' }), 3);
    assert.equal(await p.value('authFailures', { code: 'AUTH_ERR_INVALID_TOKEN' }), 3);
    assert.deepEqual(
      p.refusals().map((l) => [l.code, l.level]),
      [
        ['AUTH_ERR_ORIGIN_FORBIDDEN', 'warn'],
        ['AUTH_ERR_INVALID_TOKEN', 'info'],
      ],
    );
    p.advance(9_999);
    await p.upgrade('Origin: https://evil.example\r\n');
    assert.equal(p.refusals().length, 2, 'still within the interval');
    p.advance(1);
    await p.upgrade('Origin: https://other.example\r\n');
    const last = p.refusals().at(-1);
    assert.equal(last?.code, 'AUTH_ERR_ORIGIN_FORBIDDEN');
    assert.equal(last?.origin, 'https://other.example');
    assert.equal(last?.suppressed, 5, 'the four after the first line and the one inside the interval');
  });

  test('an allowed Origin passes the origin check (and is refused for its token only)', async (t) => {
    const p = await startProxy(t);
    const answer = await p.upgrade(`Origin: ${ALLOWED}\r\nAuthorization: Bearer forged\r\n`);
    assert.match(answer, /^HTTP\/1\.1 401 /);
    assert.match(answer, /"error":"AUTH_ERR_INVALID_TOKEN"/);
    assert.equal(await p.value('upgrades', { result: 'origin_forbidden' }), 0);
    assert.equal(p.refusals()[0]?.origin, undefined, 'origins are logged for origin refusals only');
  });

  test('a very long Origin is cut in the log line', async (t) => {
    const p = await startProxy(t);
    await p.upgrade(`Origin: https://${'x'.repeat(5000)}.example\r\n`);
    assert.equal(String(p.refusals()[0]?.origin).length, 200);
  });
});
