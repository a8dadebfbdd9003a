// The router's WebSocket hop on a real server on 127.0.0.1 port 0, in front of stand-in nodes (real HTTP
// servers that answer /readyz and the upgrade): a refused handshake's status, code, metrics and
// (rate-limited) log line; placement on the owner of the affinity key's shard, the headers the node gets,
// and a refusing owner. The proxying itself is covered end to end in test/src/router/.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import {
  AFFINITY_HEADER,
  CONNECTION_ID_HEADER,
  ChatError,
  createLogger,
  shardOf,
  type ReadyzBody,
  type TokenVerifier,
} from '@chat/shared';
import { ConnectionTable, type ProxiedConnection } from './connections.js';
import { MemberTable } from './member-table.js';
import { RouterMetrics } from './metrics.js';
import { TrustedProxies } from './trusted-proxies.js';
import { WsProxy, type WsProxyOptions } from './ws-proxy.js';

const SHARDS = 16;
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const ALLOWED = 'https://chat.example.com';

/** Rejects every token (as an invalid one). */
const rejectAll: TokenVerifier = {
  verify: () => Promise.reject(new ChatError('AUTH_ERR_INVALID_TOKEN', 'bad signature')),
};

/**
 * Accepts `Bearer <sub>` and `Bearer <sub>|<aff>` (the affinity claim) for any user; rejects the rest.
 */
const claims: TokenVerifier = {
  verify: (token) => {
    const [sub = '', aff] = token.split('|');
    if (!sub) return Promise.reject(new ChatError('AUTH_ERR_INVALID_TOKEN', 'empty'));
    return Promise.resolve({ sub, exp: Date.now() / 1000 + 60, affinity: aff });
  },
};

/** A stand-in chat node: answers /readyz, records every upgrade's headers and completes it with a 101. */
interface FakeNode {
  readonly id: string;
  readonly url: string;
  readonly upgrades: IncomingHttpHeaders[];
  /** While set, upgrades are held (no answer) until `release()`. */
  hold: boolean;
  release(): void;
  /** Resolves when `n` upgrades have arrived. */
  until(n: number): Promise<void>;
  /** Stops listening: the port refuses connections. */
  close(): Promise<void>;
}

async function fakeNode(t: TestContext, id: string): Promise<FakeNode> {
  const held: (() => void)[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: id };
    if (req.url === '/readyz')
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    else res.writeHead(404).end();
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    node.upgrades.push(req.headers);
    for (const w of waiters.filter((w) => node.upgrades.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    const accept = createHash('sha1')
      .update(`${String(req.headers['sec-websocket-key'])}${WS_GUID}`)
      .digest('base64');
    const answer = () =>
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
    if (node.hold) held.push(answer);
    else answer();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  const node: FakeNode = {
    id,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades: [],
    hold: false,
    release: () => held.splice(0).forEach((answer) => answer()),
    until: (n) =>
      node.upgrades.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })),
    close,
  };
  return node;
}

