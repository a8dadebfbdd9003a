import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../paths.js';
import { allMetricNames, renderMetricsDocs } from './metrics-docs.js';

test('docs/metrics.md documents exactly the registered metrics (pnpm docs:gen)', async () => {
  const committed = await readFile(join(repoRoot, 'docs/metrics.md'), 'utf8');
  assert.equal(committed, renderMetricsDocs());
  const documented = [...committed.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), allMetricNames().sort());
});

test('metric names follow chat_<component>_<thing>[_<unit>]', () => {
  for (const name of allMetricNames()) assert.match(name, /^chat_(node|router)_[a-z_]+$/);
});
