// The rebalancer against real HTTP servers on 127.0.0.1 port 0 standing in for nodes' internal API and
// real TCP sockets standing in for proxied connections: one describe per public member.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { OwnerTable, createLogger, shardOf, type ReadyzBody } from '@chat/shared';
import { ConnectionTable, type ProxiedConnection } from './connections.js';
import { MemberTable } from './member-table.js';
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
  | 'hang'; // never answers

interface CloseCall {
  readonly body: { connections: string[]; windowMs: number };
  readonly authorization: string | undefined;
}

interface FakeNode {
  readonly id: string;
  readonly url: string;
  behaviour: CloseBehaviour;
  readonly calls: CloseCall[];
}

/** The live proxied connections by id, so a fake node can close the ones it is asked to. */
type Live = Map<string, ProxiedConnection>;

async function fakeNode(t: TestContext, id: string, live: Live, behaviour: CloseBehaviour = 'close') {
  const node: FakeNode = { id, url: '', behaviour, calls: [] };
  const server = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const json = (status: number, body: unknown) =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/readyz') {
      const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: id };
      return json(200, body);
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

function setup(t: TestContext, options: Partial<RebalancerOptions> = {}) {
  const metrics = new RouterMetrics({ defaultMetrics: false });
  const connections = new ConnectionTable();
  const members = new MemberTable({
    shardCount: SHARDS,
    probeIntervalMs: 60_000,
    probeTimeoutMs: 1000,
    probeFailures: 1,
    metrics,
    logger,
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
  return { rebalancer, members, connections, live, settled, untilSettled, add, migrations };
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
  test('a node that accepts but does not close in time: cut after window + forceAfterMs, counted', async (t) => {
    const s = setup(t, { forceAfterMs: 50 });
    const a = await fakeNode(t, 'a', s.live, 'keep');
    s.members.setMembers([{ id: 'a', url: a.url, weight: 1, state: 'active' }]);
    const c = await s.add('x', 'k', 'a');
    const started = Date.now();
    await s.rebalancer.migrate([c], 100);
    assert.equal(c.client.destroyed, false, 'not cut while the node has time');
    await s.untilSettled(1);
    assert.ok(Date.now() - started >= 150, 'not before window + forceAfterMs');
    assert.deepEqual(s.settled, [{ nodeId: 'a', asked: true, connections: 1, forced: 1 }]);
    assert.equal(c.client.destroyed, true);
    assert.equal(c.upstream.destroyed, true);
    assert.equal(await s.migrations('asked'), 1);
    assert.equal(await s.migrations('forced'), 1);
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
      assert.deepEqual(s.settled, [{ nodeId: 'a', asked: false, connections: 1, forced: 1 }]);
      assert.equal(c.client.destroyed, true);
      assert.equal(await s.migrations('asked'), 0);
    });
  }

  test('a node that is gone (refused), unknown, or never answers: its connections are cut', async (t) => {
    const s = setup(t, { forceAfterMs: 60_000, requestTimeoutMs: 100 });
    const slow = await fakeNode(t, 'slow', s.live, 'hang');
    const [probe] = await socketPair(t); // a port nobody listens on any more
    const deadPort = probe.remotePort;
    s.members.setMembers([
      { id: 'slow', url: slow.url, weight: 1, state: 'active' },
      { id: 'dead', url: `http://127.0.0.1:${deadPort}`, weight: 1, state: 'active' },
    ]);
    const targets = [
      await s.add('s', 'k1', 'slow'),
      await s.add('d', 'k2', 'dead'),
      await s.add('u', 'k3', 'unknown'),
    ];
    await s.rebalancer.migrate(targets, 60_000);
    await s.untilSettled(3);
    assert.deepEqual(s.settled.map((x) => [x.nodeId, x.asked, x.forced]).sort(), [
      ['dead', false, 1],
      ['slow', false, 1],
      ['unknown', false, 1],
    ]);
    assert.ok(targets.every((c) => c.client.destroyed && c.upstream.destroyed && c.migrating));
    assert.equal(slow.calls.length, 1);
    assert.equal(await s.migrations('forced'), 3);
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
