// The SDK against a live cluster: a real Kafka broker, three real nodes and a router with authentication
// on, the SDK on Node 24's platform WebSocket (as in a browser: token as `bearer.<jwt>`, refusals as
// closes with `refusal=close`). Answers of each kind, sends queued across a drain and a SIGTERM with no
// duplicate at the receiver, the token refreshed in-band, a 4003 after a refresh that could not be made,
// and refusals the SDK stops on or gives up after.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mintToken } from '@chat/shared';
import type { ChatError, SendAck } from '@chat/client';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { reconnectMs, recorded, untilReachable, wireDuplicates, type Recorded } from './live.js';
import { QUICK_NODE_ENV, QUICK_ROUTER_ENV } from '../harness/quick-membership.js';

const SECRET = 'client-sdk-test-secret-0123456789abcdef';
const ADMIN = 'client-admin-token-0123456789';
const INTERNAL = 'client-internal-token-0123456789';
const SHARDS = 32;

const mint = (sub: string, ttlSec = 600) => mintToken({ secret: SECRET, sub, ttlSec });
const expOf = (jwt: string) =>
  (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { exp: number }).exp;

describe('the SDK against a live cluster (3 nodes, a router, Kafka, JWT)', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => void cleanups.push(fn) };
  const nodes = new Map<string, NodeProcess>();
  let router: RouterProcess;
  let url: string;

  before(async () => {
    const kafka = await useKafka(cleanup);
    const common = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('sdk'),
      CHAT_CLUSTER_SHARDS: String(SHARDS),
      CHAT_AUTH_MODE: 'jwt',
      CHAT_AUTH_HS256_SECRET: SECRET,
      CHAT_AUTH_CLOCK_TOLERANCE_SEC: '0',
      CHAT_INTERNAL_TOKEN: INTERNAL,
    };
    const nodeEnv = {
      ...common,
      ...QUICK_NODE_ENV,
      CHAT_NODE_DRAIN_WINDOW_MS: '1000',
    };
    const started = await Promise.all(
      ['n1', 'n2', 'n3'].map((id) => startNode(cleanup, { nodeId: id, env: nodeEnv })),
    );
    for (const n of started) nodes.set(n.nodeId, n);
    router = await startRouter(cleanup, {
      ...common,
      CHAT_ROUTER_ADMIN_TOKEN: ADMIN,
      ...QUICK_ROUTER_ENV,
      CHAT_ROUTER_MIGRATION_WINDOW_MS: '500',
    });
    await router.waitRing(['n1', 'n2', 'n3']);
    url = `ws://127.0.0.1:${router.port}`;
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  /** An SDK client for `user`, open. */
  async function client(
    t: { after(fn: () => unknown): void },
    user: string,
    token: () => Promise<string> = () => mint(user),
  ): Promise<Recorded> {
    const r = recorded(t, { url, userId: user, token, backoff: { initialMs: 100, maxMs: 2000 } });
    await r.state('open');
    return r;
  }

  test('answers: delivered on one node, accepted across nodes, offline for a user nowhere', async (t) => {
    const [a1, a2] = await router.usersOn('n1', 2, 'ans-a');
    const [b1] = await router.usersOn('n2', 1, 'ans-b');
    assert.ok(a1 && a2 && b1);
    const [alice, local, remote] = await Promise.all([client(t, a1), client(t, a2), client(t, b1)]);
    assert.deepEqual(alice.wire.urls, [`${url}/chat/${a1}?refusal=close`]);

    const delivered = await alice.client.send(a2, 'same node');
    assert.equal(delivered.status, 'delivered');
    const got = await local.received('same node');
    assert.equal(got.length, 1);
    assert.equal(got[0]?.from, a1);
    assert.equal(got[0]?.id, delivered.id);

    await untilReachable(alice, b1);
    const accepted = await alice.client.send(b1, 'across nodes');
    assert.equal(accepted.status, 'accepted');
    assert.equal((await remote.received('across nodes'))[0]?.id, accepted.id);

    assert.equal((await alice.client.send('nobody-anywhere', 'hello?')).status, 'offline');
    assert.deepEqual(wireDuplicates(local.wire), []);
    assert.deepEqual(wireDuplicates(remote.wire), []);
  });

  test('admin drain: 4002, sends in flight and queued while reconnecting all answered, none twice at the receiver', async (t) => {
    const [s] = await router.usersOn('n3', 1, 'drain-s');
    const [r] = await router.usersOn('n1', 1, 'drain-r');
    assert.ok(s && r);
    const [sender, receiver] = await Promise.all([client(t, s), client(t, r)]);
    await untilReachable(sender, r);

    const acks: Promise<SendAck>[] = [];
    const send = (body: string) => acks.push(sender.client.send(r, body));
    for (let i = 0; i < 10; i++) send(`before-${i}`);
    const drained = await router.admin('/nodes/n3/drain', { method: 'POST' });
    assert.equal(drained.status, 200);
    // Sends made while the SDK is away are queued and go out once it is back.
    const reconnecting = await sender.state('reconnecting');
    for (let i = 0; i < 10; i++) send(`during-${i}`);
    await sender.state('open', 1);
    const answers = await Promise.all(acks);
    for (const a of answers) assert.ok(a.status === 'delivered' || a.status === 'accepted', a.status);
    assert.equal(reconnecting.code, 4002);
    assert.match(reconnecting.reason ?? '', /^moved retry_after_ms=\d+$/);
    t.diagnostic(
      `drain: the SDK was open again ${reconnectMs(sender, reconnecting)} ms after the 4002 (its retry_after_ms: ${reconnecting.reason})`,
    );

    const bodies = [
      ...Array.from({ length: 10 }, (_, i) => `before-${i}`),
      ...Array.from({ length: 10 }, (_, i) => `during-${i}`),
    ];
    for (const b of bodies) await receiver.received(b);
    // A last message after all the others: a late copy of any of them would have come first.
    await sender.client.send(r, 'marker');
    await receiver.received('marker');
    for (const b of bodies) assert.equal(receiver.messages.filter((m) => m.body === b).length, 1, b);
    assert.deepEqual(wireDuplicates(receiver.wire), [], 'no message id reached the receiver twice');
    assert.equal(new Set(answers.map((a) => a.id)).size, answers.length);

    assert.equal((await router.admin('/nodes/n3/undrain', { method: 'POST' })).status, 200);
    await router.waitRing(['n1', 'n2', 'n3']);
  });

  test('token refresh in-band: short-lived tokens replaced before they expire, on the same connection', async (t) => {
    const [u] = await router.usersOn('n1', 1, 'refresh');
    assert.ok(u);
    const issued: string[] = [];
    const c = await client(t, u, async () => {
      issued.push(await mint(u, 3));
      return issued.at(-1) ?? '';
    });
    const firstExp = expOf(issued[0] ?? '');
    // Two refreshes (at 80% of each 3-second life), past the first token's expiry.
    await pollUntil(() => issued.length >= 3 && Date.now() > firstExp * 1000 + 500, {
      timeoutMs: 15_000,
      what: 'two refreshes, past the first expiry',
    });
    assert.deepEqual(
      c.states.map((s) => s.state),
      ['open'],
      'never reconnected',
    );
    assert.equal((await c.client.send(u, 'to myself, after the first expiry')).status, 'delivered');
    assert.deepEqual(c.errors, []);
  });

  test('4003: a token that could not be refreshed expires; the SDK reconnects with a fresh one', async (t) => {
    const [u] = await router.usersOn('n2', 1, 'expire');
    assert.ok(u);
    let firstExp = 0;
    const c = await client(t, u, async () => {
      if (firstExp === 0) {
        const jwt = await mint(u, 2);
        firstExp = expOf(jwt);
        return jwt;
      }
      // The token service is "down" until the first token has expired.
      if (Date.now() < firstExp * 1000 + 100) throw new Error('token service unavailable');
      return mint(u, 600);
    });
    const lost = await c.state('reconnecting', 0, 15_000);
    assert.equal(lost.code, 4003);
    assert.equal(lost.reason, 'token_expired');
    const errors = c.errors.map((e: ChatError) => e.code);
    assert.ok(errors.length >= 1 && errors.every((e) => e === 'CLIENT_ERR_TOKEN'), errors.join());
    await c.state('open', 1);
    assert.equal((await c.client.send(u, 'back')).status, 'delivered');
  });

  test('a refused in-band refresh (a token for someone else): reconnects with a fresh token', async (t) => {
    const [u] = await router.usersOn('n1', 1, 'wrongsub');
    assert.ok(u);
    let calls = 0;
    const c = await client(t, u, () =>
      ++calls === 2 ? mint('somebody-else', 600) : mint(u, calls === 1 ? 2 : 600),
    );
    const lost = await c.state('reconnecting', 0, 15_000);
    assert.equal(lost.error?.code, 'AUTH_ERR_SUBJECT_MISMATCH');
    assert.equal(c.errors[0]?.code, 'AUTH_ERR_SUBJECT_MISMATCH');
    await c.state('open', 1);
    assert.equal(calls, 3);
    assert.equal((await c.client.send(u, 'still me')).status, 'delivered');
  });

  test('refusals through the router: a token for another user stops (4403); bad tokens give up after 3 (4401)', async (t) => {
    const mismatch = recorded(t, { url, userId: 'refused-a', token: () => mint('refused-b') });
    const closed = await mismatch.state('closed');
    assert.equal(closed.code, 4403);
    assert.equal(closed.error?.code, 'AUTH_ERR_SUBJECT_MISMATCH');
    assert.equal(mismatch.wire.urls.length, 1);
    await assert.rejects(
      mismatch.client.send('x', 'y'),
      (e: ChatError) => e.code === 'AUTH_ERR_SUBJECT_MISMATCH',
    );

    let calls = 0;
    const forged = recorded(t, {
      url,
      userId: 'refused-c',
      backoff: { initialMs: 50, maxMs: 200 },
      token: () => {
        calls++;
        return mintToken({ secret: 'another-secret-0123456789abcdefghij', sub: 'refused-c', ttlSec: 600 });
      },
    });
    const gaveUp = await forged.state('closed');
    assert.equal(gaveUp.error?.code, 'CLIENT_ERR_TOKEN_REFUSED');
    assert.equal(gaveUp.code, 4401);
    assert.match(gaveUp.reason ?? '', /^AUTH_ERR_INVALID_TOKEN/);
    assert.equal(calls, 3);
    assert.equal(forged.wire.urls.length, 3);
    // The router marks a refusal's handshake (`chat.refusal`): no refused attempt was reported as open.
    for (const r of [mismatch, forged])
      assert.deepEqual(
        r.states.filter((s) => s.state === 'open'),
        [],
      );
  });

  // Last: it stops n2 for good.
  test('SIGTERM on a node: 4001, the SDK comes back on another node and its sends are answered once', async (t) => {
    const [s] = await router.usersOn('n2', 1, 'term-s');
    const [r] = await router.usersOn('n1', 1, 'term-r');
    assert.ok(s && r);
    const [sender, receiver] = await Promise.all([client(t, s), client(t, r)]);
    await untilReachable(sender, r);
    const acks: Promise<SendAck>[] = [];
    for (let i = 0; i < 5; i++) acks.push(sender.client.send(r, `term-${i}`));
    nodes.get('n2')?.child.kill('SIGTERM');
    const lost = await sender.state('reconnecting');
    for (let i = 5; i < 10; i++) acks.push(sender.client.send(r, `term-${i}`));
    assert.equal(lost.code, 4001);
    assert.match(lost.reason ?? '', /^draining retry_after_ms=\d+$/);
    await Promise.all(acks);
    for (let i = 0; i < 10; i++) await receiver.received(`term-${i}`);
    await sender.client.send(r, 'term-marker');
    await receiver.received('term-marker');
    for (let i = 0; i < 10; i++)
      assert.equal(receiver.messages.filter((m) => m.body === `term-${i}`).length, 1);
    assert.deepEqual(wireDuplicates(receiver.wire), []);
    t.diagnostic(
      `SIGTERM: the SDK was open again ${reconnectMs(sender, lost)} ms after the 4001 (${lost.reason})`,
    );
  });
});
