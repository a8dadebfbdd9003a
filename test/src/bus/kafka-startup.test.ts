// Start-up races on Kafka: a freshly started broker has no group coordinator yet and a topic created a
// moment ago has no leader everywhere yet, so the first requests fail with retryable errors. Nodes and
// routers retry every start step until their start timeout, and a normal start logs nothing at error level.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { useKafka, useOwnKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

/** Log lines at error level or above (pino labels, or numbers when a formatter is off). */
function errorLines(logFile: string): string[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((line) => /"level":("error"|"fatal"|50|60)/.test(line));
}

test('on a freshly started broker, two nodes and a router started at once all start, with no error lines', async (t) => {
  // A broker of this test's own: one reused across tests has its coordinator loaded and hides the race.
  const kafka = await useOwnKafka(t);
  const prefix = kafka.uniqueName('fresh');
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: prefix,
    CHAT_CLUSTER_SHARDS: '2',
    CHAT_NODE_HEARTBEAT_INTERVAL_MS: '300',
  };
  const [n1, n2, router] = await Promise.all([
    startNode(t, { nodeId: 'f1', env }),
    startNode(t, { nodeId: 'f2', env }),
    startRouter(t, {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: prefix,
      CHAT_CLUSTER_SHARDS: '2',
      CHAT_ROUTER_PROBE_INTERVAL_MS: '200',
    }),
  ]);
  await pollUntil(async () => (await router.members()).ringSize === 2, {
    timeoutMs: 30_000,
    what: 'the router to see both nodes',
  });
  assert.ok(await n1.ready());
  assert.ok(await n2.ready());
  assert.equal((await fetch(router.httpUrl('/readyz'))).status, 200);
  for (const p of [n1, n2, router]) assert.deepEqual(errorLines(p.logFile), [], p.logFile);
});

test('a router started before any node (no topics yet) becomes ready once a node arrives', async (t) => {
  const kafka = await useKafka(t);
  const prefix = kafka.uniqueName('router-first');
  const router = await startRouter(t, {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: prefix,
    CHAT_CLUSTER_SHARDS: '1',
    CHAT_ROUTER_PROBE_INTERVAL_MS: '200',
  });
  // Honest meanwhile: no member, not ready.
  assert.equal((await fetch(router.httpUrl('/readyz'))).status, 503);
  assert.equal((await router.members()).ringSize, 0);
  const node = await startNode(t, {
    nodeId: 'late',
    env: {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: prefix,
      CHAT_CLUSTER_SHARDS: '1',
      CHAT_NODE_HEARTBEAT_INTERVAL_MS: '300',
    },
  });
  await pollUntil(async () => (await fetch(router.httpUrl('/readyz'))).status === 200, {
    timeoutMs: 30_000,
    what: 'the router to become ready',
  });
  assert.deepEqual(
    (await router.members()).members.map((m) => m.id),
    ['late'],
  );
  assert.equal(router.child.exitCode, null);
  for (const p of [node, router]) assert.deepEqual(errorLines(p.logFile), [], p.logFile);
});

test('a node whose CHAT_CLUSTER_SHARDS does not match the messages topic refuses to start (exit 78)', async (t) => {
  const kafka = await useKafka(t);
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('shards-mismatch'),
  };
  await startNode(t, { nodeId: 'm1', env: { ...env, CHAT_CLUSTER_SHARDS: '2' } });
  const started = Date.now();
  await assert.rejects(
    startNode(t, { nodeId: 'm2', env: { ...env, CHAT_CLUSTER_SHARDS: '3' } }),
    (err: Error) => /exited \(78\)/.test(err.message) && /CHAT_CLUSTER_SHARDS=3/.test(err.message),
  );
  assert.ok(Date.now() - started < 30_000, 'refused at once, not retried until the start timeout');
});
