// Unsafe or incomplete security settings stop a process at start-up with CONFIG_ERR_INVALID (exit 78);
// authentication switched off is announced in a warning.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startNode } from '../harness/node-process.js';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';

async function run(
  entry: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, entry)], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', CHAT_LOG_LEVEL: 'warn', ...env },
  });
  let stderr = '';
  proc.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  return { code, stderr };
}

test('jwt mode without key material refuses to start (node and router)', async () => {
  const node = await run('node/src/main.ts', { CHAT_NODE_PORT: '0', CHAT_AUTH_MODE: 'jwt' });
  assert.equal(node.code, 78);
  assert.match(node.stderr, /CONFIG_ERR_INVALID: CHAT_AUTH_MODE=jwt needs/);
  const router = await run('router/src/main.ts', {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_ROUTER_NODES: 'n=http://127.0.0.1:1',
  });
  assert.equal(router.code, 78);
  assert.match(router.stderr, /CONFIG_ERR_INVALID: CHAT_AUTH_MODE=jwt needs/);
});

test('an admin listener off loopback without a token refuses to start', async () => {
  const router = await run('router/src/main.ts', {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_ROUTER_ADMIN_HOST: '0.0.0.0',
    CHAT_AUTH_MODE: 'off',
    CHAT_ROUTER_NODES: 'n=http://127.0.0.1:1',
  });
  assert.equal(router.code, 78);
  assert.match(router.stderr, /CHAT_ROUTER_ADMIN_TOKEN/);
});

test('short secrets are refused; every bad value is listed at once', async () => {
  const node = await run('node/src/main.ts', {
    CHAT_AUTH_HS256_SECRET: 'short',
    CHAT_INTERNAL_TOKEN: 'tiny',
    CHAT_NODE_RATE_PER_SEC: '0',
  });
  assert.equal(node.code, 78);
  for (const name of ['CHAT_AUTH_HS256_SECRET', 'CHAT_INTERNAL_TOKEN', 'CHAT_NODE_RATE_PER_SEC'])
    assert.match(node.stderr, new RegExp(name));
  assert.doesNotMatch(node.stderr, /short|tiny/, 'secret values are not echoed');
});

test('authentication switched off is logged as a warning', async (t) => {
  const node = await startNode(t, { nodeId: 'noauth', env: { CHAT_AUTH_MODE: 'off' } });
  // Log lines are written asynchronously: wait for it rather than read once.
  await pollUntil(
    async () => /"level":"warn".*authentication is OFF/.test(await readFile(node.logFile, 'utf8')),
    {
      what: 'the warning in the log',
    },
  );
});
