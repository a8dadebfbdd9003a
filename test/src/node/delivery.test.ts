// Chat nodes as real processes on a real Kafka broker: local-first delivery, cross-node delivery through
// Kafka, multi-device, seed frames, impersonation, offline receivers, and a node killed with kill -9.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { useKafka, type KafkaFixture } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const HEARTBEAT_TIMEOUT_MS = 3000;

describe('chat nodes on Kafka', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let n1: NodeProcess;
  let n2: NodeProcess;
  let clusterEnv: Record<string, string>;
  let kafka: KafkaFixture;

  before(async () => {
    kafka = await useKafka(cleanup);
    clusterEnv = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('delivery'),
      CHAT_CLUSTER_SHARDS: '4',
      // These tests send bursts of 1,000 on one connection; the rate limit has its own tests.
      CHAT_NODE_RATE_PER_SEC: '100000',
      CHAT_NODE_RATE_BURST: '100000',
      CHAT_NODE_HEARTBEAT_INTERVAL_MS: '500',
      CHAT_NODE_HEARTBEAT_TIMEOUT_MS: String(HEARTBEAT_TIMEOUT_MS),
    };
    n1 = await startNode(cleanup, { nodeId: 'n1', env: clusterEnv });
    n2 = await startNode(cleanup, { nodeId: 'n2', env: clusterEnv });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  /** Waits until `node` sees `userId` on exactly the nodes in `remote`. */
  async function presenceOn(node: NodeProcess, userId: string, remote: string[]): Promise<void> {
    await pollUntil(
      async () => JSON.stringify((await node.presence(userId)).remoteNodes.sort()) === JSON.stringify(remote),
      {
        timeoutMs: 10_000,
        what: `${node.nodeId} to see ${userId} on [${remote.join(',')}]`,
      },
    );
  }

  test('two users on one node: delivered locally, nothing produced to Kafka', async (t) => {
    const alice = await TestClient.connect(t, n1.wsUrl('local-alice'));
    const bob = await TestClient.connect(t, n1.wsUrl('local-bob'));
    const producedBefore = await n1.metric('chat_node_bus_records_produced_total', { kind: 'message' });
    const errorsBefore = await n1.metric('chat_node_bus_produce_errors_total', { kind: 'message' });
    for (let i = 0; i < 20; i++)
      alice.send({ type: 'send', cid: `c${i}`, to: 'local-bob', body: `hello ${i}` });
    const got = await bob.waitCount(isMessage, 20);
    assert.deepEqual(
      got.map((f) => (f as Record<string, unknown>).body),
      Array.from({ length: 20 }, (_, i) => `hello ${i}`),
    );
    assert.equal((got[0] as Record<string, unknown>).from, 'local-alice');
    const ack = await alice.reply('c19');
    assert.equal(ack.status, 'delivered');
    assert.equal(
      await n1.metric('chat_node_bus_records_produced_total', { kind: 'message' }),
      producedBefore,
    );
    assert.equal(await n1.metric('chat_node_bus_produce_errors_total', { kind: 'message' }), errorsBefore);
    assert.ok((await n1.metric('chat_node_deliveries_total', { path: 'local' })) >= 20);
  });

  test('users on different nodes: 1,000 messages through Kafka, exactly once, in send order', async (t) => {
    const alice = await TestClient.connect(t, n1.wsUrl('x-alice'));
    const bob = await TestClient.connect(t, n2.wsUrl('x-bob'));
    await presenceOn(n1, 'x-bob', ['n2']);
    const consumedBefore = await n2.metric('chat_node_deliveries_total', { path: 'bus' });
    const read = () =>
      Promise.all([n1, n2].map((n) => n.metric('chat_node_bus_records_consumed_total', { kind: 'message' })));
    const [readBefore1, readBefore2] = await read();
    const N = 1000;
    for (let i = 0; i < N; i++) alice.send({ type: 'send', cid: `m${i}`, to: 'x-bob', body: String(i) });
    const got = await bob.waitCount(isMessage, N, 60_000);
    assert.equal(got.length, N);
    assert.deepEqual(
      got.map((f) => Number((f as Record<string, unknown>).body)),
      Array.from({ length: N }, (_, i) => i),
    );
    const acks = await alice.waitCount((f) => typeof f === 'object' && f.type === 'ack', N);
    assert.ok(acks.every((a) => (a as Record<string, unknown>).status === 'accepted'));
    assert.equal(new Set(got.map((f) => (f as Record<string, unknown>).id)).size, N, 'server ids are unique');
    assert.equal((await n2.metric('chat_node_deliveries_total', { path: 'bus' })) - consumedBefore, N);
    // Nothing more arrives later (no duplicates from other nodes or retries).
    await alice.reply('m999');
    assert.equal(bob.frames.filter(isMessage).length, N);
    // Read once: only the owner of x-bob's shard read the records; the sender's node read none of them.
    const [read1, read2] = await read();
    assert.deepEqual(
      [(read1 ?? 0) - (readBefore1 ?? 0), (read2 ?? 0) - (readBefore2 ?? 0)],
      [0, N],
      'records read per node',
    );
  });

  test('multi-device across two nodes: each session gets each message once', async (t) => {
    const sender = await TestClient.connect(t, n1.wsUrl('md-sender'));
    const phone = await TestClient.connect(t, n1.wsUrl('md-carol'));
    const laptop = await TestClient.connect(t, n2.wsUrl('md-carol'));
    await presenceOn(n1, 'md-carol', ['n2']);
    for (let i = 0; i < 50; i++) sender.send({ type: 'send', cid: `d${i}`, to: 'md-carol', body: `d${i}` });
    const expected = Array.from({ length: 50 }, (_, i) => `d${i}`);
    for (const device of [phone, laptop]) {
      const got = await device.waitCount(isMessage, 50);
      assert.deepEqual(
        got.map((f) => (f as Record<string, unknown>).body),
        expected,
      );
    }
    assert.equal((await sender.reply('d49')).status, 'accepted');
    // Closing one device leaves the other (the seed removed the user everywhere).
    await phone.close();
    sender.send({ type: 'send', cid: 'after-close', to: 'md-carol', body: 'still there?' });
    await laptop.next((f) => isMessage(f) && f.body === 'still there?');
    assert.equal(laptop.frames.filter(isMessage).length, 51);
  });

  test('seed-format frames both ways across nodes, with their known fields only (issue 15, item 7)', async (t) => {
    const a = await TestClient.connect(t, n1.wsUrl('seed-a'), []);
    const b = await TestClient.connect(t, n2.wsUrl('seed-b'), []);
    await presenceOn(n1, 'seed-b', ['n2']);
    await presenceOn(n2, 'seed-a', ['n1']);
    a.send({ sender_id: 'seed-a', receiver_id: 'seed-b', text: 'hi b', meta: { n: 1 }, from: 'admin' });
    assert.deepEqual(await b.next((f) => typeof f === 'object' && f.sender_id === 'seed-a'), {
      sender_id: 'seed-a',
      receiver_id: 'seed-b',
      text: 'hi b',
    });
    b.send({ sender_id: 'seed-b', receiver_id: 'seed-a', text: 'hi a' });
    assert.deepEqual(await a.next((f) => typeof f === 'object' && f.sender_id === 'seed-b'), {
      sender_id: 'seed-b',
      receiver_id: 'seed-a',
      text: 'hi a',
    });
    a.send('ping');
    await a.next((f) => f === 'pong');
  });

  test('impersonation is rejected and nothing reaches the receiver', async (t) => {
    const mallory = await TestClient.connect(t, n1.wsUrl('imp-mallory'));
    const bob = await TestClient.connect(t, n1.wsUrl('imp-bob'));
    mallory.send({ sender_id: 'imp-alice', receiver_id: 'imp-bob', text: 'I am alice', cid: 'fake' });
    // The refused frame had a cid field, but identity is checked before anything else: no cid echo needed.
    const err = await mallory.next((f) => typeof f === 'object' && f.type === 'error');
    assert.equal((err as Record<string, unknown>).code, 'PROTO_ERR_FORBIDDEN_SENDER');
    mallory.send({ sender_id: 'imp-mallory', receiver_id: 'imp-bob', text: 'honest' });
    const first = await bob.next(() => true);
    assert.deepEqual(first, { sender_id: 'imp-mallory', receiver_id: 'imp-bob', text: 'honest' });
    assert.equal(bob.frames.length, 1);
  });

  test('a receiver connected nowhere: the ack says offline', async (t) => {
    const alice = await TestClient.connect(t, n1.wsUrl('off-alice'));
    alice.send({ type: 'send', cid: 'o1', to: 'off-nobody', body: 'anyone?' });
    const ack = await alice.reply('o1');
    assert.equal(ack.type, 'ack');
    assert.equal(ack.status, 'offline');
  });

  test('kill -9 of a node: it leaves the others’ presence directory within the heartbeat timeout; other sessions undisturbed', async (t) => {
    const n3 = await startNode(t, { nodeId: 'n3', env: clusterEnv });
    const erin = await TestClient.connect(t, n3.wsUrl('k-erin'));
    const frank = await TestClient.connect(t, n2.wsUrl('k-frank'));
    const grace = await TestClient.connect(t, n1.wsUrl('k-grace'));
    await presenceOn(n1, 'k-erin', ['n3']);
    await presenceOn(n1, 'k-frank', ['n2']);
    n3.child.kill('SIGKILL');
    const killedAt = Date.now();
    await n3.exited;
    await erin.closed;
    await presenceOn(n1, 'k-erin', []);
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed <= HEARTBEAT_TIMEOUT_MS + 1500, `dropped after ${elapsed} ms`);
    // Sessions on the surviving nodes keep chatting.
    assert.equal(frank.ws.readyState, frank.ws.OPEN);
    grace.send({ type: 'send', cid: 'k1', to: 'k-frank', body: 'still here' });
    await frank.next((f) => isMessage(f) && f.body === 'still here');
    assert.equal((await grace.reply('k1')).status, 'accepted');
    // Erin's node died a moment ago: she is reconnecting somewhere, not offline (CHAT_NODE_PRESENCE_GRACE_MS):
    // the message waits in her shard's log for its next owner, which holds it until she arrives.
    grace.send({ type: 'send', cid: 'k2', to: 'k-erin', body: 'gone?' });
    assert.equal((await grace.reply('k2')).status, 'accepted');
  });

  test('records that do not match the schema are skipped and counted; delivery goes on', async (t) => {
    const alice = await TestClient.connect(t, n1.wsUrl('inv-alice'));
    const bob = await TestClient.connect(t, n2.wsUrl('inv-bob'));
    await presenceOn(n1, 'inv-bob', ['n2']);
    const before = await n2.metric('chat_node_bus_consume_errors_total', { reason: 'invalid_record' });
    const producer = kafka.client('inv-producer').producer();
    await producer.connect();
    t.after(() => producer.disconnect());
    const prefix = clusterEnv.CHAT_KAFKA_TOPIC_PREFIX ?? '';
    // Into every shard's partition: n2 reads the ones it owns (inv-bob's among them).
    const invalid = [
      'not json',
      JSON.stringify({ v: 1, id: 'x', origin: 'n9', from: 'a', to: 'inv-bob' }),
      JSON.stringify({ v: 99, future: true }),
    ];
    await producer.send({
      topic: `${prefix}.messages`,
      messages: [0, 1, 2, 3].flatMap((partition) =>
        invalid.map((value) => ({ key: 'inv-bob', value, partition })),
      ),
    });
    await producer.send({ topic: `${prefix}.presence`, messages: [{ key: 'n9/inv-x', value: '{"v":1}' }] });
    await pollUntil(
      async () =>
        (await n2.metric('chat_node_bus_consume_errors_total', { reason: 'invalid_record' })) >= before + 4,
      {
        what: 'invalid records counted',
      },
    );
    alice.send({ type: 'send', cid: 'after-garbage', to: 'inv-bob', body: 'fine' });
    await bob.next((f) => isMessage(f) && f.body === 'fine');
    assert.equal(bob.frames.length, 1, 'nothing from the invalid records reached the receiver');
  });
});
