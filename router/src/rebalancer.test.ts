// The rebalancer against real HTTP servers on 127.0.0.1 port 0 standing in for nodes' internal API and
// real TCP sockets standing in for proxied connections: one describe per public member.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { OwnerTable, createLogger, shardOf, type ReadyzBody } from '@chat/shared';
import { ConnectionTable, type ProxiedConnection } from './connections.js';
import { MemberTable, type MemberTableOptions } from './member-table.js';
import { RouterMetrics } from './metrics.js';
import { Rebalancer, type MigrationSettled, type RebalancerOptions } from './rebalancer.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const SHARDS = 32;
const TOKEN = 'Bearer internal-secret';

/** How a fake node answers POST /internal/sessions/close. */
type CloseBehaviour =
  | 'close' // 200 and closes those connections (as a node does after its window)
  | 'keep' // 200 but leaves them open
  | 'unauthorized' // 401 {"error":...}
  | 'bad-body' // 200 with a body that breaks the contract
  | 'busy' // 503 (alive but overloaded)
  | 'hang'; // never answers

/** A listener that accepts connections and never answers (probes and requests time out). */
async function hangingUrl(t: TestContext): Promise<string> {
  const held: Socket[] = [];
  const server = createTcpServer((socket) => held.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const socket of held) socket.destroy();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port nobody listens on any more. */
async function deadUrl(t: TestContext): Promise<string> {
  const [probe] = await socketPair(t);
  return `http://127.0.0.1:${probe.remotePort}`;
}

interface CloseCall {
  readonly body: { connections: string[]; windowMs: number };
  readonly authorization: string | undefined;
}

interface FakeNode {
  readonly id: string;
  readonly url: string;
  behaviour: CloseBehaviour;
  /** What its /readyz says. */
  draining: boolean;
  readonly calls: CloseCall[];
}

/** The live proxied connections by id, so a fake node can close the ones it is asked to. */
type Live = Map<string, ProxiedConnection>;

async function fakeNode(t: TestContext, id: string, live: Live, behaviour: CloseBehaviour = 'close') {
  const node: FakeNode = { id, url: '', behaviour, draining: false, calls: [] };
  const server = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const json = (status: number, body: unknown) =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/readyz') {
      const up = !node.draining;
      const body: ReadyzBody = { ready: up, accepting: up, draining: node.draining, bus: true, nodeId: id };
      return json(up ? 200 : 503, body);
    }
    if (req.method !== 'POST' || req.url !== '/internal/sessions/close') return json(404, { error: 'no' });
    let text = '';
    for await (const chunk of req) text += String(chunk);
    const body = JSON.parse(text) as CloseCall['body'];
    node.calls.push({ body, authorization: req.headers.authorization });
    switch (node.behaviour) {
      case 'close':
        for (const cid of body.connections) live.get(cid)?.client.destroy();
        return json(200, { closing: body.connections.length });
      case 'keep':
        return json(200, { closing: body.connections.length });
      case 'unauthorized':
        return json(401, { error: 'AUTH_ERR_UNAUTHORIZED' });
      case 'bad-body':
        return json(200, { closed: 'all' });
      case 'busy':
        return json(503, { error: 'NODE_ERR_BUS_UNAVAILABLE' });
      case 'hang':
        return;
    }
  }
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return Object.assign(node, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

/** A connected pair of real TCP sockets on 127.0.0.1 (both closed after the test). */
async function socketPair(t: TestContext): Promise<[Socket, Socket]> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const a = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(a, 'connect');
  const [b] = await accepted;
  server.close();
  for (const s of [a, b]) s.on('error', () => undefined);
  t.after(() => {
    a.destroy();
    b.destroy();
  });
  return [a, b];
}

