// The admin API's shard views (GET /members, GET /shards, GET and POST /lookup) on a real listener on
// 127.0.0.1 port 0, over a member table of stand-in nodes that answer /readyz.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { OwnerTable, createLogger, shardOf, type ReadyzBody } from '@chat/shared';
import { createAdminHandler } from './admin-api.js';
import { ConnectionTable } from './connections.js';
import { MemberTable } from './member-table.js';
import { RouterMetrics } from './metrics.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const SHARDS = 16;

async function listen(t: TestContext, server: ReturnType<typeof createServer>): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** What a stand-in node says on its internal API: sessions per user, presence, messages per shard. */
interface StandIn {
  sessions?: Record<string, number>;
  remote?: Record<string, string[]>;
  messages?: number[];
  /** Fields of its /readyz body other than accepting and ready (a bus that is down). */
  readyz?: Partial<ReadyzBody>;
}

/** A stand-in node that answers /readyz as accepting, and presence and shard stats from `said`. */
async function readyNode(t: TestContext, id: string, said: StandIn = {}): Promise<string> {
  const body: ReadyzBody = {
    ready: true,
    accepting: true,
    draining: false,
    bus: true,
    nodeId: id,
    ...said.readyz,
  };
  return listen(
    t,
    createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://node');
      const json = (answer: unknown) =>
        void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      const user = url.searchParams.get('user') ?? '';
      if (url.pathname === '/internal/presence') {
        return json({
          user,
          localSessions: said.sessions?.[user] ?? 0,
          remoteNodes: said.remote?.[user] ?? [],
        });
      }
      if (url.pathname === '/internal/shard-stats')
        return json({ nodeId: id, messages: said.messages ?? [] });
      return void res
        .writeHead(body.ready ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify(body));
    }),
  );
}

/** A real socket (closed after the test) to stand in for a proxied connection's sockets. */
async function socket(t: TestContext): Promise<Socket> {
  const server = createServer();
  const url = new URL(await listen(t, server));
  const s = connect(Number(url.port), '127.0.0.1');
  s.on('error', () => undefined);
  t.after(() => s.destroy());
  await once(s, 'connect');
  return s;
}

async function setup(t: TestContext, ids: string[], said: Record<string, StandIn> = {}) {
  const members = new MemberTable({
    shardCount: SHARDS,
    probeIntervalMs: 60_000,
    probeTimeoutMs: 1000,
    probeFailures: 1,
    metrics: new RouterMetrics({ defaultMetrics: false }),
    logger,
  });
  t.after(() => members.stop());
  const urls = await Promise.all(ids.map((id) => readyNode(t, id, said[id])));
  members.setMembers(ids.map((id, i) => ({ id, url: urls[i] ?? '', weight: 1, state: 'active' as const })));
  await members.probeAll();
  const connections = new ConnectionTable();
  const handler = createAdminHandler({
    members,
    connections,
    logger,
    nodeHeaders: {},
    readiness: () => ({ ready: true, settled: true }),
  });
  const base = await listen(
    t,
    createServer((req, res) => void handler(req, res)),
  );
  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** Records a proxied connection of `key` on its owner. */
  const add = async (id: string, key: string) => {
    const s = await socket(t);
    const shard = shardOf(key, SHARDS);
    const nodeId = members.owners.ownerOf(shard) ?? '';
    connections.add({ id, key, shard, nodeId, client: s, upstream: s, migrating: false });
  };
  return { members, connections, get, add };
}

