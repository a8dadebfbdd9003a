// What the chaos suite counts, from the load client's records: one pure function, so the definitions are
// in one place (docs/reliability.md repeats them) and can be checked without a cluster.
import type { CloseEvent, MessageRecord, SessionSpan } from './load-client.js';
import { quantile } from './monitors.js';

export interface Counts {
  /** Messages the app wrote. */
  readonly written: number;
  /** Messages with at least one attempt on the wire. */
  readonly sent: number;
  /** Attempts beyond the first (retries with the same cid). */
  readonly retries: number;
  /** Messages by their first ack's status: delivered, accepted, offline. */
  readonly acked: Readonly<Record<string, number>>;
  /** Messages that ended without an ack: a final error, or out of attempts. */
  readonly failed: number;
  /** Messages still unanswered when the run stopped counting. */
  readonly unanswered: number;
  /** Error answers by code (every attempt; uncorrelated error frames included). */
  readonly errors: Readonly<Record<string, number>>;
  /** Acked `accepted` (first ack) and never received. */
  readonly lostAccepted: number;
  /** Acked `delivered` (first ack) and never received. */
  readonly lostDelivered: number;
  /**
   * Of those, the ones whose receiver's session ended without a close frame (1006: a killed process, a
   * cut connection) within `KILLED_WINDOW_MS` after the send: bytes in a dead socket's buffers, the one
   * loss fast mode allows. The rest were lost on a session that closed cleanly, or stayed open.
   */
  readonly lostDeliveredAbnormal: number;
  /** Copies that repeated a server id the receiver had already seen (the SDK drops them). */
  readonly repeatedIds: number;
  /** Messages the receiver got under two or more different server ids: duplicates an app would show. */
  readonly duplicates: number;
  /** The extra copies of those messages (distinct ids beyond the first). */
  readonly duplicateCopies: number;
  /** `offline` answers (any attempt) for receivers who had a session within the grace period. */
  readonly offlineRecent: number;
  /** All `offline` answers. */
  readonly offline: number;
  /** Messages received by a user other than their receiver, or not written by this run. */
  readonly stray: number;
  /** Server-side closes of open sessions by code ("1006", "4001", ...), and failed connects by status. */
  readonly closes: Readonly<Record<string, number>>;
  /** Sessions the app closed itself (churn), each followed by a reconnect. */
  readonly churned: number;
  readonly failedConnects: Readonly<Record<string, number>>;
  readonly reconnects: number;
  readonly reconnectP50Ms: number;
  readonly reconnectP99Ms: number;
  /** Time from an attempt to its answer (ack or error), p50 and p99 over every answered attempt. */
  readonly answerP50Ms: number;
  readonly answerP99Ms: number;
  /** Time from the first attempt to the first reception, p99 over received messages. */
  readonly deliveryP99Ms: number;
  /** A few of the lost messages (cid, route, times) for the report. */
  readonly examples: readonly string[];
}

export interface AccountingInput {
  readonly records: Iterable<MessageRecord>;
  readonly closes: readonly CloseEvent[];
  readonly reconnectMs: readonly number[];
  readonly spansOf: (user: string) => readonly SessionSpan[];
  /** CHAT_NODE_PRESENCE_GRACE_MS: a user with a session this recently is not `offline`. */
  readonly graceMs: number;
  readonly uncorrelated: {
    readonly errors: ReadonlyMap<string, number>;
    readonly messages: number;
    readonly misdelivered: number;
  };
  /** Times in the examples are relative to this (e.g. the fault). */
  readonly origin?: number;
}

/** How soon after a `delivered` send an abnormal close of the receiver's session explains its loss. */
export const KILLED_WINDOW_MS = 5000;

const bump = (m: Record<string, number>, k: string, by = 1) => (m[k] = (m[k] ?? 0) + by);

/** True when `spans` has a session open at some moment in [at - graceMs, at]. */
export function hadSessionWithin(spans: readonly SessionSpan[], at: number, graceMs: number): boolean {
  return spans.some((s) => s.openAt <= at && (s.closeAt === undefined || s.closeAt >= at - graceMs));
}

