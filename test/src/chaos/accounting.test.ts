// The chaos suite's definitions, checked without a cluster: what counts as lost, duplicated or a wrong
// `offline`, the reconnect hints the load client honours, and the scenario picker's refusal of unknown names.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { account, hadSessionWithin, type AccountingInput } from './accounting.js';
import {
  backoffMs,
  retryAfterHeaderMs,
  retryAfterMsOf,
  type CloseEvent,
  type MessageRecord,
} from './load-client.js';
import { Scope } from './cluster.js';
import { pickScenarios, SCENARIOS } from './scenarios.js';

function record(
  cid: string,
  attempts: MessageRecord['attempts'],
  receptions: MessageRecord['receptions'] = [],
  state: MessageRecord['state'] = 'acked',
): MessageRecord {
  return { cid, from: 'a', to: 'b', cross: false, createdAt: 0, attempts, state, receptions };
}

const ack = (status: string, id = 'x', at = 100) => ({
  at,
  answerAt: at + 10,
  answer: { type: 'ack' as const, status, id },
});

function input(records: MessageRecord[], extra: Partial<AccountingInput> = {}): AccountingInput {
  return {
    records,
    closes: [],
    reconnectMs: [],
    spansOf: () => [{ openAt: 0 }],
    graceMs: 60_000,
    uncorrelated: { errors: new Map(), messages: 0, misdelivered: 0 },
    ...extra,
  };
}

describe('account', () => {
  test('lost after accepted and after delivered are told apart by the first ack', () => {
    const c = account(
      input([
        record('m1', [ack('accepted')]),
        record('m2', [ack('delivered')]),
        record('m3', [ack('accepted')], [{ at: 200, id: 'x' }]),
      ]),
    );
    assert.equal(c.lostAccepted, 1);
    assert.equal(c.lostDelivered, 1);
    assert.deepEqual(c.acked, { accepted: 2, delivered: 1 });
    assert.equal(c.examples.length, 2);
  });

  test('a loss after delivered counts as abnormal only at a 1006 close of the receiver soon after', () => {
    const lost = (cid: string, at: number) => record(cid, [ack('delivered', cid, at)]);
    const c = account(
      input([lost('m1', 100), lost('m2', 1000), lost('m3', 20_000), lost('m4', 30_000)], {
        closes: [
          { user: 'b', at: 150, code: 1006, reason: '', wasOpen: true },
          { user: 'b', at: 1100, code: 4002, reason: '', wasOpen: true },
          { user: 'b', at: 27_000, code: 1006, reason: '', wasOpen: true },
        ],
      }),
    );
    // m1: 1006 50 ms later; m2: closed cleanly; m3: the 1006 came 7 s later; m4: no close after it.
    assert.equal(c.lostDelivered, 4);
    assert.equal(c.lostDeliveredAbnormal, 1);
    // The app closing its own socket is no excuse, whatever code it ended with.
    const byApp = account(
      input([lost('m1', 100)], {
        closes: [{ user: 'b', at: 150, code: 1006, reason: '', wasOpen: true, byClient: true }],
      }),
    );
    assert.equal(byApp.lostDeliveredAbnormal, 0);
    assert.equal(byApp.churned, 1);
    assert.deepEqual(byApp.closes, {});
  });

  test('a repeated server id is dropped; two ids for one cid are a duplicate', () => {
    const c = account(
      input([
        record(
          'm1',
          [ack('accepted')],
          [
            { at: 1, id: 'x' },
            { at: 2, id: 'x' },
          ],
        ),
        record(
          'm2',
          [ack('accepted'), ack('accepted')],
          [
            { at: 1, id: 'y' },
            { at: 2, id: 'z' },
            { at: 3, id: 'z' },
          ],
        ),
      ]),
    );
    assert.equal(c.repeatedIds, 2);
    assert.equal(c.duplicates, 1);
    assert.equal(c.duplicateCopies, 1);
    assert.equal(c.retries, 1);
  });

  test('offline counts against the cluster only when the receiver had a session within the grace', () => {
    const recent = account(input([record('m1', [ack('offline', 'x', 100_000)])]));
    assert.equal(recent.offline, 1);
    assert.equal(recent.offlineRecent, 1);
    assert.equal(recent.lostAccepted + recent.lostDelivered, 0);
    const gone = account(
      input([record('m1', [ack('offline', 'x', 100_000)])], {
        spansOf: () => [{ openAt: 0, closeAt: 30_000 }],
      }),
    );
    assert.equal(gone.offline, 1);
    assert.equal(gone.offlineRecent, 0);
  });

  test('errors by code, failed and unanswered messages, closes and failed connects', () => {
    const closes: CloseEvent[] = [
      { user: 'b', at: 1, code: 1006, reason: '', wasOpen: true },
      { user: 'b', at: 2, code: 4001, reason: 'draining retry_after_ms=300', wasOpen: true },
      { user: 'b', at: 3, code: 1006, reason: '', wasOpen: false, status: 502 },
    ];
    const c = account(
      input(
        [
          record(
            'm1',
            [{ at: 1, answerAt: 5, answer: { type: 'error', code: 'PROTO_ERR_X', retryable: false } }],
            [],
            'failed',
          ),
          record('m2', [{ at: 1, answerAt: 2, answer: { type: 'closed' } }, { at: 3 }], [], 'pending'),
        ],
        {
          closes,
          reconnectMs: [100, 300],
          uncorrelated: { errors: new Map([['NODE_ERR_INTERNAL', 2]]), messages: 1, misdelivered: 1 },
        },
      ),
    );
    assert.equal(c.failed, 1);
    assert.equal(c.unanswered, 1);
    assert.deepEqual(c.errors, { PROTO_ERR_X: 1, 'NODE_ERR_INTERNAL (no cid)': 2 });
    assert.deepEqual(c.closes, { '1006': 1, '4001': 1 });
    assert.deepEqual(c.failedConnects, { 'HTTP 502': 1 });
    assert.equal(c.reconnectP50Ms, 100);
    assert.equal(c.reconnectP99Ms, 300);
    assert.equal(c.stray, 2);
    // Only answered attempts (an ack or an error) count for the answer time.
    assert.equal(c.answerP99Ms, 4);
  });
});

