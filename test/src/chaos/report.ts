// docs/reliability.md from one `pnpm chaos` run: the command, the machine, one results table (scenario x
// counts), each scenario's timeline, and what each delivery mode promises and does not.
import type { Counts } from './accounting.js';
import { describeMove } from './procedures.js';
import { CI_SCENARIOS } from './scenarios.js';
import type { ScenarioOptions, ScenarioResult } from './run-scenario.js';

export interface ReportInput {
  readonly command: string;
  readonly startedAt: Date;
  readonly durationS: number;
  readonly machine: string;
  readonly options: ScenarioOptions;
  readonly graceMs: number;
  readonly shards: number;
  readonly results: readonly ScenarioResult[];
  /** Set when one run covers several modes: the sections of this one are named after it. */
  readonly mode?: 'fast' | 'durable';
}

const PROMISES = '## What each mode promises and what it does not';
/** The start of the paragraph on the CI subset (merge-report.ts replaces it with the newer one). */
export const IN_CI = 'In CI:';

/**
 * One document from the reports of one run's modes (each rendered by `renderReport` with its `mode`): the
 * first whole, the results and scenarios of the others before the shared closing section.
 */
export function mergeReports(reports: readonly string[]): string {
  const [first = '', ...rest] = reports;
  const cut = (text: string) => (text.includes(PROMISES) ? text.indexOf(PROMISES) : text.length);
  const extra = rest.map((r) => r.slice(r.indexOf('## Results'), cut(r)));
  return first.slice(0, cut(first)) + extra.join('') + first.slice(cut(first));
}

const num = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(0));
const map = (m: Readonly<Record<string, number>>) =>
  Object.keys(m).length === 0
    ? '-'
    : Object.entries(m)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ');
/** A count the issue requires to be zero: bold when it is not. */
const zero = (n: number) => (n === 0 ? '0' : `**${n}**`);

function row(r: ScenarioResult): string {
  const c: Counts | undefined = r.counts;
  if (!c) return `| ${r.name} | ${r.error ?? 'did not run'} |${' |'.repeat(13)}`;
  const acked = ['delivered', 'accepted', 'offline'].map((s) => c.acked[s] ?? 0).join(' / ');
  const status = r.error
    ? `failed: ${r.error}`
    : [
        r.notRecovered.length
          ? `not recovered (${r.notRecovered.length})`
          : `recovered ${num(r.recoveredMs)} ms`,
        r.settled ? 'settled' : '**not settled**',
      ].join(', ');
  return [
    '',
    r.name,
    `${c.written} / ${c.retries}`,
    acked,
    c.failed + c.unanswered === 0 ? '0' : `${c.failed} / ${c.unanswered}`,
    map(c.errors),
    zero(c.lostAccepted),
    c.lostDelivered === 0
      ? '0'
      : `${c.lostDeliveredAbnormal} at a 1006 close${c.lostDelivered > c.lostDeliveredAbnormal ? `, **${c.lostDelivered - c.lostDeliveredAbnormal} otherwise**` : ''}`,
    `${zero(c.duplicates)}${c.repeatedIds ? ` (${c.repeatedIds} repeated ids dropped)` : ''}`,
    `${zero(c.offlineRecent)}${c.offline > c.offlineRecent ? ` of ${c.offline}` : ''}`,
    `${map(c.closes)}${Object.keys(c.failedConnects).length ? `; refused: ${map(c.failedConnects)}` : ''}${c.churned ? `; app reconnects: ${c.churned}` : ''}`,
    `${num(c.reconnectP50Ms)} / ${num(c.reconnectP99Ms)} (${c.reconnects})`,
    `${num(c.answerP99Ms)}`,
    `${num(c.deliveryP99Ms)}`,
    status,
    '',
  ]
    .join(' | ')
    .trim();
}

