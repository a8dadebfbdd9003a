// Drains and a restarted router, with real processes (3 nodes, a router) on a real Kafka broker: a
// restarted router is ready only with its whole view and moves nobody it placed; an admin drain and a
// SIGTERM close every session of the node from the node itself (4002 / 4001, spread over its window),
// and the router cuts none of them.
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { TestClient } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { QUICK_NODE_ENV, QUICK_ROUTER_ENV } from '../harness/quick-membership.js';

const SHARDS = 32;
const DRAIN_WINDOW_MS = 2000;

interface Closed {
  code: number;
  reason: string;
  at: number;
}

/** Connects through the router, again while it answers 502/503 (not ready, owner not reachable yet). */
function connectWithRetry(t: TestContext, url: string, timeoutMs = 30_000): Promise<TestClient> {
  return pollUntil(() => TestClient.connect(t, url), { timeoutMs, intervalMs: 100, what: `connect ${url}` });
}

/** The close of `client`, with when it arrived. */
const closeOf = (client: TestClient): Promise<Closed> =>
  client.closed.then((c) => ({ ...c, at: Date.now() }));

describe('drains and router restarts on Kafka membership', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  const nodes = new Map<string, NodeProcess>();
  let routerEnv: Record<string, string>;
  let router: RouterProcess;

  /** Every connection cut by `r` itself, whatever the reason. */
  const cuts = (r: RouterProcess) => r.metric('chat_router_connections_cut_total');

  /** Asserts each user has exactly one session, on the node that owns its shard in `r`'s table. */
  async function onTheirOwners(r: RouterProcess, users: string[]): Promise<void> {
    const owners = await r.lookup(users);
    for (const [i, user] of users.entries()) {
      const owner = nodes.get(owners[i] ?? '');
      assert.ok(owner, `${user} has an owner`);
      await pollUntil(async () => (await owner.presence(user)).localSessions === 1, {
        what: `${user} on ${owner.nodeId}`,
      });
    }
  }

  before(async () => {
    const kafka = await useKafka(cleanup);
    const common = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('drain'),
      CHAT_CLUSTER_SHARDS: String(SHARDS),
    };
    const nodeEnv = {
      ...common,
      ...QUICK_NODE_ENV,
      CHAT_NODE_DRAIN_WINDOW_MS: String(DRAIN_WINDOW_MS),
    };
    routerEnv = {
      ...common,
      ...QUICK_ROUTER_ENV,
      CHAT_ROUTER_MIGRATION_WINDOW_MS: '1000',
    };
    for (const id of ['n1', 'n2', 'n3'])
      nodes.set(id, await startNode(cleanup, { nodeId: id, env: nodeEnv }));
    router = await startRouter(cleanup, routerEnv, 'router-1');
    await router.waitRing(['n1', 'n2', 'n3']);
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('router kill -9 and restart: /readyz is 200 only with all 3 nodes in its table; nobody it places moves', async (t) => {
    const users = Array.from({ length: 30 }, (_, i) => `restart-${i}`);
    const before = await Promise.all(users.map((u) => TestClient.connect(t, router.wsUrl(u))));
    router.child.kill('SIGKILL');
    await router.exited;
    await Promise.all(before.map((c) => c.closed));

    const restarted = await startRouter(cleanup, routerEnv, 'router-2');
    router = restarted;
    // From the moment it listens: every /readyz answer, and clients connecting as soon as it lets them.
    const answers: { status: number; ringSize: number; reason: string | undefined }[] = [];
    let firstReadyChanges: number | undefined;
    const watching = pollUntil(
      async () => {
        const res = await fetch(restarted.httpUrl('/readyz'));
        const body = (await res.json()) as { ringSize: number; reason?: string };
        answers.push({ status: res.status, ringSize: body.ringSize, reason: body.reason });
        if (res.status !== 200) return false;
        firstReadyChanges ??= await restarted.metric('chat_router_ring_changes_total');
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 5, what: 'the restarted router ready' },
    );
    const clients = await Promise.all(users.map((u) => connectWithRetry(t, restarted.wsUrl(u))));
    await watching;
    const notReady = answers.filter((a) => a.status !== 200);
    t.diagnostic(
      `/readyz answered 503 ${notReady.length} times (${[...new Set(notReady.map((a) => a.reason))].join(', ')}) before 200`,
    );
    for (const a of answers.filter((x) => x.status === 200))
      assert.equal(a.ringSize, 3, 'ready with 3 nodes');
    assert.equal(await restarted.metric('chat_router_ring_members'), 3);
    // Everyone is on their owner, and the table has not changed since it turned ready: nobody moves.
    await onTheirOwners(restarted, users);
    assert.equal(await restarted.metric('chat_router_ring_changes_total'), firstReadyChanges);
    assert.equal(await restarted.metric('chat_router_migrations_total'), 0, 'no connection migrated');
    for (const c of clients) assert.equal(c.ws.readyState, c.ws.OPEN);
    const refusedEarly = await restarted.metric('chat_router_upgrades_total', { result: 'not_ready' });
    t.diagnostic(`upgrades refused before the view settled: ${refusedEarly}`);
    for (const c of clients) await c.close();
  });

  test('admin drain: the node closes its sessions with 4002, they reconnect to the new owners, none cut', async (t) => {
    const users = await router.usersOn('n3', 20, 'admin');
    const clients = await Promise.all(users.map((u) => TestClient.connect(t, router.wsUrl(u))));
    const closes = clients.map(closeOf);
    const cutBefore = await cuts(router);
    const started = Date.now();
    const res = await router.admin('/nodes/n3/drain', { method: 'POST' });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { nodeTold: boolean }).nodeTold, true);
    const closed = await Promise.all(closes);
    for (const c of closed) {
      assert.equal(c.code, 4002, 'closed by the node, not cut');
      assert.match(c.reason, /^moved retry_after_ms=\d+$/);
    }
    const times = closed.map((c) => c.at - started).sort((a, b) => a - b);
    t.diagnostic(`admin drain: closes from ${times[0]} ms to ${times.at(-1)} ms after the drain request`);
    assert.ok((times.at(-1) ?? 0) - (times[0] ?? 0) >= DRAIN_WINDOW_MS / 2, 'spread over the window');
    await router.waitRing(['n1', 'n2']);
    const back = await Promise.all(users.map((u) => connectWithRetry(t, router.wsUrl(u))));
    await onTheirOwners(router, users);
    assert.equal(await nodes.get('n3')?.metric('chat_node_connections'), 0);
    assert.equal(await cuts(router), cutBefore, 'the router cut none');
    assert.ok((await router.metric('chat_router_migrations_total', { result: 'draining' })) >= users.length);
    for (const c of back) await c.close();
    await router.admin('/nodes/n3/undrain', { method: 'POST' });
    await router.waitRing(['n1', 'n2', 'n3']);
  });

  test('SIGTERM on a node: every client gets 4001 (none 1006), spread over the window; the node exits 0', async (t) => {
    const users = await router.usersOn('n2', 30, 'sigterm');
    const clients = await Promise.all(users.map((u) => TestClient.connect(t, router.wsUrl(u))));
    const closes = clients.map(closeOf);
    const cutBefore = await cuts(router);
    const n2 = nodes.get('n2');
    assert.ok(n2);
    const started = Date.now();
    n2.child.kill('SIGTERM');
    const closed = await Promise.all(closes);
    const codes = new Map<number, number>();
    for (const c of closed) codes.set(c.code, (codes.get(c.code) ?? 0) + 1);
    assert.deepEqual([...codes], [[4001, users.length]], 'every client closed by the node with 4001');
    for (const c of closed) assert.match(c.reason, /^draining retry_after_ms=\d+$/);
    const exit = await n2.exited;
    const exitedAfter = Date.now() - started;
    const times = closed.map((c) => c.at - started).sort((a, b) => a - b);
    t.diagnostic(
      `SIGTERM: first close ${times[0]} ms, last ${times.at(-1)} ms after the signal; exit ${exit.code} after ${exitedAfter} ms`,
    );
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok((times.at(-1) ?? 0) - (times[0] ?? 0) >= DRAIN_WINDOW_MS / 2, 'spread over the window');
    assert.ok(exitedAfter >= DRAIN_WINDOW_MS, `took the window (${exitedAfter} ms)`);
    assert.equal(await cuts(router), cutBefore, 'the router cut none');
    // They come back on the others.
    await router.waitRing(['n1', 'n3']);
    nodes.delete('n2');
    const back = await Promise.all(users.map((u) => connectWithRetry(t, router.wsUrl(u))));
    await onTheirOwners(router, users);
    for (const c of back) await c.close();
  });
});
