// Durable mode with real node processes on a real Kafka broker: every message carries its position in
// its receiver's shard log, and a receiver that reconnects naming its last position gets exactly its gap
// (the same ids, in order, then live), also from the shard's next owner after its owner was killed with
// SIGKILL; a position older than the recovery buffer is answered `not recovered`.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { formatSince, type MessagePos } from '@chat/shared';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { TestClient, isMessage, type Frame } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const SHARDS = 4;

async function cluster(t: TestContext, name: string, extra: Record<string, string> = {}) {
  const kafka = await useKafka(t);
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName(name),
    CHAT_CLUSTER_SHARDS: String(SHARDS),
    CHAT_NODE_DELIVERY_MODE: 'durable',
    CHAT_NODE_HEARTBEAT_INTERVAL_MS: '500',
    CHAT_NODE_HEARTBEAT_TIMEOUT_MS: '3000',
    CHAT_NODE_DRAIN_WINDOW_MS: '200',
    ...extra,
  };
  const n1 = await startNode(t, { nodeId: 'n1', env });
  const n2 = await startNode(t, { nodeId: 'n2', env });
  return { n1, n2 };
}

/** The affinity key `node.wsUrl` files `user` under (a shard `node` owns). */
function keyOn(node: NodeProcess, user: string): string {
  return new URL(node.wsUrl(user)).searchParams.get('affinity') ?? user;
}

function url(node: NodeProcess, user: string, key: string, since?: MessagePos): string {
  const resume = since ? `&since=${formatSince(since)}` : '';
  return `ws://127.0.0.1:${node.port}/chat/${user}?affinity=${encodeURIComponent(key)}${resume}`;
}

const messages = (client: TestClient) => client.frames.filter(isMessage).filter((f) => f.type === 'message');
const isResumed = (f: Frame) => typeof f === 'object' && f.type === 'resumed';

async function presenceOn(node: NodeProcess, user: string, remote: string[]): Promise<void> {
  await pollUntil(
    async () => JSON.stringify((await node.presence(user)).remoteNodes.sort()) === JSON.stringify(remote),
    { timeoutMs: 15_000, what: `${node.nodeId} to see ${user} on [${remote.join(',')}]` },
  );
}

async function sendAll(alice: TestClient, to: string, cids: string[]): Promise<string[]> {
  const ids: string[] = [];
  for (const cid of cids) {
    alice.send({ type: 'send', cid, to, body: `body ${cid}` });
    const ack = await alice.reply(cid);
    assert.equal(ack.status, 'accepted', cid);
    ids.push(String(ack.id));
  }
  return ids;
}

test('durable: a receiver that reconnects with its last position gets exactly the gap, then live', async (t) => {
  const { n1, n2 } = await cluster(t, 'durable-gap');
  const key = keyOn(n1, 'dg-bob');
  const alice = await TestClient.connect(t, n2.wsUrl('dg-alice'));
  const bob = await TestClient.connect(t, url(n1, 'dg-bob', key));
  await presenceOn(n2, 'dg-bob', ['n1']);
  const [first] = await sendAll(alice, 'dg-bob', ['g0']);
  const got = (await bob.next((f) => isMessage(f) && f.id === first)) as Record<string, unknown>;
  const last = got.pos as MessagePos;
  await bob.close();
  const gap = await sendAll(alice, 'dg-bob', ['g1', 'g2', 'g3']);

  const back = await TestClient.connect(t, url(n1, 'dg-bob', key, last));
  // `replayed` counts what n1 had read by then (the last send may still be on its way to n1).
  assert.equal(((await back.next(isResumed)) as Record<string, unknown>).recovered, true);
  await back.waitCount((f) => isMessage(f) && f.type === 'message', 3);
  assert.deepEqual(
    messages(back).map((m) => m.id),
    gap,
  );
  const [live] = await sendAll(alice, 'dg-bob', ['g4']);
  await back.next((f) => isMessage(f) && f.id === live);
  assert.deepEqual(
    messages(back).map((m) => m.id),
    [...gap, live],
  );
  const offsets = messages(back).map((m) => (m.pos as MessagePos).offset);
  assert.ok(
    offsets.every((o, i) => i === 0 || o > (offsets[i - 1] ?? -1)),
    'in log order',
  );
});

test('durable: after SIGKILL of the owner, the next owner gives a resuming receiver its whole gap', async (t) => {
  const { n1, n2 } = await cluster(t, 'durable-kill');
  const key = keyOn(n1, 'dk-bob');
  const alice = await TestClient.connect(t, n2.wsUrl('dk-alice'));
  const bob = await TestClient.connect(t, url(n1, 'dk-bob', key));
  await presenceOn(n2, 'dk-bob', ['n1']);
  // Written to bob's socket by n1; bob keeps only the first position (the rest "lost in the socket").
  const written = await sendAll(alice, 'dk-bob', ['k1', 'k2', 'k3', 'k4']);
  await bob.waitCount((f) => isMessage(f) && f.type === 'message', 4);
  const kept = messages(bob)[0]?.pos as MessagePos;
  await bob.close();
  await presenceOn(n2, 'dk-bob', []);
  // Accepted while bob is away: held by n1, which dies with them.
  const away = await sendAll(alice, 'dk-bob', ['k5', 'k6']);
  n1.child.kill('SIGKILL');
  await n1.exited;

  // Bob comes back on n2 (the shard's next owner once n1's heartbeats stop): it waits for the shard,
  // then gets everything after its position, each id once, in order.
  const back = await TestClient.connect(t, url(n2, 'dk-bob', key, kept));
  const resumed = (await back.next(isResumed, 30_000)) as Record<string, unknown>;
  assert.equal(resumed.recovered, true);
  // What n2 had read when it served the resume came before `resumed`, the rest of the gap after it, in
  // order: either way every message after the position arrives once.
  await back.waitCount((f) => isMessage(f) && f.type === 'message', 5, 20_000);
  assert.deepEqual(
    messages(back).map((m) => m.id),
    [...written.slice(1), ...away],
  );
  const [live] = await sendAll(alice, 'dk-bob', ['k7']);
  await back.next((f) => isMessage(f) && f.id === live);
  assert.deepEqual(
    messages(back).map((m) => m.id),
    [...written.slice(1), ...away, live],
  );
  assert.equal(await n2.metric('chat_node_resumes_total', { result: 'recovered' }), 1);
});

test('durable: a position older than the recovery buffer gets not recovered, then live', async (t) => {
  const { n1, n2 } = await cluster(t, 'durable-old', { CHAT_NODE_RECOVERY_MAX_PER_SHARD: '2' });
  const key = keyOn(n1, 'do-bob');
  const alice = await TestClient.connect(t, n2.wsUrl('do-alice'));
  const bob = await TestClient.connect(t, url(n1, 'do-bob', key));
  await presenceOn(n2, 'do-bob', ['n1']);
  const [first] = await sendAll(alice, 'do-bob', ['o0']);
  const got = (await bob.next((f) => isMessage(f) && f.id === first)) as Record<string, unknown>;
  await bob.close();
  await sendAll(alice, 'do-bob', ['o1', 'o2', 'o3']);
  const back = await TestClient.connect(t, url(n1, 'do-bob', key, got.pos as MessagePos));
  assert.deepEqual(await back.next(isResumed), {
    type: 'resumed',
    recovered: false,
    replayed: 0,
    reason: 'too_old',
  });
  const [live] = await sendAll(alice, 'do-bob', ['o4']);
  await back.next((f) => isMessage(f) && f.id === live);
  assert.equal(await n1.metric('chat_node_resumes_total', { result: 'too_old' }), 1);
});
