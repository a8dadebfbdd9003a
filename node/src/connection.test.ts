// The Connection over real sockets on port 0: every kind of frame the node writes to a client goes
// through it, is counted in chat_node_frames_out_total, and trips the slow-consumer cut.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { createLogger, errorFrame, type Flavor } from '@chat/shared';
import { Connection, type ConnectionLimits } from './connection.js';
import { NodeMetrics } from './metrics.js';
import { OutboundMessage } from './outbound-message.js';
import { UserBudgets, type UserBudget } from './user-budgets.js';

const logger = createLogger({ name: 'test', level: 'silent' });

interface Pair {
  conn: Connection;
  server: WebSocket;
  client: WebSocket;
  metrics: NodeMetrics;
  limits: { -readonly [K in keyof ConnectionLimits]: ConnectionLimits[K] };
  received: string[];
}

async function pair(
  t: TestContext,
  flavor: Flavor = 'v1',
  exp?: number,
  now: () => number = Date.now,
  overrides: Partial<ConnectionLimits> = {},
): Promise<Pair> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  t.after(() => wss.close());
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  t.after(() => client.terminate());
  const [[server]] = (await Promise.all([once(wss, 'connection'), once(client, 'open')])) as unknown as [
    [WebSocket],
  ];
  t.after(() => server.terminate());
  const received: string[] = [];
  client.on('message', (data: Buffer) => received.push(data.toString()));
  const metrics = new NodeMetrics();
  const limits = {
    maxBufferedBytes: Number.MAX_SAFE_INTEGER,
    ratePerSec: 1,
    rateBurst: 2,
    rateBytesPerSec: 1000,
    rateBytesBurst: 3000,
    userRateConnections: 1,
    rateCloseAfter: 3,
    authClockToleranceSec: 0,
    idleTimeoutMs: 60_000,
    ...overrides,
  };
  const conn = new Connection(
    server,
    { id: 1, userId: 'alice', connectionId: 'r-1', flavor, exp, shard: 0 },
    { limits, metrics, logger, now },
  );
  return { conn, server, client, metrics, limits, received };
}

async function counter(metrics: NodeMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? [])
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const v1Message = new OutboundMessage({
  type: 'message',
  id: 'm1',
  from: 'bob',
  to: 'alice',
  body: 'hi',
  ts: 1,
});
const seedMessage = new OutboundMessage({ sender_id: 'bob', receiver_id: 'alice', text: 'hi' });

/** Each way the node writes to a client, with the frames_out type it is counted under. */
const WRITES: { kind: string; type: string; write: (conn: Connection) => void }[] = [
  { kind: 'message', type: 'message', write: (c) => c.deliver(v1Message, 'local') },
  { kind: 'seed message', type: 'legacy', write: (c) => c.deliver(seedMessage, 'bus') },
  {
    kind: 'ack',
    type: 'ack',
    write: (c) => c.send({ type: 'ack', cid: 'c1', id: 'm1', status: 'delivered' }),
  },
  { kind: 'error', type: 'error', write: (c) => c.send(errorFrame('PROTO_ERR_MALFORMED', 'bad', 'c1')) },
  { kind: 'auth_ok', type: 'auth_ok', write: (c) => c.send({ type: 'auth_ok', exp: 1 }) },
  { kind: 'pong', type: 'pong', write: (c) => c.pong() },
];

