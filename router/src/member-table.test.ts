// The router's member table against real HTTP servers on 127.0.0.1 port 0 that answer /readyz as the
// internal contract says (or break it): one describe per public member.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { ChatRing, OwnerTable, createLogger, type ReadyzBody } from '@chat/shared';
import { MemberTable, type MemberTableOptions } from './member-table.js';
import type { MemberInfo } from './membership/types.js';
import { RouterMetrics } from './metrics.js';

const logger = createLogger({ name: 'test', level: 'silent' });

/** What a fake node answers to GET /readyz; `hang` never answers. */
type Answer = { status: number; body: unknown } | 'hang';

interface FakeNode {
  readonly id: string;
  readonly url: string;
  answer: Answer;
  /** /readyz requests received. */
  requests: number;
  /** Resolves once `n` /readyz requests have arrived. */
  until(n: number): Promise<void>;
  /** Stops listening: probes are refused from now on. */
  close(): Promise<void>;
}

const readyz = (nodeId: string, fields: Partial<ReadyzBody> = {}): Answer => {
  const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId, ...fields };
  return { status: body.ready ? 200 : 503, body };
};

async function fakeNode(t: TestContext, id: string, answer: Answer = readyz(id)): Promise<FakeNode> {
  const hanging: ServerResponse[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    if (req.url !== '/readyz') return void res.writeHead(404).end();
    node.requests++;
    for (const w of waiters.filter((w) => node.requests >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    if (node.answer === 'hang') return void hanging.push(res);
    res.writeHead(node.answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(node.answer.body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  const node: FakeNode = {
    id,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answer,
    requests: 0,
    until: (n) =>
      node.requests >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve })),
    close,
  };
  return node;
}

const info = (node: FakeNode, extra: Partial<MemberInfo> = {}): MemberInfo => ({
  id: node.id,
  url: node.url,
  weight: 1,
  state: 'active',
  ...extra,
});

function table(t: TestContext, options: Partial<MemberTableOptions> = {}) {
  const metrics = new RouterMetrics({ defaultMetrics: false });
  const members = new MemberTable({
    shardCount: 16,
    probeIntervalMs: 60_000,
    probeTimeoutMs: 1000,
    probeFailures: 2,
    metrics,
    logger,
    ...options,
  });
  t.after(() => members.stop());
  /** Every `owners` event: [new table, old table]. */
  const rings: [OwnerTable, OwnerTable][] = [];
  members.on('owners', (next, previous) => rings.push([next, previous]));
  const probeFailures = async () => (await metrics.probeFailures.get()).values[0]?.value ?? 0;
  return { members, metrics, rings, probeFailures };
}

const ids = (ring: { members: readonly { id: string }[] }) => ring.members.map((m) => m.id).sort();

describe('MemberTable#setMembers', () => {
  test('probes new members at once and puts the accepting ones on the ring', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b', readyz('b', { accepting: false, ready: false }));
    const { members, rings } = table(t);
    members.setMembers([info(a), info(b)]);
    assert.equal(members.ring.size, 0, 'nobody is placed before a probe answered');
    await members.probeAll(); // joins the round setMembers started
    assert.equal(a.requests, 1);
    assert.equal(b.requests, 1);
    assert.deepEqual(ids(members.ring), ['a']);
    assert.equal(rings.length, 1);
    assert.deepEqual(
      ids(rings[0]?.[1] ?? { members: [{ id: 'x' }] }),
      [],
      'the event carries the previous table',
    );
    assert.equal(rings[0]?.[0], members.owners, 'and the new one');
  });

  test('members the source no longer lists leave the table and the ring', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members } = table(t);
    members.setMembers([info(a), info(b)]);
    await members.probeAll();
    assert.deepEqual(ids(members.ring), ['a', 'b']);
    members.setMembers([info(a)]);
    assert.deepEqual(ids(members.ring), ['a'], 'removed at once, not at the next probe');
    assert.equal(members.member('b'), undefined);
  });

  test('a member the source calls draining is kept in the table but off the ring', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members } = table(t);
    members.setMembers([info(a), info(b, { state: 'draining' })]);
    await members.probeAll();
    assert.deepEqual(ids(members.ring), ['a']);
    assert.equal(members.member('b')?.healthy, true);
    assert.equal(members.member('b')?.inRing, false);
  });

  test('a changed weight changes the ring version and keeps the health already probed', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members, rings } = table(t);
    members.setMembers([info(a), info(b)]);
    await members.probeAll();
    const before = members.ring.version;
    members.setMembers([info(a, { weight: 3 }), info(b)]);
    assert.notEqual(members.ring.version, before);
    assert.equal(members.ring.members.find((m) => m.id === 'a')?.weight, 3);
    assert.equal(rings.length, 2);
  });
});

