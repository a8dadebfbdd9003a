// The SDK (Node 24's platform WebSocket, as in a browser) against a scripted local server: what it sends,
// and its next step after every close code: when it reconnects, with which token and URL, when it stops,
// what happens to unanswered sends. The same behaviour against real routers and nodes: live.test.ts.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import {
  ChatError,
  connect,
  MAX_BODY_CHARS,
  type ChatClient,
  type ConnectOptions,
  type MessageFrame,
  type ResumedFrame,
  type StateEvent,
} from '@chat/client';
import { pollUntil } from '../poll.js';
import { startFakeServer, type FakeConnection } from './fake-server.js';

const BACKOFF = { initialMs: 50, maxMs: 400 };

/**
 * An unsigned JWT-shaped token (the fake server does not verify) with `exp` `ttlSec` from now, issued
 * `ageSec` ago (an old one is due for refresh at once).
 */
function fakeToken(n: number, ttlSec = 3600, ageSec = 0): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none' })}.${b64({ sub: 'alice', iat: now - ageSec, exp: now + ttlSec, n })}.sig`;
}

/** Timers alive in this process (the client must leave none behind once closed). */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** A token function that never settles (a hung sign-in service). */
const never = () => new Promise<string>(() => undefined);

interface Harness {
  client: ChatClient;
  states: StateEvent[];
  messages: MessageFrame[];
  resumed: ResumedFrame[];
  errors: ChatError[];
  tokens: string[];
}

/** Connects a client to `url` recording its events; closed with the test. */
function open(t: TestContext, url: string, extra: Partial<ConnectOptions> = {}): Harness {
  const tokens: string[] = [];
  const client = connect({
    url,
    userId: 'alice',
    backoff: BACKOFF,
    token: () => {
      const jwt = fakeToken(tokens.length);
      tokens.push(jwt);
      return Promise.resolve(jwt);
    },
    ...extra,
  });
  const h: Harness = { client, states: [], messages: [], resumed: [], errors: [], tokens };
  client.on('state', (e) => h.states.push(e));
  client.on('message', (m) => h.messages.push(m));
  client.on('resumed', (r) => h.resumed.push(r));
  client.on('error', (e) => h.errors.push(e));
  t.after(() => client.close());
  return h;
}

const stateOf = (h: Harness, state: StateEvent['state'], n = 0) =>
  pollUntil(() => h.states.filter((s) => s.state === state)[n], { intervalMs: 5, what: `${state} #${n}` });

/** Answers every `send` on `conn` with an ack (its id derived from the cid, as the node's is). */
function ackAll(conn: FakeConnection, status = 'delivered'): void {
  conn.ws.on('message', (data: Buffer) => {
    const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    if (f.type === 'send') conn.send({ type: 'ack', cid: f.cid, id: `id-${String(f.cid)}`, status });
  });
}

