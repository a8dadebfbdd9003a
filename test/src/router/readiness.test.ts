// The router's members replay on a real broker: `replayed` (one half of a router's readiness, see
// router/src/readiness.ts) turns true only once the members topic has been read to the end it had when the
// router started, so the member list is then the cluster's and not a prefix of it.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createLogger, topicNames, type MemberHeartbeat } from '@chat/shared';
import { KafkaMembership, type MemberInfo } from '@chat/router';
import { useKafka, type KafkaFixture } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

const logger = createLogger({ name: 'test', level: 'silent' });

async function createMembersTopic(t: TestContext, kafka: KafkaFixture, prefix: string): Promise<void> {
  const admin = kafka.client('readiness-admin').admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  await admin.createTopics({
    topics: [
      {
        topic: topicNames(prefix).members,
        numPartitions: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ],
    waitForLeaders: true,
  });
}

/**
 * Writes `rounds` heartbeats for each of `count` members (the last round: every 4th draining), then
 * tombstones for the first `gone` of them; returns the members a whole replay must show.
 */
async function writeHeartbeats(
  t: TestContext,
  kafka: KafkaFixture,
  prefix: string,
  { count, rounds, gone }: { count: number; rounds: number; gone: number },
): Promise<MemberInfo[]> {
  const producer = kafka.client('readiness-producer').producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const id = (i: number) => `m${String(i).padStart(3, '0')}`;
  const beat = (i: number, last: boolean): MemberHeartbeat => ({
    v: 1,
    id: id(i),
    url: `http://127.0.0.1:${10_000 + i}`,
    weight: 1,
    state: last && i % 4 === 0 ? 'draining' : 'active',
    epoch: 'e1',
    ts: Date.now(),
    intervalMs: 1000,
  });
  const topic = topicNames(prefix).members;
  for (let round = 0; round < rounds; round++) {
    const messages = Array.from({ length: count }, (_, i) => ({
      key: id(i),
      value: JSON.stringify(beat(i, round === rounds - 1)),
    }));
    await producer.send({ topic, messages });
  }
  await producer.send({
    topic,
    messages: Array.from({ length: gone }, (_, i) => ({ key: id(i), value: null })),
  });
  return Array.from({ length: count }, (_, i) => i)
    .filter((i) => i >= gone)
    .map((i) => {
      const hb = beat(i, true);
      return { id: hb.id, url: hb.url, weight: hb.weight, state: hb.state };
    });
}

/** Starts a KafkaMembership on `prefix`; `lists` gets every member list it reports, with `replayed` then. */
async function follow(t: TestContext, kafka: KafkaFixture, prefix: string) {
  const membership = new KafkaMembership({
    brokers: [kafka.brokers],
    topicPrefix: prefix,
    timeoutMs: 60_000,
    logger,
  });
  const lists: { members: readonly MemberInfo[]; replayed: boolean }[] = [];
  await membership.start((members) => lists.push({ members, replayed: membership.replayed }));
  t.after(() => membership.stop());
  return { membership, lists };
}

test('KafkaMembership: replayed only once the members topic was read to its end, and the view is then whole', async (t) => {
  const kafka = await useKafka(t);
  const prefix = kafka.uniqueName('replay');
  await createMembersTopic(t, kafka, prefix);
  const expected = await writeHeartbeats(t, kafka, prefix, { count: 200, rounds: 15, gone: 20 });
  const { membership, lists } = await follow(t, kafka, prefix);
  await pollUntil(() => membership.replayed, { timeoutMs: 30_000, what: 'replayed' });
  const partial = lists.filter((l) => !l.replayed).length;
  t.diagnostic(`${lists.length} member lists reported, ${partial} of them before the replay ended`);
  assert.deepEqual(
    lists.at(-1)?.members,
    expected,
    'replayed: every member, latest state, tombstones applied',
  );
});

test('KafkaMembership: an empty members topic is replayed at once; a topic created later is followed and replayed', async (t) => {
  const kafka = await useKafka(t);
  const empty = kafka.uniqueName('empty');
  await createMembersTopic(t, kafka, empty);
  const first = await follow(t, kafka, empty);
  assert.equal(first.membership.replayed, true);

  // A router started before any node: no topic, not replayed, until the first node creates it.
  const later = kafka.uniqueName('later');
  const second = await follow(t, kafka, later);
  assert.equal(second.membership.replayed, false);
  await createMembersTopic(t, kafka, later);
  const expected = await writeHeartbeats(t, kafka, later, { count: 3, rounds: 2, gone: 0 });
  await pollUntil(() => second.membership.replayed, { timeoutMs: 30_000, what: 'replayed' });
  await pollUntil(() => JSON.stringify(second.lists.at(-1)?.members) === JSON.stringify(expected), {
    what: 'the three members',
  });
});