describe('MemberTable#probeAll', () => {
  test('a node that is not ready but accepting (its bus is down: 503) stays on the ring', async (t) => {
    const a = await fakeNode(t, 'a', readyz('a', { ready: false, bus: false }));
    const { members, probeFailures } = table(t);
    members.setMembers([info(a)]);
    await members.probeAll();
    assert.deepEqual(ids(members.ring), ['a']);
    assert.equal(await probeFailures(), 0);
    // ... but the node's own readiness and bus state are kept, for the admin API (chatctl status).
    assert.deepEqual(
      [members.member('a')?.healthy, members.member('a')?.ready, members.member('a')?.bus],
      [true, false, false],
    );
  });

  test('ready and bus follow each /readyz answer; a probe without an answer makes them false and null', async (t) => {
    const a = await fakeNode(t, 'a');
    const { members } = table(t, { probeFailures: 5 });
    members.setMembers([info(a)]);
    assert.deepEqual([members.member('a')?.ready, members.member('a')?.bus], [false, null], 'not probed yet');
    await members.probeAll();
    assert.deepEqual([members.member('a')?.ready, members.member('a')?.bus], [true, true]);
    a.answer = readyz('a', { ready: false, bus: false });
    await members.probeAll();
    assert.deepEqual([members.member('a')?.ready, members.member('a')?.bus], [false, false]);
    a.answer = readyz('a');
    await members.probeAll();
    assert.deepEqual([members.member('a')?.ready, members.member('a')?.bus], [true, true]);
    a.answer = { status: 500, body: 'oops' };
    await members.probeAll();
    assert.equal(members.member('a')?.healthy, true, 'one miss of five tolerated for placement');
    assert.deepEqual([members.member('a')?.ready, members.member('a')?.bus], [false, null]);
  });

  test('a healthy member leaves the ring after `probeFailures` misses in a row, and comes back', async (t) => {
    const a = await fakeNode(t, 'a');
    const { members, rings, probeFailures } = table(t, { probeFailures: 2 });
    members.setMembers([info(a)]);
    await members.probeAll();
    a.answer = readyz('a', { accepting: false, ready: false, draining: true });
    await members.probeAll();
    assert.equal(members.member('a')?.healthy, true, 'one miss is tolerated');
    assert.equal(members.ring.size, 1);
    await members.probeAll();
    assert.equal(members.member('a')?.healthy, false);
    assert.equal(members.ring.size, 0);
    assert.equal(await probeFailures(), 2);
    a.answer = readyz('a');
    await members.probeAll();
    assert.deepEqual(ids(members.ring), ['a']);
    assert.deepEqual(
      rings.map(([next]) => next.size),
      [1, 0, 1],
    );
  });

  test('an answer that breaks the contract is a failed probe (a v1 body without nodeId, not JSON, 500)', async (t) => {
    const a = await fakeNode(t, 'a', { status: 200, body: { ready: true, accepting: true } });
    const { members, probeFailures } = table(t, { probeFailures: 1 });
    members.setMembers([info(a)]);
    await members.probeAll();
    assert.equal(members.member('a')?.healthy, false);
    assert.equal(members.ring.size, 0);
    a.answer = { status: 200, body: { ...(readyz('a') as { body: object }).body, accepting: 'yes' } };
    await members.probeAll();
    a.answer = { status: 500, body: { error: 'boom' } };
    await members.probeAll();
    assert.equal(members.ring.size, 0);
    assert.equal(await probeFailures(), 3);
  });

  test('a refused connection and a probe that times out are failures', async (t) => {
    const gone = await fakeNode(t, 'gone');
    const slow = await fakeNode(t, 'slow');
    const { members, probeFailures } = table(t, { probeFailures: 1, probeTimeoutMs: 100 });
    members.setMembers([info(gone), info(slow)]);
    await members.probeAll();
    assert.equal(members.ring.size, 2);
    await gone.close();
    slow.answer = 'hang';
    await members.probeAll();
    assert.equal(members.ring.size, 0);
    assert.equal(members.member('gone')?.healthy, false);
    assert.equal(members.member('slow')?.healthy, false);
    assert.equal(await probeFailures(), 2);
  });

  test('calls while a round runs join it instead of probing again', async (t) => {
    const a = await fakeNode(t, 'a');
    const { members } = table(t);
    members.setMembers([info(a)]); // starts a round
    await Promise.all([members.probeAll(), members.probeAll(), members.probeAll()]);
    assert.equal(a.requests, 1);
    await members.probeAll();
    assert.equal(a.requests, 2, 'a call after the round ended probes again');
  });
});

