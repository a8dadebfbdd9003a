// The broker stops mid-test: local delivery goes on, cross-node sends get a retryable error and /readyz
// says not ready; the broker comes back: cross-node delivery resumes without restarting any node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { useOwnKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

test('Kafka down: local delivery continues, remote sends get a retryable error; Kafka back: remote resumes', async (t) => {
  const kafka = await useOwnKafka(t);
  const broker = kafka.broker;
  assert.ok(broker);
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('outage'),
    CHAT_CLUSTER_SHARDS: '2',
    CHAT_NODE_HEARTBEAT_INTERVAL_MS: '300',
    CHAT_NODE_HEARTBEAT_TIMEOUT_MS: '2000',
    CHAT_NODE_BUS_PUBLISH_TIMEOUT_MS: '1500',
  };
  const n1 = await startNode(t, { nodeId: 'o1', env });
  const n2 = await startNode(t, { nodeId: 'o2', env });
  const alice = await TestClient.connect(t, n1.wsUrl('alice'));
  const bob = await TestClient.connect(t, n1.wsUrl('bob'));
  const carol = await TestClient.connect(t, n2.wsUrl('carol'));
  await pollUntil(async () => (await n1.presence('carol')).remoteNodes.includes('o2'), {
    what: 'presence of carol',
  });
  alice.send({ type: 'send', cid: 'before', to: 'carol', body: 'before' });
  await carol.next((f) => isMessage(f) && f.body === 'before');

  const router = await startRouter(t, {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: env.CHAT_KAFKA_TOPIC_PREFIX,
    CHAT_CLUSTER_SHARDS: env.CHAT_CLUSTER_SHARDS,
    CHAT_ROUTER_MEMBER_TIMEOUT_MS: '2000',
    CHAT_ROUTER_PROBE_INTERVAL_MS: '200',
  });
  await pollUntil(async () => (await router.members()).ringSize === 2, { what: 'router ring of two' });

  await broker.stop();
  const stoppedAt = Date.now();

  // Local delivery is untouched.
  alice.send({ type: 'send', cid: 'local-1', to: 'bob', body: 'local while down' });
  await bob.next((f) => isMessage(f) && f.body === 'local while down');
  assert.equal((await alice.reply('local-1')).status, 'delivered');

  // Cross-node sends: a retryable error (once the node has noticed, at once).
  let seq = 0;
  const failure = await pollUntil(
    async () => {
      const cid = `down-${seq++}`;
      alice.send({ type: 'send', cid, to: 'carol', body: cid });
      const reply = await alice.reply(cid, 10_000);
      return reply.type === 'error' ? reply : undefined;
    },
    { timeoutMs: 30_000, what: 'a retryable error for a cross-node send' },
  );
  // A send handed to Kafka just before the node noticed is unconfirmed (it may still arrive); once the
  // node knows, sends are refused at once as not sent.
  assert.ok(
    ['NODE_ERR_BUS_UNAVAILABLE', 'NODE_ERR_BUS_TIMEOUT'].includes(String(failure.code)),
    String(failure.code),
  );
  assert.equal(failure.retryable, true);
  await pollUntil(async () => !(await n1.ready()), { timeoutMs: 20_000, what: '/readyz to say not ready' });
  assert.equal((await fetch(n1.httpUrl('/readyz'))).status, 503);
  assert.equal(await n1.metric('chat_node_ready'), 0);
  // Still local-first while down.
  alice.send({ type: 'send', cid: 'local-2', to: 'bob', body: 'local still' });
  assert.equal((await alice.reply('local-2')).status, 'delivered');

  // Past every heartbeat timeout (2 s), nobody expires because of the outage itself: carol is still
  // "elsewhere" (retryable error, not "offline"), and the router, whose heartbeat stream stopped too,
  // keeps both nodes on its ring and still places new connections.
  await pollUntil(() => Date.now() - stoppedAt > 4000, { what: 'the heartbeat timeouts to pass' });
  alice.send({ type: 'send', cid: 'late', to: 'carol', body: 'late' });
  assert.equal((await alice.reply('late')).code, 'NODE_ERR_BUS_UNAVAILABLE');
  assert.equal((await router.members()).ringSize, 2);
  const dave = await TestClient.connect(t, router.wsUrl('dave'));
  dave.send('ping');
  await dave.next((f) => f === 'pong');

  await broker.restart();

  await pollUntil(async () => (await n1.ready()) && (await n2.ready()), {
    timeoutMs: 60_000,
    what: 'both nodes ready again',
  });
  const resumed = await pollUntil(
    async () => {
      const cid = `up-${seq++}`;
      alice.send({ type: 'send', cid, to: 'carol', body: cid });
      const reply = await alice.reply(cid, 10_000);
      return reply.type === 'ack' ? { cid, reply } : undefined;
    },
    { timeoutMs: 60_000, what: 'cross-node sends accepted again' },
  );
  assert.equal(resumed.reply.status, 'accepted');
  await carol.next((f) => isMessage(f) && f.body === resumed.cid, 30_000);
  // No node was restarted.
  assert.equal(n1.child.exitCode, null);
  assert.equal(n2.child.exitCode, null);
  assert.ok(alice.ofType('error').length > 0);
});