export function renderReport(input: ReportInput): string {
  const o = input.options;
  const out: string[] = [];
  const p = (...lines: string[]) => out.push(...lines);
  const lostAccepted = input.results.reduce((n, r) => n + (r.counts?.lostAccepted ?? 0), 0);
  const lostDelivered = input.results.reduce((n, r) => n + (r.counts?.lostDelivered ?? 0), 0);
  const lostAbnormal = input.results.reduce((n, r) => n + (r.counts?.lostDeliveredAbnormal ?? 0), 0);
  const dups = input.results.reduce((n, r) => n + (r.counts?.duplicates ?? 0), 0);
  const offline = input.results.reduce((n, r) => n + (r.counts?.offlineRecent ?? 0), 0);
  const failed = input.results.filter((r) => r.error || !r.counts);
  const modeName = input.mode === 'durable' ? 'durable mode' : 'fast mode (the default)';
  const inMode = (heading: string) => (input.mode ? `${heading}, ${modeName}` : heading);
  p(
    '# Reliability',
    '',
    '<!-- Written by `pnpm chaos` (test/src/chaos/run.ts) from one run, or with rows of later runs added by `pnpm chaos --merge` (each results section names them); edit the suite, not this file. -->',
    '',
    `Command: \`${input.command}\`, ${input.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${input.durationS.toFixed(0)} s in all.`,
    '',
    `Machine: ${input.machine}`,
    '',
    `Each scenario starts a fresh cluster (3 chat node processes and 1 router on 127.0.0.1, ports 0, a topic prefix of its own, ${input.shards} shards, every other setting at its default: \`CHAT_NODE_PRESENCE_GRACE_MS\` ${input.graceMs}, handoff grace and dedup window at their defaults) on one real Kafka broker, and a load client in the runner's process: ${o.users} users in ${o.groups} affinity groups (the \`affinity\` query parameter, \`CHAT_ROUTER_AFFINITY_QUERY=true\`; the router's handshake limit per address is raised because every client comes from 127.0.0.1), all through the router, ${o.ratePerSec} msgs/s with ${Math.round(o.crossShare * 100)}% to a user of another group, and ${o.churnPerSec} user(s) per second whose app closes its socket and reconnects at once (a network switch), so that reconnects happen in every phase, faults included. Phases: wait until the ring, the owner table, placement and presence have settled; ${o.warmupMs / 1000} s of load (warm-up); the fault and each recovery it waits for (the cluster settled again: every serving node ready with the router's owner table, every user connected to its shard's owner; at most ${o.recoverTimeoutMs / 1000} s each); ${o.afterMs / 1000} s more load; writing stops; settle (every send answered or given up, every message acked \`accepted\` at its receiver: a \`delivered\` one is on the receiver's socket already, so one still missing then is lost; at most ${o.settleMs / 1000} s, then ${o.quietMs / 1000} s without a new message for late copies); count.`,
    '',
    'The load client behaves like an app: a unique `cid` per message; a send answered with a retryable error, or unanswered when its socket closed (or after 8 s), is sent again with the same `cid`, receiver and body once a socket is open, after a backoff from 100 ms (at most 10 attempts); a message written while its sender is disconnected waits for the next socket; reconnects honour `retry_after_ms` in the close reason and `Retry-After` on a refused upgrade, else back off exponentially from 100 ms (capped at 5 s, +-20% jitter). `offline` is final for the app (no retry).',
    '',
    `${IN_CI} \`test/src/chaos/reliability.test.ts\` runs ${CI_SCENARIOS.join(', ')} on every push, in fast mode with a shorter warm-up and after-phase (3 s, 2 s), and fails on any count above the bar below, a scenario that does not recover or settle, or a procedure step that moved other shards than its plan; the other scenarios and durable mode run in \`pnpm chaos\` only.`,
    '',
    inMode('## Results'),
    '',
    `Over every scenario: lost after \`accepted\` ${lostAccepted}, lost after \`delivered\` ${lostDelivered} (${lostAbnormal} of them at a 1006 close), duplicates after dropping repeated server ids ${dups}, \`offline\` for users with a session within the grace period ${offline}${failed.length ? `; ${failed.length} scenario(s) did not complete: ${failed.map((r) => r.name).join(', ')}` : ''}. The issue's bar: zero lost after \`accepted\`, zero duplicates, zero such \`offline\` in every scenario, and in fast mode no loss after \`delivered\` other than bytes in a dead socket's buffers (bold where not met).`,
    '',
    '| Scenario | Written / retries | Acked delivered / accepted / offline | Failed / unanswered | Errors by code (every attempt) | Lost after accepted | Lost after delivered | Duplicates (cid under 2+ ids) | Offline, receiver had a session within grace | Closes of open sessions by code | Reconnect p50 / p99 ms (count) | Answer p99 ms | Delivery p99 ms | Run |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...input.results.map(row),
    '',
    "Columns: *written* = messages the app wrote, *retries* = attempts beyond the first (same `cid`). *Acked* = messages by the status of their first ack. *Failed* = ended with a non-retryable error or out of attempts; *unanswered* = still waiting when counting began. *Lost after accepted / delivered* = first ack said so and the receiver never got it; a loss after `delivered` is *at a 1006 close* when the receiver's next session end, within 5 s of the send, had no close frame (a killed process: bytes in its socket buffers), *otherwise* when that session closed cleanly (4001, 4002) or stayed open. *Duplicates* = the receiver got one `cid` under two or more different server ids (copies repeating an id it had already seen are dropped, as the SDK does, and shown in brackets). *Offline* = `offline` answers while the receiver had a session open at some moment in the last `CHAT_NODE_PRESENCE_GRACE_MS` (of all `offline` answers). *Closes* = server or network closes of open sessions (1006: no close frame, e.g. a killed process); *refused* = connects that failed (HTTP status of a refused upgrade, or the close code); *app reconnects* = sessions the app closed itself (churn), not counted as closes. *Reconnect* = from a session's end to the user's next open session. *Answer* = from an attempt to its ack or error. *Delivery* = from the first attempt to the first copy at the receiver.",
    '',
    inMode('## Scenarios'),
    '',
  );
  for (const r of input.results) {
    p(
      `### ${r.name}${input.mode ? ` (${input.mode})` : ''}`,
      '',
      `${r.title}. Ran ${(r.durationMs / 1000).toFixed(0)} s.`,
      '',
    );
    if (r.error) p(`Did not complete: ${r.error}`, '');
    for (const n of r.notRecovered) p(`Not recovered: ${n}`, '');
    const c = r.counts;
    if (c?.examples.length) p(`Lost (first few; times from the fault): ${c.examples.join('; ')}.`, '');
    const counters = Object.entries(r.nodeCounters).filter(([, v]) => v > 0);
    if (counters.length)
      p(
        `Node counters (the nodes alive at the end): ${counters.map(([k, v]) => `${k} ${v}`).join(', ')}.`,
        '',
      );
    // The moved share of the operator's procedures: each plan's prediction next to what moved.
    for (const m of r.moves) p(`${m.step}: ${describeMove(m.plan, m.moved)}.`, '');
    if (c && c.stray > 0)
      p(`Messages at a user other than their receiver, or not written by this run: ${c.stray}.`, '');
    p('Timeline (ms from the fault):', '', ...r.timeline.map((e) => `- ${e.t}: ${e.event}`), '');
  }
  p(
    PROMISES,
    '',
    "**Fast mode** (the default, `CHAT_NODE_DELIVERY_MODE=local-first`). Local delivery takes no Kafka: a message to a receiver with a session on the sender's node is written to that session's socket and acked `delivered`; otherwise it is written once to the receiver's shard log in Kafka (`acks=all`) and acked `accepted`, and the shard's owner delivers it.",
    '',
    "- Promised (the target of issue 12; the table above shows whether this run met it): every send gets an answer (`delivered`, `accepted`, `offline` or an error saying whether a retry helps); nothing acked `accepted` is lost, through node crashes, drains, scale-out and scale-in, rolling restarts, router restarts and broker outages (a record for a receiver who is reconnecting is held by the shard's owner for the handoff grace, `CHAT_NODE_HANDOFF_GRACE_MS`, and delivered on arrival; what expires is counted by the node); a send retried with the same `cid` within `CHAT_NODE_SEND_DEDUP_WINDOW_MS` gets the first answer and is not delivered twice; a copy that arrives twice after a crash (the new owner re-reads from the last commit) carries the same server id, so the client drops it; `offline` only when the receiver has had no session anywhere for the presence grace.",
    `- Not promised: a message acked \`delivered\` is in the receiver's socket buffers, not in Kafka. If the receiver's node is killed (kill -9, a crash, a lost machine) before the kernel has sent those bytes, or the receiver's connection drops with them unread, the message is gone and nothing can replay it: the column *Lost after delivered* counts these as "at a 1006 close" (${lostAbnormal} in this run). A loss after \`delivered\` on a session that closed cleanly (4001, 4002) or stayed open is not allowed in fast mode either: it is shown in bold as "otherwise" (${lostDelivered - lostAbnormal} in this run). Messages acked with an error other than \`NODE_ERR_BUS_TIMEOUT\` were not sent; \`NODE_ERR_BUS_TIMEOUT\` may arrive (a retry with the same \`cid\` finds out). Order across a move is not promised.`,
    '',
    "**Durable mode** (`CHAT_NODE_DELIVERY_MODE=durable`; `pnpm chaos` runs every scenario in this mode too (`--mode durable` alone), and its load client reconnects naming the position of the last message each user received). Every message, local ones too, is written to the receiver's shard log (`acks=all`) before it is acked `accepted`, and the shard's owner writes it from the log with its position (shard, offset, log epoch).",
    '',
    "- Promised: everything fast mode promises, and nothing acked is lost for a receiver that reconnects with its last position within what the owner keeps (`CHAT_NODE_RECOVERY_MAX_PER_SHARD` records per shard, none older than `CHAT_NODE_RECOVERY_TTL_MS`): the node that owns its shard, also a new owner after a kill -9 (it reads back that window before the committed position), writes every message after the position, in log order, each once, before live ones; otherwise it answers explicitly that the gap was not recovered (`resumed` with `recovered: false` and a reason). Bytes lost in a killed node's socket buffers are replayed this way, so *lost after delivered* is zero as well for such a client.",
    '- Not promised: a client that reconnects without a position, or with one older than the recovery buffer, gets live messages only (it is told so when it named one). Every message costs a Kafka round trip before it is acked and written, local ones too. Sends refused with an error were not sent, as in fast mode.',
    '',
  );
  return out.join('\n');
}