describe('MemberTable#start and #stop', () => {
  test('start probes on its interval without being asked; stop clears the timer', async (t) => {
    const a = await fakeNode(t, 'a');
    const { members } = table(t, { probeIntervalMs: 50 });
    members.setMembers([info(a)]);
    await members.probeAll();
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    members.start();
    assert.equal(timers(), before + 1);
    await a.until(3); // two more probes than the one above, from the interval alone
    members.stop();
    await members.probeAll(); // a round the interval started just before finishes; nothing else runs
    assert.equal(timers(), before);
  });
});

describe('MemberTable#drain and #undrain', () => {
  test('an admin drain takes a healthy member off this ring; undrain puts it back', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members, rings } = table(t);
    members.setMembers([info(a), info(b)]);
    await members.probeAll();
    const full = members.ring.version;
    members.drain('a');
    assert.deepEqual(ids(members.ring), ['b']);
    assert.equal(members.member('a')?.adminDrained, true);
    assert.equal(members.member('a')?.healthy, true, 'draining is not a health matter');
    await members.probeAll();
    assert.deepEqual(ids(members.ring), ['b'], 'a healthy probe does not undo the drain');
    members.undrain('a');
    assert.equal(members.ring.version, full);
    assert.equal(members.member('a')?.adminDrained, false);
    assert.deepEqual(
      rings.map(([next]) => ids(next)),
      [['a', 'b'], ['b'], ['a', 'b']],
    );
  });

  test('a drained member that leaves and later joins again under the same id is not drained any more', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members } = table(t);
    members.setMembers([info(a), info(b)]);
    await members.probeAll();
    members.drain('a');
    members.setMembers([info(b)]);
    assert.equal(members.member('a'), undefined);
    members.setMembers([info(a), info(b)]);
    await members.probeAll();
    assert.equal(members.member('a')?.adminDrained, false);
    assert.deepEqual(ids(members.ring), ['a', 'b']);
  });

  test('draining twice or undraining a member that is not drained changes nothing', async (t) => {
    const a = await fakeNode(t, 'a');
    const { members, rings } = table(t);
    members.setMembers([info(a)]);
    await members.probeAll();
    members.undrain('a');
    members.drain('a');
    members.drain('a');
    assert.equal(rings.length, 2, 'one ring change for the first drain only');
  });
});