describe('connecting and sending', () => {
  test('opens /chat/{userId}?refusal=close with chat.v1 and the token as bearer.<jwt>; sends are answered', async (t) => {
    const server = await startFakeServer(t, (c) => ackAll(c));
    const h = open(t, `${server.url}/`, { userId: 'a@b.c-d_e' });
    assert.equal(h.client.state, 'connecting');
    assert.equal(h.client.userId, 'a@b.c-d_e');
    const conn = await server.connection(0);
    assert.equal(conn.url.pathname, '/chat/a@b.c-d_e', 'the user id as it is (the server does not decode)');
    assert.equal(conn.url.searchParams.get('refusal'), 'close');
    assert.equal(conn.url.searchParams.get('since'), null);
    assert.deepEqual(conn.protocols, ['chat.v1', 'chat.refusal', `bearer.${h.tokens[0]}`]);
    assert.deepEqual(await stateOf(h, 'open'), { state: 'open', attempt: 1 });
    const ack = await h.client.send('bob', 'hello');
    const frame = await conn.frame('send');
    assert.deepEqual(Object.keys(frame).sort(), ['body', 'cid', 'to', 'type']);
    assert.equal(frame.to, 'bob');
    assert.equal(frame.body, 'hello');
    assert.match(String(frame.cid), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(ack, { status: 'delivered', id: `id-${String(frame.cid)}`, cid: frame.cid });
    const second = await h.client.send('bob', 'hello');
    assert.notEqual(second.cid, ack.cid, 'every send has its own cid');
  });

  test('without a token function: only chat.v1', async (t) => {
    const server = await startFakeServer(t);
    open(t, server.url, { token: undefined });
    assert.deepEqual((await server.connection(0)).protocols, ['chat.v1', 'chat.refusal']);
  });

  test('bad input is refused at once with a coded error, nothing is sent', async (t) => {
    const server = await startFakeServer(t, (c) => ackAll(c));
    const h = open(t, server.url);
    await stateOf(h, 'open');
    const refusals: [unknown, unknown, string][] = [
      ['bad id', 'x', 'CLIENT_ERR_BAD_USER_ID'],
      ['', 'x', 'CLIENT_ERR_BAD_USER_ID'],
      ['x'.repeat(129), 'x', 'CLIENT_ERR_BAD_USER_ID'],
      [42, 'x', 'CLIENT_ERR_BAD_USER_ID'],
      ['bob', 'x'.repeat(MAX_BODY_CHARS + 1), 'CLIENT_ERR_BODY_TOO_LONG'],
      ['bob', { text: 'x' }, 'CLIENT_ERR_BAD_BODY'],
    ];
    for (const [to, body, code] of refusals) {
      await assert.rejects(h.client.send(to as string, body as string), (e: ChatError) => {
        assert.ok(e instanceof ChatError);
        assert.equal(e.code, code);
        assert.equal(e.retryable, false);
        return true;
      });
    }
    await h.client.send('bob', 'x'.repeat(MAX_BODY_CHARS));
    const conn = await server.connection(0);
    assert.equal(conn.frames.length, 1, 'only the valid send reached the server');
  });

  test('connect() refuses unusable options with a coded error', () => {
    const cases: [Partial<ConnectOptions>, string][] = [
      [{ userId: 'a b' }, 'CLIENT_ERR_BAD_USER_ID'],
      [{ url: 'http://127.0.0.1:1' }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ url: 'not a url' }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ url: 'ws://127.0.0.1:1/?x=1' }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ sendTimeoutMs: -1 }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ backoff: { maxMs: Number.NaN } }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ token: 'a string' as unknown as () => string }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ WebSocket: 5 as unknown as ConnectOptions['WebSocket'] }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ since: { shard: 1, offset: -1, epoch: 'e' } }, 'CLIENT_ERR_BAD_OPTIONS'],
      [{ since: { shard: 1, offset: 1, epoch: 'e:x' } }, 'CLIENT_ERR_BAD_OPTIONS'],
    ];
    for (const [o, code] of cases)
      assert.throws(
        () => connect({ url: 'ws://127.0.0.1:1', userId: 'alice', ...o }),
        (e: ChatError) => e instanceof ChatError && e.code === code,
        JSON.stringify(o),
      );
  });

  test('connect() refuses timeouts, backoffs and rates that would misbehave later, naming the option', () => {
    const cases: [Partial<ConnectOptions>, RegExp][] = [
      [{ answerTimeoutMs: 50 }, /^answerTimeoutMs must be a finite number of at least 100, not 50: /],
      [{ answerTimeoutMs: 0 }, /^answerTimeoutMs .* at least 100/],
      [{ sendTimeoutMs: 0 }, /^sendTimeoutMs must be a finite number of at least 1, not 0/],
      [{ sendTimeoutMs: Number.POSITIVE_INFINITY }, /^sendTimeoutMs .* not Infinity/],
      [{ tokenTimeoutMs: 0 }, /^tokenTimeoutMs .* at least 1, not 0/],
      [{ tokenTimeoutMs: '5' as unknown as number }, /^tokenTimeoutMs .* not 5/],
      [{ backoff: { initialMs: 0 } }, /^backoff\.initialMs .* tight loop/],
      [{ backoff: { maxMs: -1 } }, /^backoff\.maxMs .* not -1/],
      [
        { backoff: { initialMs: 1000, maxMs: 500 } },
        /^backoff\.maxMs \(500\) must not be below backoff\.initialMs \(1000\)/,
      ],
      [{ backoff: { initialMs: 40_000 } }, /^backoff\.maxMs \(30000\) must not be below/],
      [{ sendRatePerSec: 0 }, /^sendRatePerSec .* at least 1/],
      [{ sendRatePerSec: Number.NaN }, /^sendRatePerSec .* not NaN/],
      [{ dedupeWindow: 0 }, /^dedupeWindow .* at least 1/],
    ];
    for (const [o, message] of cases)
      assert.throws(
        () => connect({ url: 'ws://127.0.0.1:1', userId: 'alice', ...o }),
        (e: ChatError) => {
          assert.ok(e instanceof ChatError);
          assert.equal(e.code, 'CLIENT_ERR_BAD_OPTIONS');
          assert.match(e.message, message);
          return true;
        },
        JSON.stringify(o),
      );
  });

  test('sends made before the connection opens are queued and go out in order once it does', async (t) => {
    const server = await startFakeServer(t, (c) => ackAll(c));
    let release: (token: string) => void = () => undefined;
    const h = open(t, server.url, { token: () => new Promise<string>((r) => (release = r)) });
    const sends = ['one', 'two', 'three'].map((b) => h.client.send('bob', b));
    assert.equal(server.connections.length, 0);
    release(fakeToken(0));
    const acks = await Promise.all(sends);
    const conn = await server.connection(0);
    assert.deepEqual(
      conn.frames.map((f) => f.body),
      ['one', 'two', 'three'],
    );
    assert.deepEqual(
      acks.map((a) => a.cid),
      conn.frames.map((f) => f.cid),
    );
  });
});