describe('Connection writes', { concurrency: true }, () => {
  for (const { kind, type, write } of WRITES) {
    test(`${kind}: reaches the client and is counted as frames_out{type="${type}"}`, async (t) => {
      const p = await pair(t);
      write(p.conn);
      await until('the frame', () => p.received.length === 1);
      assert.equal(await counter(p.metrics, 'chat_node_frames_out_total', { type }), 1);
    });

    test(`${kind}: a reader that fell behind is cut with 4009 on this write`, async (t) => {
      const p = await pair(t);
      // The client stops reading; fill the kernel buffers until the server's send buffer holds bytes.
      (p.client as unknown as { _socket: { pause(): void } })._socket.pause();
      const filler = new OutboundMessage({
        type: 'message',
        id: 'f',
        from: 'bob',
        to: 'alice',
        body: 'x'.repeat(16_000),
        ts: 1,
      });
      while (p.server.bufferedAmount === 0) p.conn.deliver(filler, 'local');
      p.limits.maxBufferedBytes = p.server.bufferedAmount; // At the limit, not over it.
      assert.equal(p.server.readyState, WebSocket.OPEN);
      const codes: number[] = [];
      const close = p.server.close.bind(p.server);
      p.server.close = (code?: number, reason?: string | Buffer) => {
        codes.push(code ?? 0);
        close(code, reason);
      };
      write(p.conn);
      assert.deepEqual(codes, [4009]);
      assert.equal(p.server.readyState, WebSocket.CLOSING);
      assert.equal(await counter(p.metrics, 'chat_node_limit_hits_total', { limit: 'slow_consumer' }), 1);
      // The close frame cannot get through to a reader that does not read: the socket is dropped.
      await once(p.server, 'close');
    });
  }

  test('nothing is written or counted once the socket is closed', async (t) => {
    const p = await pair(t);
    p.conn.close('MOVED', 10);
    const [code, reason] = (await once(p.client, 'close')) as [number, Buffer];
    assert.deepEqual([code, reason.toString()], [4002, 'moved retry_after_ms=10']);
    for (const { write } of WRITES) write(p.conn);
    assert.equal(await counter(p.metrics, 'chat_node_frames_out_total', {}), 0);
  });
});

describe('Connection flavors', () => {
  test('a seed client gets a v1 message in the seed shape and no ack without a cid', async (t) => {
    const p = await pair(t, 'seed');
    p.conn.send({ type: 'ack', id: 'm0', status: 'offline' });
    p.conn.deliver(v1Message, 'local');
    p.conn.send({ type: 'ack', cid: 'c2', id: 'm2', status: 'delivered' });
    await until('two frames', () => p.received.length === 2);
    assert.deepEqual(JSON.parse(p.received[0] ?? ''), {
      sender_id: 'bob',
      receiver_id: 'alice',
      body: 'hi',
      id: 'm1',
      ts: 1,
    });
    assert.deepEqual(JSON.parse(p.received[1] ?? ''), {
      type: 'ack',
      cid: 'c2',
      id: 'm2',
      status: 'delivered',
    });
  });

  test('a v1 client gets the message frame as it is', async (t) => {
    const p = await pair(t, 'v1');
    p.conn.deliver(v1Message, 'local');
    await until('the frame', () => p.received.length === 1);
    assert.deepEqual(JSON.parse(p.received[0] ?? ''), v1Message.frame);
  });
});

describe('Connection.admit', () => {
  test('within the burst: ok; the first refusal warns; too many in a row close with 4008', async (t) => {
    const p = await pair(t);
    assert.deepEqual(
      [p.conn.admit(1), p.conn.admit(1), p.conn.admit(1), p.conn.admit(1)],
      ['ok', 'ok', 'warn', 'refused'],
    );
    assert.equal(p.server.readyState, WebSocket.OPEN);
    assert.equal(p.conn.admit(1), 'refused');
    const [code, reason] = (await once(p.client, 'close')) as [number, Buffer];
    assert.equal(code, 4008);
    assert.match(reason.toString(), /^rate_limited retry_after_ms=\d+$/);
    assert.equal(await counter(p.metrics, 'chat_node_limit_hits_total', { limit: 'rate_close' }), 1);
  });
});

