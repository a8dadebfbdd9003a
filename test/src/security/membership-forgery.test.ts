// Authentic membership (issue 15, item 3). The attack: anyone who could write to Kafka published one
// unauthenticated heartbeat for a fake member with weight 1000; every router put it in its ring and proxied
// users to it with their bearer tokens. Here a test producer writes straight to the members topic of a
// real node and router: an unsigned heartbeat (weight 1000), one signed with another secret, and an
// unsigned tombstone for the real node. None of them changes a router's members or a node's owner table;
// each is counted on both. A heartbeat signed with the cluster secret (the control) does get in, and a
// copy of one of the real node's own earlier heartbeats, written again, is ignored as stale.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { OwnerTable, RecordMac, topicNames, type MemberHeartbeat } from '@chat/shared';
import { TEST_CLUSTER_SECRET, startNode } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const SHARDS = 8;

test('forged heartbeats and tombstones on the members topic change no ring and are counted', async (t) => {
  const kafka = await useKafka(t);
  const prefix = kafka.uniqueName('forge');
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: prefix,
    CHAT_CLUSTER_SHARDS: String(SHARDS),
  };
  const node = await startNode(t, { nodeId: 'n1', env });
  const router = await startRouter(t, env);
  await pollUntil(async () => (await router.members()).members.some((m) => m.id === 'n1' && m.inRing), {
    timeoutMs: 20_000,
    what: 'n1 in the router ring',
  });

  // Where the fake members point: it would get probes (and then users with their tokens) if admitted.
  const calls: string[] = [];
  const fake = createServer((req, res) => {
    calls.push(`${req.method ?? ''} ${req.url ?? ''}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ready: true, accepting: true, draining: false, bus: true, nodeId: 'friend' }));
  });
  await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => fake.close(() => resolve())));
  const fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;

  const topic = topicNames(prefix).members;
  const beat = (id: string, weight: number): string =>
    JSON.stringify({
      v: 1,
      id,
      url: fakeUrl,
      weight,
      state: 'active',
      epoch: 'forged',
      ts: Date.now(),
      intervalMs: 1000,
    } satisfies MemberHeartbeat);
  const producer = kafka.client('forger').producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const stranger = new RecordMac({ secret: 'not-the-cluster-secret-0123456789abcdef' });
  const cluster = new RecordMac({ secret: TEST_CLUSTER_SECRET });
  const evil2 = beat('evil2', 1000);
  await producer.send({
    topic,
    messages: [
      { key: 'evil', value: beat('evil', 1000) },
      { key: 'evil2', value: evil2, headers: stranger.sign(topic, 'evil2', evil2) },
      { key: 'n1', value: null },
    ],
  });
  // The control, after the forgeries on the same partition: once it is in, they were all read.
  const friend = beat('friend', 1);
  await producer.send({
    topic,
    messages: [{ key: 'friend', value: friend, headers: cluster.sign(topic, 'friend', friend) }],
  });

  await pollUntil(async () => (await router.members()).members.some((m) => m.id === 'friend'), {
    timeoutMs: 20_000,
    what: 'the signed control member in the router',
  });
  const { members } = await router.members();
  assert.deepEqual(
    members.map((m) => m.id).sort(),
    ['friend', 'n1'],
    'the unsigned member, the one signed with another secret and the forged tombstone changed nothing',
  );
  assert.ok(members.find((m) => m.id === 'n1')?.inRing, 'n1 is still in the ring');
  assert.equal(await router.metric('chat_router_member_records_ignored_total', { reason: 'unsigned' }), 2);
  assert.equal(
    await router.metric('chat_router_member_records_ignored_total', { reason: 'bad_signature' }),
    1,
  );
  assert.ok(
    calls.every((c) => c.startsWith('GET /readyz')),
    `only probes reached the fake member: ${calls.join()}`,
  );

  // The node reads the members topic on its own: the same records are ignored and counted there.
  await pollUntil(
    async () =>
      (await node.metric('chat_node_bus_records_ignored_total', {
        kind: 'heartbeat',
        reason: 'unsigned',
      })) === 2 &&
      (await node.metric('chat_node_bus_records_ignored_total', {
        kind: 'heartbeat',
        reason: 'bad_signature',
      })) === 1,
    { timeoutMs: 20_000, what: 'the node counting the forgeries' },
  );
  const readyz = (await (await fetch(node.httpUrl('/readyz'))).json()) as { ownerTableVersion?: string };
  const tableOf = (...ids: string[]) =>
    new OwnerTable(
      ids.map((id) => ({ id, weight: 1 })),
      SHARDS,
    ).version;
  // The control expires after its heartbeat timeout (it beats once): either table is right, none with evil.
  assert.ok(
    [tableOf('n1'), tableOf('friend', 'n1')].includes(readyz.ownerTableVersion ?? ''),
    `the node's owner table ${readyz.ownerTableVersion ?? '?'} is n1's (or n1 and the control's)`,
  );
  assert.equal(await node.ready(), true, 'the forged tombstone did not take n1 out of its own table');

  // A replay: n1's own first heartbeat, signed by n1, copied from the topic and written again once n1 has
  // written newer ones. It is ignored as stale by both (it would bring back whatever n1 said then).
  const copies: { value: Buffer | null; headers: Record<string, Buffer | string> }[] = [];
  const consumer = kafka.client('replayer').consumer({ groupId: kafka.uniqueName('replayer') });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: ({ message }) => {
      if (message.key?.toString() === 'n1' && message.value)
        copies.push({ value: message.value, headers: message.headers as Record<string, Buffer> });
      return Promise.resolve();
    },
  });
  await pollUntil(() => copies.length >= 2, { timeoutMs: 20_000, what: 'two heartbeats of n1' });
  await consumer.stop();
  const [first] = copies;
  assert.ok(first);
  await producer.send({ topic, messages: [{ key: 'n1', value: first.value, headers: first.headers }] });
  await pollUntil(
    async () =>
      (await router.metric('chat_router_member_records_ignored_total', { reason: 'stale' })) >= 1 &&
      (await node.metric('chat_node_bus_records_ignored_total', { kind: 'heartbeat', reason: 'stale' })) >= 1,
    { timeoutMs: 20_000, what: 'the replayed heartbeat counted as stale by the router and the node' },
  );
  assert.ok((await router.members()).members.find((m) => m.id === 'n1')?.inRing);
});
