// The kafkajs patch (patches/kafkajs@2.2.4.patch) is applied: an idle request queue arms no timer. Without
// it, every broker connection re-armed a 1 ms timer forever (~30 ms CPU per second per process) and Node 24
// printed a TimeoutNegativeWarning.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';

interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  scheduleCheckPendingRequests(): void;
  destroy(): void;
}
const require = createRequire(import.meta.url);
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as new (
  options: object,
) => RequestQueue;
const logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
const queue = () =>
  new RequestQueue({ maxInFlightRequests: 1, requestTimeout: 1000, clientId: 'test', broker: 'b:1', logger });

describe('kafkajs RequestQueue.scheduleCheckPendingRequests (patched)', () => {
  test('idle and not throttled: no timer is armed', () => {
    const q = queue();
    q.scheduleCheckPendingRequests();
    assert.equal(q.throttleCheckTimeoutId, null);
    q.destroy();
  });

  test('requests pending: a check is scheduled', () => {
    const q = queue();
    q.pending.push({});
    q.scheduleCheckPendingRequests();
    assert.notEqual(q.throttleCheckTimeoutId, null);
    q.destroy();
  });

  test('throttled: a check is scheduled for when the throttle ends', () => {
    const q = queue();
    q.throttledUntil = Date.now() + 60_000;
    q.scheduleCheckPendingRequests();
    assert.notEqual(q.throttleCheckTimeoutId, null);
    q.destroy();
  });
});
