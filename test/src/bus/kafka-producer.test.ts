// The node's Kafka producer against a real broker: coalescing while a request is in flight, order per
// partition, explicit partitions; and with the broker frozen (SIGSTOP) and stopped: every publish answered
// within the publish timeout + 1 s, with an error that says whether it may have been written, health that
// follows the broker within 2 s both ways, and nothing answered "not sent" ever written.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isChatError, createLogger } from '@chat/shared';
import { KafkaProducer } from '../../../node/src/bus/kafka-producer.js';
import { NodeMetrics } from '../../../node/src/metrics.js';
import { useKafka, useOwnKafka, type Cleanup, type KafkaFixture } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

/**
 * Cleanup in reverse order of registration (node:test runs `t.after` hooks in order), so clients
 * disconnect before the broker of this test is stopped: a kafkajs consumer left without its broker
 * keeps restarting, and the file never ends.
 */
function lifo(t: { after(fn: () => unknown): void }): Cleanup {
  const hooks: (() => unknown)[] = [];
  t.after(async () => {
    for (let hook = hooks.pop(); hook; hook = hooks.pop()) await hook();
  });
  return { after: (fn) => void hooks.push(fn) };
}

const quiet = createLogger({ name: 'test', level: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent' });

function producerFor(
  t: Cleanup,
  kafka: KafkaFixture,
  topic: string,
  extra: { publishTimeoutMs?: number; batchMax?: number } = {},
) {
  const metrics = new NodeMetrics({ defaultMetrics: false });
  const health: { healthy: boolean; at: number }[] = [];
  const producer = new KafkaProducer({
    kafka: kafka.client(kafka.uniqueName('producer')),
    messagesTopic: topic,
    publishTimeoutMs: extra.publishTimeoutMs ?? 5000,
    batchMax: extra.batchMax ?? 500,
    metrics,
    logger: quiet,
    onHealthChange: (healthy) => health.push({ healthy, at: performance.now() }),
  });
  t.after(() => producer.stop());
  return { producer, metrics, health };
}

/** Produce requests made so far (each one is observed once in the duration histogram). */
async function requests(metrics: NodeMetrics): Promise<number> {
  const { values } = await metrics.busProduceSeconds.get();
  return values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
}

/** Reads `topic` from the start until `done` says it has everything; returns values per partition. */
async function readAll(
  t: Cleanup,
  kafka: KafkaFixture,
  topic: string,
  done: (byPartition: Map<number, string[]>) => boolean,
): Promise<Map<number, string[]>> {
  const consumer = kafka.client(kafka.uniqueName('reader')).consumer({ groupId: kafka.uniqueName('g') });
  t.after(() => consumer.disconnect());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const byPartition = new Map<number, string[]>();
  await consumer.run({
    eachMessage: ({ partition, message }) => {
      const list = byPartition.get(partition) ?? [];
      list.push(message.value?.toString() ?? '');
      byPartition.set(partition, list);
      return Promise.resolve();
    },
  });
  await pollUntil(() => done(byPartition), { timeoutMs: 30_000, what: `every record of ${topic}` });
  return byPartition;
}

test('what is published while a produce is in flight goes out in one next request; per-partition order and explicit partitions hold', async (t) => {
  const cleanup = lifo(t);
  const kafka = await useKafka(cleanup);
  const topic = await kafka.createTopic('coalesce', 3);
  const { producer, metrics } = producerFor(cleanup, kafka, topic);
  await producer.connect();
  const before = await requests(metrics);

  // The first publish goes out at once (nothing in flight); the next 200, published while it is in
  // flight, wait and go together in the next request. Partitions are explicit: i % 3, not the key's hash.
  const first = producer.publish({ key: 'k', value: 'm0', partition: 0 });
  const rest = Array.from({ length: 200 }, (_, i) =>
    producer.publish({ key: 'k', value: `m${i + 1}`, partition: (i + 1) % 3 }),
  );
  await Promise.all([first, ...rest]);
  assert.equal((await requests(metrics)) - before, 2, 'one request for the first, one for the other 200');

  // The cap: 30 more with batchMax 500 would be one request; with a cap of 10 per request they take
  // at least 3 (the first alone, then the rest 10 at a time).
  const capped = producerFor(cleanup, kafka, topic, { batchMax: 10 });
  await capped.producer.connect();
  const cappedBefore = await requests(capped.metrics);
  await Promise.all(
    Array.from({ length: 31 }, (_, i) =>
      capped.producer.publish({ key: 'k', value: `c${i}`, partition: i % 3 }),
    ),
  );
  assert.equal((await requests(capped.metrics)) - cappedBefore, 4, '1 + 10 + 10 + 10');

  const read = await readAll(
    cleanup,
    kafka,
    topic,
    (m) => [...m.values()].reduce((n, l) => n + l.length, 0) >= 232,
  );
  for (let p = 0; p < 3; p++) {
    const values = read.get(p) ?? [];
    const m = values.filter((v) => v.startsWith('m')).map((v) => Number(v.slice(1)));
    const c = values.filter((v) => v.startsWith('c')).map((v) => Number(v.slice(1)));
    // Each record is on the partition it named, in publish order.
    assert.ok(m.length > 0 && m.every((n) => n % 3 === p), `partition ${p}: ${m.join(',')}`);
    assert.deepEqual(
      m,
      [...m].sort((a, b) => a - b),
      `partition ${p} in order`,
    );
    assert.ok(c.every((n) => n % 3 === p));
    assert.deepEqual(
      c,
      [...c].sort((a, b) => a - b),
    );
  }
});

test('frozen broker: every publish answered within the timeout + 1 s, health follows within 2 s both ways; stopped broker likewise; nothing answered "not sent" is ever written', async (t) => {
  const cleanup = lifo(t);
  const kafka = await useOwnKafka(cleanup);
  const broker = kafka.broker;
  assert.ok(broker?.pid);
  const topic = await kafka.createTopic('frozen', 1);
  const publishTimeoutMs = 2000;
  const { producer, health } = producerFor(cleanup, kafka, topic, { publishTimeoutMs });
  await producer.connect();
  await producer.publish({ key: 'k', value: 'before' });

  type Outcome = { value: string; ms: number; code: string };
  const outcomes: Outcome[] = [];
  const publish = (value: string) => {
    const started = performance.now();
    return producer.publish({ key: 'k', value }).then(
      () => outcomes.push({ value, ms: performance.now() - started, code: 'ok' }),
      (err: unknown) => {
        assert.ok(isChatError(err), String(err));
        outcomes.push({ value, ms: performance.now() - started, code: err.code });
      },
    );
  };

  // Freeze. A publish at once is handed to Kafka and hangs; one more every 50 ms meanwhile.
  const brokerPid = broker.pid;
  process.kill(brokerPid, 'SIGSTOP');
  const frozenAt = performance.now();
  try {
    const pending: Promise<unknown>[] = [];
    let n = 0;
    pending.push(publish(`frozen-${n++}`));
    await pollUntil(
      () => {
        pending.push(publish(`frozen-${n++}`));
        return performance.now() - frozenAt > publishTimeoutMs + 500;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'publishing through the freeze' },
    );
    await Promise.all(pending);
  } finally {
    // Thaw as soon as every answer is in (and whatever failed: a frozen broker's cleanup would hang).
    process.kill(brokerPid, 'SIGCONT');
  }
  const thawedAt = performance.now();
  const unhealthy = health.find((h) => !h.healthy && h.at >= frozenAt);
  assert.ok(unhealthy, 'health went false');
  const detectMs = unhealthy.at - frozenAt;
  const slowest = Math.max(...outcomes.map((o) => o.ms));
  t.diagnostic(`freeze: unhealthy after ${detectMs.toFixed(0)} ms; slowest answer ${slowest.toFixed(0)} ms`);
  t.diagnostic(`freeze answers: ${outcomes.map((o) => `${o.value}=${o.code}@${o.ms.toFixed(0)}`).join(' ')}`);
  assert.ok(detectMs <= 2000, `unhealthy ${detectMs} ms after the freeze`);
  assert.ok(slowest <= publishTimeoutMs + 1000, `slowest answer ${slowest} ms`);
  // The one handed to Kafka: outcome unknown. Everything after the producer knew: not sent, at once.
  assert.equal(outcomes.find((o) => o.value === 'frozen-0')?.code, 'KAFKA_ERR_TIMEOUT');
  assert.ok(outcomes.every((o) => o.code !== 'ok'));
  const notSent = outcomes.filter((o) => o.code === 'KAFKA_ERR_UNAVAILABLE');
  assert.ok(notSent.length > 10, `${notSent.length} fast failures`);
  const afterDetection = outcomes.filter((o) => o.code === 'KAFKA_ERR_UNAVAILABLE' && o.ms < 50);
  assert.ok(afterDetection.length > 0, 'publishes after detection fail fast');

  // Thawed: healthy again within 2 s, and publishing works.
  const back = await pollUntil(() => health.find((h) => h.healthy && h.at >= thawedAt), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'health back after the thaw',
  });
  const recoverMs = back.at - thawedAt;
  t.diagnostic(`thaw: healthy after ${recoverMs.toFixed(0)} ms`);
  assert.ok(recoverMs <= 2000, `healthy ${recoverMs} ms after the thaw`);
  await producer.publish({ key: 'k', value: 'after-thaw' });

  // Stop the broker: unhealthy within 2 s (connection refused), answers within the timeout; restart:
  // healthy within 2 s of the broker answering again.
  const stoppedAt = performance.now();
  await broker.stop();
  const goneAt = performance.now();
  const down = await pollUntil(() => health.find((h) => !h.healthy && h.at >= stoppedAt), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'health false after the stop',
  });
  // The broker answers during its controlled shutdown: counted from when its process was gone.
  t.diagnostic(
    `stop: unhealthy ${(down.at - stoppedAt).toFixed(0)} ms after the shutdown began, ${(down.at - goneAt).toFixed(0)} ms after the process was gone`,
  );
  assert.ok(down.at - goneAt <= 2000);
  const whileDown = performance.now();
  await publish('stopped');
  assert.deepEqual(outcomes.at(-1)?.code, 'KAFKA_ERR_UNAVAILABLE');
  assert.ok(performance.now() - whileDown < 100);
  await broker.restart();
  const restartedAt = performance.now();
  // A restarted broker answers metadata before it leads its partitions again; produces work, and the
  // producer may say healthy, only from then on. Seen from outside by another client:
  const admin = kafka.client(kafka.uniqueName('watch')).admin();
  cleanup.after(() => admin.disconnect());
  await admin.connect();
  const leadersAt = await pollUntil(
    async () => {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      return topics[0]?.partitions.every((p) => p.leader >= 0) && performance.now();
    },
    { timeoutMs: 30_000, intervalMs: 20, what: 'a leader for the topic after the restart' },
  );
  const up = await pollUntil(() => health.find((h) => h.healthy && h.at >= stoppedAt), {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'health back after the restart',
  });
  t.diagnostic(
    `restart: healthy ${(up.at - restartedAt).toFixed(0)} ms after the broker answered, ${(up.at - leadersAt).toFixed(0)} ms after its partition had a leader (${(leadersAt - restartedAt).toFixed(0)} ms after it answered)`,
  );
  assert.ok(up.at - leadersAt <= 2000);
  await producer.publish({ key: 'k', value: 'after-restart' });

  // Read everything back: none of what was answered "not sent" is there; the rest is in order.
  const read = await readAll(cleanup, kafka, topic, (m) => (m.get(0) ?? []).includes('after-restart'));
  const values = read.get(0) ?? [];
  const written = new Set(values);
  for (const o of notSent) assert.ok(!written.has(o.value), `${o.value} was answered not sent but written`);
  assert.ok(!written.has('stopped'));
  assert.deepEqual(
    values.filter((v) => ['before', 'after-thaw', 'after-restart'].includes(v)),
    ['before', 'after-thaw', 'after-restart'],
  );
  t.diagnostic(`written: ${values.join(' ')}`);
});
