// The quick start: `npm start` runs demo/src/main.ts (a router and three nodes in one process, no
// Kafka), and two terminal clients chat through it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { forkService, startNode, sumMetric } from './harness/node-process.js';
import type { Cleanup } from './kafka/harness.js';
import { rawRequest, upgradeRequest } from './harness/raw-http.js';
import { TestClient, isMessage } from './harness/ws-client.js';
import { useKafka } from './kafka/harness.js';
import { repoRoot } from './paths.js';
import { pollUntil } from './poll.js';

function terminal(
  t: Cleanup,
  user: string,
  port: number,
): { proc: ChildProcessWithoutNullStreams; lines: string[] } {
  const proc = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      join(repoRoot, 'demo/src/chat-client.ts'),
      user,
      `ws://127.0.0.1:${port}`,
    ],
    { cwd: repoRoot, env: { PATH: process.env.PATH ?? '' } },
  );
  const lines: string[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => lines.push(line));
  t.after(async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGKILL');
      await new Promise((r) => proc.once('exit', r));
    }
  });
  return { proc, lines };
}

test('the demo cluster starts and two terminal clients chat through its router', async (t) => {
  // As `npm start` runs it: authentication on, signed with the development secret.
  const demo = await forkService(t, 'demo', 'demo/src/main.ts', {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_DEMO_PAGE_PORT: '0',
    CHAT_AUTH_MODE: 'jwt',
  });
  const port = Number(demo.ready.port);
  const members = (await (
    await fetch(`http://127.0.0.1:${String(demo.ready.adminPort)}/members`)
  ).json()) as {
    ringSize: number;
  };
  assert.equal(members.ringSize, 3);

  const alice = terminal(t, 'alice', port);
  const bob = terminal(t, 'bob', port);
  await pollUntil(() => alice.lines.some((l) => l.startsWith('connected as alice')), {
    what: 'alice connected',
  });
  await pollUntil(() => bob.lines.some((l) => l.startsWith('connected as bob')), { what: 'bob connected' });
  alice.proc.stdin.write('@bob hello from alice\n');
  await pollUntil(() => bob.lines.includes('[alice] hello from alice'), { what: 'bob got the message' });
  bob.proc.stdin.write('hi alice, got it\n'); // no @: replies to the last person heard from
  await pollUntil(() => alice.lines.includes('[bob] hi alice, got it'), { what: 'alice got the reply' });
  alice.proc.stdin.write('@nobody anyone?\n');
  await pollUntil(() => alice.lines.some((l) => l.startsWith('(not delivered')), { what: 'offline notice' });

  // Without a token the router refuses the upgrade.
  const refused = await rawRequest(port, upgradeRequest('/chat/eve'));
  assert.equal(refused.status, 401);
  refused.socket.destroy();

  alice.proc.stdin.end('/quit\n');
  assert.equal(await new Promise((r) => alice.proc.once('exit', r)), 0);
  demo.child.kill('SIGINT');
  assert.deepEqual(await demo.exited, { code: 0, signal: null });
});

test('the terminal client explains its usage', async () => {
  const proc = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(repoRoot, 'demo/src/chat-client.ts')],
    {
      cwd: repoRoot,
    },
  );
  let err = '';
  proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise((r) => proc.once('exit', r));
  assert.equal(code, 64);
  assert.match(err, /usage: npm run chat <userId>/);
});

test('with CHAT_KAFKA_BROKERS the same demo runs its nodes on Kafka and the router on their signed heartbeats', async (t) => {
  const kafka = await useKafka(t);
  const prefix = kafka.uniqueName('demo');
  const demo = await forkService(t, 'demo-kafka', 'demo/src/main.ts', {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_DEMO_PAGE_PORT: '0',
    CHAT_KAFKA_BROKERS: kafka.brokers,
    CHAT_KAFKA_TOPIC_PREFIX: prefix,
    // As `npm start` runs it: no cluster secret given, so the demo signs with one of its own.
    CHAT_CLUSTER_SECRET: '',
  });
  const admin = `http://127.0.0.1:${String(demo.ready.adminPort)}`;
  // A node with another secret on the same topics is not believed: its heartbeats never reach the ring.
  await startNode(t, {
    nodeId: 'intruder',
    env: {
      CHAT_KAFKA_BROKERS: kafka.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: prefix,
      CHAT_CLUSTER_SECRET: 'another-cluster-secret-0123456789abcdef',
    },
  });
  await pollUntil(
    async () =>
      sumMetric(await (await fetch(`${admin}/metrics`)).text(), 'chat_router_member_records_ignored_total') >
      0,
    { timeoutMs: 20_000, what: 'the demo’s router to ignore the intruder’s records' },
  );
  const members = (await (await fetch(`${admin}/members`)).json()) as { members: { id: string }[] };
  assert.deepEqual(members.members.map((m) => m.id).sort(), ['node-1', 'node-2', 'node-3']);
  // Two users the ring puts on different nodes, so the message must cross Kafka.
  const candidates = Array.from({ length: 20 }, (_, i) => `k${i}`);
  const { nodes } = (await (
    await fetch(`${admin}/lookup`, { method: 'POST', body: JSON.stringify({ keys: candidates }) })
  ).json()) as { nodes: string[] };
  const a = candidates[0] ?? '';
  const b = candidates.find((_, i) => nodes[i] !== nodes[0]) ?? '';
  assert.ok(b);
  const port = Number(demo.ready.port);
  const alice = await TestClient.connect(t, `ws://127.0.0.1:${port}/chat/${a}`);
  const bob = await TestClient.connect(t, `ws://127.0.0.1:${port}/chat/${b}`);
  let n = 0;
  await pollUntil(
    async () => {
      const cid = `c${n++}`;
      alice.send({ type: 'send', cid, to: b, body: cid });
      return (await alice.reply(cid)).status === 'accepted';
    },
    { timeoutMs: 30_000, what: 'a cross-node message accepted by Kafka' },
  );
  await bob.next(isMessage);
  demo.child.kill('SIGINT');
  assert.deepEqual(await demo.exited, { code: 0, signal: null });
});
