// Authentication end to end, with real router and node processes: every kind of bad token gets its exact
// status and code at the router before any upstream connection, the node checks again, the sender is the
// token's subject, the affinity claim places the user, and tokens expire or are refreshed in-band.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { UnsecuredJWT } from 'jose';
import { mintToken } from '@chat/shared';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { rawRequest, upgradeRequest } from '../harness/raw-http.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const SECRET = 'security-test-secret-0123456789abcdef';
const OTHER_SECRET = 'some-other-secret-0123456789abcdefgh';
const ISSUER = 'chat-test';
const AUDIENCE = 'chat-clients';
const ORIGIN = 'https://chat.example.com';
const INTERNAL = 'internal-token-0123456789';
const ADMIN = 'admin-token-0123456789';

const token = (sub: string, extra: Partial<Parameters<typeof mintToken>[0]> = {}) =>
  mintToken({ secret: SECRET, sub, issuer: ISSUER, audience: AUDIENCE, ttlSec: 600, ...extra });

describe('authentication through router and node', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let n1: NodeProcess;
  let n2: NodeProcess;
  let router: RouterProcess;
  const auth: Record<string, string> = {
    CHAT_AUTH_MODE: 'jwt',
    CHAT_AUTH_HS256_SECRET: SECRET,
    CHAT_AUTH_ISSUER: ISSUER,
    CHAT_AUTH_AUDIENCE: AUDIENCE,
    CHAT_AUTH_ALLOWED_ORIGINS: ORIGIN,
    CHAT_AUTH_CLOCK_TOLERANCE_SEC: '0',
    CHAT_INTERNAL_TOKEN: INTERNAL,
  };

  before(async () => {
    // Users on the two nodes reach each other through Kafka.
    const kafka = await useKafka(cleanup);
    Object.assign(auth, {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('auth'),
      CHAT_CLUSTER_SHARDS: '2',
    });
    [n1, n2] = await Promise.all([
      startNode(cleanup, { nodeId: 'a1', env: auth }),
      startNode(cleanup, { nodeId: 'a2', env: auth }),
    ]);
    router = await startRouter(cleanup, {
      ...auth,
      CHAT_ROUTER_NODES: `a1=http://127.0.0.1:${n1.port},a2=http://127.0.0.1:${n2.port}`,
      CHAT_ROUTER_ADMIN_TOKEN: ADMIN,
    });
    await pollUntil(async () => (await router.members()).ringSize === 2, { what: 'both nodes in the ring' });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  /** Sends until the ack is not `offline` (presence crossed the bus); the receiver gets that one. */
  async function waitReachable(from: TestClient, to: string): Promise<void> {
    let n = 0;
    await pollUntil(
      async () => {
        const cid = `probe-${n++}`;
        from.send({ type: 'send', cid, to, body: cid });
        return (await from.reply(cid)).status !== 'offline';
      },
      { what: `${to} reachable` },
    );
  }

  async function expectRefused(path: string, headers: string, status: number, code: string): Promise<void> {
    const before = await router.metric('chat_router_auth_failures_total', { code });
    const res = await rawRequest(router.port, upgradeRequest(path, headers));
    assert.equal(res.status, status, `${path} ${headers}`);
    const body = await new Promise<string>((resolve) => {
      let text = res.rest;
      res.socket.on('data', (b: Buffer) => (text += b.toString()));
      res.socket.once('close', () => resolve(text));
    });
    assert.deepEqual(JSON.parse(body.slice(body.indexOf('{'))), { error: code });
    assert.equal(await router.metric('chat_router_auth_failures_total', { code }), before + 1);
  }

  test('bad tokens are refused at the router with exact codes, before any upstream connection', async () => {
    const bearer = (t: string) => `Authorization: Bearer ${t}\r\n`;
    await expectRefused('/chat/alice', '', 401, 'AUTH_ERR_MISSING_TOKEN');
    await expectRefused(
      '/chat/alice',
      bearer(await token('alice', { ttlSec: -60 })),
      401,
      'AUTH_ERR_TOKEN_EXPIRED',
    );
    await expectRefused(
      '/chat/alice',
      bearer(await token('alice', { secret: OTHER_SECRET })),
      401,
      'AUTH_ERR_INVALID_TOKEN',
    );
    const none = new UnsecuredJWT({ iss: ISSUER, aud: AUDIENCE })
      .setSubject('alice')
      .setExpirationTime('1h')
      .encode();
    await expectRefused('/chat/alice', bearer(none), 401, 'AUTH_ERR_INVALID_TOKEN');
    await expectRefused(
      '/chat/alice',
      bearer(await token('alice', { audience: 'other' })),
      401,
      'AUTH_ERR_INVALID_CLAIMS',
    );
    await expectRefused(
      '/chat/alice',
      bearer(await token('alice', { issuer: 'evil' })),
      401,
      'AUTH_ERR_INVALID_CLAIMS',
    );
    await expectRefused('/chat/alice', bearer('garbage'), 401, 'AUTH_ERR_INVALID_TOKEN');
    await expectRefused('/chat/alice', bearer(await token('mallory')), 403, 'AUTH_ERR_SUBJECT_MISMATCH');
    await expectRefused(
      '/chat/alice',
      `${bearer(await token('alice'))}Origin: https://evil.example\r\n`,
      403,
      'AUTH_ERR_ORIGIN_FORBIDDEN',
    );
    // Query tokens are off by default.
    await expectRefused(
      `/chat/alice?access_token=${await token('alice')}`,
      '',
      401,
      'AUTH_ERR_MISSING_TOKEN',
    );
    // None of these reached a node.
    assert.equal(
      (await n1.metric('chat_node_auth_failures_total')) + (await n2.metric('chat_node_auth_failures_total')),
      0,
    );
    assert.equal(await router.metric('chat_router_open_sockets', { side: 'upstream' }), 0);
  });

  test('valid tokens in the Authorization header or the subprotocol list connect; the node checks again', async (t) => {
    const viaHeader = await TestClient.connect(t, router.wsUrl('alice'), ['chat.v1'], {
      headers: { authorization: `Bearer ${await token('alice')}`, origin: ORIGIN },
    });
    const viaProtocol = await TestClient.connect(t, router.wsUrl('bob'), [
      'chat.v1',
      `bearer.${await token('bob')}`,
    ]);
    assert.equal(viaProtocol.ws.protocol, 'chat.v1', 'the token is never echoed as the protocol');
    await waitReachable(viaHeader, 'bob');
    const got = await viaProtocol.next(isMessage);
    assert.equal((got as Record<string, unknown>).from, 'alice');
    assert.ok(viaProtocol.frames.filter(isMessage).every((f) => f.from === 'alice'));
    // Straight to a node, bypassing the router: the node refuses too.
    const direct = await rawRequest(n1.port, upgradeRequest('/chat/alice'));
    assert.equal(direct.status, 401);
    direct.socket.destroy();
    assert.equal(await n1.metric('chat_node_auth_failures_total', { code: 'AUTH_ERR_MISSING_TOKEN' }), 1);
  });

  test('the sender is always the token’s subject', async (t) => {
    const mallory = await TestClient.connect(t, router.wsUrl('mallory'), [
      'chat.v1',
      `bearer.${await token('mallory')}`,
    ]);
    const bob = await TestClient.connect(t, router.wsUrl('bob2'), [
      'chat.v1',
      `bearer.${await token('bob2')}`,
    ]);
    mallory.send({ sender_id: 'alice', receiver_id: 'bob2', text: 'it is me, alice' });
    assert.equal(
      ((await mallory.next((f) => typeof f === 'object' && f.type === 'error')) as Record<string, unknown>)
        .code,
      'PROTO_ERR_FORBIDDEN_SENDER',
    );
    await waitReachable(mallory, 'bob2');
    await bob.next(isMessage);
    // Every message bob got says it is from mallory: the forged one never arrived.
    assert.ok(bob.frames.length > 0 && bob.frames.every((f) => isMessage(f) && f.from === 'mallory'));
  });

  test('the affinity claim places the user, whatever the user id', async (t) => {
    const owner = (await router.lookup(['team-red']))[0];
    const node = owner === 'a1' ? n1 : n2;
    for (const user of ['red-1', 'red-2', 'red-3', 'red-4']) {
      await TestClient.connect(t, router.wsUrl(user), [
        'chat.v1',
        `bearer.${await token(user, { affinity: 'team-red' })}`,
      ]);
      assert.equal((await node.presence(user)).localSessions, 1, `${user} not on ${String(owner)}`);
    }
  });

  test('an expiring token closes the session with 4003 unless refreshed in-band', async (t) => {
    const short = { ttlSec: 3 };
    const stale = await TestClient.connect(t, router.wsUrl('exp-a'), [
      'chat.v1',
      `bearer.${await token('exp-a', short)}`,
    ]);
    const fresh = await TestClient.connect(t, router.wsUrl('exp-b'), [
      'chat.v1',
      `bearer.${await token('exp-b', short)}`,
    ]);
    fresh.send({ type: 'auth', cid: 'r1', token: await token('exp-b', { ttlSec: 600 }) });
    const ok = (await fresh
      .reply('r1')
      .catch(() => fresh.next((f) => typeof f === 'object' && f.type === 'auth_ok'))) as Record<
      string,
      unknown
    >;
    assert.equal(ok.type, 'auth_ok');
    fresh.send({ type: 'auth', cid: 'r2', token: await token('someone-else') });
    const mismatch = (await fresh.next((f) => typeof f === 'object' && f.cid === 'r2')) as Record<
      string,
      unknown
    >;
    assert.equal(mismatch.code, 'AUTH_ERR_SUBJECT_MISMATCH');
    fresh.send({ type: 'auth', cid: 'r3', token: 'garbage' });
    assert.equal(
      ((await fresh.next((f) => typeof f === 'object' && f.cid === 'r3')) as Record<string, unknown>).code,
      'AUTH_ERR_INVALID_TOKEN',
    );

    const closed = await stale.closed;
    assert.equal(closed.code, 4003);
    assert.equal(closed.reason, 'token_expired');
    assert.equal(fresh.ws.readyState, fresh.ws.OPEN, 'the refreshed session outlives the old expiry');
    fresh.send('ping');
    await fresh.next((f) => f === 'pong');
  });

  test('admin API and metrics need the admin token; the nodes’ internal API needs the internal token', async () => {
    const adminUrl = `http://127.0.0.1:${router.adminPort}`;
    for (const path of ['/members', '/metrics', '/ring']) {
      const res = await fetch(`${adminUrl}${path}`);
      assert.equal(res.status, 401, path);
      assert.deepEqual(await res.json(), { error: 'AUTH_ERR_UNAUTHORIZED' });
    }
    assert.equal(
      (await fetch(`${adminUrl}/members`, { headers: { authorization: 'Bearer wrong-token-000000' } }))
        .status,
      401,
    );
    assert.equal((await router.admin('/members')).status, 200);
    const internal = await fetch(n1.httpUrl('/internal/drain'), { method: 'POST' });
    assert.equal(internal.status, 401);
    assert.equal((await fetch(n1.httpUrl('/internal/presence?user=alice'))).status, 401);
    assert.equal((await fetch(n1.httpUrl('/readyz'))).status, 200, 'the unauthorised drain did nothing');
    // The public listener no longer serves metrics.
    assert.equal((await fetch(router.httpUrl('/metrics'))).status, 404);
  });
});

test('handshakes per second per source address are limited with 429 and Retry-After', async (t) => {
  const node = await startNode(t, { nodeId: 'rate' });
  const router = await startRouter(t, {
    CHAT_ROUTER_NODES: `rate=http://127.0.0.1:${node.port}`,
    CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '2',
  });
  await pollUntil(async () => (await router.members()).ringSize === 1, { what: 'node in the ring' });
  const statuses: number[] = [];
  let retryAfter: string | undefined;
  for (let i = 0; i < 8; i++) {
    const res = await rawRequest(router.port, upgradeRequest(`/chat/u${i}`));
    statuses.push(res.status);
    if (res.status === 429) retryAfter = res.headers['retry-after'];
    res.socket.destroy();
  }
  assert.deepEqual(statuses.slice(0, 4), [101, 101, 101, 101], 'the burst (twice the rate) passes');
  assert.ok(statuses.includes(429), statuses.join(','));
  assert.equal(retryAfter, '1');
  assert.ok((await router.metric('chat_router_upgrades_total', { result: 'rate_limited' })) >= 1);
});
