#!/usr/bin/env node
// Makes a fresh clone runnable with nothing but Node.js (and npm) installed:
// 1. installs the pinned pnpm from tools/pnpm (its own lockfile, `npm ci`), unless it is already there;
// 2. installs the workspace with a frozen lockfile, unless node_modules is newer than the lockfile.
// `npm start` and `npm test` run this first, so the README's two commands are all a newcomer needs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pnpmDir = join(root, 'tools', 'pnpm');
const pnpmBin = join(pnpmDir, 'node_modules', '.bin', 'pnpm');
const wanted = JSON.parse(readFileSync(join(pnpmDir, 'package.json'), 'utf8')).dependencies.pnpm;

function run(cmd, args, cwd) {
  const result = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`bootstrap: \`${cmd} ${args.join(' ')}\` failed (exit ${result.status ?? result.signal})`);
    process.exit(result.status ?? 1);
  }
}

function installedPnpmVersion() {
  if (!existsSync(pnpmBin)) return undefined;
  const result = spawnSync(pnpmBin, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

if (installedPnpmVersion() !== wanted) {
  console.error(`bootstrap: installing pnpm ${wanted} into tools/pnpm`);
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], pnpmDir);
}

const lockfile = join(root, 'pnpm-lock.yaml');
const marker = join(root, 'node_modules', '.modules.yaml');
const fresh = existsSync(marker) && statSync(marker).mtimeMs >= statSync(lockfile).mtimeMs;
if (!fresh || process.env.CI) {
  run(pnpmBin, ['install', '--frozen-lockfile', '--reporter=append-only'], root);
}