describe('admin API: shards', () => {
  test('GET /lookup?key=K: the key, its shard, the shard’s owner and the owner table version', async (t) => {
    const s = await setup(t, ['a', 'b', 'c']);
    const table = new OwnerTable(
      ['a', 'b', 'c'].map((id) => ({ id, weight: 1 })),
      SHARDS,
    );
    for (const key of ['alice', 'team-blue', 'k9']) {
      const { status, body } = await s.get(`/lookup?key=${key}`);
      assert.equal(status, 200);
      assert.deepEqual(body, {
        key,
        shard: shardOf(key, SHARDS),
        owner: table.ownerOfKey(key),
        ownerTableVersion: table.version,
        node: table.ownerOfKey(key),
      });
    }
    assert.deepEqual(await s.get('/lookup?key=bad%20key'), {
      status: 400,
      body: { error: 'ROUTER_ERR_BAD_AFFINITY' },
    });
    assert.equal((await s.get('/lookup')).status, 400, 'no key');
  });

  test('POST /lookup: shards and owners of many keys in order; a bad body is 400', async (t) => {
    const s = await setup(t, ['a', 'b']);
    const keys = Array.from({ length: 50 }, (_, i) => `u-${i}`);
    const { status, body } = await s.get('/lookup', { method: 'POST', body: JSON.stringify({ keys }) });
    assert.equal(status, 200);
    assert.equal(body.ownerTableVersion, s.members.owners.version);
    assert.deepEqual(
      body.shards,
      keys.map((k) => shardOf(k, SHARDS)),
    );
    assert.deepEqual(
      body.nodes,
      keys.map((k) => s.members.owners.ownerOfKey(k)),
    );
    assert.deepEqual(new Set(body.nodes as string[]), new Set(['a', 'b']));
    for (const bad of ['{"keys":"x"}', '{"keys":[1]}', 'not json', '{}']) {
      assert.equal((await s.get('/lookup', { method: 'POST', body: bad })).status, 400, bad);
    }
  });

  test('GET /shards: every shard with its owner and this router’s connections on it', async (t) => {
    const s = await setup(t, ['a', 'b', 'c']);
    await s.add('c1', 'alice');
    await s.add('c2', 'alice');
    await s.add('c3', 'bob');
    const { status, body } = await s.get('/shards');
    assert.equal(status, 200);
    assert.equal(body.ownerTableVersion, s.members.owners.version);
    const shards = body.shards as { shard: number; owner: string | null; connections: number }[];
    assert.equal(shards.length, SHARDS);
    const expected = new Array<number>(SHARDS).fill(0);
    for (const k of ['alice', 'alice', 'bob'])
      expected[shardOf(k, SHARDS)] = (expected[shardOf(k, SHARDS)] ?? 0) + 1;
    assert.deepEqual(
      shards,
      expected.map((connections, shard) => ({ shard, owner: s.members.owners.ownerOf(shard), connections })),
    );
  });

  test('GET /shards with an empty table: every shard without owner', async (t) => {
    const s = await setup(t, []);
    const { body } = await s.get('/shards');
    assert.equal(body.ownerTableVersion, 'empty');
    assert.ok((body.shards as { owner: unknown }[]).every((x) => x.owner === null));
    assert.equal((await s.get('/lookup?key=alice')).body.owner, null);
  });

  test('GET /members: the owner table version, the shard count, shards owned per member', async (t) => {
    const s = await setup(t, ['a', 'b', 'c']);
    s.members.drain('c');
    await s.add('x', 'alice');
    const { body } = await s.get('/members');
    assert.deepEqual(body.router, { ready: true, settled: true }, 'this router’s readiness');
    assert.equal(body.ownerTableVersion, s.members.owners.version);
    assert.equal(body.shards, SHARDS);
    const list = body.members as { id: string; shards: number; connections: number; inRing: boolean }[];
    assert.deepEqual(
      list.map((m) => [m.id, m.shards, m.inRing]),
      [
        ['a', SHARDS / 2, true],
        ['b', SHARDS / 2, true],
        ['c', 0, false],
      ],
    );
    assert.equal(
      list.reduce((n, m) => n + m.connections, 0),
      1,
    );
  });

  test('GET /members: each node’s own readiness and bus state from its /readyz (Kafka down: ready and bus false)', async (t) => {
    const s = await setup(t, ['a', 'b'], { b: { readyz: { ready: false, bus: false } } });
    const { body } = await s.get('/members');
    const list = body.members as {
      id: string;
      healthy: boolean;
      inRing: boolean;
      ready: boolean;
      bus: boolean;
    }[];
    assert.deepEqual(
      list.map((m) => [m.id, m.healthy, m.inRing, m.ready, m.bus]),
      [
        ['a', true, true, true, true],
        // Still accepting, so still placed on: only its own readiness says the bus is down.
        ['b', true, true, false, false],
      ],
    );
  });
});

