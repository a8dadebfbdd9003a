// The README's commands as a new user runs them: `npm start` stopped with Ctrl-C, `npm start` (and a
// router, a chat node) with its port taken, `TOKEN=$(npm run --silent token -- carol)`, and the bootstrap's
// refusal of an old Node.js where it cannot install one. Real npm, real processes, real ports.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { jwtVerify } from 'jose';
import type { Cleanup } from './kafka/harness.js';
import { repoRoot } from './paths.js';
import { pollUntil } from './poll.js';

interface Run {
  readonly child: ChildProcess;
  /** stdout and stderr lines so far, in arrival order per stream. */
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves once the process has ended and its output has been read. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout/stderr line matching `re`; rejects if the process ends first. */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
}

/**
 * Starts `cmd` in a process group of its own, as a terminal starts a foreground command, so a test can
 * send Ctrl-C's SIGINT to the whole group. The cleanup kills the group.
 */
function run(t: Cleanup, cmd: string, args: string[], env: Record<string, string>): Run {
  const child = spawn(cmd, args, {
    cwd: repoRoot,
    // A clean environment: only what a shell would pass on, plus the test's settings.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<(line: string) => void>();
  for (const [stream, lines] of [
    [child.stdout, stdout],
    [child.stderr, stderr],
  ] as const) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      for (const w of waiters) w(line);
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child, 'SIGKILL');
    await exited;
  });
  return {
    child,
    stdout,
    stderr,
    exited,
    line(re, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const seen = [...stdout, ...stderr].find((l) => re.test(l));
        if (seen !== undefined) return resolve(seen);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(onLine);
        };
        const onLine = (l: string) => {
          if (!re.test(l)) return;
          done();
          resolve(l);
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`no line matching ${re} in ${timeoutMs} ms:\n${[...stdout, ...stderr].join('\n')}`),
          );
        }, timeoutMs);
        waiters.add(onLine);
        void exited.then(({ code, signal }) => {
          if (!waiters.has(onLine)) return;
          done();
          reject(new Error(`exited (${code ?? signal}) before ${re}:\n${[...stdout, ...stderr].join('\n')}`));
        });
      });
    },
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Something listening on 127.0.0.1 (a port to collide with); closed by the cleanup. */
async function occupiedPort(t: Cleanup): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return address.port;
}

const FAILURE_BANNER = /ELIFECYCLE|Command failed|npm error|npm ERR!/;
const STACK_FRAME = /^\s+at /;
const tsx = (entry: string) => ['--conditions=source', '--import', 'tsx', join(repoRoot, entry)];

