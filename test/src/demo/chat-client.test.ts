// The terminal chat client (demo/src/chat-client.ts, on the client SDK) as a user runs it, against the
// demo cluster (a real router and three real nodes in one process): a refused upgrade ends it with the
// status and code, a cluster with no node makes it retry and say so, a moved user reconnects and what they
// typed meanwhile arrives once, and typed commands do what /help says.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { mintToken } from '@chat/shared';
import { forkService } from '../harness/node-process.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import type { Cleanup } from '../kafka/harness.js';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';

const SECRET = 'chat-client-test-secret-0123456789abcdef';

interface Terminal {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly out: string[];
  readonly err: string[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Waits for a stdout line matching `re`. */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
  type(text: string): void;
}

/** Runs the chat client as `npm run chat` does, with a clean environment plus `env`. */
function chat(t: Cleanup, args: string[], env: Record<string, string> = {}): Terminal {
  const proc = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(repoRoot, 'demo/src/chat-client.ts'), ...args],
    { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...env } },
  );
  const out: string[] = [];
  const err: string[] = [];
  createInterface({ input: proc.stdout }).on('line', (l) => out.push(l));
  createInterface({ input: proc.stderr }).on('line', (l) => err.push(l));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  return {
    proc,
    out,
    err,
    exited,
    line: (re, timeoutMs = 15_000) =>
      pollUntil(() => out.find((l) => re.test(l)), {
        timeoutMs,
        what: `a line matching ${re}; got ${JSON.stringify(out)} ${JSON.stringify(err)}`,
      }),
    type: (text) => void proc.stdin.write(`${text}\n`),
  };
}