describe('admin API: messages per shard, users, plans', () => {
  test('GET /shards?messages=1: each shard’s messages summed over the nodes; a silent one is named', async (t) => {
    const s = await setup(t, ['a', 'b'], {
      a: { messages: [5, 0, 1, ...new Array<number>(SHARDS - 3).fill(0)] },
      b: { messages: [2, 4, ...new Array<number>(SHARDS - 2).fill(0)] },
    });
    const { status, body } = await s.get('/shards?messages=1');
    assert.equal(status, 200);
    const shards = body.shards as { shard: number; messages: number }[];
    assert.deepEqual(
      shards.slice(0, 4).map((x) => x.messages),
      [7, 4, 1, 0],
    );
    assert.deepEqual(body.messagesFrom, ['a', 'b']);
    assert.deepEqual(body.unanswered, []);
    // Without the parameter the nodes are not asked and the shape is unchanged.
    const plain = await s.get('/shards');
    assert.equal('messages' in ((plain.body.shards as object[])[0] ?? {}), false);

    s.members.setMembers([
      ...s.members.members().map(({ id, url, weight, state }) => ({ id, url, weight, state })),
      { id: 'gone', url: 'http://127.0.0.1:1', weight: 1, state: 'active' },
    ]);
    const partial = await s.get('/shards?messages=1');
    assert.deepEqual(
      (partial.body.unanswered as { node: string }[]).map((u) => u.node),
      ['gone'],
    );
    assert.equal((partial.body.shards as { messages: number }[])[0]?.messages, 7);
  });

  test('GET /users/{id}: shard and owner of the key, the nodes holding sessions, what presence says', async (t) => {
    const s = await setup(t, ['a', 'b', 'c'], {
      a: { sessions: { alice: 2 }, remote: { alice: ['b'] } },
      b: { sessions: { alice: 1 }, remote: { alice: ['a'] } },
      c: { remote: { alice: ['a', 'b'] } },
    });
    const { status, body } = await s.get('/users/alice');
    assert.equal(status, 200);
    assert.deepEqual(body, {
      user: 'alice',
      key: 'alice',
      shard: shardOf('alice', SHARDS),
      owner: s.members.owners.ownerOfKey('alice'),
      ownerTableVersion: s.members.owners.version,
      sessions: [
        { node: 'a', sessions: 2 },
        { node: 'b', sessions: 1 },
      ],
      presence: ['a', 'b'],
      unanswered: [],
    });
    const byKey = await s.get('/users/alice?key=team-blue');
    assert.equal(byKey.body.shard, shardOf('team-blue', SHARDS), 'placed by its affinity key');
    const nobody = await s.get('/users/bob');
    assert.deepEqual([nobody.body.sessions, nobody.body.presence], [[], []]);
    assert.deepEqual(await s.get('/users/bad%20id'), {
      status: 400,
      body: { error: 'ROUTER_ERR_BAD_USER_ID' },
    });
    assert.deepEqual(await s.get('/users/alice?key=bad%20key'), {
      status: 400,
      body: { error: 'ROUTER_ERR_BAD_AFFINITY' },
    });
  });

  test('GET /plan?add=ID: the shards that move (same owner table code), their connections, nothing changes', async (t) => {
    const s = await setup(t, ['a', 'b', 'c']);
    await s.add('c1', 'alice');
    const version = s.members.owners.version;
    const { status, body } = await s.get('/plan?add=d&weight=2');
    assert.equal(status, 200);
    const members = ['a', 'b', 'c'].map((id) => ({ id, weight: 1 }));
    const before = new OwnerTable(members, SHARDS);
    const after = new OwnerTable([...members, { id: 'd', weight: 2 }], SHARDS);
    const moved = body.moved as { shard: number; from: string; to: string; connections: number }[];
    assert.deepEqual(
      moved.map((m) => m.shard),
      before.movedTo(after),
    );
    assert.ok(moved.length > 0 && moved.every((m) => m.to === 'd'), 'only to the new node');
    const aliceShard = shardOf('alice', SHARDS);
    for (const m of moved) assert.equal(m.connections, m.shard === aliceShard ? 1 : 0);
    assert.deepEqual(body.change, { add: 'd', weight: 2 });
    assert.equal((body.before as { version: string }).version, before.version);
    assert.deepEqual(
      (body.after as { members: unknown[] }).members,
      after.members.map((m) => ({ id: m.id, weight: m.weight, shards: after.shardsOf(m.id).length })),
    );
    assert.equal(s.members.owners.version, version, 'nothing changed');
  });

  test('GET /plan?remove=ID: the member’s shards go to the others; a drained member moves nothing', async (t) => {
    const s = await setup(t, ['a', 'b', 'c']);
    const { body } = await s.get('/plan?remove=b');
    const moved = body.moved as { shard: number; from: string; to: string }[];
    assert.deepEqual(
      moved.map((m) => m.shard),
      [...s.members.owners.shardsOf('b')],
    );
    assert.ok(moved.every((m) => m.from === 'b' && m.to !== 'b'));
    s.members.drain('b');
    assert.deepEqual((await s.get('/plan?remove=b')).body.moved, []);
  });

  test('GET /plan: an existing node to add, an unknown one to remove, bad parameters', async (t) => {
    const s = await setup(t, ['a', 'b']);
    assert.deepEqual(await s.get('/plan?add=a'), {
      status: 400,
      body: { error: 'ROUTER_ERR_BAD_REQUEST', reason: 'already a member', id: 'a' },
    });
    assert.deepEqual(await s.get('/plan?remove=zz'), {
      status: 404,
      body: { error: 'ROUTER_ERR_UNKNOWN_NODE', id: 'zz' },
    });
    for (const bad of ['', '?add=x&remove=y', '?add=bad%20id', '?add=x&weight=0', '?add=x&weight=1.5']) {
      const res = await s.get(`/plan${bad}`);
      assert.deepEqual([res.status, res.body.error], [400, 'ROUTER_ERR_BAD_REQUEST'], bad);
    }
  });
});