describe('pacing', () => {
  test('a backlog flushed after a reconnect is written at most sendRatePerSec a second (bursts of as many), in order', async (t) => {
    const RATE = 20;
    const SENDS = 50;
    const server = await startFakeServer(t, (c, i) => {
      if (i === 0) c.ws.close(4002, 'moved retry_after_ms=0');
      else ackAll(c);
    });
    // When each frame left the client (the server's clock would bunch frames read in one turn).
    const writes: number[] = [];
    class Recording extends WebSocket {
      override send(data: string): void {
        writes.push(performance.now());
        super.send(data);
      }
    }
    const h = open(t, server.url, { sendRatePerSec: RATE, WebSocket: Recording });
    await stateOf(h, 'reconnecting');
    const bodies = Array.from({ length: SENDS }, (_, i) => `backlog-${i}`);
    const acks = await Promise.all(bodies.map((b) => h.client.send('bob', b)));
    assert.equal(acks.length, SENDS);
    const conn = await server.connection(1);
    assert.deepEqual(
      conn.frames.map((f) => f.body),
      bodies,
      'each once, in order',
    );
    assert.equal(writes.length, SENDS);
    // The token bucket's promise: any n consecutive writes span at least (n - RATE) / RATE seconds.
    for (let i = 0; i < writes.length; i++)
      for (let j = i + RATE; j < writes.length; j++) {
        const n = j - i + 1;
        const spanMs = (writes[j] ?? 0) - (writes[i] ?? 0);
        assert.ok(spanMs >= ((n - RATE) * 1000) / RATE - 5, `${n} writes within ${spanMs.toFixed(0)} ms`);
      }
  });

  test('sends on an open connection are paced the same way', async (t) => {
    const RATE = 10;
    const server = await startFakeServer(t, (c) => ackAll(c));
    const writes: number[] = [];
    class Recording extends WebSocket {
      override send(data: string): void {
        writes.push(performance.now());
        super.send(data);
      }
    }
    const h = open(t, server.url, { sendRatePerSec: RATE, WebSocket: Recording });
    await stateOf(h, 'open');
    await Promise.all(Array.from({ length: 25 }, (_, i) => h.client.send('bob', `live-${i}`)));
    assert.equal(writes.length, 25);
    const span = (writes[24] ?? 0) - (writes[0] ?? 0);
    assert.ok(span >= ((25 - RATE) * 1000) / RATE - 5, `25 writes within ${span.toFixed(0)} ms`);
  });
});

describe('answers', () => {
  test('an unanswered send is sent again with the same cid on the next connection; answered once', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i === 0) {
        c.ws.once('message', () => c.ws.close(4002, 'moved retry_after_ms=100'));
        return;
      }
      ackAll(c, 'accepted');
    });
    const h = open(t, server.url);
    await stateOf(h, 'open');
    const ack = await h.client.send('bob', 'across a move');
    const [first, second] = [await server.connection(0), await server.connection(1)];
    const a = await first.frame('send');
    const b = await second.frame('send');
    assert.equal(a.cid, b.cid);
    assert.equal(a.body, b.body);
    assert.equal(ack.cid, a.cid);
    assert.equal(ack.status, 'accepted');
    const reconnecting = await stateOf(h, 'reconnecting');
    assert.equal(reconnecting.code, 4002);
    assert.equal(reconnecting.reason, 'moved retry_after_ms=100');
    assert.ok(reconnecting.retryInMs !== undefined && reconnecting.retryInMs >= 100);
    assert.ok(reconnecting.retryInMs <= 100 + BACKOFF.initialMs);
    assert.ok(second.at - (first.closedAt ?? 0) >= 95, 'not before retry_after_ms');
  });

  test('a retryable error is retried with the same cid after a backoff; a non-retryable one rejects', async (t) => {
    const server = await startFakeServer(t, (c) => {
      let n = 0;
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (f.body === 'refused') {
          c.send({
            type: 'error',
            code: 'PROTO_ERR_FORBIDDEN_SENDER',
            retryable: false,
            message: 'no',
            cid: f.cid,
          });
          return;
        }
        if (n++ < 2)
          c.send({
            type: 'error',
            code: 'NODE_ERR_BUS_UNAVAILABLE',
            retryable: true,
            message: 'later',
            cid: f.cid,
          });
        else c.send({ type: 'ack', cid: f.cid, id: 'm1', status: 'accepted' });
      });
    });
    const h = open(t, server.url);
    const ack = await h.client.send('bob', 'retried');
    const conn = await server.connection(0);
    const sends = conn.frames.filter((f) => f.type === 'send');
    assert.equal(sends.length, 3);
    assert.equal(new Set(sends.map((f) => f.cid)).size, 1, 'one cid for every try');
    assert.equal(ack.id, 'm1');
    await assert.rejects(h.client.send('bob', 'refused'), (e: ChatError) => {
      assert.equal(e.code, 'PROTO_ERR_FORBIDDEN_SENDER');
      assert.equal(e.retryable, false);
      assert.equal(e.message, 'no');
      assert.equal(typeof e.cid, 'string');
      return true;
    });
    assert.equal(server.connections.length, 1, 'error answers do not reconnect');
  });

  test('a retry_after_ms in a retryable error message is honoured', async (t) => {
    const server = await startFakeServer(t, (c) => {
      let n = 0;
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (n++ === 0)
          c.send({
            type: 'error',
            code: 'NODE_ERR_X',
            retryable: true,
            message: 'wait retry_after_ms=200',
            cid: f.cid,
          });
        else c.send({ type: 'ack', cid: f.cid, id: 'm', status: 'delivered' });
      });
    });
    const h = open(t, server.url);
    const started = Date.now();
    await h.client.send('bob', 'x');
    assert.ok(Date.now() - started >= 195);
  });

  test('a send lost without an answer on an open connection is written again (same cid) after answerTimeoutMs', async (t) => {
    const server = await startFakeServer(t, (c) => {
      let n = 0;
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        // The first frame is "dropped" (a rate limit drops frames undecoded and answers only the first).
        if (n++ > 0) c.send({ type: 'ack', cid: f.cid, id: 'm', status: 'delivered' });
      });
    });
    const h = open(t, server.url, { answerTimeoutMs: 100 });
    await h.client.send('bob', 'x');
    const sends = (await server.connection(0)).frames;
    assert.equal(sends.length, 2);
    assert.equal(sends[0]?.cid, sends[1]?.cid);
  });

  test('a send not answered within sendTimeoutMs rejects with CLIENT_ERR_TIMEOUT (retryable); a late answer is ignored', async (t) => {
    let late: FakeConnection | undefined;
    const server = await startFakeServer(t, (c) => (late = c));
    const h = open(t, server.url, { sendTimeoutMs: 150 });
    await assert.rejects(h.client.send('bob', 'x'), (e: ChatError) => {
      assert.equal(e.code, 'CLIENT_ERR_TIMEOUT');
      assert.equal(e.retryable, true);
      return true;
    });
    const frame = await (await server.connection(0)).frame('send');
    late?.send({ type: 'ack', cid: frame.cid, id: 'm', status: 'delivered' });
    late?.send({ type: 'ack', cid: 'never-sent', id: 'm', status: 'delivered' });
    // Both are answers to nothing pending: no error event, nothing else happens.
    await h.client.send('bob', 'y').catch(() => undefined);
    assert.deepEqual(h.errors, []);
  });

  test('1009: the largest unanswered send fails with CLIENT_ERR_TOO_BIG, the others are resent', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i === 0) {
        let n = 0;
        c.ws.on('message', () => {
          if (++n === 2) c.ws.close(1009, 'too big');
        });
        return;
      }
      ackAll(c);
    });
    const h = open(t, server.url);
    await stateOf(h, 'open');
    const small = h.client.send('bob', 'small');
    const big = h.client.send('bob', 'b'.repeat(5000));
    await assert.rejects(big, (e: ChatError) => e.code === 'CLIENT_ERR_TOO_BIG' && e.closeCode === 1009);
    assert.equal((await small).status, 'delivered');
    const resent = (await server.connection(1)).frames;
    assert.deepEqual(
      resent.map((f) => f.body),
      ['small'],
    );
  });
});