function setup(
  t: TestContext,
  options: Partial<RebalancerOptions> = {},
  tableOptions: Partial<MemberTableOptions> = {},
) {
  const metrics = new RouterMetrics({ defaultMetrics: false });
  const connections = new ConnectionTable();
  const members = new MemberTable({
    shardCount: SHARDS,
    probeIntervalMs: 60_000,
    probeTimeoutMs: 1000,
    probeFailures: 1,
    metrics,
    logger,
    ...tableOptions,
  });
  t.after(() => members.stop());
  const rebalancer = new Rebalancer({
    nodeHeaders: { authorization: TOKEN },
    windowMs: 250,
    connections,
    members,
    metrics,
    logger,
    forceAfterMs: 50,
    recheckMs: 20,
    ...options,
  });
  const live: Live = new Map();
  const settled: MigrationSettled[] = [];
  rebalancer.on('settled', (s) => settled.push(s));
  /** Resolves once `n` batches have settled. */
  const untilSettled = async (n: number) => {
    while (settled.length < n) await once(rebalancer, 'settled');
  };
  /** Adds a proxied connection on `nodeId` for affinity key `key` (and its shard), with real sockets. */
  const add = async (id: string, key: string, nodeId: string): Promise<ProxiedConnection> => {
    const [client, upstream] = await socketPair(t);
    const shard = shardOf(key, SHARDS);
    const c: ProxiedConnection = { id, key, shard, nodeId, client, upstream, migrating: false };
    connections.add(c);
    live.set(id, c);
    return c;
  };
  const migrations = async (result: string) =>
    (await metrics.migrations.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  const cuts = async (reason: string) =>
    (await metrics.connectionsCut.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  return { rebalancer, members, connections, live, settled, untilSettled, add, migrations, cuts };
}

const table = (...ids: string[]) =>
  new OwnerTable(
    ids.map((id) => ({ id, weight: 1 })),
    SHARDS,
  );

/** `count` affinity keys of `shard`. */
function keysOf(shard: number, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) if (shardOf(`key-${i}`, SHARDS) === shard) keys.push(`key-${i}`);
  return keys;
}

describe('Rebalancer#moved', () => {
  test('returns exactly the connections of moved shards, none already migrating or on the new owner', async (t) => {
    const s = setup(t);
    const before = table('a', 'b', 'c');
    const after = table('a', 'b', 'c', 'd');
    const movedShards = before.movedTo(after);
    assert.ok(movedShards.length > 0);
    const stayShard = after.shardsOf('a').find((shard) => !movedShards.includes(shard)) ?? -1;
    const moving: ProxiedConnection[] = [];
    for (const shard of movedShards) {
      for (const [i, key] of keysOf(shard, 2).entries()) {
        moving.push(await s.add(`m${shard}-${i}`, key, before.ownerOf(shard) ?? ''));
      }
    }
    for (const [i, key] of keysOf(stayShard, 3).entries()) await s.add(`s${i}`, key, 'a');
    // A connection of a moved shard that already sits on its new owner (a handshake raced the change).
    const early = movedShards[0] ?? -1;
    await s.add('early', keysOf(early, 1)[0] ?? '', after.ownerOf(early) ?? '');
    assert.deepEqual(
      s.rebalancer
        .moved(before, after)
        .map((c) => c.id)
        .sort(),
      moving.map((c) => c.id).sort(),
    );
    const first = moving[0];
    assert.ok(first);
    first.migrating = true;
    assert.equal(s.rebalancer.moved(before, after).length, moving.length - 1);
    assert.deepEqual(s.rebalancer.moved(after, after), [], 'nothing moves when no shard changed owner');
  });
});

describe('Rebalancer#onOwnersChange', () => {
  test('a 4th member: only the connections of moved shards (about 1/4) move, and only their nodes are asked', async (t) => {
    const s = setup(t);
    const nodes = new Map<string, FakeNode>();
    for (const id of ['a', 'b', 'c', 'd']) nodes.set(id, await fakeNode(t, id, s.live));
    const info = (id: string) => ({ id, url: nodes.get(id)?.url ?? '', weight: 1, state: 'active' as const });
    // Wired as router.ts wires it.
    s.members.on('owners', (next, previous) => void s.rebalancer.onOwnersChange(next, previous));
    s.members.setMembers(['a', 'b', 'c'].map(info));
    await s.members.probeAll();
    const three = s.members.owners;
    assert.equal(three.version, table('a', 'b', 'c').version);
    // Two connections on every shard, each on its shard's owner (as the proxy places them).
    const byShard = new Map<number, ProxiedConnection[]>();
    for (let shard = 0; shard < SHARDS; shard++) {
      const keys = keysOf(shard, 2);
      byShard.set(
        shard,
        await Promise.all(keys.map((k, i) => s.add(`${shard}-${i}`, k, three.ownerOf(shard) ?? ''))),
      );
    }

    s.members.setMembers(['a', 'b', 'c', 'd'].map(info));
    await s.members.probeAll();
    const four = s.members.owners;
    const moved = three.movedTo(four);
    t.diagnostic(`${moved.length} of ${SHARDS} shards moved`);
    assert.ok(moved.length >= SHARDS / 4 && moved.length <= 1.35 * (SHARDS / 4), `${moved.length} moved`);
    assert.deepEqual(
      four.shardsOf('d').filter((shard) => !moved.includes(shard)),
      [],
      'd gets moved shards only',
    );
    const losers = new Set(moved.map((shard) => three.ownerOf(shard)));
    await s.untilSettled(losers.size);

    const expected = moved.flatMap((shard) => (byShard.get(shard) ?? []).map((c) => c.id)).sort();
    const asked = [...nodes.values()].flatMap((n) => n.calls.flatMap((c) => c.body.connections)).sort();
    assert.deepEqual(asked, expected, 'exactly the connections of moved shards');
    for (const [id, node] of nodes) {
      assert.equal(node.calls.length, losers.has(id) ? 1 : 0, `${id} asked ${node.calls.length} times`);
    }
    for (const [shard, list] of byShard) {
      for (const c of list) {
        assert.equal(c.client.destroyed, moved.includes(shard), `connection ${c.id} of shard ${shard}`);
      }
    }
    assert.equal(await s.migrations('asked'), expected.length);
    assert.equal(await s.migrations('forced'), 0);
  });

  test('asks only the nodes holding moved connections, with only those ids, once', async (t) => {
    const s = setup(t);
    const a = await fakeNode(t, 'a', s.live);
    const b = await fakeNode(t, 'b', s.live);
    s.members.setMembers([
      { id: 'a', url: a.url, weight: 1, state: 'active' },
      { id: 'b', url: b.url, weight: 1, state: 'active' },
    ]);
    // a leaves: all of a's shards move to b; what is on b stays.
    const both = table('a', 'b');
    const onA = [both.shardsOf('a')[0] ?? -1, both.shardsOf('a')[1] ?? -1].map(
      (sh) => keysOf(sh, 1)[0] ?? '',
    );
    const onB = [both.shardsOf('b')[0] ?? -1, both.shardsOf('b')[1] ?? -1].map(
      (sh) => keysOf(sh, 1)[0] ?? '',
    );
    for (const [i, k] of onA.entries()) await s.add(`a${i}`, k, 'a');
    for (const [i, k] of onB.entries()) await s.add(`b${i}`, k, 'b');
    await s.rebalancer.onOwnersChange(table('b'), both);
    assert.equal(b.calls.length, 0, 'connections whose shard did not move are not touched');
    assert.equal(a.calls.length, 1);
    assert.deepEqual(a.calls[0]?.body, { connections: ['a0', 'a1'], windowMs: 250 });
    assert.equal(a.calls[0]?.authorization, TOKEN, 'the internal token rides along');
    await s.untilSettled(1);
    assert.deepEqual(s.settled, [{ nodeId: 'a', asked: true, connections: 2, forced: 0 }]);
    assert.equal(await s.migrations('asked'), 2);
    assert.equal(await s.migrations('forced'), 0);
    // The same change again (e.g. a second event) asks nobody again.
    await s.rebalancer.onOwnersChange(table('b'), both);
    assert.equal(a.calls.length, 1);
  });

  test('does nothing when no shard moved', async (t) => {
    const s = setup(t);
    const a = await fakeNode(t, 'a', s.live);
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    await s.add('x', 'key-1', 'a');
    await s.rebalancer.onOwnersChange(table('a'), table('a'));
    assert.equal(a.calls.length, 0);
    assert.equal(s.settled.length, 0);
  });
});

describe('Rebalancer#migrate', () => {
  test('a node that accepts but does not close in time: asked again after window + forceAfterMs, never cut while alive', async (t) => {
    const s = setup(t, { forceAfterMs: 50 });
    const a = await fakeNode(t, 'a', s.live, 'keep');
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    const [c, done] = [await s.add('x', 'k', 'a'), await s.add('y', 'k2', 'a')];
    const started = Date.now();
    await s.rebalancer.migrate([c, done], 100);
    assert.equal(a.calls.length, 1);
    // The node closes one within the window; the other it is slow to close.
    done.client.destroy();
    // Round after round (window 100 + grace 50 each): asked again for the one still open, never cut.
    while (a.calls.length < 3) await once(s.rebalancer, 'asked');
    assert.ok(Date.now() - started >= 300, 'each round waits the window and the grace');
    assert.deepEqual(
      a.calls.map((x) => x.body.connections),
      [['x', 'y'], ['x'], ['x']],
    );
    assert.equal(c.client.destroyed, false, 'a slow node’s connection is not cut');
    assert.equal(s.settled.length, 0);
    // It finally closes it: settled with nothing forced.
    c.client.destroy();
    await s.untilSettled(1);
    assert.deepEqual(s.settled, [{ nodeId: 'a', asked: true, connections: 2, forced: 0 }]);
    assert.equal(await s.migrations('asked'), 2);
    assert.ok((await s.migrations('asked_again')) >= 2);
    assert.equal(await s.migrations('forced'), 0);
  });

  test('a slow node that is asked again and then dies: cut as dead', async (t) => {
    const s = setup(t, { forceAfterMs: 20 });
    const a = await fakeNode(t, 'a', s.live, 'keep');
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    const c = await s.add('x', 'k', 'a');
    await s.rebalancer.migrate([c], 20);
    while (a.calls.length < 2) await once(s.rebalancer, 'asked');
    // Its process goes away: the probes fail (no heartbeats here), it is dead, and nobody will close it.
    s.members.setMembers([{ id: 'a', url: await deadUrl(t), weight: 1, state: 'active' }]);
    await s.members.probeAll();
    assert.equal(s.members.liveness('a'), 'dead');
    await s.untilSettled(1);
    assert.deepEqual(s.settled, [{ nodeId: 'a', asked: true, connections: 1, forced: 1, reason: 'dead' }]);
    assert.equal(c.client.destroyed, true);
    assert.equal(await s.cuts('dead'), 1);
  });

  for (const behaviour of ['unauthorized', 'bad-body'] as const) {
    test(`a node answering ${behaviour === 'bad-body' ? 'outside the contract' : '401'}: cut at once, not counted as asked`, async (t) => {
      const s = setup(t, { forceAfterMs: 60_000 });
      const a = await fakeNode(t, 'a', s.live, behaviour);
      s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
      const c = await s.add('x', 'k', 'a');
      await s.rebalancer.migrate([c], 60_000);
      await s.untilSettled(1);
      assert.equal(a.calls.length, 1);
      assert.deepEqual(s.settled, [
        { nodeId: 'a', asked: false, connections: 1, forced: 1, reason: 'refused' },
      ]);
      assert.equal(c.client.destroyed, true);
      assert.equal(await s.migrations('asked'), 0);
      assert.equal(await s.cuts('refused'), 1);
    });
  }

  test('a member that is gone (not listed) or dead (unreachable, no heartbeats): cut, by reason', async (t) => {
    const s = setup(t, { forceAfterMs: 60_000 });
    s.members.setMembers([{ id: 'dead', url: await deadUrl(t), weight: 1, state: 'active' }]);
    await s.members.probeAll();
    assert.equal(s.members.liveness('dead'), 'dead');
    const targets = [await s.add('d', 'k2', 'dead'), await s.add('u', 'k3', 'unknown')];
    await s.rebalancer.migrate(targets, 60_000);
    await s.untilSettled(2);
    assert.deepEqual(s.settled.map((x) => [x.nodeId, x.asked, x.forced, x.reason]).sort(), [
      ['dead', false, 1, 'dead'],
      ['unknown', false, 1, 'gone'],
    ]);
    assert.ok(targets.every((c) => c.client.destroyed && c.upstream.destroyed && c.migrating));
    assert.equal(await s.cuts('dead'), 1);
    assert.equal(await s.cuts('gone'), 1);
    assert.equal(await s.migrations('forced'), 2);
  });

  for (const behaviour of ['hang', 'busy'] as const) {
    test(`an active node that ${behaviour === 'hang' ? 'never answers the request' : 'answers 503'}: asked again, never cut while alive; cut once gone`, async (t) => {
      const s = setup(t, { forceAfterMs: 20, requestTimeoutMs: 30 });
      const slow = await fakeNode(t, 'slow', s.live, behaviour);
      s.members.setMembers([{ id: 'slow', url: slow.url, weight: 1, state: 'active' }]);
      await s.members.probeAll();
      const c = await s.add('s', 'k1', 'slow');
      await s.rebalancer.migrate([c], 0);
      // Far past the window and grace: still asking, nothing cut.
      while (slow.calls.length < 4) await once(s.rebalancer, 'asked');
      assert.equal(s.members.liveness('slow'), 'active');
      assert.equal(c.client.destroyed, false);
      assert.equal(s.settled.length, 0);
      assert.equal(await s.migrations('forced'), 0);
      // It leaves the membership: nobody will close it now.
      s.members.setMembers([]);
      await s.untilSettled(1);
      assert.deepEqual(s.settled, [
        { nodeId: 'slow', asked: false, connections: 1, forced: 1, reason: 'gone' },
      ]);
      assert.equal(await s.cuts('gone'), 1);
    });
  }

  test('a draining node: not asked, never cut on time, settled when the node closes them itself', async (t) => {
    const s = setup(t, { forceAfterMs: 10 });
    const a = await fakeNode(t, 'a', s.live);
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'draining' }]);
    const targets = [await s.add('x', 'k1', 'a'), await s.add('y', 'k2', 'a')];
    await s.rebalancer.migrate(targets, 0);
    assert.equal(s.members.liveness('a'), 'draining');
    // The node closes them over its own drain window, long after the router's window and grace.
    const lateBy = 300;
    const closer = setTimeout(() => targets.forEach((c) => c.client.destroy()), lateBy);
    t.after(() => clearTimeout(closer));
    const started = Date.now();
    await s.untilSettled(1);
    assert.ok(Date.now() - started >= lateBy - 20, 'settled by the node’s closes, not a cut');
    assert.deepEqual(s.settled, [{ nodeId: 'a', asked: false, connections: 2, forced: 0 }]);
    assert.equal(a.calls.length, 0, 'a draining node is not asked');
    assert.equal(await s.migrations('draining'), 2);
    assert.equal(await s.migrations('forced'), 0);
  });

  test('a node that says draining on /readyz (its heartbeat not yet) counts as draining', async (t) => {
    const s = setup(t, { forceAfterMs: 10 });
    const a = await fakeNode(t, 'a', s.live);
    a.draining = true;
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    await s.members.probeAll();
    const c = await s.add('x', 'k1', 'a');
    await s.rebalancer.migrate([c], 0);
    assert.equal(a.calls.length, 0);
    assert.equal(await s.migrations('draining'), 1);
    c.client.destroy();
    await s.untilSettled(1);
    assert.equal(s.settled[0]?.forced, 0);
  });

  test('a draining node that cannot be reached but still heartbeats is waited for; cut once it is gone', async (t) => {
    const s = setup(t, { forceAfterMs: 10 }, { heartbeats: true, probeTimeoutMs: 150 });
    s.members.setMembers([{ id: 'a', url: await hangingUrl(t), weight: 1, state: 'draining' }]);
    await s.members.probeAll();
    assert.equal(s.members.member('a')?.reachable, false);
    assert.equal(s.members.liveness('a'), 'draining', 'heartbeats say it is alive');
    const c = await s.add('x', 'k1', 'a');
    await s.rebalancer.migrate([c], 0);
    // A probe round (150 ms: far past the window and grace, several rechecks): still open.
    await s.members.probeAll();
    assert.equal(c.client.destroyed, false);
    assert.equal(s.settled.length, 0);
    // Its heartbeats stop: the source drops it, and the router cuts what is stuck.
    s.members.setMembers([]);
    await s.untilSettled(1);
    assert.deepEqual(s.settled, [{ nodeId: 'a', asked: false, connections: 1, forced: 1, reason: 'gone' }]);
    assert.equal(c.client.destroyed, true);
    assert.equal(await s.cuts('gone'), 1);
  });

  test('an active node unreachable but heartbeating is not dead: asked again, never cut while it heartbeats', async (t) => {
    const s = setup(
      t,
      { forceAfterMs: 60_000, requestTimeoutMs: 20 },
      { heartbeats: true, probeTimeoutMs: 150 },
    );
    s.members.setMembers([{ id: 'a', url: await hangingUrl(t), weight: 1, state: 'active' }]);
    await s.members.probeAll();
    assert.equal(s.members.liveness('a'), 'active');
    const c = await s.add('x', 'k1', 'a');
    await s.rebalancer.migrate([c], 0);
    await s.members.probeAll();
    assert.equal(c.client.destroyed, false);
    s.members.setMembers([]);
    await s.untilSettled(1);
    assert.equal(s.settled[0]?.reason, 'gone');
  });

  test('asks in batches of `closeBatch` ids, and each batch settles on its own', async (t) => {
    const s = setup(t, { closeBatch: 2 });
    const a = await fakeNode(t, 'a', s.live);
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    const targets = await Promise.all([0, 1, 2, 3, 4].map((i) => s.add(`c${i}`, `k${i}`, 'a')));
    await s.rebalancer.migrate(targets, 0);
    assert.deepEqual(a.calls.map((c) => c.body.connections.length).sort(), [1, 2, 2]);
    assert.deepEqual(
      a.calls.flatMap((c) => c.body.connections).sort(),
      targets.map((c) => c.id),
    );
    await s.untilSettled(3);
    assert.equal(
      s.settled.reduce((n, x) => n + x.forced, 0),
      0,
    );
  });

  test('the window sent is a whole number within the contract’s bounds', async (t) => {
    const s = setup(t);
    const a = await fakeNode(t, 'a', s.live);
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    await s.rebalancer.migrate([await s.add('x', 'k', 'a')], 1234.6);
    await s.rebalancer.migrate([await s.add('y', 'k', 'a')], 10_000_000);
    assert.deepEqual(
      a.calls.map((c) => c.body.windowMs),
      [1235, 600_000],
    );
    await s.untilSettled(2);
  });
});
