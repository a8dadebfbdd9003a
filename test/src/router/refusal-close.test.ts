// Refusals a browser can read (issue 13): Node 24's global WebSocket (the WHATWG one browsers have, which
// cannot see an HTTP refusal either) against real router and node processes on a real broker. With
// ?refusal=close it gets the handshake and a REFUSED_* close whose code and reason say why; without it,
// 1006 and nothing else.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { mintToken, parseRefusalReason } from '@chat/shared';
import { startNode } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const SECRET = 'refusal-test-secret-0123456789abcdef';
const ISSUER = 'chat-test';
const AUDIENCE = 'chat-clients';

const token = (sub: string, extra: Partial<Parameters<typeof mintToken>[0]> = {}) =>
  mintToken({ secret: SECRET, sub, issuer: ISSUER, audience: AUDIENCE, ttlSec: 600, ...extra });

interface Seen {
  readonly opened: boolean;
  readonly code: number;
  readonly reason: string;
}

/** Opens a WebSocket as a browser page would (token as a subprotocol) and resolves with how it ended. */
function attempt(t: TestContext, url: string, jwt: string): { ws: WebSocket; ended: Promise<Seen> } {
  const ws = new WebSocket(url, ['chat.v1', `bearer.${jwt}`]);
  t.after(() => ws.close());
  let opened = false;
  ws.addEventListener('open', () => (opened = true));
  const ended = new Promise<Seen>((resolve) =>
    ws.addEventListener('close', (e) => resolve({ opened, code: e.code, reason: e.reason })),
  );
  return { ws, ended };
}

describe('?refusal=close through a real router and node, seen by a WHATWG WebSocket', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let router: RouterProcess;

  before(async () => {
    const kafka = await useKafka(cleanup);
    const env: Record<string, string> = {
      CHAT_AUTH_MODE: 'jwt',
      CHAT_AUTH_HS256_SECRET: SECRET,
      CHAT_AUTH_ISSUER: ISSUER,
      CHAT_AUTH_AUDIENCE: AUDIENCE,
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('refusal'),
      CHAT_CLUSTER_SHARDS: '2',
    };
    const node = await startNode(cleanup, {
      nodeId: 'r1',
      env: { ...env, CHAT_NODE_MAX_CONNECTIONS_PER_USER: '1' },
    });
    router = await startRouter(cleanup, {
      ...env,
      CHAT_ROUTER_NODES: `r1=http://127.0.0.1:${node.port}`,
      // Burst 2: the third handshake in a second is refused for the rate.
      CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '1',
    });
    await pollUntil(async () => (await router.members()).ringSize === 1, { what: 'the node in the ring' });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('a bad or expired token: 4401 with its code; without the parameter only 1006', async (t) => {
    const forged = await token('alice', { secret: 'another-secret-0123456789abcdefghij' });
    const invalid = await attempt(t, router.wsUrl('alice', 'refusal=close'), forged).ended;
    assert.deepEqual(invalid, { opened: true, code: 4401, reason: 'AUTH_ERR_INVALID_TOKEN' });
    const stale = await token('alice', { ttlSec: -60 });
    const expired = await attempt(t, router.wsUrl('alice', 'refusal=close'), stale).ended;
    assert.deepEqual(expired, { opened: true, code: 4401, reason: 'AUTH_ERR_TOKEN_EXPIRED' });
    const blind = await attempt(t, router.wsUrl('alice'), forged).ended;
    assert.equal(blind.opened, false);
    assert.equal(blind.code, 1006, 'what a browser sees of an HTTP refusal');
    assert.equal(
      await router.metric('chat_router_auth_failures_total', { code: 'AUTH_ERR_INVALID_TOKEN' }),
      2,
    );
  });

  test('4429: the node’s sessions per user (relayed) and the router’s handshake rate, with the wait', async (t) => {
    // Accepted with the parameter (and `since`): the node ignores it and serves the session.
    const first = attempt(t, router.wsUrl('carol', 'refusal=close&since=0:0:e1'), await token('carol'));
    await new Promise((resolve) => first.ws.addEventListener('open', resolve));
    assert.equal(first.ws.protocol, 'chat.v1');
    const acked = new Promise<unknown>((resolve) =>
      first.ws.addEventListener('message', (e) => {
        const frame = JSON.parse(String(e.data)) as { type?: string; cid?: string };
        if (frame.type === 'ack' && frame.cid === 'c-1') resolve(frame);
      }),
    );
    first.ws.send(JSON.stringify({ type: 'send', cid: 'c-1', to: 'carol', body: 'hello' }));
    await acked;
    // The node allows one session per user here: its 429 reaches the page as 4429 with its code.
    const second = await attempt(t, router.wsUrl('carol', 'refusal=close'), await token('carol')).ended;
    assert.deepEqual(second, { opened: true, code: 4429, reason: 'NODE_ERR_TOO_MANY_CONNECTIONS' });
    // Six at once from the same address, beyond the budget of 1 per second (burst 2).
    const jwt = await token('dave');
    const burst = await Promise.all(
      Array.from({ length: 6 }, () => attempt(t, router.wsUrl('dave', 'refusal=close'), jwt).ended),
    );
    const limited = burst.filter((s) => s.code === 4429);
    assert.ok(limited.length >= 3, JSON.stringify(burst));
    for (const seen of limited) {
      assert.equal(seen.opened, true);
      assert.deepEqual(parseRefusalReason(seen.reason), {
        error: 'ROUTER_ERR_RATE_LIMITED',
        retryAfterMs: 1000,
      });
    }
    assert.ok((await router.metric('chat_router_upgrades_total', { result: 'rate_limited' })) >= 3);
  });
});