describe('close codes: the next step', () => {
  // Reconnecting codes: the server closes the first connection so; the client comes back.
  const reconnecting: [code: number, reason: string, minDelay: number, maxDelay: number][] = [
    [1000, '', 0, BACKOFF.initialMs],
    [1001, '', 0, BACKOFF.initialMs],
    [1011, '', 0, BACKOFF.initialMs],
    [4001, 'draining retry_after_ms=150', 150, 150 + BACKOFF.initialMs],
    [4002, 'moved retry_after_ms=120', 120, 120 + BACKOFF.initialMs],
    [4003, 'token_expired', 0, 250],
    [4008, 'rate_limited retry_after_ms=100', 100, 100 + BACKOFF.initialMs],
    [4009, 'slow_consumer', 0, 250],
    [4401, 'AUTH_ERR_TOKEN_EXPIRED', 0, BACKOFF.initialMs],
    [4429, 'ROUTER_ERR_RATE_LIMITED retry_after_ms=130', 130, 130 + BACKOFF.initialMs],
    [4502, 'ROUTER_ERR_UPSTREAM_REFUSED', 0, BACKOFF.initialMs],
    [4502, 'ROUTER_ERR_UPSTREAM_REFUSED retry_after_ms=140', 140, 140 + BACKOFF.initialMs],
    [4503, 'ROUTER_ERR_NO_NODE retry_after_ms=110', 110, 110 + BACKOFF.initialMs],
    [4504, 'ROUTER_ERR_UPSTREAM_TIMEOUT', 0, BACKOFF.initialMs],
    [4504, 'ROUTER_ERR_UPSTREAM_TIMEOUT retry_after_ms=120', 120, 120 + BACKOFF.initialMs],
    [4401, 'AUTH_ERR_INVALID_TOKEN retry_after_ms=130', 130, 130 + BACKOFF.initialMs],
  ];
  for (const [code, reason, minDelay, maxDelay] of reconnecting) {
    test(`${code} ${reason}: reconnect in [${minDelay}, ${maxDelay}] ms`, async (t) => {
      const server = await startFakeServer(t, (c, i) => {
        if (i === 0) c.ws.close(code, reason);
      });
      const h = open(t, server.url);
      const [first, second] = [await server.connection(0), await server.connection(1)];
      const r = await stateOf(h, 'reconnecting');
      assert.equal(r.code, code);
      assert.equal(r.reason, reason);
      // A refusal (4000 + HTTP status) is a failed attempt, though its handshake completed to carry it.
      assert.equal(r.attempt, code >= 4400 ? 2 : 1);
      assert.ok(
        r.retryInMs !== undefined && r.retryInMs >= minDelay && r.retryInMs <= maxDelay,
        String(r.retryInMs),
      );
      assert.ok(second.at - (first.closedAt ?? 0) >= minDelay - 5, 'not before the hint');
      if (reason.includes('_ERR_')) assert.equal(r.error?.code, reason.split(' ')[0]);
      // A token is fetched for every attempt; after 4003/4401 that is what makes the next one fresh.
      assert.equal(h.tokens.length, 2);
      assert.equal(second.token, h.tokens[1]);
      assert.notEqual(second.token, first.token);
      await stateOf(h, 'open', code >= 4400 ? 0 : 1);
    });
  }

  // Stopping codes: the client ends 'closed' with the reason, and fails what is pending.
  const stopping: [code: number, reason: string, error: string][] = [
    [1002, '', 'CLIENT_ERR_CONNECTION_CLOSED'],
    [1007, '', 'CLIENT_ERR_CONNECTION_CLOSED'],
    [1008, 'policy', 'CLIENT_ERR_CONNECTION_CLOSED'],
    [4400, 'ROUTER_ERR_BAD_USER_ID', 'ROUTER_ERR_BAD_USER_ID'],
    [4403, 'AUTH_ERR_ORIGIN_FORBIDDEN', 'AUTH_ERR_ORIGIN_FORBIDDEN'],
    [4403, 'AUTH_ERR_SUBJECT_MISMATCH', 'AUTH_ERR_SUBJECT_MISMATCH'],
    [4404, 'ROUTER_ERR_NOT_FOUND', 'ROUTER_ERR_NOT_FOUND'],
  ];
  for (const [code, reason, error] of stopping) {
    test(`${code} ${reason}: stop with ${error}`, async (t) => {
      const server = await startFakeServer(t, (c) => {
        c.ws.once('message', () => c.ws.close(code, reason));
      });
      const h = open(t, server.url);
      await stateOf(h, 'open');
      const pending = h.client.send('bob', 'x').then(
        () => undefined,
        (e: unknown) => e,
      );
      const closed = await stateOf(h, 'closed');
      assert.equal(closed.code, code);
      assert.equal(closed.reason, reason);
      assert.equal(closed.error?.code, error);
      assert.equal(closed.error?.retryable, false);
      assert.equal(closed.error?.closeCode, code);
      assert.equal(h.client.state, 'closed');
      const failed = (await pending) as ChatError;
      assert.ok(failed instanceof ChatError);
      assert.equal(failed.code, error);
      assert.equal(typeof failed.cid, 'string');
      await assert.rejects(h.client.send('bob', 'after'), (e: ChatError) => e.code === error);
      assert.equal(server.connections.length, 1, 'no reconnect');
      await h.client.close();
      assert.equal(h.states.filter((s) => s.state === 'closed').length, 1, 'closed once');
    });
  }

  test('1006 before opening (a refused upgrade, unreadable): backoff, the attempt count grows', async (t) => {
    const server = await startFakeServer(t, undefined, (i) => (i < 3 ? 503 : undefined));
    const h = open(t, server.url);
    const opened = await stateOf(h, 'open');
    const r = h.states.filter((s) => s.state === 'reconnecting');
    assert.deepEqual(
      r.map((s) => [s.code, s.attempt]),
      [
        [1006, 2],
        [1006, 3],
        [1006, 4],
      ],
    );
    assert.ok(r.every((s, i) => (s.retryInMs ?? -1) <= BACKOFF.initialMs * 2 ** i));
    assert.equal(opened.attempt, 4);
    assert.equal(server.upgrades(), 4);
  });

  test('1006 after opening (a dropped connection): each reconnect is a first attempt, the backoff still grows', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i < 3) c.ws.terminate();
    });
    const h = open(t, server.url);
    await server.connection(3);
    await stateOf(h, 'open', 3);
    const r = h.states.filter((s) => s.state === 'reconnecting');
    assert.deepEqual(
      r.map((s) => [s.code, s.attempt]),
      [
        [1006, 1],
        [1006, 1],
        [1006, 1],
      ],
    );
    // Connections that did not stay open do not reset the exponent: the ceilings are 50, 100, 200 ms.
    assert.ok(r.every((s, i) => (s.retryInMs ?? -1) <= BACKOFF.initialMs * 2 ** i));
  });

  test('4401 three times in a row without an open connection: closed with CLIENT_ERR_TOKEN_REFUSED', async (t) => {
    const server = await startFakeServer(t, (c) => c.ws.close(4401, 'AUTH_ERR_INVALID_TOKEN'));
    const h = open(t, server.url);
    const closed = await stateOf(h, 'closed');
    assert.equal(closed.error?.code, 'CLIENT_ERR_TOKEN_REFUSED');
    assert.equal(closed.code, 4401);
    assert.equal(server.connections.length, 3);
    assert.equal(h.tokens.length, 3, 'a new token for each try');
  });

  test('a refusal marked by chat.refusal (as the router marks it): never reported open, nothing sent on it', async (t) => {
    const server = await startFakeServer(
      t,
      (c) => c.ws.close(4401, 'AUTH_ERR_INVALID_TOKEN'),
      undefined,
      (offered) => (offered.has('chat.refusal') ? 'chat.refusal' : 'chat.v1'),
    );
    const h = open(t, server.url);
    const queued = assert.rejects(h.client.send('bob', 'waits for a real connection'), {
      code: 'CLIENT_ERR_TOKEN_REFUSED',
    });
    const closed = await stateOf(h, 'closed');
    assert.equal(closed.error?.code, 'CLIENT_ERR_TOKEN_REFUSED');
    assert.equal(server.connections.length, 3);
    assert.deepEqual(
      h.states.filter((s) => s.state === 'open'),
      [],
    );
    assert.deepEqual(
      server.connections.flatMap((c) => c.frames),
      [],
      'the queued send was not written to a refusal',
    );
    await queued;
  });

  test('4401 twice, then an open connection: the count starts again', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i === 0 || i === 1 || i === 3 || i === 4) c.ws.close(4401, 'AUTH_ERR_TOKEN_EXPIRED');
      if (i === 2) c.ws.close(1011);
    });
    const h = open(t, server.url);
    // The sixth connection stays: the two refusals after the 1011 did not add up with the first two to
    // the three that give up. (These refusals are unmarked, so each reports `open` an instant before its
    // close: wait for the state itself, not for the n-th `open` event.)
    await server.connection(5);
    await pollUntil(() => h.client.state === 'open', { what: 'the sixth connection open' });
    assert.deepEqual(
      h.states.filter((s) => s.state === 'closed'),
      [],
    );
    assert.equal(server.connections.length, 6);
  });

  test('a token function that fails: the attempt is retried with backoff, its error in the state event', async (t) => {
    const server = await startFakeServer(t);
    let calls = 0;
    const h = open(t, server.url, {
      token: () => (++calls === 1 ? Promise.reject(new Error('sign-in service down')) : fakeToken(1)),
    });
    const r = await stateOf(h, 'reconnecting');
    assert.equal(r.error?.code, 'CLIENT_ERR_TOKEN');
    assert.equal(r.error?.retryable, true);
    assert.match(r.error?.message ?? '', /sign-in service down/);
    await stateOf(h, 'open');
    assert.equal(calls, 2);
    assert.equal(server.connections.length, 1, 'no connection without a token');
  });

  test('a token function that never settles: after tokenTimeoutMs the attempt fails with CLIENT_ERR_TOKEN and is retried', async (t) => {
    const server = await startFakeServer(t);
    let calls = 0;
    const h = open(t, server.url, {
      tokenTimeoutMs: 100,
      token: () => (++calls === 1 ? never() : fakeToken(1)),
    });
    const r = await stateOf(h, 'reconnecting');
    assert.equal(r.error?.code, 'CLIENT_ERR_TOKEN');
    assert.equal(r.error?.retryable, true);
    assert.match(r.error?.message ?? '', /did not settle within 100 ms/);
    assert.deepEqual(
      h.states.map((s) => s.state),
      ['reconnecting'],
      'reported, not left connecting',
    );
    await stateOf(h, 'open');
    assert.equal(calls, 2);
    assert.equal(server.connections.length, 1, 'no connection without a token');
  });
});