/** Counts every message of a run (see `Counts`). */
export function account(input: AccountingInput): Counts {
  const acked: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const closes: Record<string, number> = {};
  const failedConnects: Record<string, number> = {};
  const answerMs: number[] = [];
  const deliveryMs: number[] = [];
  const examples: string[] = [];
  const origin = input.origin ?? 0;
  let written = 0;
  let sent = 0;
  let retries = 0;
  let failed = 0;
  let unanswered = 0;
  let lostAccepted = 0;
  let lostDelivered = 0;
  let lostDeliveredAbnormal = 0;
  let repeatedIds = 0;
  let duplicates = 0;
  let duplicateCopies = 0;
  let offline = 0;
  let offlineRecent = 0;
  for (const r of input.records) {
    written++;
    if (r.attempts.length > 0) sent++;
    retries += Math.max(0, r.attempts.length - 1);
    let firstAck: string | undefined;
    for (const a of r.attempts) {
      if (a.answerAt !== undefined && (a.answer?.type === 'ack' || a.answer?.type === 'error'))
        answerMs.push(a.answerAt - a.at);
      if (a.answer?.type === 'error') bump(errors, a.answer.code);
      if (a.answer?.type === 'ack') {
        firstAck ??= a.answer.status;
        if (a.answer.status === 'offline') {
          offline++;
          if (hadSessionWithin(input.spansOf(r.to), a.answerAt ?? a.at, input.graceMs)) offlineRecent++;
        }
      }
    }
    if (firstAck !== undefined) bump(acked, firstAck);
    else if (r.state === 'failed') failed++;
    else unanswered++;
    const ids = new Set<string>();
    for (const c of r.receptions) {
      if (ids.has(c.id)) repeatedIds++;
      ids.add(c.id);
    }
    if (ids.size > 1) {
      duplicates++;
      duplicateCopies += ids.size - 1;
    }
    const first = r.receptions[0];
    const firstAttempt = r.attempts[0];
    if (first && firstAttempt) deliveryMs.push(first.at - firstAttempt.at);
    if (r.receptions.length === 0 && (firstAck === 'accepted' || firstAck === 'delivered')) {
      if (firstAck === 'accepted') lostAccepted++;
      else {
        lostDelivered++;
        const at = firstAttempt?.at ?? 0;
        const next = input.closes.find((c) => c.user === r.to && c.wasOpen && c.at >= at);
        if (next && !next.byClient && next.code === 1006 && next.at - at <= KILLED_WINDOW_MS)
          lostDeliveredAbnormal++;
      }
      if (examples.length < 5) {
        const sentAt = firstAttempt?.at ?? 0;
        // The receiver's session ends near the send: what a reader needs to tell why it was lost.
        const near = input.closes
          .filter((c) => c.user === r.to && c.wasOpen && Math.abs(c.at - sentAt) <= 3000)
          .map((c) => `${c.at - origin} ms (${c.code}${c.byClient ? ' by the app' : ''})`);
        examples.push(
          `${r.cid} ${firstAck} ${r.from}->${r.to}${r.cross ? ' (cross)' : ''}, first sent at ${sentAt - origin} ms, ${r.attempts.length} attempt(s)${near.length ? `; receiver's session closed at ${near.join(', ')}` : ''}`,
        );
      }
    }
  }
  for (const [code, n] of input.uncorrelated.errors) bump(errors, `${code} (no cid)`, n);
  let churned = 0;
  for (const c of input.closes) {
    if (c.byClient) churned++;
    else if (c.wasOpen) bump(closes, String(c.code));
    else bump(failedConnects, c.status !== undefined ? `HTTP ${c.status}` : `close ${c.code}`);
  }
  return {
    written,
    sent,
    retries,
    acked,
    failed,
    unanswered,
    errors,
    lostAccepted,
    lostDelivered,
    lostDeliveredAbnormal,
    repeatedIds,
    duplicates,
    duplicateCopies,
    offlineRecent,
    offline,
    stray: input.uncorrelated.messages + input.uncorrelated.misdelivered,
    closes,
    churned,
    failedConnects,
    reconnects: input.reconnectMs.length,
    reconnectP50Ms: quantile(input.reconnectMs, 0.5),
    reconnectP99Ms: quantile(input.reconnectMs, 0.99),
    answerP50Ms: quantile(answerMs, 0.5),
    answerP99Ms: quantile(answerMs, 0.99),
    deliveryP99Ms: quantile(deliveryMs, 0.99),
    examples,
  };
}
