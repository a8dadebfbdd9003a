// The SDK against a live cluster in durable mode (Kafka, two nodes, a router): messages carry positions,
// the SDK reconnects with `since=<last position>` and the node fills the gap before `resumed`; messages
// sent while the receiver was away arrive once, after a drain and after a restart of the app itself
// (a position saved from `client.position` and given back as `since`).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { reconnectMs, recorded, untilReachable, wireDuplicates, type Recorded } from './live.js';
import { QUICK_NODE_ENV, QUICK_ROUTER_ENV } from '../harness/quick-membership.js';

describe('the SDK against a durable-mode cluster', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => void cleanups.push(fn) };
  let router: RouterProcess;
  let url: string;

  before(async () => {
    const kafka = await useKafka(cleanup);
    const common = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('sdk-durable'),
      CHAT_CLUSTER_SHARDS: '8',
    };
    const nodeEnv = {
      ...common,
      CHAT_NODE_DELIVERY_MODE: 'durable',
      ...QUICK_NODE_ENV,
      CHAT_NODE_DRAIN_WINDOW_MS: '500',
    };
    await Promise.all(['d1', 'd2'].map((id) => startNode(cleanup, { nodeId: id, env: nodeEnv })));
    router = await startRouter(cleanup, {
      ...common,
      ...QUICK_ROUTER_ENV,
      CHAT_ROUTER_MIGRATION_WINDOW_MS: '500',
    });
    await pollUntil(async () => (await router.members()).members.filter((m) => m.inRing).length === 2, {
      timeoutMs: 20_000,
      what: 'both nodes in the ring',
    });
    url = `ws://127.0.0.1:${router.port}`;
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  async function userOn(nodeId: string, prefix: string): Promise<string> {
    const candidates = Array.from({ length: 100 }, (_, i) => `${prefix}-${i}`);
    const owners = await router.lookup(candidates);
    const user = candidates.find((_, i) => owners[i] === nodeId);
    assert.ok(user);
    return user;
  }

  async function client(
    t: { after(fn: () => unknown): void },
    user: string,
    since?: Recorded['client']['position'],
  ) {
    const r = recorded(t, { url, userId: user, backoff: { initialMs: 100, maxMs: 2000 }, since });
    await r.state('open');
    return r;
  }

  test('an app restarted with its saved position gets what was sent meanwhile, once, then live messages', async (t) => {
    const a = await userOn('d1', 'dur-a');
    const b = await userOn('d2', 'dur-b');
    const alice = await client(t, a);
    const bob1 = await client(t, b);
    await untilReachable(alice, b);
    for (let i = 0; i < 3; i++) await alice.client.send(b, `seen-${i}`);
    await bob1.received('seen-2');
    const saved = bob1.client.position;
    assert.ok(saved, 'messages carry positions in durable mode');
    assert.deepEqual(bob1.messages.at(-1)?.pos, saved);
    await bob1.client.close();

    for (let i = 0; i < 5; i++) assert.equal((await alice.client.send(b, `missed-${i}`)).status, 'accepted');
    const bob2 = await client(t, b, saved);
    assert.match(
      bob2.wire.urls[0] ?? '',
      new RegExp(`[?&]since=${saved.shard}:${saved.offset}:${saved.epoch}$`),
    );
    await pollUntil(() => bob2.resumed.length > 0, { what: 'resumed' });
    const resumed = bob2.resumed[0];
    assert.equal(resumed?.recovered, true);
    // `replayed` counts those the node had read by then; the rest of the log follows it (protocol.md).
    t.diagnostic(`restart: resumed replayed ${resumed?.replayed} of the 5 missed`);
    for (let i = 0; i < 5; i++) await bob2.received(`missed-${i}`);
    await alice.client.send(b, 'live');
    await bob2.received('live');
    const bodies = bob2.messages.map((m) => m.body).filter((x) => !x.startsWith('probe-'));
    assert.deepEqual(bodies, ['missed-0', 'missed-1', 'missed-2', 'missed-3', 'missed-4', 'live']);
    assert.deepEqual(wireDuplicates(bob2.wire), []);
  });

  test('a drain: the SDK reconnects with since= and nothing sent during the move is lost or doubled', async (t) => {
    const a = await userOn('d1', 'move-a');
    const b = await userOn('d2', 'move-b');
    const [alice, bob] = [await client(t, a), await client(t, b)];
    await untilReachable(alice, b);
    await alice.client.send(b, 'first');
    await bob.received('first');
    const drained = await router.admin('/nodes/d2/drain', { method: 'POST' });
    assert.equal(drained.status, 200);
    const lost = await bob.state('reconnecting');
    assert.equal(lost.code, 4002);
    const sends = Array.from({ length: 10 }, (_, i) => alice.client.send(b, `moving-${i}`));
    await bob.state('open', 1);
    for (const ack of await Promise.all(sends)) assert.ok(ack.status !== 'offline', ack.status);
    for (let i = 0; i < 10; i++) await bob.received(`moving-${i}`);
    assert.match(bob.wire.urls[1] ?? '', /[?&]since=\d+:\d+:[A-Za-z0-9-]+$/);
    await pollUntil(() => bob.resumed.length > 0, { what: 'resumed' });
    assert.equal(bob.resumed[0]?.recovered, true);
    for (let i = 0; i < 10; i++) assert.equal(bob.messages.filter((m) => m.body === `moving-${i}`).length, 1);
    t.diagnostic(
      `durable drain: open again ${reconnectMs(bob, lost)} ms after the 4002; resumed replayed ${bob.resumed[0]?.replayed}; ` +
        `copies the SDK dropped: ${wireDuplicates(bob.wire).length}`,
    );
    assert.equal((await router.admin('/nodes/d2/undrain', { method: 'POST' })).status, 200);
  });
});