describe('token refresh in-band', () => {
  test('before expiry an auth frame carries a fresh token; auth_ok keeps the connection', async (t) => {
    const server = await startFakeServer(t, (c) => {
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (f.type === 'auth')
          c.send({ type: 'auth_ok', cid: f.cid, exp: Math.floor(Date.now() / 1000) + 3600 });
        if (f.type === 'send') c.send({ type: 'ack', cid: f.cid, id: 'm', status: 'delivered' });
      });
    });
    let n = 0;
    // A 2-second first token: refreshed at 80% of its life; the next ones live an hour.
    const h = open(t, server.url, { token: () => fakeToken(n, n++ === 0 ? 2 : 3600) });
    const conn = await server.connection(0);
    const exp = JSON.parse(Buffer.from(conn.token?.split('.')[1] ?? '', 'base64url').toString()) as {
      exp: number;
    };
    const auth = await conn.frame('auth');
    // 80% of a 2-second life: at most 400 ms before the expiry (iat has whole seconds: maybe later).
    assert.ok(Date.now() >= exp.exp * 1000 - 450, 'not long before the expiry');
    assert.deepEqual(Object.keys(auth).sort(), ['cid', 'token', 'type']);
    assert.notEqual(auth.token, conn.token);
    assert.equal(n, 2);
    assert.equal((await h.client.send('bob', 'still here')).status, 'delivered');
    assert.equal(server.connections.length, 1, 'no reconnect');
    assert.equal(h.client.state, 'open');
  });

  test('a refused refresh: the error is reported, and a new connection brings a fresh token', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i > 0) return;
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (f.type === 'auth')
          c.send({
            type: 'error',
            code: 'AUTH_ERR_SUBJECT_MISMATCH',
            retryable: false,
            message: 'no',
            cid: f.cid,
          });
      });
    });
    const issued: string[] = [];
    const h = open(t, server.url, {
      token: () => {
        issued.push(fakeToken(issued.length, issued.length === 0 ? 1 : 3600));
        return issued.at(-1) ?? '';
      },
    });
    const second = await server.connection(1);
    assert.equal(h.errors[0]?.code, 'AUTH_ERR_SUBJECT_MISMATCH');
    assert.equal(issued.length, 3, 'the first, the refused refresh, the new connection’s');
    assert.equal(second.token, issued[2]);
    await stateOf(h, 'open', 1);
    const lost = await stateOf(h, 'reconnecting');
    assert.equal(lost.code, 1000, 'the client closed it');
    assert.equal(lost.error?.code, 'AUTH_ERR_SUBJECT_MISMATCH');
    assert.ok((lost.retryInMs ?? -1) <= 250, 'at once');
    const first = await server.connection(0);
    await pollUntil(() => first.closedAt, { what: 'the old connection closed' });
  });

  test('a token function that fails at refresh time is reported and tried again before the expiry', async (t) => {
    const server = await startFakeServer(t, (c) => {
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (f.type === 'auth')
          c.send({ type: 'auth_ok', cid: f.cid, exp: Math.floor(Date.now() / 1000) + 3600 });
      });
    });
    let n = 0;
    const h = open(t, server.url, {
      token: () => {
        n++;
        if (n === 1) return fakeToken(0, 6);
        if (n === 2) return Promise.reject(new Error('offline'));
        return fakeToken(n);
      },
    });
    const conn = await server.connection(0);
    await pollUntil(() => h.errors.length > 0, { timeoutMs: 10_000, what: 'the refresh error' });
    assert.equal(h.errors[0]?.code, 'CLIENT_ERR_TOKEN');
    await conn.frame('auth');
    assert.equal(server.connections.length, 1);
  });

  test('a token function that hangs at refresh time: CLIENT_ERR_TOKEN after tokenTimeoutMs, tried again', async (t) => {
    const server = await startFakeServer(t, (c) => {
      c.ws.on('message', (data: Buffer) => {
        const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
        if (f.type === 'auth')
          c.send({ type: 'auth_ok', cid: f.cid, exp: Math.floor(Date.now() / 1000) + 3600 });
      });
    });
    let n = 0;
    const h = open(t, server.url, {
      tokenTimeoutMs: 100,
      // The first token is due for refresh at once (issued 20 s ago, 3 s left); the first refresh hangs.
      token: () => (++n === 1 ? fakeToken(0, 3, 20) : n === 2 ? never() : fakeToken(n)),
    });
    const conn = await server.connection(0);
    await pollUntil(() => h.errors.length > 0, { timeoutMs: 10_000, what: 'the refresh error' });
    assert.equal(h.errors[0]?.code, 'CLIENT_ERR_TOKEN');
    assert.match(h.errors[0]?.message ?? '', /did not settle within 100 ms/);
    await conn.frame('auth');
    assert.equal(n, 3);
    assert.equal(server.connections.length, 1);
  });

  test('a token function that gives the same token again: no auth frame (no refresh loop), reported', async (t) => {
    const server = await startFakeServer(t);
    const fixed = fakeToken(0, 2);
    const h = open(t, server.url, { token: () => fixed });
    const conn = await server.connection(0);
    await pollUntil(() => h.errors.length > 0, { timeoutMs: 10_000, what: 'the refresh error' });
    assert.equal(h.errors[0]?.code, 'CLIENT_ERR_TOKEN');
    assert.match(h.errors[0]?.message ?? '', /expiring later/);
    assert.equal(conn.frames.filter((f) => f.type === 'auth').length, 0);
  });
});