async function startProxy(
  t: TestContext,
  o: { nodes?: readonly FakeNode[]; proxy?: Partial<WsProxyOptions> } = {},
) {
  let now = 1_000_000;
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: 'test',
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const metrics = new RouterMetrics({ defaultMetrics: false });
  const members = new MemberTable({
    shardCount: SHARDS,
    probeIntervalMs: 60_000,
    probeTimeoutMs: 1000,
    // A node that went away stays in the table (no probe in these tests removes it): the proxy decides.
    probeFailures: 100,
    metrics,
    logger,
  });
  t.after(() => members.stop());
  const nodes = o.nodes ?? [];
  members.setMembers(nodes.map((n) => ({ id: n.id, url: n.url, weight: 1, state: 'active' as const })));
  await members.probeAll();
  const connections = new ConnectionTable();
  const proxy = new WsProxy({
    routerId: 'r1',
    handshake: { verifier: rejectAll, allowQueryToken: false, allowedOrigins: [ALLOWED] },
    handshakeRatePerSec: 1000,
    affinityQuery: false,
    handshakeTimeoutMs: 1000,
    members,
    connections,
    metrics,
    logger,
    refusalLogIntervalMs: 10_000,
    now: () => now,
    ...o.proxy,
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
  const value = async (
    counter: 'upgrades' | 'authFailures' | 'proxyErrors' | 'clientAddresses',
    labels: Record<string, string>,
  ) =>
    (await metrics[counter].get()).values
      .filter((v) => Object.entries(labels).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x))
      .reduce((n, v) => n + v.value, 0);
  return {
    port,
    lines,
    refusals: () => lines.filter((l) => l.msg === 'handshake refused'),
    advance: (ms: number) => void (now += ms),
    upgrade: (headers: string, path = '/chat/alice') => upgrade(t, port, headers, path, 'close'),
    /** Resolves with the answer's head once it is complete (the 101 leaves the socket open). */
    open: (headers: string, path: string) => upgrade(t, port, headers, path, 'head'),
    members,
    connections,
    value,
  };
}

/**
 * Sends an upgrade for `path` with extra header lines; resolves with the whole answer once the socket
 * closes, or with the answer's head as soon as it is complete.
 */
async function upgrade(
  t: TestContext,
  port: number,
  headers: string,
  path: string,
  until: 'close' | 'head',
): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${headers}\r\n`,
  );
  let answer = '';
  return new Promise((resolve) => {
    socket.on('data', (b: Buffer) => {
      answer += b.toString();
      if (until === 'head' && answer.includes('\r\n\r\n')) resolve(answer);
    });
    socket.once('close', () => resolve(answer));
  });
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

describe('WsProxy#handle: a node that refuses the upgrade', () => {
  test('its status, headers and body reach the client (re-framed with Content-Length, Connection: close), counted', async (t) => {
    const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: 'r1' };
    const server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
    );
    const upgrades: IncomingHttpHeaders[] = [];
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      upgrades.push(req.headers);
      socket.on('error', () => undefined);
      const json = '{"error":"NODE_ERR_DRAINING"}';
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 2\r\n' +
          `Transfer-Encoding: chunked\r\n\r\n${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`,
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const node = {
      id: 'r1',
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    } as FakeNode;
    const p = await startProxy(t, {
      nodes: [node],
      proxy: { handshake: { verifier: claims, allowQueryToken: false, allowedOrigins: [] } },
    });
    const answer = await p.upgrade('Authorization: Bearer alice\r\n', '/chat/alice');
    assert.equal(upgrades.length, 1);
    const [head = '', rest] = answer.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(head, /\r\nRetry-After: 2(\r\n|$)/);
    assert.match(head, /\r\nConnection: close(\r\n|$)/);
    assert.match(head, /\r\nContent-Length: 29(\r\n|$)/);
    assert.doesNotMatch(head, /Transfer-Encoding/i);
    assert.equal(rest, '{"error":"NODE_ERR_DRAINING"}');
    assert.equal(await p.value('upgrades', { result: 'upstream_rejected' }), 1);
    assert.equal(p.connections.size, 0);
  });
});

describe('WsProxy#handle: handshake budgets per address', () => {
  test('a flood of bad handshakes at 60/s does not refuse a valid user from the same address', async (t) => {
    const node = await fakeNode(t, 'n1');
    const p = await startProxy(t, {
      nodes: [node],
      proxy: {
        handshake: { verifier: claims, allowQueryToken: false, allowedOrigins: [] },
        handshakeRatePerSec: 20,
      },
    });
    // Three seconds on the injected clock: 60 refused handshakes a second (bad tokens, bad paths) and a
    // valid one every 125 ms, all from 127.0.0.1. With one shared budget (20/s, burst 40) the valid user
    // was refused most of the time.
    const valid: string[] = [];
    for (let ms = 0; ms < 3000; ms += 125) {
      for (let i = 0; i < 7; i++) {
        p.advance(125 / 8);
        if (i % 2 === 0) await p.upgrade('Authorization: Bearer |forged\r\n');
        else await p.upgrade('Authorization: Bearer x\r\n', '/nope');
      }
      p.advance(125 / 8);
      const head = await p.open('Authorization: Bearer alice\r\n', '/chat/alice');
      valid.push(head.split('\r\n')[0] ?? '');
    }
    assert.equal(valid.length, 24);
    assert.deepEqual(
      valid.filter((line) => !line.startsWith('HTTP/1.1 101 ')),
      [],
      'every valid handshake got its 101',
    );
    // The flood itself is limited: beyond its own budget (burst 40, 20/s) it gets 429.
    assert.ok((await p.value('upgrades', { result: 'rate_limited' })) > 60);
    assert.equal(await p.value('upgrades', { result: 'ok' }), 24);
    // ... and logged (one line per interval), naming the address and the budget it spent.
    const limited = p.refusals().filter((l) => l.code === 'ROUTER_ERR_RATE_LIMITED');
    assert.ok(limited.length >= 1);
    assert.deepEqual(
      [limited[0]?.level, limited[0]?.client, limited[0]?.forwarded, limited[0]?.budget],
      ['warn', '127.0.0.1', false, 'failures'],
    );
  });

  test('valid handshakes have a budget of their own: beyond it 429 ROUTER_ERR_RATE_LIMITED with Retry-After', async (t) => {
    const node = await fakeNode(t, 'n1');
    const p = await startProxy(t, {
      nodes: [node],
      proxy: {
        handshake: { verifier: claims, allowQueryToken: false, allowedOrigins: [] },
        handshakeRatePerSec: 2,
      },
    });
    const lines: string[] = [];
    for (let i = 0; i < 5; i++) {
      lines.push((await p.open('Authorization: Bearer alice\r\n', '/chat/alice')).split('\r\n\r\n')[0] ?? '');
    }
    assert.deepEqual(
      lines.map((l) => l.split(' ')[1]),
      ['101', '101', '101', '101', '429'],
    );
    assert.match(lines[4] ?? '', /Retry-After: 1/);
    const [logged, ...more] = p.refusals();
    assert.equal(more.length, 0);
    assert.deepEqual(
      [logged?.level, logged?.code, logged?.user, logged?.client, logged?.forwarded, logged?.budget],
      ['warn', 'ROUTER_ERR_RATE_LIMITED', 'alice', '127.0.0.1', false, 'handshakes'],
    );
    p.advance(500);
    assert.match(await p.open('Authorization: Bearer alice\r\n', '/chat/alice'), /^HTTP\/1\.1 101 /);
  });
});

/** Three stand-in nodes and keys whose shards three different nodes own: user, query and claim. */
async function placementSetup(t: TestContext, proxy: Partial<WsProxyOptions> = {}) {
  const nodes = await Promise.all(['n1', 'n2', 'n3'].map((id) => fakeNode(t, id)));
  const p = await startProxy(t, {
    nodes,
    proxy: {
      handshake: { verifier: claims, allowQueryToken: false, allowedOrigins: [] },
      affinityQuery: true,
      ...proxy,
    },
  });
  const owners = p.members.owners;
  assert.equal(owners.size, 3);
  const ownerOf = (key: string) => owners.ownerOfKey(key) ?? '';
  // Pick keys so that each source of the key leads to another node: a wrong precedence cannot pass.
  const user = 'user-0';
  let query = '';
  for (let i = 0; !query; i++) if (ownerOf(`team-${i}`) !== ownerOf(user)) query = `team-${i}`;
  let claim = '';
  for (let i = 0; !claim; i++) {
    const o = ownerOf(`aff-${i}`);
    if (o !== ownerOf(user) && o !== ownerOf(query)) claim = `aff-${i}`;
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  /** Opens a connection and returns the node that got it, with the headers it saw. */
  const place = async (token: string, q = '', extraHeaders = '') => {
    const before = nodes.map((n) => n.upgrades.length);
    const head = await p.open(`Authorization: Bearer ${token}\r\n${extraHeaders}`, `/chat/${user}${q}`);
    assert.match(head, /^HTTP\/1\.1 101 /);
    const reached = nodes.filter((n, i) => n.upgrades.length > (before[i] ?? 0));
    assert.equal(reached.length, 1, 'exactly one node got the upgrade');
    const node = reached[0];
    assert.ok(node);
    return { node: node.id, headers: node.upgrades.at(-1) ?? {} };
  };
  return { ...p, nodes, byId, owners, ownerOf, user, query, claim, place };
}

describe('WsProxy#handle: placement on the owner of the key’s shard', () => {
  test('the key is the token claim, else the query parameter, else the user id: placed on OwnerTable.ownerOfKey', async (t) => {
    const s = await placementSetup(t);
    const byClaim = await s.place(`${s.user}|${s.claim}`, `?affinity=${s.query}`);
    assert.equal(byClaim.node, s.ownerOf(s.claim), 'the signed claim wins over the query');
    const byQuery = await s.place(s.user, `?affinity=${s.query}`);
    assert.equal(byQuery.node, s.ownerOf(s.query));
    const byUser = await s.place(s.user);
    assert.equal(byUser.node, s.ownerOf(s.user));
    // The node is told the key it was placed by, and the id the router knows the connection by.
    assert.deepEqual(
      [byClaim, byQuery, byUser].map((x) => x.headers[AFFINITY_HEADER]),
      [s.claim, s.query, s.user],
    );
    const entries = s.connections.all();
    assert.deepEqual(
      entries.map((c) => [c.key, c.shard, c.nodeId]),
      [s.claim, s.query, s.user].map((k) => [k, shardOf(k, SHARDS), s.ownerOf(k)]),
      'the connection table records each connection’s key, shard and node',
    );
    assert.deepEqual(
      [byClaim, byQuery, byUser].map((x) => x.headers[CONNECTION_ID_HEADER]),
      entries.map((c) => c.id),
    );
    assert.equal(await s.value('upgrades', { result: 'ok' }), 3);
  });

  test('with the query parameter not allowed, it is ignored: the user id places', async (t) => {
    const s = await placementSetup(t, { affinityQuery: false });
    const placed = await s.place(s.user, `?affinity=${s.query}`);
    assert.equal(placed.node, s.ownerOf(s.user));
    assert.equal(placed.headers[AFFINITY_HEADER], s.user);
  });

  test('a client’s own affinity or connection-id header is replaced by the router’s', async (t) => {
    const s = await placementSetup(t);
    const placed = await s.place(
      s.user,
      '',
      `${AFFINITY_HEADER}: ${s.claim}\r\n${CONNECTION_ID_HEADER}: forged\r\n`,
    );
    assert.equal(placed.node, s.ownerOf(s.user));
    assert.equal(placed.headers[AFFINITY_HEADER], s.user);
    assert.equal(placed.headers[CONNECTION_ID_HEADER], s.connections.all()[0]?.id);
  });

  test('the owner refuses the connection: 502 ROUTER_ERR_UPSTREAM_REFUSED with Retry-After, no other node tried', async (t) => {
    const s = await placementSetup(t);
    const owner = s.byId.get(s.ownerOf(s.user));
    assert.ok(owner);
    await owner.close();
    assert.equal(s.members.owners.ownerOfKey(s.user), owner.id, 'still the owner in the table');
    const answer = await s.upgrade(`Authorization: Bearer ${s.user}\r\n`, `/chat/${s.user}`);
    assert.match(answer, /^HTTP\/1\.1 502 /);
    assert.match(answer, /\r\nRetry-After: 1\r\n/);
    assert.match(answer, /"error":"ROUTER_ERR_UPSTREAM_REFUSED"/);
    assert.deepEqual(
      s.nodes.map((n) => n.upgrades.length),
      [0, 0, 0],
      'placing on a non-owner would lose its messages',
    );
    assert.equal(await s.value('upgrades', { result: 'upstream_refused' }), 1);
    assert.equal(await s.value('proxyErrors', { kind: 'connect_failed' }), 1);
    assert.equal(s.connections.size, 0);
  });

  test('an empty owner table: 503 ROUTER_ERR_NO_NODE with Retry-After', async (t) => {
    const p = await startProxy(t, {
      proxy: { handshake: { verifier: undefined, allowQueryToken: false, allowedOrigins: [] } },
    });
    const answer = await p.upgrade('');
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /\r\nRetry-After: 1\r\n/);
    assert.match(answer, /"error":"ROUTER_ERR_NO_NODE"/);
    assert.equal(await p.value('upgrades', { result: 'no_node' }), 1);
  });

  test('the shard changes owner while the handshake is in flight: the connection is handed to onMisplaced', async (t) => {
    const misplaced: ProxiedConnection[] = [];
    const s = await placementSetup(t, { onMisplaced: (c) => misplaced.push(c) });
    const owner = s.byId.get(s.ownerOf(s.user));
    assert.ok(owner);
    // A connection placed while the table stands still is not reported.
    await s.place(s.user);
    assert.equal(misplaced.length, 0);
    owner.hold = true;
    const head = s.open(`Authorization: Bearer ${s.user}\r\n`, `/chat/${s.user}`);
    await owner.until(2);
    s.members.drain(owner.id); // the table changes before the 101: the rebalancer saw no such connection
    assert.notEqual(s.members.owners.ownerOfKey(s.user), owner.id);
    owner.release();
    assert.match(await head, /^HTTP\/1\.1 101 /);
    assert.deepEqual(
      misplaced.map((c) => [c.key, c.nodeId]),
      [[s.user, owner.id]],
    );
  });
});

/** The accept value for the key every request here sends (RFC 6455's example). */
const SAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** An upgrade request head for `path` with `headers` (a valid version-13 key unless replaced). */
function wsRequest(path: string, headers = '', upgradeHeaders?: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
    (upgradeHeaders ??
      'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n') +
    `${headers}\r\n`
  );
}

/** A client close frame (masked, as a client must send it) with code 1000. */
function clientClose(): Buffer {
  const mask = [0x11, 0x22, 0x33, 0x44];
  const payload = [0x03, 0xe8].map((b, i) => b ^ (mask[i] ?? 0));
  return Buffer.from([0x88, 0x82, ...mask, ...payload]);
}

interface Answer {
  /** The status line and headers. */
  readonly head: string;
  /** After a 101: the close frame's code and reason. */
  readonly code?: number;
  readonly reason?: string;
  /** After an HTTP refusal: its body. */
  readonly body: string;
}

/**
 * Sends `request` and reads the answer: after a 101, the server's first frame (which must be a close),
 * then answers with its own close (unless `answerClose` is false) and resolves once the server has ended
 * the socket; after any other status, resolves with the body once the socket closes.
 */
async function exchange(
  t: TestContext,
  port: number,
  request: string | Buffer,
  answerClose = true,
): Promise<Answer> {
  const socket = connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.write(request);
  let data = Buffer.alloc(0);
  let frame: { code: number; reason: string } | undefined;
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    const end = data.indexOf('\r\n\r\n');
    if (frame || end < 0 || !data.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) return;
    const at = end + 4;
    const length = (data[at + 1] ?? 0) & 0x7f;
    if (data.length < at + 2 + length) return;
    assert.equal(data[at], 0x88, 'the first frame is a close (FIN, opcode 8)');
    frame = {
      code: data.readUInt16BE(at + 2),
      reason: data.subarray(at + 4, at + 2 + length).toString('utf8'),
    };
    if (answerClose) socket.write(clientClose());
  });
  await once(socket, 'close');
  const text = data.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return { head: text.slice(0, end), body: text.slice(end + 4), ...frame };
}

/** A stand-in node that refuses every upgrade with `answer` (raw HTTP) and answers /readyz. */
async function refusingNode(t: TestContext, answer: string): Promise<FakeNode> {
  const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: 'n1' };
  const server = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
  );
  const upgrades: IncomingHttpHeaders[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    upgrades.push(req.headers);
    socket.on('error', () => undefined);
    if (answer === '') socket.destroy();
    else socket.end(answer);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    id: 'n1',
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades,
  } as unknown as FakeNode;
}

/** A node's refusal as `rejectUpgrade` writes it. */
function nodeAnswer(status: string, code: string, extra = ''): string {
  const json = JSON.stringify({ error: code });
  return (
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${json.length}\r\n${extra}\r\n${json}`
  );
}