describe('Connection.admit by cost', () => {
  test('bytes count: large frames are refused within the frame rate, and the refusals are counted', async (t) => {
    let now = 0;
    const p = await pair(t, 'v1', undefined, () => now, {
      ratePerSec: 100,
      rateBurst: 100,
      rateCloseAfter: 100,
    });
    assert.deepEqual([p.conn.admit(2000), p.conn.admit(2000)], ['ok', 'warn'], '3000 bytes of burst');
    now += 500; // 500 bytes back: 1500, not enough (and nothing is spent by a refusal)
    assert.equal(p.conn.admit(2000), 'refused');
    now += 500;
    assert.equal(p.conn.admit(2000), 'ok');
    assert.equal(await counter(p.metrics, 'chat_node_limit_hits_total', { limit: 'rate_bytes' }), 2);
    assert.equal(await counter(p.metrics, 'chat_node_limit_hits_total', { limit: 'rate' }), 0);
  });

  test('one user’s connections share one budget; another user’s is untouched', async (t) => {
    let now = 0;
    const budgets = new UserBudgets(() => now);
    const a1 = await pair(t, 'v1', undefined, () => now);
    const a2 = await pair(t, 'v1', undefined, () => now);
    const b = await pair(t, 'v1', undefined, () => now);
    const budget = (p: Pair, userId: string): UserBudget => budgets.of(userId, p.conn.limits);
    // userRateConnections 1: alice's two connections together get what one may (a burst of 2 frames).
    assert.equal(a1.conn.admit(10, budget(a1, 'alice')), 'ok');
    assert.equal(a2.conn.admit(10, budget(a2, 'alice')), 'ok');
    assert.equal(a2.conn.admit(10, budget(a2, 'alice')), 'warn', 'a2 has its own frame left, alice has none');
    assert.equal(await counter(a2.metrics, 'chat_node_limit_hits_total', { limit: 'user_rate' }), 1);
    assert.equal(b.conn.admit(10, budget(b, 'bob')), 'ok');
    assert.equal(budgets.size, 2);
    // Bytes are shared too.
    now += 10_000;
    assert.equal(a1.conn.admit(2500, budget(a1, 'alice')), 'ok');
    assert.equal(
      a2.conn.admit(2500, budget(a2, 'alice')),
      'refused',
      'its own bytes are there, alice’s are not',
    );
    assert.equal(await counter(a2.metrics, 'chat_node_limit_hits_total', { limit: 'user_rate_bytes' }), 1);
    // Budgets that refilled are forgotten by the next sweep (at most every 10 s).
    now += 20_000;
    budgets.of('carol', b.conn.limits);
    assert.equal(budgets.size, 1, 'only the one just looked up is left');
  });
});

describe('Connection.armExpiry', () => {
  test('an expired token closes with 4003; a refresh replaces the timer', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const p = await pair(t, 'v1', now + 3600);
    p.conn.armExpiry(now - 1); // due at once...
    p.conn.armExpiry(now + 3600); // ...but refreshed before it fired
    p.conn.armExpiry(now - 1);
    const [code] = (await once(p.client, 'close')) as [number];
    assert.equal(code, 4003);
    assert.equal(
      await counter(p.metrics, 'chat_node_auth_failures_total', { code: 'AUTH_ERR_TOKEN_EXPIRED' }),
      1,
      'the replaced timer never fired',
    );
  });
});

describe('Connection.heartbeat', () => {
  test('pings a live client; terminates one silent past the idle timeout', async (t) => {
    const p = await pair(t);
    const ping = once(p.client, 'ping');
    p.conn.heartbeat();
    await ping;
    p.limits.idleTimeoutMs = -1;
    p.conn.heartbeat();
    const [code] = (await once(p.client, 'close')) as [number];
    assert.equal(code, 1006);
    assert.equal(await counter(p.metrics, 'chat_node_dead_peers_terminated_total', {}), 1);
  });
});

describe('Connection.closeAfter', () => {
  test('a second request while one is pending changes nothing', async (t) => {
    const p = await pair(t);
    const first = p.conn.closeAfter(5, 'MOVED', 10);
    const second = p.conn.closeAfter(0, 'DRAINING', 20);
    const [code, reason] = (await once(p.client, 'close')) as [number, Buffer];
    assert.deepEqual([code, reason.toString()], [4002, 'moved retry_after_ms=10']);
    await Promise.all([first, second]);
  });

  test('closes with the code after the delay and resolves once closed', async (t) => {
    const p = await pair(t);
    const clientClosed = once(p.client, 'close') as Promise<[number, Buffer]>;
    await p.conn.closeAfter(5, 'DRAINING', 100);
    const [code, reason] = await clientClosed;
    assert.deepEqual([code, reason.toString()], [4001, 'draining retry_after_ms=100']);
  });
});
