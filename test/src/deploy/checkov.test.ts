// A real checker over every deploy file: checkov (the pinned release .ci/run installs into
// .cache/checkov) scans deploy/ (Kubernetes manifests, the Dockerfile, secrets in any file). Every
// finding must be listed, with why it stays, in docs/security.md's "Checker findings" table, and every
// listed finding must still be found (a fixed one is taken off the list).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../paths.js';
import { read } from './manifests.js';

const CHECKOV_VERSION = '3.3.30';
const checkov = join(repoRoot, '.cache/checkov/bin/checkov');

interface Report {
  check_type: string;
  summary: { passed: number; failed: number; parsing_errors: number; resource_count: number };
  results: { failed_checks: { check_id: string; resource: string; file_path: string; check_name: string }[] };
}

/** `CHECK_ID RESOURCE` of each row of docs/security.md's findings table. */
function listedFindings(): Map<string, string> {
  const doc = read('docs/security.md');
  const start = doc.indexOf('### Checker findings');
  assert.ok(start >= 0, 'docs/security.md has no "Checker findings" section');
  const end = doc.indexOf('\n#', start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end);
  const listed = new Map<string, string>();
  for (const [, id, resource, why] of section.matchAll(/^\| `(CKV\w+)`\s*\| `([^`]+)`\s*\|([^|]*)\|/gm)) {
    assert.ok((why ?? '').trim().length > 20, `${id} ${resource}: no justification`);
    listed.set(`${id} ${resource}`, (why ?? '').trim());
  }
  return listed;
}

test('checkov finds nothing in deploy/ beyond the findings docs/security.md lists and justifies', (t) => {
  assert.ok(
    existsSync(checkov),
    `no checkov at ${checkov}: .ci/run installs checkov==${CHECKOV_VERSION} there`,
  );
  const version = spawnSync(checkov, ['--version'], { encoding: 'utf8' });
  assert.equal(version.stdout.trim(), CHECKOV_VERSION);
  // --skip-download: no policy metadata from the vendor's platform (offline, and a few seconds faster).
  // deploy/.env holds a developer's own compose secrets (deploy/new-env.sh), ignored by git.
  const args = ['-d', 'deploy', '--skip-download', '--skip-path', 'deploy/.env', '--output', 'json'];
  const run = spawnSync(checkov, args, {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  assert.ok(run.status === 0 || run.status === 1, `checkov exited ${run.status}: ${run.stderr.slice(-2000)}`);
  const parsed = JSON.parse(run.stdout) as Report | Report[];
  const reports = Array.isArray(parsed) ? parsed : [parsed];
  const byType = new Map(reports.map((r) => [r.check_type, r]));
  // It really read the files: the manifests and the Dockerfile, without parse errors.
  assert.ok((byType.get('kubernetes')?.summary.resource_count ?? 0) >= 14, 'kubernetes resources scanned');
  assert.equal(byType.get('dockerfile')?.summary.resource_count, 1, 'the Dockerfile scanned');
  for (const r of reports) assert.equal(r.summary.parsing_errors, 0, r.check_type);

  const found = new Set(
    reports.flatMap((r) => r.results.failed_checks.map((c) => `${c.check_id} ${c.resource}`)),
  );
  const listed = listedFindings();
  const unlisted = [...found].filter((f) => !listed.has(f));
  const stale = [...listed.keys()].filter((f) => !found.has(f));
  assert.deepEqual(unlisted, [], 'findings not listed in docs/security.md');
  assert.deepEqual(stale, [], 'listed findings checkov no longer reports: take them off the list');
  const passed = reports.reduce((n, r) => n + r.summary.passed, 0);
  t.diagnostic(`checkov ${CHECKOV_VERSION}: ${passed} checks passed, ${found.size} findings, each justified`);
});