describe('messages, duplicates and resume', () => {
  const msg = (id: string, offset?: number) => ({
    type: 'message',
    id,
    from: 'bob',
    to: 'alice',
    body: `body ${id}`,
    ts: Date.now(),
    ...(offset === undefined ? {} : { pos: { shard: 3, offset, epoch: 'ep-1' } }),
  });

  test('each message id once; reconnects with since=<last pos>; resumed is passed on', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i === 0) {
        c.send(msg('m1', 10));
        c.send(msg('m2', 11));
        c.send(msg('m1', 10));
        c.ws.terminate();
      } else if (i === 1) {
        c.send(msg('m2', 11));
        c.send(msg('m3', 12));
        c.send({ type: 'resumed', recovered: true, replayed: 2 });
        c.send(msg('m4', 13));
        c.ws.close(4001, 'draining retry_after_ms=0');
      } else if (i === 2) {
        c.send({ type: 'resumed', recovered: false, replayed: 0, reason: 'too_old' });
        c.ws.close(4002, 'moved retry_after_ms=0');
      }
    });
    const h = open(t, server.url);
    await server.connection(3);
    assert.deepEqual(
      h.messages.map((m) => m.id),
      ['m1', 'm2', 'm3', 'm4'],
    );
    assert.equal(server.connections[1]?.url.searchParams.get('since'), '3:11:ep-1');
    assert.equal(server.connections[2]?.url.searchParams.get('since'), '3:13:ep-1');
    assert.equal(
      server.connections[3]?.url.searchParams.get('since'),
      null,
      'an unusable position is dropped',
    );
    assert.deepEqual(
      h.resumed.map((r) => r.recovered),
      [true, false],
    );
    assert.deepEqual(h.messages[0]?.pos, { shard: 3, offset: 10, epoch: 'ep-1' });
    assert.equal(h.messages[0]?.body, 'body m1');
  });

  test('a saved position given as `since` is asked for on the first connection; `position` follows messages', async (t) => {
    const server = await startFakeServer(t, (c, i) => {
      if (i === 0) {
        c.send({ type: 'resumed', recovered: true, replayed: 1 });
        c.send(msg('r1', 42));
      }
    });
    const h = open(t, server.url, { since: { shard: 3, offset: 40, epoch: 'ep-1' } });
    assert.deepEqual(h.client.position, { shard: 3, offset: 40, epoch: 'ep-1' });
    const conn = await server.connection(0);
    assert.equal(conn.url.searchParams.get('since'), '3:40:ep-1');
    await pollUntil(() => h.messages.length === 1, { what: 'the message' });
    assert.deepEqual(h.client.position, { shard: 3, offset: 42, epoch: 'ep-1' });
    assert.equal(h.resumed.length, 1);
  });

  test('unreadable frames and error answers to nothing pending are reported as error events', async (t) => {
    const server = await startFakeServer(t, (c) => {
      c.send('not json');
      c.send({ type: 'presence', who: [] });
      c.ws.send(Buffer.from([1, 2, 3]));
      c.send({ type: 'error', code: 'PROTO_ERR_MALFORMED', retryable: false, message: 'bad' });
    });
    const h = open(t, server.url);
    await pollUntil(() => h.errors.length === 4, { what: '4 errors' });
    assert.deepEqual(
      h.errors.map((e) => e.code),
      [
        'CLIENT_ERR_UNEXPECTED_FRAME',
        'CLIENT_ERR_UNEXPECTED_FRAME',
        'CLIENT_ERR_UNEXPECTED_FRAME',
        'PROTO_ERR_MALFORMED',
      ],
    );
    assert.equal(h.client.state, 'open', 'the connection stays');
  });
});