describe('the terminal chat client against the demo cluster', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup: Cleanup = { after: (fn: () => unknown) => void cleanups.push(fn) };
  let url = '';
  let admin = '';
  const token = (sub: string) => mintToken({ secret: SECRET, sub, ttlSec: 600 });

  before(async () => {
    const demo = await forkService(cleanup, 'demo-chat-client', 'demo/src/main.ts', {
      CHAT_ROUTER_PORT: '0',
      CHAT_ROUTER_ADMIN_PORT: '0',
      CHAT_DEMO_PAGE_PORT: '0',
      CHAT_AUTH_MODE: 'jwt',
      CHAT_AUTH_HS256_SECRET: SECRET,
      CHAT_ROUTER_MIGRATION_WINDOW_MS: '0',
    });
    url = `ws://127.0.0.1:${String(demo.ready.port)}`;
    admin = `http://127.0.0.1:${String(demo.ready.adminPort)}`;
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  const ringSize = async () =>
    ((await (await fetch(`${admin}/members`)).json()) as { ringSize: number }).ringSize;
  const nodeAction = (id: string, verb: 'drain' | 'undrain') =>
    fetch(`${admin}/nodes/${id}/${verb}`, { method: 'POST' });
  /**
   * Undrains and waits until the router's ring has all three nodes again: a node that was drained comes
   * back only after its next probe, and the ring change that brings it back migrates connections (4002),
   * which must not hit the next test's clients.
   */
  const restore = async (...ids: string[]) => {
    for (const id of ids) await nodeAction(id, 'undrain');
    await pollUntil(async () => (await ringSize()) === 3, { what: 'all three nodes back in the ring' });
  };

  test('a bad token: exits 1 at once, naming the status and the code, without retrying', async (t) => {
    const term = chat(t, ['alice', url], { CHAT_TOKEN: 'not-a-jwt' });
    assert.equal(await term.exited, 1);
    assert.match(term.err.join('\n'), /HTTP 401 AUTH_ERR_INVALID_TOKEN/);
    assert.ok(!term.out.some((l) => /reconnecting/.test(l)), 'a refusal for the token is not retried');
  });

  test('a token for another user: exits 1 with 403 AUTH_ERR_SUBJECT_MISMATCH', async (t) => {
    const term = chat(t, ['alice', url], { CHAT_TOKEN: await token('bob') });
    assert.equal(await term.exited, 1);
    assert.match(term.err.join('\n'), /HTTP 403 AUTH_ERR_SUBJECT_MISMATCH/);
  });

  test('no router listening: retries with backoff and says so (1006)', async (t) => {
    const term = chat(t, ['alice', 'ws://127.0.0.1:1'], { CHAT_TOKEN: 'x' });
    await term.line(/disconnected: 1006; reconnecting in \d+\.\d s, attempt 1\)/);
    await term.line(/attempt 2\)/);
    term.proc.stdin.end();
    assert.equal(await term.exited, 0, 'Ctrl-D while waiting to retry leaves at once');
  });

  test('no node in the ring: retries after Retry-After (503), connects once a node is back', async (t) => {
    const nodes = ['node-1', 'node-2', 'node-3'];
    t.after(() => restore(...nodes));
    for (const id of nodes) assert.equal((await nodeAction(id, 'drain')).status, 200);
    await pollUntil(async () => (await ringSize()) === 0, { what: 'an empty ring' });
    const term = chat(t, ['alice', url], { CHAT_AUTH_HS256_SECRET: SECRET });
    // The router's hint (retry_after_ms=1000, its Retry-After) plus the SDK's jitter of up to 500 ms.
    await term.line(/refused: HTTP 503 ROUTER_ERR_NO_NODE; reconnecting in 1\.[0-5] s, attempt 1\)/);
    assert.equal(term.proc.exitCode, null);
    assert.equal((await nodeAction('node-2', 'undrain')).status, 200);
    await term.line(/^connected as alice/, 20_000);
    term.type('/quit');
    assert.equal(await term.exited, 0);
  });

  test('moved by a drain (4002): reconnects after the hint, lands on another node, sends what was typed meanwhile once', async (t) => {
    const term = chat(t, ['carol', url], { CHAT_TOKEN: await token('carol') });
    await term.line(/^connected as carol/);
    const ownerOf = async (key: string) =>
      ((await (await fetch(`${admin}/lookup?key=${key}`)).json()) as { node: string }).node;
    const node = await ownerOf('carol');
    // A receiver on another node, who stays connected through the drain.
    let erin = '';
    for (let i = 0; !erin; i++) if ((await ownerOf(`erin-${i}`)) !== node) erin = `erin-${i}`;
    const receiver = await TestClient.connect(t, `${url}/chat/${erin}`, [
      'chat.v1',
      `bearer.${await token(erin)}`,
    ]);
    t.after(() => restore(node));
    await nodeAction(node, 'drain');
    await term.line(/disconnected: 4002 moved retry_after_ms=\d+; reconnecting/);
    // Typed right after the close: usually while the SDK waits out the hint (then it is queued and says
    // so), else just after it is back; either way it arrives once.
    term.type(`@${erin} typed while away`);
    await pollUntil(() => term.out.filter((l) => l.startsWith('connected as carol')).length === 2, {
      what: 'carol connected again',
    });
    const got = (await receiver.next(isMessage)) as Record<string, unknown>;
    assert.equal(got.body, 'typed while away');
    assert.equal(got.from, 'carol');
    term.type(`@${erin} after`);
    await receiver.next((f) => isMessage(f) && f.body === 'after');
    assert.equal(receiver.frames.filter((f) => isMessage(f) && f.body === 'typed while away').length, 1);
    t.diagnostic(
      term.out.some((l) => l.includes('not connected: sent once reconnected'))
        ? 'the line was queued while carol was away'
        : 'carol was back before the line was typed',
    );
    term.proc.stdin.end();
    assert.equal(await term.exited, 0);
  });

  test('commands: /help, unknown /commands, @ alone and @name alone are never sent as chat text', async (t) => {
    const bob = await TestClient.connect(t, `${url}/chat/bob`, ['chat.v1', `bearer.${await token('bob')}`]);
    const term = chat(t, ['dave', url], { CHAT_TOKEN: await token('dave') });
    await term.line(/^connected as dave/);
    term.type('/help');
    await term.line(/^commands:/);
    term.type('/nick dan');
    await term.line(/unknown command \/nick/);
    term.type('@');
    await term.line(/^\(who to\? write @name message/);
    term.type('@bob');
    await term.line(/^\(talking to bob/);
    term.type('hi bob');
    const got = (await bob.next(isMessage)) as Record<string, unknown>;
    assert.equal(got.from, 'dave');
    assert.equal(got.body, 'hi bob', 'the first text bob got is the chat line, not a command');
    assert.equal(bob.frames.filter(isMessage).length, 1);
    term.type('/quit');
    assert.equal(await term.exited, 0);
  });
});

describe('the terminal chat client’s arguments', () => {
  test('--help prints the usage and exits 0 without connecting', async (t) => {
    const term = chat(t, ['--help']);
    assert.equal(await term.exited, 0);
    assert.match(term.out.join('\n'), /^usage: npm run chat <userId>/);
    assert.ok(!term.out.some((l) => l.startsWith('connected as')));
  });

  test('another option is refused by name with status 64', async (t) => {
    const term = chat(t, ['--user=alice']);
    assert.equal(await term.exited, 64);
    assert.match(term.err[0] ?? '', /unknown option --user=alice/);
  });
});
