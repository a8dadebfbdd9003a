// The SDK's reconnect policy as a table: every close code the cluster uses (and the refusals a router sends
// as `4000 + HTTP status` to a client that asked with `refusal=close`) with the step the client takes, and
// the delays those steps mean.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { closePolicy, fullJitterMs, hintedMs, reasonCode, retryAfterMsOf, type Wait } from '@chat/client';

type Row = readonly [
  code: number,
  reason: string,
  action: 'reconnect' | 'stop',
  wait: Wait | undefined,
  flags: {
    retryAfterMs?: number;
    freshToken?: boolean;
    tokenRefused?: boolean;
    drop?: boolean;
    error?: string;
  },
];

const TABLE: readonly Row[] = [
  [1000, '', 'reconnect', 'backoff', {}],
  [1001, '', 'reconnect', 'backoff', {}],
  [1002, '', 'stop', undefined, { error: 'CLIENT_ERR_CONNECTION_CLOSED' }],
  [1005, '', 'reconnect', 'backoff', {}],
  [1006, '', 'reconnect', 'backoff', {}],
  [1007, '', 'stop', undefined, { error: 'CLIENT_ERR_CONNECTION_CLOSED' }],
  [1008, 'policy', 'stop', undefined, { error: 'CLIENT_ERR_CONNECTION_CLOSED' }],
  [1009, '', 'reconnect', 'backoff', { drop: true }],
  [1009, 'x retry_after_ms=90', 'reconnect', 'hint', { drop: true, retryAfterMs: 90 }],
  [1011, '', 'reconnect', 'backoff', {}],
  [1011, 'overloaded retry_after_ms=700', 'reconnect', 'hint', { retryAfterMs: 700 }],
  [4001, 'draining retry_after_ms=1234', 'reconnect', 'hint', { retryAfterMs: 1234 }],
  [4001, 'draining', 'reconnect', 'hint', {}],
  [4002, 'moved retry_after_ms=80', 'reconnect', 'hint', { retryAfterMs: 80 }],
  [4003, 'token_expired', 'reconnect', 'soon', { freshToken: true }],
  [4008, 'rate_limited retry_after_ms=2500', 'reconnect', 'hint', { retryAfterMs: 2500 }],
  [4009, 'slow_consumer', 'reconnect', 'soon', {}],
  [4400, 'ROUTER_ERR_BAD_USER_ID', 'stop', undefined, { error: 'ROUTER_ERR_BAD_USER_ID' }],
  [
    4401,
    'AUTH_ERR_TOKEN_EXPIRED',
    'reconnect',
    'backoff',
    { freshToken: true, tokenRefused: true, error: 'AUTH_ERR_TOKEN_EXPIRED' },
  ],
  [
    4401,
    'AUTH_ERR_INVALID_TOKEN retry_after_ms=300',
    'reconnect',
    'hint',
    { retryAfterMs: 300, freshToken: true, tokenRefused: true, error: 'AUTH_ERR_INVALID_TOKEN' },
  ],
  [4403, 'AUTH_ERR_ORIGIN_FORBIDDEN', 'stop', undefined, { error: 'AUTH_ERR_ORIGIN_FORBIDDEN' }],
  [4403, 'AUTH_ERR_SUBJECT_MISMATCH', 'stop', undefined, { error: 'AUTH_ERR_SUBJECT_MISMATCH' }],
  [4404, 'ROUTER_ERR_NOT_FOUND', 'stop', undefined, { error: 'ROUTER_ERR_NOT_FOUND' }],
  [4404, '', 'stop', undefined, { error: 'CLIENT_ERR_CONNECTION_CLOSED' }],
  [
    4429,
    'ROUTER_ERR_RATE_LIMITED retry_after_ms=1000',
    'reconnect',
    'hint',
    { retryAfterMs: 1000, error: 'ROUTER_ERR_RATE_LIMITED' },
  ],
  [4429, 'NODE_ERR_TOO_MANY_CONNECTIONS', 'reconnect', 'hint', { error: 'NODE_ERR_TOO_MANY_CONNECTIONS' }],
  [4502, 'ROUTER_ERR_UPSTREAM_REFUSED', 'reconnect', 'backoff', { error: 'ROUTER_ERR_UPSTREAM_REFUSED' }],
  // The router's 502 carries Retry-After (ws-proxy.ts): honoured, as for every REFUSED_* close.
  [
    4502,
    'ROUTER_ERR_UPSTREAM_REFUSED retry_after_ms=1000',
    'reconnect',
    'hint',
    { retryAfterMs: 1000, error: 'ROUTER_ERR_UPSTREAM_REFUSED' },
  ],
  [
    4503,
    'ROUTER_ERR_NO_NODE retry_after_ms=2000',
    'reconnect',
    'hint',
    { retryAfterMs: 2000, error: 'ROUTER_ERR_NO_NODE' },
  ],
  [4504, 'ROUTER_ERR_UPSTREAM_TIMEOUT', 'reconnect', 'backoff', { error: 'ROUTER_ERR_UPSTREAM_TIMEOUT' }],
  [
    4504,
    'ROUTER_ERR_UPSTREAM_TIMEOUT retry_after_ms=1500',
    'reconnect',
    'hint',
    { retryAfterMs: 1500, error: 'ROUTER_ERR_UPSTREAM_TIMEOUT' },
  ],
  // Codes the cluster does not send: another 4xx refusal stops, anything else backs off (or follows a hint).
  [4405, 'ROUTER_ERR_SOMETHING', 'stop', undefined, { error: 'ROUTER_ERR_SOMETHING' }],
  [4500, 'ROUTER_ERR_SOMETHING', 'reconnect', 'backoff', { error: 'ROUTER_ERR_SOMETHING' }],
  [
    4500,
    'ROUTER_ERR_SOMETHING retry_after_ms=5',
    'reconnect',
    'hint',
    { retryAfterMs: 5, error: 'ROUTER_ERR_SOMETHING' },
  ],
  [4100, 'custom retry_after_ms=10', 'reconnect', 'hint', { retryAfterMs: 10 }],
  [3000, '', 'reconnect', 'backoff', {}],
];

