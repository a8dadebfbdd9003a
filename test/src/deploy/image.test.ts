// What the image runs, built and started without Docker: the files deploy/Dockerfile's build stage copies
// are copied the same way into a scratch tree, deploy/build-prod.sh builds it (offline, from the local
// pnpm store), and the output must hold production files only, read-only, and start both services from
// the image's working directory with the image's commands, healthy by the image's HEALTHCHECK script.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { freePort } from '../net.js';
import { repoRoot } from '../paths.js';
import { pollUntil } from '../poll.js';
import { read } from './manifests.js';

const pnpm = join(repoRoot, 'tools/pnpm/node_modules/.bin/pnpm');
/** Packages only tests, linting or the build use; none may reach the image. */
const DEV_ONLY =
  /^(typescript|tsx|esbuild|@esbuild|eslint|@eslint|prettier|fast-check|yaml|@types|socket\.io|redis)(@|\+|$)/;

/** COPY lines of the build stage, applied from the repository to `dest` (tools/pnpm excepted: PNPM). */
function copyBuildContext(dest: string): void {
  const dockerfile = read('deploy/Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM /gm)].map((m) => m.index);
  const buildStage = dockerfile.slice(stages[0], stages[1]);
  for (const line of buildStage.split('\n').filter((l) => l.startsWith('COPY '))) {
    const parts = line.replace(/^COPY\s+/, '').split(/\s+/);
    const target = parts.pop() ?? '';
    for (const source of parts) {
      if (source.startsWith('tools/pnpm/')) continue;
      const to =
        target.endsWith('/') || target === './' ? join(dest, target, basename(source)) : join(dest, target);
      mkdirSync(dirname(to), { recursive: true });
      cpSync(join(repoRoot, source), to, { recursive: true });
    }
  }
}

/** Every file and directory under `dir` (symbolic links not followed). */
function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) walk(p, out);
  }
  return out;
}

/** Bytes of the regular files under `dir`, each file once however many links it has. */
function sizeOf(dir: string): number {
  const seen = new Set<number>();
  let bytes = 0;
  for (const p of walk(dir)) {
    const s = lstatSync(p);
    if (s.isFile() && !seen.has(s.ino)) {
      seen.add(s.ino);
      bytes += s.size;
    }
  }
  return bytes;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

test('the image build ships production files only, read-only, and both services start and pass the HEALTHCHECK', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chat-image-'));
  t.after(async () => {
    await chmod(dir, 0o755);
    spawnSync('chmod', ['-R', 'u+w', dir]);
    await rm(dir, { recursive: true, force: true });
  });
  const src = join(dir, 'src');
  const app = join(dir, 'app');
  copyBuildContext(src);
  const env = { ...process.env, PNPM: pnpm, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  const build = spawnSync('sh', [join(src, 'deploy/build-prod.sh'), src, app, '--offline'], {
    env,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(build.status, 0, `build-prod.sh: ${build.stdout.slice(-2000)}${build.stderr.slice(-2000)}`);

  // Production files only: the services' compiled JavaScript and their production dependencies.
  const files = walk(app);
  const rel = (p: string) => p.slice(app.length + 1);
  const ours = files.filter(
    (p) => !rel(p).includes('node_modules/') || /node_modules\/@chat\/shared\//.test(rel(p)),
  );
  assert.deepEqual(
    ours.filter((p) => /\.test\.|\.ts$|\/src(\/|$)|tsconfig|\.map$/.test(rel(p))).map(rel),
    [],
    'tests, sources or build files in the image',
  );
  for (const service of ['node', 'router']) {
    const store = readdirSync(join(app, service, 'node_modules/.pnpm'));
    assert.deepEqual(
      store.filter((name) => DEV_ONLY.test(name)),
      [],
      `dev dependencies in ${service}`,
    );
    assert.ok(
      store.some((name) => /^kafkajs@2\.2\.4_patch_hash=/.test(name)),
      `${service}: kafkajs unpatched`,
    );
  }
  // Nobody can write to it, the user the image runs as included.
  const writable = files.filter((p) => !lstatSync(p).isSymbolicLink() && (lstatSync(p).mode & 0o222) !== 0);
  assert.deepEqual(writable.map(rel), [], 'writable files');

  // Both services start with the image's commands from its working directory, with no dev dependency
  // and no TypeScript loader; the HEALTHCHECK script says healthy, and unhealthy where nothing listens.
  const [nodePort, routerPort, adminPort, closedA, closedB] = await Promise.all(
    Array.from({ length: 5 }, () => freePort()),
  );
  const base = {
    PATH: env.PATH,
    NODE_ENV: 'production',
    CHAT_AUTH_MODE: 'jwt',
    CHAT_AUTH_HS256_SECRET: 'image-test-secret-0123456789abcdefghij',
    CHAT_LOG_LEVEL: 'warn',
  };
  const children: ChildProcess[] = [];
  t.after(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve(undefined);
            c.once('exit', resolve);
            c.kill('SIGTERM');
          }),
      ),
    );
  });
  const start = (command: string[], extra: Record<string, string>) => {
    const child = spawn(process.execPath, command.slice(1), {
      cwd: app,
      env: { ...base, ...extra },
      stdio: 'ignore',
    });
    children.push(child);
    return child;
  };
  const healthcheck = (ports: Record<string, string>) =>
    spawnSync(process.execPath, [join(app, 'healthcheck.mjs')], { env: { PATH: env.PATH, ...ports } }).status;
  const cmd = /^CMD (\[.*\])$/m.exec(read('deploy/Dockerfile'))?.[1] ?? '[]';
  const nodeProcess = start(JSON.parse(cmd) as string[], {
    CHAT_NODE_ID: 'image-n1',
    CHAT_NODE_PORT: String(nodePort),
  });
  const routerProcess = start(['node', 'router/dist/main.js'], {
    CHAT_ROUTER_PORT: String(routerPort),
    CHAT_ROUTER_ADMIN_PORT: String(adminPort),
    CHAT_ROUTER_NODES: `image-n1=http://127.0.0.1:${nodePort}`,
  });
  await pollUntil(
    () => healthcheck({ CHAT_NODE_PORT: String(nodePort), CHAT_ROUTER_PORT: String(closedA) }) === 0,
    {
      what: 'the node healthy by healthcheck.mjs',
    },
  );
  await pollUntil(
    () => healthcheck({ CHAT_ROUTER_PORT: String(routerPort), CHAT_NODE_PORT: String(closedA) }) === 0,
    {
      what: 'the router healthy by healthcheck.mjs',
    },
  );
  assert.equal(nodeProcess.exitCode, null);
  assert.equal(routerProcess.exitCode, null);
  assert.equal(healthcheck({ CHAT_ROUTER_PORT: String(closedA), CHAT_NODE_PORT: String(closedB) }), 1);

  // Today's image held the whole workspace's dependencies (the repository's node_modules store).
  const before = sizeOf(join(repoRoot, 'node_modules/.pnpm'));
  const perService = ['node', 'router'].map((s) => sizeOf(join(app, s, 'node_modules')));
  t.diagnostic(
    `production node_modules: node ${mb(perService[0] ?? 0)}, router ${mb(perService[1] ?? 0)}, ` +
      `together ${mb(sizeOf(app))} with shared files linked once; the workspace's: ${mb(before)}`,
  );
});
