// The chaos suite's CI subset (issues 12 and 14): kill -9 a node, SIGTERM a node, admin drain, and the
// procedures of docs/operations.md (scale out 3 -> 4 -> 3 with plan and drain, a rolling restart by hand),
// each from a fresh cluster (3 nodes, 1 router, real processes) on the run's Kafka broker, under the load
// client of `pnpm chaos` (120 users in 12 affinity groups through the router, 200 msgs/s, 30% across
// groups, one app reconnect per second, retries with the same cid, reconnects honouring the server's
// hints). Exact counts are asserted: zero messages lost after an `accepted` ack, zero lost after
// `delivered` except on a session that ended abnormally (1006: fast mode's one allowed loss, bytes in a
// killed process's buffers), zero duplicates after dropping repeated server ids, zero `offline` answers
// for receivers who had a session within the presence grace, every send answered; the scenario must
// recover and settle in time; a procedure's steps move exactly the shards their plans predicted.
// Timings (reconnect, answer, delivery) are printed, never asserted. No sleeps: phases end after a number
// of messages or when a condition holds, each with a deadline.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { useKafka, type KafkaFixture } from '../kafka/harness.js';
import { printTable } from './monitors.js';
import { describeMove } from './procedures.js';
import { DEFAULT_OPTIONS, runScenario, type ScenarioOptions, type ScenarioResult } from './run-scenario.js';
import { CI_SCENARIOS, pickScenarios } from './scenarios.js';

const OPTIONS: ScenarioOptions = {
  ...DEFAULT_OPTIONS,
  warmupMs: 3000,
  afterMs: 2000,
  settleMs: 20_000,
  limitMs: 120_000,
};

describe('chaos subset: no acked message lost (3 nodes, 1 router, real broker)', () => {
  const cleanups: (() => unknown)[] = [];
  let kafka: KafkaFixture;
  before(
    async () => {
      kafka = await useKafka({ after: (fn) => cleanups.push(fn) });
    },
    { timeout: 180_000 },
  );
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  for (const scenario of pickScenarios(CI_SCENARIOS)) {
    test(scenario.title, { timeout: OPTIONS.limitMs + 30_000 }, async () => {
      const result = await runScenario({ brokers: kafka.brokers, broker: undefined }, scenario, OPTIONS);
      report(result);
      assertCounts(result);
    });
  }
});

function report(r: ScenarioResult): void {
  const c = r.counts;
  const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(0));
  printTable(`chaos ${r.name} (${(r.durationMs / 1000).toFixed(0)} s)`, [
    ['written / retries', c ? `${c.written} / ${c.retries}` : 'n/a'],
    ['acked (first ack)', c ? JSON.stringify(c.acked) : 'n/a'],
    ['failed / unanswered', c ? `${c.failed} / ${c.unanswered}` : 'n/a'],
    ['errors by code', c ? JSON.stringify(c.errors) : 'n/a'],
    [
      'lost after accepted / delivered (at a 1006 close)',
      c ? `${c.lostAccepted} / ${c.lostDelivered} (${c.lostDeliveredAbnormal})` : 'n/a',
    ],
    [
      'duplicates (extra copies) / repeated ids',
      c ? `${c.duplicates} (${c.duplicateCopies}) / ${c.repeatedIds}` : 'n/a',
    ],
    ['offline with a recent session / all offline', c ? `${c.offlineRecent} / ${c.offline}` : 'n/a'],
    [
      'closes of open sessions / app reconnects (churn)',
      c ? `${JSON.stringify(c.closes)} / ${c.churned}` : 'n/a',
    ],
    ['failed connects', c ? JSON.stringify(c.failedConnects) : 'n/a'],
    [
      'reconnect p50 / p99 ms (count)',
      c ? `${fmt(c.reconnectP50Ms)} / ${fmt(c.reconnectP99Ms)} (${c.reconnects})` : 'n/a',
    ],
    ['answer p50 / p99 ms', c ? `${fmt(c.answerP50Ms)} / ${fmt(c.answerP99Ms)}` : 'n/a'],
    ['delivery p99 ms', c ? fmt(c.deliveryP99Ms) : 'n/a'],
    ['recovered after (ms)', fmt(r.recoveredMs)],
    ...r.moves.map(
      (m, i) =>
        [
          i === 0 ? 'moved (plan against outcome)' : '',
          `${m.step}: ${describeMove(m.plan, m.moved)}`,
        ] as const,
    ),
    ['node counters (nodes alive at the end)', JSON.stringify(r.nodeCounters)],
    ['lost (examples)', c?.examples.join('; ') || '-'],
    ['timeline', r.timeline.map((e) => `${e.t}: ${e.event}`).join(' | ')],
    ['logs', r.logFiles.join(' ')],
  ]);
}

/** Every promise at once, with its numbers, so a failure names all that broke. */
function assertCounts(r: ScenarioResult): void {
  const failures: string[] = [];
  if (r.error) failures.push(`did not complete: ${r.error}`);
  for (const n of r.notRecovered) failures.push(`not recovered: ${n}`);
  if (!r.settled) failures.push('the load did not settle (answers or deliveries missing at the deadline)');
  const c = r.counts;
  if (!c) failures.push('no counts');
  else {
    if (c.lostAccepted > 0)
      failures.push(
        `${c.lostAccepted} messages acked accepted never reached their receiver (e.g. ${c.examples.join('; ')})`,
      );
    const cleanLoss = c.lostDelivered - c.lostDeliveredAbnormal;
    if (cleanLoss > 0)
      failures.push(
        `${cleanLoss} messages acked delivered never reached their receiver, whose session did not end abnormally (fast mode allows only bytes in a killed process's buffers; e.g. ${c.examples.join('; ')})`,
      );
    if (c.duplicates > 0)
      failures.push(
        `${c.duplicates} messages delivered under 2+ server ids (${c.duplicateCopies} extra copies)`,
      );
    if (c.offlineRecent > 0)
      failures.push(
        `${c.offlineRecent} offline answers for receivers with a session within the grace period`,
      );
    if (c.unanswered > 0) failures.push(`${c.unanswered} messages never answered`);
    if (c.stray > 0) failures.push(`${c.stray} messages at the wrong user or not written by this run`);
  }
  // The plan is computed with the router's own owner-table code from its live table, and each step changes
  // the table once: the shards that moved are exactly the predicted ones.
  for (const m of r.moves)
    if (m.moved.shards !== m.plan.shards)
      failures.push(`${m.step}: the plan predicted ${m.plan.shards} shards to move, ${m.moved.shards} moved`);
  assert.deepEqual(failures, [], `${r.name}:\n  ${failures.join('\n  ')}`);
}
