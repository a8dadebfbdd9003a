// Handoff across a shard move, with real node processes on a real Kafka broker: a message to a user who is
// between sessions (left one node, reconnecting to their shard's next owner) is delivered exactly once, and
// a shard's committed position never passes a record its owner still holds (the owner is killed while it
// holds one; the next owner reads it again and delivers it).
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { shardOf, type ShardOffset } from '@chat/shared';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { TestClient, isMessage, type Frame } from '../harness/ws-client.js';
import { useKafka, type KafkaFixture } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const SHARDS = 4;

async function cluster(t: TestContext, name: string) {
  const kafka = await useKafka(t);
  const prefix = kafka.uniqueName(name);
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: prefix,
    CHAT_CLUSTER_SHARDS: String(SHARDS),
    CHAT_NODE_HEARTBEAT_INTERVAL_MS: '500',
    CHAT_NODE_HEARTBEAT_TIMEOUT_MS: '3000',
    CHAT_NODE_DRAIN_WINDOW_MS: '200',
  };
  const n1 = await startNode(t, { nodeId: 'n1', env });
  const n2 = await startNode(t, { nodeId: 'n2', env });
  return { kafka, prefix, n1, n2 };
}

/** The affinity key `node.wsUrl` files `user` under (a shard `node` owns). */
function keyOn(node: NodeProcess, user: string): string {
  return new URL(node.wsUrl(user)).searchParams.get('affinity') ?? user;
}

/** A URL for `user` on `node`, filed under affinity key `key` (whoever owns its shard now). */
function urlWithKey(node: NodeProcess, user: string, key: string): string {
  return `ws://127.0.0.1:${node.port}/chat/${user}?affinity=${encodeURIComponent(key)}`;
}

async function presenceOn(node: NodeProcess, user: string, remote: string[]): Promise<void> {
  await pollUntil(
    async () => JSON.stringify((await node.presence(user)).remoteNodes.sort()) === JSON.stringify(remote),
    { timeoutMs: 15_000, what: `${node.nodeId} to see ${user} on [${remote.join(',')}]` },
  );
}

async function metricIs(node: NodeProcess, name: string, labels: Record<string, string>, value: number) {
  await pollUntil(async () => (await node.metric(name, labels)) === value, {
    timeoutMs: 20_000,
    what: `${node.nodeId} ${name}${JSON.stringify(labels)} = ${value}`,
  });
}

const bodies = (client: TestClient) => client.frames.filter(isMessage).map((f) => f.body);
const withBody = (body: string) => (f: Frame) => isMessage(f) && f.body === body;

test('a message to a user between sessions, across a shard move (drain), is delivered exactly once by the next owner', async (t) => {
  const { n1, n2 } = await cluster(t, 'handoff-move');
  const key = keyOn(n1, 'hm-bob');
  const alice = await TestClient.connect(t, n2.wsUrl('hm-alice'));
  const bob = await TestClient.connect(t, urlWithKey(n1, 'hm-bob', key));
  await presenceOn(n2, 'hm-bob', ['n1']);
  await bob.close();
  await presenceOn(n2, 'hm-bob', []);

  // Bob is reconnecting: the send is accepted into his shard's log and held by its owner, n1.
  alice.send({ type: 'send', cid: 'b1', to: 'hm-bob', body: 'between sessions' });
  assert.equal((await alice.reply('b1')).status, 'accepted');
  await metricIs(n1, 'chat_node_handoff_held_messages', {}, 1);

  // The shard moves: n1 leaves the ring, releases the shard at the held record, and n2 reads it again.
  const drained = await fetch(n1.httpUrl('/internal/drain'), { method: 'POST' });
  assert.equal(drained.status, 200);
  await metricIs(n1, 'chat_node_handoff_total', { result: 'released' }, 1);
  await metricIs(n2, 'chat_node_handoff_held_messages', {}, 1);

  // Bob reconnects to the shard's new owner and gets it, once.
  const back = await TestClient.connect(t, urlWithKey(n2, 'hm-bob', key));
  await back.next(withBody('between sessions'));
  alice.send({ type: 'send', cid: 'b2', to: 'hm-bob', body: 'marker' });
  await back.next(withBody('marker'));
  assert.deepEqual(bodies(back), ['between sessions', 'marker']);
  assert.equal(await n2.metric('chat_node_handoff_total', { result: 'delivered' }), 1);
  assert.equal(await n1.metric('chat_node_handoff_total', { result: 'delivered' }), 0);
});