describe('close()', () => {
  test('closes with 1000, fails unanswered sends with CLIENT_ERR_CLOSED, leaves no timer', async (t) => {
    const server = await startFakeServer(t);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const h = open(t, server.url, { token: () => fakeToken(0, 600) });
    const conn = await server.connection(0);
    await stateOf(h, 'open');
    const serverClose = new Promise<number>((resolve) => conn.ws.once('close', (code) => resolve(code)));
    const pending = [h.client.send('bob', 'a'), h.client.send('bob', 'b')].map((p) =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    await conn.frame('send', 1);
    await h.client.close();
    assert.equal(await serverClose, 1000);
    for (const p of pending) {
      const e = (await p) as ChatError;
      assert.equal(e.code, 'CLIENT_ERR_CLOSED');
      assert.equal(e.retryable, false);
    }
    await assert.rejects(h.client.send('bob', 'c'), (e: ChatError) => e.code === 'CLIENT_ERR_CLOSED');
    assert.equal(h.client.state, 'closed');
    assert.deepEqual(h.states.at(-1), { state: 'closed', attempt: 0, code: 1000 });
    assert.equal(timers(), before, 'no timer left (send deadlines, answer timeouts, the refresh)');
    await h.client.close(); // again: nothing more happens
    assert.equal(h.states.filter((s) => s.state === 'closed').length, 1);
  });

  test('while waiting to reconnect: no new connection, no timer left', async (t) => {
    const server = await startFakeServer(t, (c) => c.ws.close(4001, 'draining retry_after_ms=60000'));
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const h = open(t, server.url);
    await stateOf(h, 'reconnecting');
    await h.client.close();
    assert.equal(timers(), before);
    assert.equal(server.connections.length, 1);
  });

  test('close() inside the `reconnecting` listener: closed for good, no timer left, no reconnect', async (t) => {
    const server = await startFakeServer(t, (c) => c.ws.close(4001, 'draining retry_after_ms=100'));
    const before = timers();
    const h = open(t, server.url);
    let closing: Promise<void> | undefined;
    h.client.on('state', (e) => {
      if (e.state === 'reconnecting') closing = h.client.close();
    });
    await stateOf(h, 'closed');
    await closing;
    assert.equal(timers(), before, 'no reconnect timer left behind');
    assert.deepEqual(
      h.states.map((s) => s.state),
      ['open', 'reconnecting', 'closed'],
    );
    assert.equal(h.client.state, 'closed');
    assert.equal(server.connections.length, 1);
  });

  test('close() inside the `open` listener: no refresh timer, nothing written, no more events', async (t) => {
    const server = await startFakeServer(t);
    const before = timers();
    const h = open(t, server.url, { token: () => fakeToken(0, 600) });
    const queued = h.client.send('bob', 'queued before open').then(
      () => undefined,
      (e: unknown) => e,
    );
    let closing: Promise<void> | undefined;
    h.client.on('state', (e) => {
      if (e.state === 'open') closing = h.client.close();
    });
    await stateOf(h, 'closed');
    await closing;
    const conn = await server.connection(0);
    // The server's side of the closing handshake has its own timer until then.
    await pollUntil(() => conn.closedAt, { intervalMs: 5, what: 'the server side closed' });
    assert.equal(((await queued) as ChatError).code, 'CLIENT_ERR_CLOSED');
    assert.equal(timers(), before, 'no refresh timer left behind');
    assert.deepEqual(
      h.states.map((s) => s.state),
      ['open', 'closed'],
    );
    assert.deepEqual(conn.frames, [], 'nothing written');
  });

  test('close() inside an `error` listener for a failed refresh: no retry timer left', async (t) => {
    const server = await startFakeServer(t);
    const before = timers();
    let n = 0;
    const h = open(t, server.url, {
      // Due for refresh at once (issued 20 s ago, 3 s left); the refresh fails.
      token: () => (++n === 1 ? fakeToken(0, 3, 20) : Promise.reject(new Error('offline'))),
    });
    let closing: Promise<void> | undefined;
    h.client.on('error', () => {
      closing = h.client.close();
    });
    await stateOf(h, 'closed');
    await closing;
    const conn = await server.connection(0);
    // The server's side of the closing handshake has its own timer until then.
    await pollUntil(() => conn.closedAt, { intervalMs: 5, what: 'the server side closed' });
    assert.equal(h.errors[0]?.code, 'CLIENT_ERR_TOKEN');
    assert.equal(timers(), before, 'no refresh retry timer left behind');
    assert.equal(n, 2);
  });

  test('close() called again from the `closed` listener gets the same promise', async (t) => {
    const server = await startFakeServer(t);
    const h = open(t, server.url);
    await stateOf(h, 'open');
    let inner: Promise<void> | undefined;
    h.client.on('state', (e) => {
      if (e.state === 'closed') inner = h.client.close();
    });
    const outer = h.client.close();
    assert.equal(inner, outer);
    await outer;
  });

  test('close() while the token function hangs: no timer left (the token timeout is cleared)', async (t) => {
    const server = await startFakeServer(t);
    const before = timers();
    const h = open(t, server.url, { token: never });
    assert.ok(timers() > before, 'the token timeout runs');
    await h.client.close();
    assert.equal(timers(), before);
    assert.equal(server.connections.length, 0);
  });

  test('while the token function is still working: it is not used, no connection is made', async (t) => {
    const server = await startFakeServer(t);
    let release: (token: string) => void = () => undefined;
    const h = open(t, server.url, { token: () => new Promise<string>((r) => (release = r)) });
    await h.client.close();
    release(fakeToken(0));
    await new Promise((r) => setImmediate(r));
    assert.equal(server.connections.length, 0);
    assert.equal(h.client.state, 'closed');
  });
});