const withTokens = { handshake: { verifier: claims, allowQueryToken: false, allowedOrigins: [ALLOWED] } };

describe('WsProxy#handle: ?refusal=close answers a refusal with the handshake and a REFUSED_* close', () => {
  test('a bad token: 101 (accept from the key, chat.v1 as offered), then 4401 with the code; counted and logged as before', async (t) => {
    const p = await startProxy(t);
    const answer = await exchange(
      t,
      p.port,
      wsRequest(
        '/chat/alice?refusal=close',
        'Sec-WebSocket-Protocol: chat.v1, bearer.forged\r\nAuthorization: Bearer forged\r\n',
      ),
    );
    assert.match(answer.head, /^HTTP\/1\.1 101 /);
    assert.match(
      answer.head,
      new RegExp(`\r\nSec-WebSocket-Accept: ${SAMPLE_ACCEPT.replaceAll('+', '\\+')}(\r\n|$)`),
    );
    assert.match(answer.head, /\r\nSec-WebSocket-Protocol: chat\.v1(\r\n|$)/);
    assert.equal(answer.code, 4401);
    assert.equal(answer.reason, 'AUTH_ERR_INVALID_TOKEN');
    assert.equal(await p.value('upgrades', { result: 'unauthorized' }), 1);
    assert.equal(await p.value('authFailures', { code: 'AUTH_ERR_INVALID_TOKEN' }), 1);
    assert.deepEqual(
      p.refusals().map((l) => l.code),
      ['AUTH_ERR_INVALID_TOKEN'],
    );
  });

  test('no subprotocol offered: none chosen in the 101', async (t) => {
    const p = await startProxy(t);
    const answer = await exchange(t, p.port, wsRequest('/chat/alice?refusal=close'));
    assert.match(answer.head, /^HTTP\/1\.1 101 /);
    assert.doesNotMatch(answer.head, /Sec-WebSocket-Protocol/i);
    assert.deepEqual([answer.code, answer.reason], [4401, 'AUTH_ERR_MISSING_TOKEN']);
  });

  test('each of the router’s own refusals before placement: its code and reason', async (t) => {
    const keysDown: TokenVerifier = {
      verify: () => Promise.reject(new ChatError('AUTH_ERR_KEYS_UNAVAILABLE', 'no JWKS')),
    };
    const p = await startProxy(t, { proxy: { affinityQuery: true } });
    const down = await startProxy(t, {
      proxy: { handshake: { verifier: keysDown, allowQueryToken: false, allowedOrigins: [] } },
    });
    const open = await startProxy(t, {
      proxy: { handshake: { verifier: undefined, allowQueryToken: false, allowedOrigins: [] } },
    });
    const cases: [number, string, string, string][] = [
      [p.port, '/nope?refusal=close', '', '4404 ROUTER_ERR_NOT_FOUND'],
      [p.port, `/chat/${'x'.repeat(200)}?refusal=close`, '', '4400 ROUTER_ERR_BAD_USER_ID'],
      [p.port, '/chat/alice?affinity=a%20b&refusal=close', '', '4400 ROUTER_ERR_BAD_AFFINITY'],
      [
        p.port,
        '/chat/alice?refusal=close',
        'Origin: https://evil.example\r\n',
        '4403 AUTH_ERR_ORIGIN_FORBIDDEN',
      ],
      [
        down.port,
        '/chat/alice?refusal=close',
        'Authorization: Bearer x\r\n',
        '4503 AUTH_ERR_KEYS_UNAVAILABLE retry_after_ms=5000',
      ],
      [open.port, '/chat/alice?refusal=close', '', '4503 ROUTER_ERR_NO_NODE retry_after_ms=1000'],
    ];
    for (const [port, path, headers, expected] of cases) {
      const answer = await exchange(t, port, wsRequest(path, headers));
      assert.match(answer.head, /^HTTP\/1\.1 101 /, path);
      assert.equal(`${answer.code} ${answer.reason}`, expected);
    }
    assert.equal(await p.value('upgrades', { result: 'not_found' }), 1);
    assert.equal(await p.value('upgrades', { result: 'origin_forbidden' }), 1);
    assert.equal(await open.value('upgrades', { result: 'no_node' }), 1);
  });

  test('rate limited (either budget): 4429 ROUTER_ERR_RATE_LIMITED retry_after_ms=1000', async (t) => {
    const node = await fakeNode(t, 'n1');
    const p = await startProxy(t, {
      nodes: [node],
      proxy: { handshake: withTokens.handshake, handshakeRatePerSec: 1 },
    });
    const valid = wsRequest('/chat/alice?refusal=close', 'Authorization: Bearer alice\r\n');
    assert.match(await p.open('Authorization: Bearer alice\r\n', '/chat/alice'), /^HTTP\/1\.1 101 /);
    assert.match(await p.open('Authorization: Bearer alice\r\n', '/chat/alice'), /^HTTP\/1\.1 101 /);
    const limited = await exchange(t, p.port, valid);
    assert.equal(`${limited.code} ${limited.reason}`, '4429 ROUTER_ERR_RATE_LIMITED retry_after_ms=1000');
    // The refused handshakes' own budget (burst 2): the third bad token is refused for the rate.
    const bad = wsRequest('/chat/alice?refusal=close', 'Authorization: Bearer |x\r\n');
    const reasons = [];
    for (let i = 0; i < 3; i++) reasons.push((await exchange(t, p.port, bad)).reason);
    assert.deepEqual(reasons, [
      'AUTH_ERR_INVALID_TOKEN',
      'AUTH_ERR_INVALID_TOKEN',
      'ROUTER_ERR_RATE_LIMITED retry_after_ms=1000',
    ]);
    assert.equal(await p.value('upgrades', { result: 'rate_limited' }), 2);
  });

  test('the owner refuses the connection: 4502 ROUTER_ERR_UPSTREAM_REFUSED retry_after_ms=1000', async (t) => {
    const s = await placementSetup(t);
    const owner = s.byId.get(s.ownerOf(s.user));
    await owner?.close();
    const answer = await exchange(
      t,
      s.port,
      wsRequest(`/chat/${s.user}?refusal=close`, `Authorization: Bearer ${s.user}\r\n`),
    );
    assert.equal(`${answer.code} ${answer.reason}`, '4502 ROUTER_ERR_UPSTREAM_REFUSED retry_after_ms=1000');
    assert.equal(await s.value('upgrades', { result: 'upstream_refused' }), 1);
  });

  test('the node resets the handshake: 4502 ROUTER_ERR_UPSTREAM_FAILED', async (t) => {
    const node = await refusingNode(t, '');
    const p = await startProxy(t, { nodes: [node], proxy: withTokens });
    const answer = await exchange(
      t,
      p.port,
      wsRequest('/chat/alice?refusal=close', 'Authorization: Bearer alice\r\n'),
    );
    assert.equal(`${answer.code} ${answer.reason}`, '4502 ROUTER_ERR_UPSTREAM_FAILED');
    assert.equal(await p.value('proxyErrors', { kind: 'upstream_error' }), 1);
  });

  test('the node never answers: 4504 ROUTER_ERR_UPSTREAM_TIMEOUT', async (t) => {
    const node = await fakeNode(t, 'n1');
    node.hold = true;
    const p = await startProxy(t, { nodes: [node], proxy: { ...withTokens, handshakeTimeoutMs: 200 } });
    const answer = await exchange(
      t,
      p.port,
      wsRequest('/chat/alice?refusal=close', 'Authorization: Bearer alice\r\n'),
    );
    assert.equal(`${answer.code} ${answer.reason}`, '4504 ROUTER_ERR_UPSTREAM_TIMEOUT');
    assert.equal(await p.value('upgrades', { result: 'upstream_timeout' }), 1);
  });

  test('a node’s refusal is relayed as the close of its status, with its code and Retry-After', async (t) => {
    const cases: [string, string][] = [
      [
        nodeAnswer('429 Too Many Requests', 'NODE_ERR_TOO_MANY_CONNECTIONS'),
        '4429 NODE_ERR_TOO_MANY_CONNECTIONS',
      ],
      [
        nodeAnswer('503 Service Unavailable', 'NODE_ERR_NOT_READY', 'Retry-After: 1\r\n'),
        '4503 NODE_ERR_NOT_READY retry_after_ms=1000',
      ],
      [
        nodeAnswer('503 Service Unavailable', 'NODE_ERR_FULL', 'Retry-After: 5\r\n'),
        '4503 NODE_ERR_FULL retry_after_ms=5000',
      ],
      [nodeAnswer('401 Unauthorized', 'AUTH_ERR_TOKEN_EXPIRED'), '4401 AUTH_ERR_TOKEN_EXPIRED'],
      [nodeAnswer('403 Forbidden', 'AUTH_ERR_SUBJECT_MISMATCH'), '4403 AUTH_ERR_SUBJECT_MISMATCH'],
      // Outside the contract: a status without a REFUSED_* code, or no known code in the body.
      [nodeAnswer('500 Internal Server Error', 'NODE_ERR_FULL'), '4502 ROUTER_ERR_UPSTREAM_FAILED'],
      [nodeAnswer('503 Service Unavailable', 'SOMETHING_ELSE'), '4502 ROUTER_ERR_UPSTREAM_FAILED'],
      [
        'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\noops!',
        '4502 ROUTER_ERR_UPSTREAM_FAILED',
      ],
    ];
    for (const [raw, expected] of cases) {
      const node = await refusingNode(t, raw);
      const p = await startProxy(t, { nodes: [node], proxy: withTokens });
      const answer = await exchange(
        t,
        p.port,
        wsRequest('/chat/alice?refusal=close&since=3:17:abc', 'Authorization: Bearer alice\r\n'),
      );
      assert.match(answer.head, /^HTTP\/1\.1 101 /);
      assert.equal(`${answer.code} ${answer.reason}`, expected);
      assert.equal(await p.value('upgrades', { result: 'upstream_rejected' }), 1);
      assert.equal(p.connections.size, 0);
    }
  });

  test('the node gets the URL as the client sent it (the node ignores `refusal`)', async (t) => {
    const node = await fakeNode(t, 'n1');
    const p = await startProxy(t, { nodes: [node], proxy: withTokens });
    const head = await p.open('Authorization: Bearer alice\r\n', '/chat/alice?refusal=close&since=1:2:e');
    assert.match(head, /^HTTP\/1\.1 101 /, 'an accepted handshake is the node’s 101 as ever');
    assert.equal(node.upgrades.length, 1);
    assert.equal(p.connections.size, 1);
  });

  test('without the parameter (or with another value) the HTTP answer is unchanged', async (t) => {
    const p = await startProxy(t);
    for (const path of ['/chat/alice', '/chat/alice?refusal=http', '/chat/alice?Refusal=close']) {
      const answer = await exchange(t, p.port, wsRequest(path, 'Authorization: Bearer forged\r\n'));
      assert.match(answer.head, /^HTTP\/1\.1 401 Unauthorized\r\n/);
      assert.equal(answer.body, '{"error":"AUTH_ERR_INVALID_TOKEN"}');
      assert.equal(answer.code, undefined);
    }
  });

  test('not a valid WebSocket upgrade: the HTTP answer stays (no handshake to complete)', async (t) => {
    const p = await startProxy(t);
    const path = '/chat/alice?refusal=close';
    const noKey = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n';
    const badKey = `${noKey}Sec-WebSocket-Key: short\r\n`;
    const version8 =
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      'Sec-WebSocket-Version: 8\r\n';
    const notWs = 'Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    const cases: [string, RegExp, string][] = [
      [noKey, /^HTTP\/1\.1 401 /, 'AUTH_ERR_MISSING_TOKEN'],
      [badKey, /^HTTP\/1\.1 401 /, 'AUTH_ERR_MISSING_TOKEN'],
      [version8, /^HTTP\/1\.1 401 /, 'AUTH_ERR_MISSING_TOKEN'],
      [notWs, /^HTTP\/1\.1 400 /, 'ROUTER_ERR_BAD_UPGRADE'],
    ];
    for (const [upgradeHeaders, status, code] of cases) {
      const answer = await exchange(t, p.port, wsRequest(path, '', upgradeHeaders));
      assert.match(answer.head, status);
      assert.equal(answer.body, JSON.stringify({ error: code }));
    }
  });

  test('a client that never answers the close is dropped anyway; one that sends frames first, at its close', async (t) => {
    const p = await startProxy(t);
    const silent = await exchange(t, p.port, wsRequest('/chat/alice?refusal=close'), false);
    assert.equal(silent.code, 4401, 'the socket closed after the close frame although the client sent none');
    // A client that sent a frame right after the head (before it saw the close) and then its close.
    const text = Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x6a, 0x6b]);
    const request = Buffer.concat([Buffer.from(wsRequest('/chat/alice?refusal=close')), text]);
    const answer = await exchange(t, p.port, request);
    assert.equal(answer.code, 4401);
  });
});