test('npm start: the demo comes up, and Ctrl-C (SIGINT to the process group) stops it with status 0 and no failure banner', async (t) => {
  const start = run(t, 'npm', ['start'], {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_DEMO_PAGE_PORT: '0',
  });
  await start.line(/^Chat cluster ready/);
  const endpoint = await start.line(/Endpoint: +ws:\/\/127\.0\.0\.1:\d+\//);
  assert.ok(!endpoint.includes(':0/'), endpoint);
  const page = await start.line(/Chat page: +http:\/\/127\.0\.0\.1:\d+\//);
  assert.ok(!page.includes(':0/'), page);
  assert.ok(start.child.pid !== undefined);
  killGroup(start.child, 'SIGINT');
  assert.deepEqual(await start.exited, { code: 0, signal: null });
  const output = [...start.stdout, ...start.stderr];
  assert.equal(
    output.find((l) => FAILURE_BANNER.test(l)),
    undefined,
  );
  // npm, the bootstrap and the demo are all gone (no orphan keeps the ports).
  await pollUntil(
    () => {
      try {
        process.kill(-(start.child.pid ?? 0), 0);
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ESRCH';
      }
    },
    { what: 'the process group to be gone' },
  );
});

test('npm start with the router port taken: one line naming the address and CHAT_ROUTER_PORT, no stack, exit 1', async (t) => {
  const port = await occupiedPort(t);
  const start = run(t, 'npm', ['start'], {
    CHAT_ROUTER_PORT: String(port),
    CHAT_ROUTER_ADMIN_PORT: '0',
    CHAT_DEMO_PAGE_PORT: '0',
  });
  assert.deepEqual(await start.exited, { code: 1, signal: null });
  const problems = start.stderr.filter((l) => l.includes('EADDRINUSE'));
  assert.equal(problems.length, 1, start.stderr.join('\n'));
  assert.ok(problems[0]?.includes(`127.0.0.1:${port}`), problems[0]);
  assert.ok(problems[0]?.includes('CHAT_ROUTER_PORT'), problems[0]);
  assert.equal(
    start.stderr.find((l) => STACK_FRAME.test(l)),
    undefined,
  );
  assert.deepEqual(
    start.stdout.filter((l) => /Chat cluster ready/.test(l)),
    [],
  );
});

test('a router whose admin port is taken names CHAT_ROUTER_ADMIN_PORT and exits 1', async (t) => {
  const port = await occupiedPort(t);
  const router = run(t, process.execPath, tsx('router/src/main.ts'), {
    CHAT_AUTH_MODE: 'off',
    CHAT_ROUTER_NODES: 'n1=http://127.0.0.1:9',
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: String(port),
  });
  assert.deepEqual(await router.exited, { code: 1, signal: null });
  const problem = router.stderr.find((l) => l.includes('EADDRINUSE')) ?? '';
  assert.ok(problem.includes(`127.0.0.1:${port}`) && problem.includes('CHAT_ROUTER_ADMIN_PORT'), problem);
  assert.ok(!problem.includes('CHAT_ROUTER_PORT '), problem);
  assert.equal(
    router.stderr.find((l) => STACK_FRAME.test(l)),
    undefined,
  );
});

test('a chat node whose port is taken names CHAT_NODE_PORT and exits 1', async (t) => {
  const port = await occupiedPort(t);
  const node = run(t, process.execPath, tsx('node/src/main.ts'), {
    CHAT_AUTH_MODE: 'off',
    CHAT_NODE_ID: 'n1',
    CHAT_NODE_PORT: String(port),
  });
  assert.deepEqual(await node.exited, { code: 1, signal: null });
  const problem = node.stderr.find((l) => l.includes('EADDRINUSE')) ?? '';
  assert.ok(problem.includes(`127.0.0.1:${port}`) && problem.includes('CHAT_NODE_PORT'), problem);
  assert.equal(
    node.stderr.find((l) => STACK_FRAME.test(l)),
    undefined,
  );
});

test('SIGINT twice (the terminal and a parent passing it on) still stops a router cleanly: exit 0', async (t) => {
  const router = run(t, process.execPath, tsx('router/src/main.ts'), {
    CHAT_AUTH_MODE: 'off',
    CHAT_ROUTER_NODES: 'n1=http://127.0.0.1:9',
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
  });
  await router.line(/^router ready/);
  router.child.kill('SIGINT');
  router.child.kill('SIGINT');
  assert.deepEqual(await router.exited, { code: 0, signal: null });
});

test('TOKEN=$(npm run --silent token -- carol) captures exactly the token', async (t) => {
  const secret = 'start-test-secret-0123456789abcdef';
  const token = run(t, 'npm', ['run', '--silent', 'token', '--', 'carol'], {
    CHAT_AUTH_HS256_SECRET: secret,
  });
  assert.deepEqual(await token.exited, { code: 0, signal: null });
  // What `$(...)` keeps: stdout with trailing newlines removed, so one line and nothing else.
  assert.equal(token.stdout.length, 1, token.stdout.join('\n'));
  const jwt = token.stdout[0] ?? '';
  const { payload } = await jwtVerify(jwt, new TextEncoder().encode(secret));
  assert.equal(payload.sub, 'carol');
});

test('bootstrap on an older Node.js where it cannot install one: one line naming the version needed, exit 1', async (t) => {
  // Pretend to be Node 20 on macOS: the bootstrap must refuse before installing anything.
  const pretend =
    "Object.defineProperty(process,'platform',{value:'darwin'});" +
    "Object.defineProperty(process.versions,'node',{value:'20.20.2'});" +
    "Object.defineProperty(process,'version',{value:'v20.20.2'});";
  const boot = run(
    t,
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(pretend)}`,
      join(repoRoot, 'tools/bootstrap.mjs'),
    ],
    {},
  );
  assert.deepEqual(await boot.exited, { code: 1, signal: null });
  assert.equal(boot.stderr.length, 1, boot.stderr.join('\n'));
  assert.match(boot.stderr[0] ?? '', /Node\.js 24/);
  assert.deepEqual(boot.stdout, []);
});
