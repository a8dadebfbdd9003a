// The quick start: `npm start` runs demo/src/main.ts (a router and three nodes in one process, no
// Kafka), and two terminal clients chat through it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { forkService } from './harness/node-process.js';
import type { Cleanup } from './kafka/harness.js';
import { rawRequest, upgradeRequest } from './harness/raw-http.js';
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