/** Follows the shard-offsets topic from its beginning: every position written, in order. */
async function followOffsets(t: TestContext, kafka: KafkaFixture, prefix: string): Promise<ShardOffset[]> {
  const seen: ShardOffset[] = [];
  const consumer = kafka.client(kafka.uniqueName('offsets-reader')).consumer({
    groupId: kafka.uniqueName('offsets-reader'),
  });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  await consumer.subscribe({ topic: `${prefix}.shard-offsets`, fromBeginning: true });
  await consumer.run({
    eachMessage: ({ message }) => {
      if (message.value) seen.push(JSON.parse(message.value.toString('utf8')) as ShardOffset);
      return Promise.resolve();
    },
  });
  return seen;
}

test('the committed position never passes a held record: the owner is killed while holding one, the next owner delivers it', async (t) => {
  const { kafka, prefix, n1, n2 } = await cluster(t, 'handoff-floor');
  const offsets = await followOffsets(t, kafka, prefix);
  // Bob and Carol in one shard of n1's, Eve in another of n1's (her position is the witness below).
  const key = keyOn(n1, 'hf-bob');
  const shard = shardOf(key, SHARDS);
  const eveKey = Array.from({ length: 200 }, (_, i) => keyOn(n1, `hf-eve-${i}`)).find(
    (k) => shardOf(k, SHARDS) !== shard,
  );
  assert.ok(eveKey, 'n1 owns two shards');
  const eveShard = shardOf(eveKey, SHARDS);
  const alice = await TestClient.connect(t, n2.wsUrl('hf-alice'));
  const bob = await TestClient.connect(t, urlWithKey(n1, 'hf-bob', key));
  const carol = await TestClient.connect(t, urlWithKey(n1, 'hf-carol', key));
  const eve = await TestClient.connect(t, urlWithKey(n1, 'hf-eve', eveKey));
  for (const user of ['hf-bob', 'hf-carol', 'hf-eve']) await presenceOn(n2, user, ['n1']);
  await bob.close();
  await presenceOn(n2, 'hf-bob', []);

  alice.send({ type: 'send', cid: 'f1', to: 'hf-bob', body: 'held when n1 dies' });
  assert.equal((await alice.reply('f1')).status, 'accepted');
  await metricIs(n1, 'chat_node_handoff_held_messages', {}, 1);
  // Carol's message comes after Bob's in the same shard and is delivered: n1 has read past Bob's record.
  alice.send({ type: 'send', cid: 'f2', to: 'hf-carol', body: 'after it' });
  await carol.next(withBody('after it'));
  alice.send({ type: 'send', cid: 'f3', to: 'hf-eve', body: 'witness' });
  await eve.next(withBody('witness'));
  const witnessed = Date.now();
  // n1 writes every shard that moved in one request each second: once Eve's shard has a position written
  // after she got her message, n1 has also considered Bob's shard with Carol's record read.
  await pollUntil(() => offsets.some((o) => o.shard === eveShard && o.node === 'n1' && o.ts >= witnessed), {
    timeoutMs: 15_000,
    what: 'n1 to commit after the witness',
  });

  n1.child.kill('SIGKILL');
  await n1.exited;
  // n2 takes the dead node's shards from their last written positions: Bob's shard from his record (not
  // past it), so it holds his record and also Carol's, which n1 had delivered before it died (read again:
  // the price of the floor; the server id tells).
  await metricIs(n2, 'chat_node_handoff_held_messages', {}, 2);
  const back = await TestClient.connect(t, urlWithKey(n2, 'hf-bob', key));
  await back.next(withBody('held when n1 dies'));
  alice.send({ type: 'send', cid: 'f4', to: 'hf-bob', body: 'marker' });
  await back.next(withBody('marker'));
  assert.deepEqual(bodies(back), ['held when n1 dies', 'marker']);
});