describe('closePolicy', () => {
  for (const [code, reason, action, wait, flags] of TABLE) {
    test(`${code} ${JSON.stringify(reason)}: ${action}${wait ? ` (${wait})` : ''}`, () => {
      const step = closePolicy(code, reason);
      assert.equal(step.action, action);
      if (step.action === 'stop') {
        assert.equal(step.errorCode, flags.error);
        return;
      }
      assert.equal(step.wait, wait);
      assert.equal(step.retryAfterMs, flags.retryAfterMs);
      assert.equal(step.freshToken, flags.freshToken ?? false);
      assert.equal(step.tokenRefused, flags.tokenRefused ?? false);
      assert.equal(step.dropLargestSend, flags.drop ?? false);
      assert.equal(step.errorCode, flags.error);
    });
  }
});

describe('delays', () => {
  const o = { initialMs: 500, maxMs: 30_000 };

  test('full jitter: uniform up to initialMs doubling per failure, capped at maxMs', () => {
    assert.equal(
      fullJitterMs(0, o, () => 0),
      0,
    );
    assert.equal(
      fullJitterMs(0, o, () => 0.999_999),
      500,
    );
    assert.equal(
      fullJitterMs(1, o, () => 0.5),
      500,
    );
    assert.equal(
      fullJitterMs(3, o, () => 0.999_999),
      4000,
    );
    assert.equal(
      fullJitterMs(10, o, () => 0.999_999),
      30_000,
    );
    assert.equal(
      fullJitterMs(1000, o, () => 0.999_999),
      30_000,
      'no overflow for a long outage',
    );
    assert.equal(
      fullJitterMs(-1, o, () => 0.999_999),
      500,
    );
  });

  test('a server hint is a floor, with up to initialMs of jitter on top', () => {
    assert.equal(
      hintedMs(1200, o, () => 0),
      1200,
    );
    assert.equal(
      hintedMs(1200, o, () => 0.999_999),
      1700,
    );
  });

  test('retry_after_ms is read from a reason or message only as a whole word', () => {
    assert.equal(retryAfterMsOf('draining retry_after_ms=1500'), 1500);
    assert.equal(retryAfterMsOf('retry_after_ms=0'), 0);
    assert.equal(retryAfterMsOf('ROUTER_ERR_NO_NODE retry_after_ms=2000 extra'), 2000);
    assert.equal(retryAfterMsOf('draining'), undefined);
    assert.equal(retryAfterMsOf('xretry_after_ms=5'), undefined);
    assert.equal(retryAfterMsOf('retry_after_ms=-5'), undefined);
    assert.equal(retryAfterMsOf('retry_after_ms=99999999999'), undefined, 'absurd values are ignored');
  });

  test('reasonCode: the error code a refusal reason starts with', () => {
    assert.equal(reasonCode('AUTH_ERR_TOKEN_EXPIRED'), 'AUTH_ERR_TOKEN_EXPIRED');
    assert.equal(reasonCode('ROUTER_ERR_NO_NODE retry_after_ms=10'), 'ROUTER_ERR_NO_NODE');
    assert.equal(reasonCode('draining retry_after_ms=10'), undefined);
    assert.equal(reasonCode('token_expired'), undefined);
    assert.equal(reasonCode(''), undefined);
  });
});
