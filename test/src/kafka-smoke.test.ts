// kafkajs against the real Apache Kafka 4.x broker: the properties the chat bus relies on.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Consumer, KafkaMessage } from 'kafkajs';
import { useKafka, type KafkaFixture } from './kafka/harness.js';
import { pollUntil } from './poll.js';

interface Received {
  readonly partition: number;
  readonly key: string;
  readonly value: string;
}

describe('kafkajs against a real Kafka broker', () => {
  let kafka: KafkaFixture;
  const cleanups: (() => unknown)[] = [];
  before(async () => {
    kafka = await useKafka({ after: (fn) => cleanups.push(fn) });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  /** Starts a consumer in `groupId` on `topic` that records what it receives and its assignments. */
  async function consume(topic: string, groupId: string, t: { after: (fn: () => unknown) => void }) {
    const consumer: Consumer = kafka.client(kafka.uniqueName('smoke')).consumer({
      groupId,
      heartbeatInterval: 300,
      sessionTimeout: 6000,
      rebalanceTimeout: 10_000,
    });
    const received: Received[] = [];
    let assigned: number[] = [];
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      assigned = [...(e.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b);
    });
    t.after(() => consumer.disconnect());
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }: { partition: number; message: KafkaMessage }) => {
        received.push({
          partition,
          key: message.key?.toString() ?? '',
          value: message.value?.toString() ?? '',
        });
        return Promise.resolve();
      },
    });
    return { received, assigned: () => assigned };
  }

  async function produce(topic: string, count: number, keys: number): Promise<void> {
    const producer = kafka.client(kafka.uniqueName('producer')).producer({ idempotent: true });
    await producer.connect();
    try {
      const messages = Array.from({ length: count }, (_, i) => ({ key: `user-${i % keys}`, value: `m${i}` }));
      await producer.send({ topic, acks: -1, messages });
    } finally {
      await producer.disconnect();
    }
  }

  test('topic creation: the topic exists with the partitions asked for', async () => {
    const topic = await kafka.createTopic('smoke-create', 4);
    const admin = kafka.client('smoke-admin').admin();
    await admin.connect();
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      assert.equal(topics[0]?.name, topic);
      assert.deepEqual(topics[0]?.partitions.map((p) => p.partitionId).sort(), [0, 1, 2, 3]);
    } finally {
      await admin.disconnect();
    }
  });

  test('keyed partitioning: every record of one key lands in one partition, keys spread over all', async (t) => {
    const topic = await kafka.createTopic('smoke-keys', 4);
    const group = await consume(topic, kafka.uniqueName('g'), t);
    await produce(topic, 400, 40);
    await pollUntil(() => group.received.length >= 400, { timeoutMs: 30_000, what: '400 records' });
    const partitionOfKey = new Map<string, Set<number>>();
    for (const r of group.received) {
      const set = partitionOfKey.get(r.key) ?? new Set<number>();
      set.add(r.partition);
      partitionOfKey.set(r.key, set);
    }
    assert.equal(partitionOfKey.size, 40);
    for (const [key, partitions] of partitionOfKey)
      assert.equal(partitions.size, 1, `${key} spread over partitions`);
    assert.equal(new Set(group.received.map((r) => r.partition)).size, 4);
    // Per key, records arrive in the order they were produced.
    for (const key of partitionOfKey.keys()) {
      const order = group.received.filter((r) => r.key === key).map((r) => Number(r.value.slice(1)));
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
      );
    }
  });

  test('two consumer groups each receive every record', async (t) => {
    const topic = await kafka.createTopic('smoke-groups', 3);
    const a = await consume(topic, kafka.uniqueName('group-a'), t);
    const b = await consume(topic, kafka.uniqueName('group-b'), t);
    await produce(topic, 300, 30);
    await pollUntil(() => a.received.length >= 300 && b.received.length >= 300, {
      timeoutMs: 30_000,
      what: 'both groups to receive 300 records',
    });
    const values = (rs: Received[]) => rs.map((r) => r.value).sort();
    const expected = Array.from({ length: 300 }, (_, i) => `m${i}`).sort();
    assert.deepEqual(values(a.received), expected);
    assert.deepEqual(values(b.received), expected);
  });

  test('one group splits the partitions between its two members', async (t) => {
    const topic = await kafka.createTopic('smoke-split', 4);
    const groupId = kafka.uniqueName('group-split');
    const first = await consume(topic, groupId, t);
    const second = await consume(topic, groupId, t);
    // Wait for the rebalance that gives each member a disjoint half of the partitions.
    await pollUntil(
      () => {
        const x = first.assigned();
        const y = second.assigned();
        return x.length > 0 && y.length > 0 && new Set([...x, ...y]).size === 4 && x.length + y.length === 4;
      },
      { timeoutMs: 30_000, what: 'partitions split between two members' },
    );
    await produce(topic, 400, 40);
    await pollUntil(() => first.received.length + second.received.length >= 400, {
      timeoutMs: 30_000,
      what: '400 records across the group',
    });
    assert.ok(first.received.length > 0 && second.received.length > 0);
    for (const r of first.received) assert.ok(first.assigned().includes(r.partition));
    for (const r of second.received) assert.ok(second.assigned().includes(r.partition));
    const all = [...first.received, ...second.received].map((r) => r.value);
    assert.equal(new Set(all).size, 400, 'every record exactly once in the group');
    assert.equal(all.length, 400);
  });
});