describe('admin API: drain', () => {
  /** A stand-in node that answers /readyz and, when `tellable`, POST /internal/drain and /undrain. */
  async function drainableNode(t: TestContext, id: string, tellable: boolean): Promise<string> {
    let draining = false;
    return listen(
      t,
      createServer((req, res) => {
        const json = (status: number, body: unknown) =>
          void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        if (req.url === '/readyz') {
          const body: ReadyzBody = {
            ready: !draining,
            accepting: !draining,
            draining,
            bus: true,
            nodeId: id,
          };
          return json(draining ? 503 : 200, body);
        }
        if (tellable && req.method === 'POST' && req.url === '/internal/drain') {
          draining = true;
          return json(200, { nodeId: id, draining });
        }
        if (tellable && req.method === 'POST' && req.url === '/internal/undrain') {
          draining = false;
          return json(200, { nodeId: id, draining });
        }
        return json(404, { error: 'NODE_ERR_NOT_FOUND' });
      }),
    );
  }

  for (const tellable of [true, false]) {
    test(`POST /nodes/{id}/drain ${tellable ? 'tells the node first: when the table changes, the node is already draining' : 'when the node cannot be told: nodeTold false, the node is still active (asked to close them)'}`, async (t) => {
      const s = await setup(t, ['a']);
      const url = await drainableNode(t, 'b', tellable);
      s.members.setMembers([
        ...s.members.members().map(({ id, url, weight, state }) => ({ id, url, weight, state })),
        { id: 'b', url, weight: 1, state: 'active' },
      ]);
      await s.members.probeAll();
      // What the rebalancer would see when the owner table drops b.
      const seen: string[] = [];
      s.members.on('owners', () => seen.push(s.members.liveness('b')));
      const res = await s.get('/nodes/b/drain', { method: 'POST' });
      assert.equal(res.status, 200);
      assert.equal(res.body.nodeTold, tellable);
      assert.deepEqual(seen, [tellable ? 'draining' : 'active']);
      assert.equal(s.members.member('b')?.inRing, false);
      const back = await s.get('/nodes/b/undrain', { method: 'POST' });
      assert.equal(back.body.nodeTold, tellable);
      assert.equal(s.members.liveness('b'), 'active');
      assert.equal(s.members.member('b')?.inRing, true);
    });
  }
});
