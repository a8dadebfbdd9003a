// Routers and nodes as real processes, membership from the nodes' heartbeats on a real Kafka broker:
// placement on the owner table that shared/ computes, rebalancing by moved shards when a node joins,
// identical placement through two routers, drain, and kill -9 failover.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { OwnerTable, shardOf } from '@chat/shared';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { QUICK_NODE_ENV, QUICK_ROUTER_ENV } from '../harness/quick-membership.js';

const MIGRATION_WINDOW_MS = 1000;
const SHARDS = 32;

/** The owner table routers and nodes must compute for these equal-weight members. */
const tableOf = (...ids: string[]) =>
  new OwnerTable(
    ids.map((id) => ({ id, weight: 1 })),
    SHARDS,
  );

describe('router cluster on Kafka membership', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  const nodes = new Map<string, NodeProcess>();
  let nodeEnv: Record<string, string>;
  let routerEnv: Record<string, string>;
  let routerA: RouterProcess;
  let routerB: RouterProcess;

  async function addNode(id: string): Promise<NodeProcess> {
    const node = await startNode(cleanup, { nodeId: id, env: nodeEnv });
    nodes.set(id, node);
    return node;
  }

  /** Every shard's owner as `router` says (GET /shards), and its owner table version. */
  async function shardsOf(router: RouterProcess): Promise<{ version: string; owners: (string | null)[] }> {
    const body = (await (await router.admin('/shards')).json()) as {
      ownerTableVersion: string;
      shards: { shard: number; owner: string | null }[];
    };
    return { version: body.ownerTableVersion, owners: body.shards.map((x) => x.owner) };
  }

  /**
   * Asserts that `router` places every shard as shared/'s OwnerTable does for `table`'s members, and that
   * every node reads its shards by the same table (the version on its /readyz; nodes build theirs from
   * the heartbeats, so they are polled until they caught up).
   */
  async function agrees(router: RouterProcess, table: OwnerTable): Promise<void> {
    // Each router follows the heartbeats and its probes on its own: wait until it has these members.
    await pollUntil(async () => (await shardsOf(router)).version === table.version, {
      timeoutMs: 20_000,
      what: `the router on table ${table.version}`,
    }).catch(() => undefined);
    const { version, owners } = await shardsOf(router);
    assert.equal(version, table.version);
    assert.deepEqual(
      owners,
      Array.from({ length: SHARDS }, (_, shard) => table.ownerOf(shard)),
    );
    for (const member of table.members) {
      const node = nodes.get(member.id);
      if (!node) continue;
      await pollUntil(
        async () => {
          const res = await fetch(node.httpUrl('/readyz'));
          const body = (await res.json()) as { ownerTableVersion?: string; shardsOwned?: number };
          return (
            body.ownerTableVersion === table.version && body.shardsOwned === table.shardsOf(member.id).length
          );
        },
        { timeoutMs: 10_000, what: `${member.id} reading its shards by table ${table.version}` },
      );
    }
  }

  before(async () => {
    const kafka = await useKafka(cleanup);
    const common = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('routing'),
      CHAT_CLUSTER_SHARDS: String(SHARDS),
    };
    nodeEnv = { ...common, ...QUICK_NODE_ENV };
    routerEnv = {
      ...common,
      ...QUICK_ROUTER_ENV,
      CHAT_ROUTER_MIGRATION_WINDOW_MS: String(MIGRATION_WINDOW_MS),
      CHAT_ROUTER_AFFINITY_QUERY: 'true',
      // 400 clients connect from one address within a second here.
    };
    await addNode('n1');
    await Promise.all([addNode('n2'), addNode('n3')]);
    [routerA, routerB] = await Promise.all([
      startRouter(cleanup, routerEnv, 'router-a'),
      startRouter(cleanup, routerEnv, 'router-b'),
    ]);
    await routerA.waitRing(['n1', 'n2', 'n3']);
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('adding a 4th node moves about 1/4 of the shards and exactly their connections (4002)', async (t) => {
    const three = tableOf('n1', 'n2', 'n3');
    const four = tableOf('n1', 'n2', 'n3', 'n4');
    await agrees(routerA, three);
    await agrees(routerB, three);
    const users = Array.from({ length: 400 }, (_, i) => `mig-${i}`);
    const before = await routerA.lookup(users);
    assert.deepEqual(
      before,
      users.map((u) => three.ownerOfKey(u)),
    );
    const clients = new Map<string, TestClient>();
    for (const u of users) clients.set(u, await TestClient.connect(t, routerA.wsUrl(u)));
    await pollUntil(async () => (await routerA.metric('chat_router_proxied_connections')) === 400, {
      what: '400 proxied',
    });

    await addNode('n4');
    await routerA.waitRing(['n1', 'n2', 'n3', 'n4']);
    await agrees(routerA, four);
    const movedShards = three.movedTo(four);
    assert.ok(
      movedShards.length >= SHARDS / 4 && movedShards.length <= 1.35 * (SHARDS / 4),
      `moved ${movedShards.length} of ${SHARDS} shards`,
    );
    const afterOwners = await routerA.lookup(users);
    const moved = new Set(users.filter((u) => movedShards.includes(shardOf(u, SHARDS))));
    assert.deepEqual(
      users.filter((_, i) => before[i] !== afterOwners[i]),
      [...moved],
      'a key changes owner exactly when its shard moved',
    );
    assert.ok(moved.size >= 0.6 * 100 && moved.size <= 1.6 * 100, `moved ${moved.size} of 400`);
    t.diagnostic(
      `adding n4 moved ${movedShards.length} of ${SHARDS} shards, ${moved.size} of 400 connections`,
    );

    const closes = await Promise.all(
      [...moved].map(async (u) => {
        const client = clients.get(u);
        assert.ok(client);
        return client.closed;
      }),
    );
    for (const c of closes) {
      assert.equal(c.code, 4002);
      assert.match(c.reason, /^moved retry_after_ms=\d+$/);
    }
    // Everyone else is left alone: still open once the window (and the forced-cut grace) has passed.
    await pollUntil(
      async () => (await routerA.metric('chat_router_proxied_connections')) === 400 - moved.size,
      {
        what: 'only the moved connections closed',
      },
    );
    for (const [u, client] of clients) {
      if (!moved.has(u)) assert.equal(client.ws.readyState, client.ws.OPEN, `${u} was disturbed`);
    }
    assert.equal(await routerA.metric('chat_router_migrations_total', { result: 'asked' }), moved.size);
    // The moved clients come back through the router and land on their shard's new owner.
    const sample = [...moved].slice(0, 10);
    for (const u of sample) clients.set(u, await TestClient.connect(t, routerA.wsUrl(u)));
    for (const u of sample) {
      const owner = nodes.get(four.ownerOfKey(u) ?? '');
      assert.ok(owner);
      assert.equal((await owner.presence(u)).localSessions, 1, `${u} not on ${owner.nodeId}`);
    }
    await routerB.waitRing(['n1', 'n2', 'n3', 'n4']);
    await agrees(routerB, four);
    for (const client of clients.values()) await client.close();
  });

  test('two independent routers place every key identically; 10,000 keys over 4 equal nodes within ±15%', async (t) => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `team-${i}`);
    const [a, b] = await Promise.all([routerA.lookup(keys), routerB.lookup(keys)]);
    assert.deepEqual(a, b);
    assert.deepEqual(await shardsOf(routerA), await shardsOf(routerB));
    const counts = new Map<string, number>();
    for (const n of a) counts.set(String(n), (counts.get(String(n)) ?? 0) + 1);
    assert.deepEqual([...counts.keys()].sort(), ['n1', 'n2', 'n3', 'n4']);
    for (const [node, count] of counts) assert.ok(count >= 2125 && count <= 2875, `${node}: ${count}`);
    t.diagnostic(`10,000 keys: ${[...counts].map(([n, c]) => `${n}=${c}`).join(' ')}`);

    // Real connections: one user's devices through different routers meet on one node, and a team
    // (affinity query parameter) shares a node whatever the user ids.
    for (let i = 0; i < 8; i++) {
      const user = `dev-${i}`;
      await TestClient.connect(t, routerA.wsUrl(user));
      await TestClient.connect(t, routerB.wsUrl(user));
      const owner = nodes.get((await routerA.lookup([user]))[0] ?? '');
      assert.ok(owner);
      assert.equal((await owner.presence(user)).localSessions, 2, `${user} split across nodes`);
    }
    const teamOwner = (await routerA.lookup(['team-blue']))[0] ?? '';
    for (const [i, router] of [routerA, routerB, routerA].entries()) {
      await TestClient.connect(t, router.wsUrl(`blue-${i}`, 'affinity=team-blue'));
      assert.equal((await nodes.get(teamOwner)?.presence(`blue-${i}`))?.localSessions, 1);
    }
  });

  test('draining a node moves its sessions elsewhere and they keep chatting', async (t) => {
    const users = Array.from({ length: 60 }, (_, i) => `drain-${i}`);
    const owners = await routerA.lookup(users);
    const full = tableOf('n1', 'n2', 'n3', 'n4');
    const drained = tableOf('n1', 'n3', 'n4');
    assert.deepEqual(
      owners,
      users.map((u) => full.ownerOfKey(u)),
    );
    const onN2 = users.filter((_, i) => owners[i] === 'n2');
    // A peer whose shard keeps its owner (the quotas may move a few shards between the others too).
    const elsewhere =
      users.find((u) => full.ownerOfKey(u) !== 'n2' && full.ownerOfKey(u) === drained.ownerOfKey(u)) ?? '';
    assert.ok(onN2.length > 5 && elsewhere);
    const clients = await Promise.all(onN2.map((u) => TestClient.connect(t, routerA.wsUrl(u))));
    const peer = await TestClient.connect(t, routerA.wsUrl(elsewhere));

    const res = await routerA.admin('/nodes/n2/drain', { method: 'POST' });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { nodeTold: boolean }).nodeTold, true);
    // Both routers drop it: the node's heartbeat says draining.
    await routerA.waitRing(['n1', 'n3', 'n4']);
    await routerB.waitRing(['n1', 'n3', 'n4']);
    await agrees(routerA, drained);
    await agrees(routerB, drained);
    for (const c of await Promise.all(clients.map((c) => c.closed))) assert.equal(c.code, 4002);

    const back = await Promise.all(onN2.map((u) => TestClient.connect(t, routerA.wsUrl(u))));
    assert.equal((await nodes.get('n2')?.metric('chat_node_connections')) ?? -1, 0);
    for (const [i, client] of back.entries()) {
      peer.send({ type: 'send', cid: `p${i}`, to: onN2[i] ?? '', body: `after drain ${i}` });
      await client.next((f) => isMessage(f) && f.body === `after drain ${i}`);
      client.send({ type: 'send', cid: `r${i}`, to: elsewhere, body: `reply ${i}` });
      await peer.next((f) => isMessage(f) && f.body === `reply ${i}`);
    }
    assert.equal((await routerA.admin('/nodes/nope/drain', { method: 'POST' })).status, 404);
    await routerA.admin('/nodes/n2/undrain', { method: 'POST' });
    await routerA.waitRing(['n1', 'n2', 'n3', 'n4']);
  });

  test('kill -9 of a node: new upgrades avoid it within 3 s; sessions on other nodes undisturbed', async (t) => {
    const users = Array.from({ length: 40 }, (_, i) => `kill-${i}`);
    const owners = await routerA.lookup(users);
    const without = tableOf('n1', 'n2', 'n4');
    const victimUser = users.find((_, i) => owners[i] === 'n3') ?? '';
    // Sessions whose shard keeps its owner when n3 goes (the quotas may move a few others too).
    const survivors = users
      .filter((u, i) => owners[i] !== 'n3' && without.ownerOfKey(u) === owners[i])
      .slice(0, 6);
    assert.ok(victimUser && survivors.length === 6);
    const victim = await TestClient.connect(t, routerA.wsUrl(victimUser));
    const others = await Promise.all(survivors.map((u) => TestClient.connect(t, routerA.wsUrl(u))));

    const n3 = nodes.get('n3');
    assert.ok(n3);
    n3.child.kill('SIGKILL');
    const killedAt = Date.now();
    await pollUntil(
      async () => {
        const m = await routerA.members();
        return !m.members.some((x) => x.id === 'n3' && x.inRing);
      },
      { timeoutMs: 3000, intervalMs: 20, what: 'n3 out of the ring' },
    );
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < 3000, `left the ring after ${elapsed} ms`);
    t.diagnostic(`killed node left the ring after ${elapsed} ms`);
    const closed = await victim.closed;
    assert.equal(closed.code, 1006, 'the dead node’s connection dropped');
    await agrees(routerA, without);
    // New upgrade for the same key lands elsewhere.
    const again = await TestClient.connect(t, routerA.wsUrl(victimUser));
    again.send('ping');
    await again.next((f) => f === 'pong');
    // Sessions on the other nodes were not disturbed and keep chatting.
    for (const [i, client] of others.entries()) {
      assert.equal(client.ws.readyState, client.ws.OPEN);
      client.send({ type: 'send', cid: `s${i}`, to: victimUser, body: `hello ${i}` });
      await again.next((f) => isMessage(f) && f.body === `hello ${i}`, 15_000);
    }
  });
});
