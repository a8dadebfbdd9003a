// SIGTERM drains a node: not ready, sessions closed with 4001 and a retry hint, presence withdrawn,
// heartbeat tombstone, exit 0. Bad upgrade requests get real HTTP statuses.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { TestClient } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

describe('chat node lifecycle', () => {
  test('SIGTERM: sessions closed with 4001 spread over the drain window, presence withdrawn, exit 0', async (t) => {
    const kafka = await useKafka(t);
    const env = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('lifecycle'),
      CHAT_CLUSTER_SHARDS: '2',
      CHAT_NODE_HEARTBEAT_INTERVAL_MS: '300',
      CHAT_NODE_DRAIN_WINDOW_MS: '600',
    };
    const stays = await startNode(t, { nodeId: 'stays', env });
    const goes = await startNode(t, { nodeId: 'goes', env });
    const clients = await Promise.all(
      ['u1', 'u2', 'u3', 'u4'].map((u) => TestClient.connect(t, goes.wsUrl(`drain-${u}`))),
    );
    const watcher = await TestClient.connect(t, stays.wsUrl('drain-watcher'));
    await pollUntil(async () => (await stays.presence('drain-u1')).remoteNodes.includes('goes'), {
      what: 'presence of drain-u1',
    });

    const started = Date.now();
    goes.child.kill('SIGTERM');
    const closes = await Promise.all(
      clients.map((c) => c.closed.then((close) => ({ ...close, at: Date.now() }))),
    );
    for (const close of closes) {
      assert.equal(close.code, 4001);
      assert.match(close.reason, /^draining retry_after_ms=\d+$/);
    }
    const spread = Math.max(...closes.map((c) => c.at)) - Math.min(...closes.map((c) => c.at));
    assert.ok(spread >= 300, `closes spread over ${spread} ms, expected about the 600 ms window`);
    const exit = await goes.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - started < 15_000);
    // Its users were withdrawn from presence (tombstones), not left to expire.
    await pollUntil(async () => (await stays.presence('drain-u1')).remoteNodes.length === 0, {
      timeoutMs: 2000,
      what: 'presence withdrawn by the draining node',
    });
    // Gone, but its shard is kept for the grace period (it may be reconnecting): the message is
    // accepted into the shard's log rather than refused as offline.
    watcher.send({ type: 'send', cid: 'w1', to: 'drain-u2', body: 'gone' });
    assert.equal((await watcher.reply('w1')).status, 'accepted');
  });

  test('upgrade requests that are not /chat/{valid user id} get 404 or 400; unknown HTTP paths 404', async (t) => {
    const node = await startNode(t, { nodeId: 'paths' });
    for (const [path, status] of [
      ['/nope', 404],
      ['/chat/', 400],
      ['/chat/a/b', 404],
      ['/chat/a%2Fb', 400],
      ['/chat/bad%20id', 400],
      [`/chat/${'x'.repeat(129)}`, 400],
    ] as const) {
      await assert.rejects(
        TestClient.connect(t, `ws://127.0.0.1:${node.port}${path}`),
        (err: { status?: number }) => err.status === status,
        path,
      );
    }
    assert.equal((await fetch(node.httpUrl('/nope'))).status, 404);
    assert.equal((await fetch(node.httpUrl('/healthz'))).status, 200);
    // The in-process bus (no CHAT_KAFKA_BROKERS) makes a working single node.
    const a = await TestClient.connect(t, node.wsUrl('solo-a'));
    const b = await TestClient.connect(t, node.wsUrl('solo-b'));
    a.send({ type: 'send', cid: 's1', to: 'solo-b', body: 'hi' });
    await b.next((f) => typeof f === 'object' && f.body === 'hi');
    assert.equal((await a.reply('s1')).status, 'delivered');
  });
});

test('nodes started at the same moment on new topics all come up (one creates, the others wait for leaders)', async (t) => {
  const kafka = await useKafka(t);
  const env = {
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('race'),
    CHAT_CLUSTER_SHARDS: '8',
  };
  const nodes = await Promise.all(['r1', 'r2', 'r3'].map((nodeId) => startNode(t, { nodeId, env })));
  for (const n of nodes) assert.equal(await n.ready(), true);
});
