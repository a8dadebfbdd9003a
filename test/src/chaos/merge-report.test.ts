// `pnpm chaos --merge` (merge-report.ts) on reports rendered by report.ts: a run's scenarios replace or
// join the existing ones, the others keep their figures, the results say which run each row is from, and a
// report written for other modes is refused (the run's own report is then kept by run.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { account } from './accounting.js';
import type { MessageRecord } from './load-client.js';
import { MergeError, mergeScenarios } from './merge-report.js';
import { mergeReports, renderReport } from './report.js';
import { DEFAULT_OPTIONS, type ScenarioResult } from './run-scenario.js';

/** A result whose only distinguishing figure is how many messages were written (`written` records). */
function result(name: string, written: number): ScenarioResult {
  const records: MessageRecord[] = Array.from({ length: written }, (_, i) => ({
    cid: `${name}-${i}`,
    from: 'u1',
    to: 'u2',
    cross: false,
    createdAt: 0,
    attempts: [],
    state: 'failed',
    receptions: [],
  }));
  return {
    name,
    title: `scenario ${name}`,
    counts: account({
      records,
      closes: [],
      reconnectMs: [],
      spansOf: () => [],
      graceMs: 1000,
      uncorrelated: { errors: new Map(), messages: 0, misdelivered: 0 },
    }),
    timeline: [{ t: 0, event: `${name} fault ${written}` }],
    notRecovered: [],
    recoveredMs: 10,
    settled: true,
    durationMs: 1000,
    error: undefined,
    logFiles: [],
    nodeCounters: {},
    moves: [],
  };
}

function report(command: string, results: ScenarioResult[], modes: ('fast' | 'durable')[]): string {
  return mergeReports(
    modes.map((mode) =>
      renderReport({
        command,
        startedAt: new Date('2026-01-01T00:00:00Z'),
        durationS: 60,
        machine: `machine of ${command}.`,
        options: DEFAULT_OPTIONS,
        graceMs: 1000,
        shards: 64,
        results,
        ...(modes.length > 1 ? { mode } : {}),
      }),
    ),
  );
}

const rowOf = (doc: string, name: string) => doc.split('\n').filter((l) => l.startsWith(`| ${name} |`));

test('merge: rows and sections of the run replace or join the existing ones; the rest is kept', () => {
  const both: ('fast' | 'durable')[] = ['fast', 'durable'];
  const existing = report('pnpm chaos', [result('kill9', 111), result('rolling', 222)], both);
  const fresh = report('pnpm chaos --merge', [result('rolling', 333), result('scale-out-in', 444)], both);
  const merged = mergeScenarios(existing, fresh, ['rolling', 'scale-out-in']);

  for (const name of ['kill9', 'rolling', 'scale-out-in']) assert.equal(rowOf(merged, name).length, 2, name);
  assert.match(rowOf(merged, 'kill9')[0] ?? '', /\| 111 \/ 0 \|/, 'kept');
  assert.match(rowOf(merged, 'rolling')[0] ?? '', /\| 333 \/ 0 \|/, 'replaced');
  assert.match(rowOf(merged, 'scale-out-in')[1] ?? '', /\| 444 \/ 0 \|/, 'added');
  assert.doesNotMatch(merged, /222/, 'the old rolling figures are gone');
  // One section per scenario and mode, the new one at the end of its mode's scenarios.
  for (const heading of ['### rolling (fast)', '### scale-out-in (fast)', '### scale-out-in (durable)'])
    assert.equal(merged.split('\n').filter((l) => l === heading).length, 1, heading);
  assert.ok(merged.indexOf('### scale-out-in (fast)') < merged.indexOf('## Results, durable mode'));
  assert.match(merged, /- 0: rolling fault 333/);
  // Each results section says where the rows come from.
  const later = merged.split('\n').filter((l) => l.startsWith('Rows from a later run'));
  assert.equal(later.length, 2);
  assert.match(later[0] ?? '', /^Rows from a later run \(rolling, scale-out-in\): `pnpm chaos --merge`/);
  assert.match(later[0] ?? '', /Machine: machine of pnpm chaos --merge\./);
  assert.match(later[0] ?? '', /Over those scenarios: lost after `accepted` 0/);
  assert.equal(merged.split('\n').filter((l) => l.startsWith('Over every scenario of that run:')).length, 2);
  assert.ok(merged.endsWith(existing.slice(existing.indexOf('## What each mode promises'))));
  assert.match(merged, /<!-- Written by .* `pnpm chaos --merge`/);
  assert.equal(merged.split('\n').filter((l) => l.startsWith('In CI:')).length, 1);

  // Merging the same scenarios again replaces that line rather than adding another.
  const again = mergeScenarios(merged, fresh, ['rolling', 'scale-out-in']);
  assert.equal(again.split('\n').filter((l) => l.startsWith('Rows from a later run')).length, 2);
  assert.equal(again, merged);
});

test('merge: the paragraph on the CI subset is added to a report written before it had one', () => {
  const existing = report('pnpm chaos', [result('kill9', 1)], ['fast'])
    .split('\n')
    .filter((l) => !l.startsWith('In CI:'))
    .join('\n');
  const merged = mergeScenarios(existing, report('pnpm chaos --merge', [result('kill9', 2)], ['fast']), [
    'kill9',
  ]);
  const lines = merged.split('\n');
  const ci = lines.findIndex((l) => l.startsWith('In CI:'));
  assert.ok(ci !== -1 && ci < lines.indexOf('## Results'), 'before the results');
  assert.match(lines[ci] ?? '', /scale-out-in, rolling-drain/);
});

test('merge: a report written for other modes is refused, naming the missing section', () => {
  const existing = report('pnpm chaos', [result('kill9', 1)], ['fast']);
  const fresh = report('pnpm chaos --merge', [result('kill9', 2)], ['fast', 'durable']);
  assert.throws(
    () => mergeScenarios(existing, fresh, ['kill9']),
    (err: unknown) =>
      err instanceof MergeError && /"## Results, fast mode \(the default\)"/.test(err.message),
  );
});