describe('WsProxy#handle: the client address behind trusted proxies', () => {
  const loopbackProxy = { trustedProxies: new TrustedProxies(['127.0.0.1']) };

  test('behind a trusted proxy each X-Forwarded-For client has its own handshake budget', async (t) => {
    const node = await fakeNode(t, 'n1');
    const p = await startProxy(t, {
      nodes: [node],
      proxy: { ...withTokens, handshakeRatePerSec: 1, ...loopbackProxy },
    });
    const heads: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const head = await p.open(
        `Authorization: Bearer alice\r\nX-Forwarded-For: 198.51.100.${i}\r\n`,
        '/chat/alice',
      );
      heads.push(head.split(' ')[1] ?? '');
    }
    assert.deepEqual(heads, ['101', '101', '101', '101', '101', '101']);
    // One client address beyond its burst of 2 is limited as before.
    const same = [];
    for (let i = 0; i < 3; i++) {
      const head = await p.open(
        'Authorization: Bearer alice\r\nX-Forwarded-For: 198.51.100.1\r\n',
        '/chat/alice',
      );
      same.push(head.split(' ')[1]);
    }
    assert.deepEqual(same, ['101', '429', '429']);
    // The throttled client is logged by its forwarded address, not the load balancer's.
    const limited = p.refusals().filter((l) => l.code === 'ROUTER_ERR_RATE_LIMITED');
    assert.equal(limited.length, 1, 'the second 429 within the interval is counted, not logged');
    assert.deepEqual(
      [limited[0]?.client, limited[0]?.forwarded, limited[0]?.budget],
      ['198.51.100.1', true, 'handshakes'],
    );
  });

  test('an untrusted peer’s X-Forwarded-For is ignored: forged addresses share the peer’s budget', async (t) => {
    const node = await fakeNode(t, 'n1');
    const p = await startProxy(t, {
      nodes: [node],
      proxy: { ...withTokens, handshakeRatePerSec: 1, trustedProxies: new TrustedProxies(['10.0.0.0/8']) },
    });
    const codes: string[] = [];
    for (let i = 1; i <= 3; i++) {
      const head = await p.open(
        `Authorization: Bearer alice\r\nX-Forwarded-For: 198.51.100.${i}\r\n`,
        '/chat/alice',
      );
      codes.push(head.split(' ')[1] ?? '');
    }
    assert.deepEqual(codes, ['101', '101', '429']);
  });

  test('the node gets the chain the router vouches for as X-Forwarded-For', async (t) => {
    const trusted = await placementSetup(t, loopbackProxy);
    const spoofed = await trusted.place(trusted.user, '', 'X-Forwarded-For: 6.6.6.6, 198.51.100.7\r\n');
    assert.equal(spoofed.headers['x-forwarded-for'], '198.51.100.7, 127.0.0.1');
    const plain = await trusted.place(trusted.user);
    assert.equal(plain.headers['x-forwarded-for'], '127.0.0.1');
    const untrusted = await placementSetup(t);
    const forged = await untrusted.place(untrusted.user, '', 'X-Forwarded-For: 198.51.100.7\r\n');
    assert.equal(forged.headers['x-forwarded-for'], '127.0.0.1', 'a forged entry never reaches the node');
  });

  test('a list that trusts every address (0.0.0.0/0, ::/0) is warned about once at start-up', async (t) => {
    const all = await startProxy(t, {
      proxy: { trustedProxies: new TrustedProxies(['10.0.0.0/8', '::/0']) },
    });
    const warned = all.lines.filter((l) => String(l.msg).includes('trusts every address'));
    assert.equal(warned.length, 1);
    assert.equal(warned[0]?.level, 'warn');
    assert.deepEqual(warned[0]?.trustedProxies, ['::/0']);
    assert.match(String(warned[0]?.msg), /any client can claim any address/);
    const some = await startProxy(t, { proxy: loopbackProxy });
    assert.equal(some.lines.filter((l) => String(l.msg).includes('trusts every address')).length, 0);
  });

  test('refusal log lines carry the resolved client address', async (t) => {
    const p = await startProxy(t, { proxy: loopbackProxy });
    await p.upgrade('Authorization: Bearer forged\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.9\r\n');
    assert.equal(p.refusals()[0]?.client, '198.51.100.9');
    assert.equal(p.refusals()[0]?.forwarded, true);
    const direct = await startProxy(t);
    await direct.upgrade('Authorization: Bearer forged\r\nX-Forwarded-For: 198.51.100.9\r\n');
    assert.equal(direct.refusals()[0]?.client, '127.0.0.1');
  });

  test('an unreadable X-Forwarded-For from a trusted proxy: the proxy’s address, and a warn line', async (t) => {
    const p = await startProxy(t, { proxy: loopbackProxy });
    await p.upgrade('Authorization: Bearer forged\r\nX-Forwarded-For: 198.51.100.9, nonsense\r\n');
    assert.equal(p.refusals()[0]?.client, '127.0.0.1');
    const [warn, ...more] = p.lines.filter((l) => String(l.msg).startsWith('unreadable X-Forwarded-For'));
    assert.equal(more.length, 0);
    assert.equal(warn?.level, 'warn');
    assert.equal(warn?.proxy, '127.0.0.1');
    assert.equal(await p.value('clientAddresses', { source: 'malformed' }), 1);
    assert.equal(await p.value('clientAddresses', { source: 'forwarded' }), 0);
  });
});