describe('hadSessionWithin', () => {
  test('open now, closed within the grace, closed before it, opened after the moment', () => {
    assert.equal(hadSessionWithin([{ openAt: 0 }], 10, 5), true);
    assert.equal(hadSessionWithin([{ openAt: 0, closeAt: 7 }], 10, 5), true);
    assert.equal(hadSessionWithin([{ openAt: 0, closeAt: 4 }], 10, 5), false);
    assert.equal(hadSessionWithin([{ openAt: 11 }], 10, 5), false);
    assert.equal(hadSessionWithin([], 10, 5), false);
  });
});

describe('reconnect hints', () => {
  test('retry_after_ms in a close reason or error message', () => {
    assert.equal(retryAfterMsOf('draining retry_after_ms=1234'), 1234);
    assert.equal(retryAfterMsOf('moved'), undefined);
    assert.equal(retryAfterMsOf(''), undefined);
  });

  test('Retry-After in seconds or as an HTTP date; absent or garbage gives none', () => {
    assert.equal(retryAfterHeaderMs('1'), 1000);
    assert.equal(retryAfterHeaderMs(['2']), 2000);
    assert.equal(retryAfterHeaderMs(new Date(10_000).toUTCString(), 4000), 6000);
    assert.equal(retryAfterHeaderMs(new Date(0).toUTCString(), 4000), 0);
    assert.equal(retryAfterHeaderMs(undefined), undefined);
    assert.equal(retryAfterHeaderMs(''), undefined);
    assert.equal(retryAfterHeaderMs('soon'), undefined);
  });

  test('backoff doubles from 100 ms with +-20% jitter, capped', () => {
    assert.equal(
      backoffMs(0, 5000, () => 0.5),
      100,
    );
    assert.equal(
      backoffMs(3, 5000, () => 0.5),
      800,
    );
    assert.equal(
      backoffMs(0, 5000, () => 0),
      80,
    );
    assert.equal(
      backoffMs(0, 5000, () => 1),
      120,
    );
    assert.equal(
      backoffMs(40, 5000, () => 0.5),
      5000,
    );
  });
});

describe('pickScenarios', () => {
  test('all by default, the named ones in the suite order, unknown names refused', () => {
    assert.equal(pickScenarios([]).length, SCENARIOS.length);
    assert.deepEqual(
      pickScenarios(['drain', 'kill9']).map((s) => s.name),
      ['kill9', 'drain'],
    );
    assert.throws(() => pickScenarios(['kill9', 'nope']), /unknown scenario\(s\) nope/);
  });
});

describe('Scope', () => {
  test('runs its cleanups last first; one registered after close runs at once; errors are logged', async () => {
    const ran: string[] = [];
    const logged: string[] = [];
    const scope = new Scope((m) => logged.push(m));
    scope.after(() => ran.push('a'));
    scope.after(() => {
      throw new Error('boom');
    });
    scope.after(() => ran.push('c'));
    await scope.close();
    assert.deepEqual(ran, ['c', 'a']);
    assert.deepEqual(logged, ['cleanup: boom']);
    await new Promise<void>((resolve) => scope.after(() => resolve()));
  });
});