describe('MemberTable#member and #members', () => {
  test('say each member’s health, drain and ring membership, sorted by id', async (t) => {
    const c = await fakeNode(t, 'c');
    const a = await fakeNode(t, 'a', readyz('a', { accepting: false, ready: false }));
    const b = await fakeNode(t, 'b');
    const { members } = table(t);
    members.setMembers([info(c), info(a), info(b, { weight: 2 })]);
    await members.probeAll();
    members.drain('c');
    const seen = { draining: false, probed: true, reachable: true, bus: true };
    assert.deepEqual(members.members(), [
      { ...info(a), ...seen, healthy: false, adminDrained: false, inRing: false, shards: 0, ready: false },
      {
        ...info(b, { weight: 2 }),
        ...seen,
        healthy: true,
        adminDrained: false,
        inRing: true,
        shards: 16,
        ready: true,
      },
      { ...info(c), ...seen, healthy: true, adminDrained: true, inRing: false, shards: 0, ready: true },
    ]);
    assert.deepEqual(members.member('b'), members.members()[1]);
    assert.equal(members.member('nobody'), undefined);
  });
});

describe('MemberTable#allProbed', () => {
  test('false until every listed member was probed once (answered or timed out); a new member makes it false again', async (t) => {
    const a = await fakeNode(t, 'a');
    const slow = await fakeNode(t, 'slow', 'hang');
    const { members } = table(t, { probeTimeoutMs: 100 });
    assert.equal(members.allProbed, true, 'nobody listed: nothing to wait for');
    members.setMembers([info(a), info(slow)]);
    assert.equal(members.allProbed, false);
    await a.until(1);
    await members.probeAll();
    assert.equal(members.allProbed, true, 'the silent one counts once its probe timed out');
    assert.deepEqual(ids(members.owners), ['a']);
    const b = await fakeNode(t, 'b');
    members.setMembers([info(a), info(slow), info(b)]);
    assert.equal(members.allProbed, false);
    await b.until(1);
    await members.probeAll();
    assert.equal(members.allProbed, true);
    assert.equal(members.member('b')?.probed, true);
  });

  test('a member added while a round runs is probed by a round right after it, not at the next interval', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members } = table(t);
    members.setMembers([info(a)]);
    const round = members.probeAll();
    members.setMembers([info(a), info(b)]);
    await round;
    assert.equal(members.allProbed, true);
    assert.ok(b.requests >= 1);
  });
});

describe('MemberTable#liveness', () => {
  test('gone when not listed; draining by heartbeat or by /readyz; active otherwise', async (t) => {
    const a = await fakeNode(t, 'a');
    const d = await fakeNode(t, 'd', readyz('d', { ready: false, accepting: false, draining: true }));
    const h = await fakeNode(t, 'h');
    const { members } = table(t);
    members.setMembers([info(a), info(d), info(h, { state: 'draining' })]);
    await members.probeAll();
    assert.equal(members.liveness('nobody'), 'gone');
    assert.equal(members.liveness('a'), 'active');
    assert.equal(members.liveness('d'), 'draining', '/readyz says draining before the heartbeat does');
    assert.equal(members.liveness('h'), 'draining');
    assert.equal(members.member('d')?.draining, true);
    // What the node answered to an admin drain counts until its next probe.
    members.nodeSaid('a', true);
    assert.equal(members.liveness('a'), 'draining');
    await members.probeAll();
    assert.equal(members.liveness('a'), 'active');
    members.nodeSaid('nobody', true);
  });

  test('a static member unreachable for `probeFailures` probes is dead; an HTTP error is not silence', async (t) => {
    const a = await fakeNode(t, 'a');
    const err = await fakeNode(t, 'err', { status: 500, body: 'oops' });
    const { members } = table(t, { probeFailures: 2 });
    members.setMembers([info(a), info(err)]);
    await members.probeAll();
    await a.close();
    await members.probeAll();
    assert.equal(members.liveness('a'), 'active', 'one miss is not enough');
    await members.probeAll();
    assert.equal(members.member('a')?.reachable, false);
    assert.equal(members.liveness('a'), 'dead');
    assert.equal(members.member('err')?.reachable, true, 'a 500 is an answer');
    assert.equal(members.liveness('err'), 'active');
  });

  test('with heartbeats, an unreachable member that is still listed is alive (it may be draining)', async (t) => {
    const a = await fakeNode(t, 'a');
    const { members } = table(t, { probeFailures: 1, heartbeats: true });
    members.setMembers([info(a, { state: 'draining' })]);
    await a.close();
    await members.probeAll();
    assert.equal(members.member('a')?.reachable, false);
    assert.equal(members.liveness('a'), 'draining');
    members.setMembers([]);
    assert.equal(members.liveness('a'), 'gone');
  });
});

