// chatctl against a live cluster: a real Kafka broker, three nodes and two routers (admin token set), the
// commands called as functions and, for the exit codes and streams, as the real binary in a child process
// (`node --conditions=source --import tsx chatctl/src/main.ts`, as `npm run chatctl` runs it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import { EXIT, drainNode, lookup, plan, shards, status, type ConnectOptions } from '@chat/chatctl';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { TestClient } from '../harness/ws-client.js';
import { useKafka } from '../kafka/harness.js';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';
import { QUICK_NODE_ENV, QUICK_ROUTER_ENV } from '../harness/quick-membership.js';

const SHARDS = 32;
const TOKEN = 'admin-token-for-chatctl-test';

/** Runs the chatctl binary; resolves with its exit code and output. */
async function chatctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', 'chatctl/src/main.ts', ...args],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** A TCP port nothing listens on (free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address ? address.port : 0;
}

describe('chatctl against a live cluster', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  const nodes = new Map<string, NodeProcess>();
  const routers: RouterProcess[] = [];
  let nodeEnv: Record<string, string>;
  let cli: ConnectOptions;
  let routerArgs: string[];

  /** Connects `user` through router `r`, again while the router answers 502/503 (a move in progress). */
  const connect = (t: TestContext, user: string, r = routers[0]!) =>
    pollUntil(() => TestClient.connect(t, r.wsUrl(user)), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: `connect ${user}`,
    });

  before(async () => {
    const kafka = await useKafka(cleanup);
    const common = {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: kafka.uniqueName('chatctl'),
      CHAT_CLUSTER_SHARDS: String(SHARDS),
    };
    nodeEnv = {
      ...common,
      ...QUICK_NODE_ENV,
      CHAT_NODE_DRAIN_WINDOW_MS: '1000',
      // The shards test sends as fast as acks come back.
      CHAT_NODE_RATE_PER_SEC: '100000',
      CHAT_NODE_RATE_BURST: '100000',
    };
    const routerEnv = {
      ...common,
      CHAT_ROUTER_ADMIN_TOKEN: TOKEN,
      ...QUICK_ROUTER_ENV,
      CHAT_ROUTER_MIGRATION_WINDOW_MS: '1000',
    };
    for (const id of ['n1', 'n2', 'n3'])
      nodes.set(id, await startNode(cleanup, { nodeId: id, env: nodeEnv }));
    routers.push(
      await startRouter(cleanup, routerEnv, 'router-a'),
      await startRouter(cleanup, routerEnv, 'router-b'),
    );
    const urls = routers.map((r) => `http://127.0.0.1:${r.adminPort}`);
    cli = { routers: urls, token: TOKEN };
    routerArgs = [...urls.flatMap((u) => ['--router', u]), '--token', TOKEN];
    await pollUntil(
      async () => {
        const s = await status(cli);
        return s.healthy && s.agree && s.members.filter((m) => m.inRing).length === 3;
      },
      { timeoutMs: 30_000, what: 'both routers with 3 nodes in their tables' },
    );
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('status: 3 members, both routers agree, connections summed over the routers; exit 0', async (t) => {
    const [user] = await routers[0]!.usersOn('n1', 1, 'status');
    await connect(t, user!, routers[1]);
    const s = await status(cli);
    assert.equal(s.agree, true);
    assert.equal(s.healthy, true);
    assert.deepEqual(
      s.routers.map((r) => r.ready),
      [true, true],
    );
    // `ready` and `bus` are each node's own /readyz (its Kafka works), not only the router's probe.
    assert.deepEqual(
      s.members.map((m) => [m.id, m.state, m.ready, m.bus, m.accepting, m.alive]),
      [
        ['n1', 'active', true, true, true, true],
        ['n2', 'active', true, true, true, true],
        ['n3', 'active', true, true, true, true],
      ],
    );
    const raw = (await routers[0]!.admin('/members').then((r) => r.json())) as {
      members: { ready: unknown; bus: unknown }[];
    };
    assert.ok(
      raw.members.every((m) => m.ready === true && m.bus === true),
      'the admin API carries each node’s ready and bus',
    );
    assert.equal(
      s.members.reduce((n, m) => n + m.shards, 0),
      SHARDS,
    );
    assert.ok(
      (s.members.find((m) => m.id === 'n1')?.connections ?? 0) >= 1,
      'the connection via router-b counted',
    );

    const bin = await chatctl(['status', ...routerArgs]);
    assert.equal(bin.code, EXIT.ok, bin.stderr);
    assert.match(bin.stdout, /^MEMBER\s+STATE\s+READY\s+BUS\s+ALIVE\s+WEIGHT\s+SHARDS\s+CONNECTIONS\s+URL$/m);
    assert.match(bin.stdout, /^n3\s+active\s+yes\s+yes\s+yes\s+1\s+\d+\s+\d+\s+http:/m);
    assert.match(bin.stdout, /routers agree: yes/);
    assert.equal(bin.stderr, '');
    const json = await chatctl(['status', ...routerArgs, '--json']);
    assert.equal(
      (JSON.parse(json.stdout) as { ownerTableVersion: string }).ownerTableVersion,
      s.ownerTableVersion,
    );
  });

  test('errors as the binary: unreachable router 3, bad token 4, unknown node 5, usage 2: one line on stderr', async () => {
    const port = await closedPort();
    const down = await chatctl(['status', '--router', `http://127.0.0.1:${port}`]);
    assert.equal(down.code, EXIT.unreachable);
    assert.equal(down.stderr, `chatctl: router http://127.0.0.1:${port} unreachable (ECONNREFUSED)\n`);
    assert.equal(down.stdout, '');
    const badToken = await chatctl(['status', '--router', cli.routers[0]!, '--token', 'wrong-token']);
    assert.equal(badToken.code, EXIT.auth);
    assert.match(badToken.stderr, /^chatctl: router \S+ refused the token \(HTTP 401\)[^\n]*\n$/);
    const noToken = await chatctl(['status', '--router', cli.routers[0]!]);
    assert.equal(noToken.code, EXIT.auth);
    const unknown = await chatctl(['drain', 'nope', ...routerArgs]);
    assert.equal(unknown.code, EXIT.notFound);
    assert.equal(unknown.stderr, 'chatctl: node nope is not a member\n');
    const existing = await chatctl(['plan', 'add', 'n2', ...routerArgs]);
    assert.equal(existing.code, EXIT.notFound);
    const usage = await chatctl(['plan', 'add', 'n9', '--weight', 'heavy', ...routerArgs]);
    assert.equal(usage.code, EXIT.usage);
    assert.doesNotMatch(usage.stderr + down.stderr + badToken.stderr, /\n\s+at /, 'no stack trace');
  });

  test('--router at the public port or a node (not the admin API): exit 3 "is not a router admin API"', async () => {
    for (const port of [routers[0]!.port, nodes.get('n1')!.port]) {
      for (const argv of [['status'], ['drain', 'n1'], ['lookup', 'alice']]) {
        const r = await chatctl([...argv, '--router', `http://127.0.0.1:${port}`, '--token', TOKEN]);
        assert.equal(r.code, EXIT.unreachable, `${argv.join(' ')} at ${port}: ${r.stderr}`);
        assert.match(
          r.stderr,
          /^chatctl: http:\/\/127\.0\.0\.1:\d+ is not a router admin API \(\/\S+ answered HTTP 404 [A-Z_]+\): check --router\n$/,
        );
      }
    }
  });

  test('routers with another owner table disagree: exit 6 (a router with a static member list of n1 alone)', async () => {
    const apart = await startRouter(
      cleanup,
      {
        CHAT_CLUSTER_SHARDS: String(SHARDS),
        CHAT_ROUTER_NODES: `n1=http://127.0.0.1:${nodes.get('n1')!.port}`,
        CHAT_ROUTER_ADMIN_TOKEN: TOKEN,
      },
      'router-static',
    );
    const both = ['--router', cli.routers[0]!, '--router', `http://127.0.0.1:${apart.adminPort}`];
    const r = await chatctl(['status', ...both, '--token', TOKEN]);
    assert.equal(r.code, EXIT.disagree, r.stdout + r.stderr);
    assert.match(r.stdout, /routers agree: NO/);
    assert.match(r.stdout, /routers disagree: /);
  });

  test('lookup: shard, owner and the node holding the session; a user connected nowhere is 5', async (t) => {
    const [user] = await routers[0]!.usersOn('n2', 1, 'lookup');
    await connect(t, user!);
    const r = await lookup(cli, { user: user! });
    assert.ok('connected' in r);
    assert.equal(r.owner, 'n2');
    assert.deepEqual(r.sessions, [{ node: 'n2', sessions: 1 }]);
    assert.equal(r.connected, true);
    await pollUntil(
      async () => {
        const again = await lookup(cli, { user: user! });
        return 'presence' in again && again.presence.includes('n2');
      },
      { what: 'presence of the user on n2, as the other nodes see it' },
    );

    const bin = await chatctl(['lookup', user!, ...routerArgs]);
    assert.equal(bin.code, EXIT.ok, bin.stderr);
    assert.match(bin.stdout, /^owner\s+n2$/m);
    assert.match(bin.stdout, /^sessions\s+n2 \(1\)$/m);
    const offline = await chatctl(['lookup', 'nobody-here', ...routerArgs, '--json']);
    assert.equal(offline.code, EXIT.notFound);
    assert.deepEqual((JSON.parse(offline.stdout) as { sessions: unknown[] }).sessions, []);
    const key = await chatctl(['lookup', '--key', user!, ...routerArgs, '--json']);
    assert.equal(key.code, EXIT.ok);
    assert.equal((JSON.parse(key.stdout) as { owner: string }).owner, 'n2');
  });

  test('shards: the shard with traffic comes first, with its messages per second and connections', async (t) => {
    const [a, b] = await routers[0]!.usersOn('n1', 2, 'hot');
    const alice = await connect(t, a!);
    await connect(t, b!);
    const shardOfA = (await lookup(cli, { key: a! })).shard;
    let sending = true;
    let sent = 0;
    const load = (async () => {
      while (sending) {
        const cid = `c${sent++}`;
        alice.send({ type: 'send', to: b!, body: 'hi', cid });
        await alice.reply(cid);
      }
    })();
    const report = await shards({ ...cli, intervalMs: 1000, top: 3 }).finally(() => (sending = false));
    await load;
    assert.equal(report.shards.length, 3);
    const hottest = report.shards[0]!;
    assert.equal(hottest.shard, shardOfA, 'the sending user’s shard first');
    assert.ok(hottest.messagesPerSec > 0, `rate ${hottest.messagesPerSec}`);
    assert.ok(hottest.connections >= 1);
    assert.equal(hottest.owner, 'n1');

    const bin = await chatctl(['shards', ...routerArgs, '--top', '5', '--interval', '200']);
    assert.equal(bin.code, EXIT.ok, bin.stderr);
    assert.match(bin.stdout, /^SHARD\s+OWNER\s+CONNECTIONS\s+MSG\/S$/m);
    assert.match(bin.stdout, /5 hottest of 32 shards/);
  });

  test('plan remove n3, then drain n3: the planned shards and connections are what moves; undrain brings it back', async (t) => {
    const users = await routers[0]!.usersOn('n3', 6, 'moving');
    const clients = await Promise.all(users.map((u) => connect(t, u)));
    await pollUntil(async () => (await status(cli)).members.find((m) => m.id === 'n3')!.connections === 6, {
      what: 'the 6 connections on n3 seen by the routers',
    });
    const p = await plan(cli, { remove: 'n3' });
    const ownersBefore = (await routers[0]!.admin('/shards').then((r) => r.json())) as {
      shards: { shard: number; owner: string }[];
    };
    // Every shard of n3 moves; with exact quotas a few may also move between the others.
    assert.deepEqual(
      p.moved.filter((m) => m.from === 'n3').map((m) => m.shard),
      ownersBefore.shards.filter((s) => s.owner === 'n3').map((s) => s.shard),
    );
    assert.ok(p.moved.every((m) => m.to !== 'n3'));
    assert.equal(p.movedConnections, 6);
    assert.equal(p.share.find((s) => s.node === 'n3')?.after, 0);

    // Each client reconnects when n3 closes it (4002), as a real client would.
    const reconnected = clients.map(async (c, i) => {
      const closed = await c.closed;
      assert.equal(closed.code, 4002);
      return connect(t, users[i]!);
    });
    const progress: [number, number][] = [];
    const report = await drainNode({
      ...cli,
      node: 'n3',
      timeoutMs: 30_000,
      progress: { update: (done, total) => progress.push([done, total]), end: () => undefined },
    });
    assert.equal(report.done, true);
    assert.deepEqual([report.connectionsBefore, report.connectionsLeft, report.shards], [6, 0, 0]);
    assert.ok(progress.length > 0 && progress.at(-1)![0] === progress.at(-1)![1], 'progress ends full');
    await Promise.all(reconnected);

    // The shards that changed owner are the planned ones, each to the planned node.
    const ownersAfter = (await routers[0]!.admin('/shards').then((r) => r.json())) as {
      shards: { shard: number; owner: string }[];
    };
    const changed = ownersAfter.shards.filter((s) => s.owner !== ownersBefore.shards[s.shard]?.owner);
    assert.deepEqual(
      changed.map((s) => [s.shard, s.owner]),
      p.moved.map((m) => [m.shard, m.to]),
    );
    for (const u of users) {
      const where = await lookup(cli, { user: u });
      assert.ok('sessions' in where);
      assert.deepEqual(where.sessions, [{ node: where.owner!, sessions: 1 }], `${u} on its new owner`);
      assert.notEqual(where.owner, 'n3');
    }
    const drained = await status(cli);
    assert.equal(drained.members.find((m) => m.id === 'n3')?.state, 'drained');
    assert.equal(drained.healthy, true, 'a drained member is not a fault');

    const back = await chatctl(['undrain', 'n3', ...routerArgs, '--timeout', '30000']);
    assert.equal(back.code, EXIT.ok, back.stderr);
    assert.match(back.stdout, /^undrain n3: done/);
    assert.match(back.stderr, /^progress: /m, 'plain progress lines when stderr is not a terminal');
    const again = await status(cli);
    assert.equal(again.ownerTableVersion, p.ownerTableVersion, 'the same table as before the drain');
  });

  test('drain through one router only: status through both agrees (drained here, draining there: a note), exit 0', async () => {
    const [a, b] = cli.routers;
    const before = await status(cli);
    const drained = await chatctl(['drain', 'n2', '--router', a!, '--token', TOKEN, '--timeout', '30000']);
    assert.equal(drained.code, EXIT.ok, drained.stderr);
    // Router b learns of the drain from n2's heartbeat (draining): the same owner table, without n2.
    await pollUntil(async () => (await status(cli)).agree, {
      timeoutMs: 10_000,
      what: 'router b with the same owner table as router a',
    });
    const bin = await chatctl(['status', ...routerArgs]);
    assert.equal(bin.code, EXIT.ok, bin.stdout + bin.stderr);
    assert.match(bin.stdout, /routers agree: yes/);
    assert.match(
      bin.stdout,
      new RegExp(
        `^note: member n2 is drained on ${a}, draining on ${b}: drained through some routers only`,
        'm',
      ),
    );
    const back = await chatctl(['undrain', 'n2', '--router', a!, '--token', TOKEN, '--timeout', '30000']);
    assert.equal(back.code, EXIT.ok, back.stderr);
    const again = await pollUntil(
      async () => {
        const now = await status(cli);
        return now.agree && now.ownerTableVersion === before.ownerTableVersion ? now : undefined;
      },
      { timeoutMs: 10_000, what: 'n2 back in both routers’ tables' },
    );
    assert.deepEqual(again.notes, []);
  });

  test('plan add n4, then start n4: the planned shards move to it, and the routers agree again', async () => {
    const p = await plan(cli, { add: 'n4' });
    assert.ok(p.movedShards > 0 && p.moved.every((m) => m.to === 'n4'));
    const bin = await chatctl(['plan', 'add', 'n4', ...routerArgs]);
    assert.equal(bin.code, EXIT.ok, bin.stderr);
    assert.match(bin.stdout, new RegExp(`moves ${p.movedShards} of ${SHARDS} shards`));
    assert.match(
      bin.stdout,
      new RegExp(`^once n4 runs, wait for this table: chatctl status --wait-version ${p.afterVersion}$`, 'm'),
    );
    const before = (await routers[0]!.admin('/shards').then((r) => r.json())) as {
      shards: { owner: string }[];
    };
    // Before n4 runs, the wait runs out (exit 1): the plain `status` exits 0 then, which proves nothing.
    const early = await chatctl([
      'status',
      ...routerArgs,
      '--wait-version',
      p.afterVersion,
      '--timeout',
      '300',
    ]);
    assert.equal(early.code, EXIT.condition);
    assert.equal((await chatctl(['status', ...routerArgs])).code, EXIT.ok);
    nodes.set('n4', await startNode(cleanup, { nodeId: 'n4', env: nodeEnv }));
    // What the runbook has the SRE type: wait until every router has the planned table.
    const waited = await chatctl([
      'status',
      ...routerArgs,
      '--wait-version',
      p.afterVersion,
      '--timeout',
      '30000',
      '--json',
    ]);
    assert.equal(waited.code, EXIT.ok, waited.stdout + waited.stderr);
    const s = JSON.parse(waited.stdout) as Awaited<ReturnType<typeof status>>;
    assert.equal(s.ownerTableVersion, p.afterVersion);
    assert.deepEqual(s.wait && [s.wait.version, s.wait.reached], [p.afterVersion, true]);
    assert.equal(s.members.find((m) => m.id === 'n4')?.shards, p.share.find((x) => x.node === 'n4')?.after);
    const afterShards = (await routers[0]!.admin('/shards').then((r) => r.json())) as {
      shards: { shard: number; owner: string }[];
    };
    assert.deepEqual(
      afterShards.shards.filter((x) => x.owner !== before.shards[x.shard]?.owner).map((x) => x.shard),
      p.moved.map((m) => m.shard),
    );
  });
});