describe('MemberTable#ring', () => {
  test('places keys only on members on the ring, the same way as a ring built from them', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const { members } = table(t);
    members.setMembers([info(a), info(b, { weight: 2 })]);
    await members.probeAll();
    const reference = new ChatRing([
      { id: 'a', weight: 1 },
      { id: 'b', weight: 2 },
    ]);
    assert.equal(members.ring.version, reference.version);
    for (let i = 0; i < 50; i++) assert.equal(members.ring.get(`k${i}`), reference.get(`k${i}`));
  });
});

describe('MemberTable#owners', () => {
  test('is the owner table of exactly the eligible members (active, healthy, not drained), with the shard count', async (t) => {
    const a = await fakeNode(t, 'a');
    const b = await fakeNode(t, 'b');
    const sick = await fakeNode(t, 'sick', readyz('sick', { accepting: false, ready: false }));
    const leaving = await fakeNode(t, 'leaving');
    const drained = await fakeNode(t, 'drained');
    const { members } = table(t);
    assert.equal(members.owners.size, 0);
    assert.equal(members.owners.ownerOf(0), undefined, 'an empty table owns nothing');
    members.setMembers([
      info(a),
      info(b, { weight: 2 }),
      info(sick),
      info(leaving, { state: 'draining' }),
      info(drained),
    ]);
    members.drain('drained');
    await members.probeAll();
    const reference = new OwnerTable(
      [
        { id: 'b', weight: 2 },
        { id: 'a', weight: 1 },
      ],
      16,
    );
    assert.equal(members.owners.version, reference.version);
    assert.equal(members.owners.shardCount, 16);
    for (let shard = 0; shard < 16; shard++) {
      assert.equal(members.owners.ownerOf(shard), reference.ownerOf(shard), `shard ${shard}`);
    }
    assert.deepEqual(
      members.members().map((m) => [m.id, m.shards]),
      [
        ['a', reference.shardsOf('a').length],
        ['b', reference.shardsOf('b').length],
        ['drained', 0],
        ['leaving', 0],
        ['sick', 0],
      ],
    );
    assert.equal(reference.shardsOf('a').length + reference.shardsOf('b').length, 16);
  });

  test('a change emits the new and old tables once, sets the version metric and counts the moved shards', async (t) => {
    const nodes = await Promise.all(['a', 'b', 'c', 'd'].map((id) => fakeNode(t, id)));
    const { members, metrics, rings } = table(t, { shardCount: 128 });
    members.setMembers(nodes.slice(0, 3).map((n) => info(n)));
    await members.probeAll();
    const three = members.owners;
    members.setMembers(nodes.map((n) => info(n)));
    await members.probeAll();
    const four = members.owners;
    assert.deepEqual(
      rings.map(([next, previous]) => [previous.size, next.size]),
      [
        [0, 3],
        [3, 4],
      ],
    );
    assert.equal(rings[1]?.[1], three);
    const moved = three.movedTo(four).length;
    assert.ok(moved >= 0.8 * 32 && moved <= 1.35 * 32, `${moved} of 128 shards moved`);
    assert.equal(
      (await metrics.shardsMoved.get()).values[0]?.value,
      128 + moved,
      'all at first, then the moved',
    );
    assert.deepEqual(
      (await metrics.ownerTableVersion.get()).values.map((v) => [v.labels.version, v.value]),
      [[four.version, 1]],
      'one series: the current version',
    );
    await members.probeAll();
    assert.equal(rings.length, 2, 'no event when nothing changed');
  });
});
