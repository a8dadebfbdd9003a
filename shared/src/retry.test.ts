import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChatError } from './errors.js';
import { Restarter, backoffMs, retryUntil } from './retry.js';

describe('backoffMs', () => {
  test('doubles from initialMs, capped at maxMs, jittered within [half, all]', () => {
    const low = (n: number) => backoffMs(n, 100, 1000, () => 0);
    const high = (n: number) => backoffMs(n, 100, 1000, () => 1);
    assert.deepEqual([0, 1, 2, 3, 4, 10, 100].map(low), [50, 100, 200, 400, 500, 500, 500]);
    assert.deepEqual([0, 1, 2, 3, 4, 10, 100].map(high), [100, 200, 400, 800, 1000, 1000, 1000]);
  });
});

describe('retryUntil', () => {
  test('retries a failing attempt until it succeeds, reporting each retry', async () => {
    const retries: number[] = [];
    const result = await retryUntil(
      (n) => (n < 3 ? Promise.reject(new Error(`fail ${n}`)) : Promise.resolve(n)),
      { deadline: Date.now() + 10_000, initialMs: 1, maxMs: 4, onRetry: (_e, n) => retries.push(n) },
    );
    assert.equal(result, 3);
    assert.deepEqual(retries, [1, 2, 3]);
  });

  test('rethrows the last error once the next attempt would pass the deadline', async () => {
    let calls = 0;
    const started = Date.now();
    await assert.rejects(
      retryUntil(() => Promise.reject(new Error(`fail ${++calls}`)), {
        deadline: started + 200,
        initialMs: 10,
        maxMs: 20,
      }),
      (err: Error) => err.message === `fail ${calls}`,
    );
    assert.ok(calls > 2, `only ${calls} attempts`);
    assert.ok(Date.now() - started < 1000);
  });

  test('rethrows a ChatError that is not retryable at once; a retryable one is retried', async () => {
    let calls = 0;
    const refused = new ChatError('CONFIG_ERR_INVALID', 'shard count does not match');
    await assert.rejects(
      retryUntil(
        () => {
          calls++;
          return Promise.reject(refused);
        },
        { deadline: Date.now() + 60_000, initialMs: 1 },
      ),
      refused,
    );
    assert.equal(calls, 1);
    let tries = 0;
    const value = await retryUntil(
      () =>
        ++tries < 3 ? Promise.reject(new ChatError('KAFKA_ERR_UNAVAILABLE', 'down')) : Promise.resolve('up'),
      { deadline: Date.now() + 60_000, initialMs: 1, maxMs: 2 },
    );
    assert.deepEqual([value, tries], ['up', 3]);
  });

  test('stops at once when its signal is aborted, even while waiting', async () => {
    const controller = new AbortController();
    let calls = 0;
    const done = retryUntil(
      () => {
        calls++;
        queueMicrotask(() => controller.abort());
        return Promise.reject(new Error('down'));
      },
      { deadline: Date.now() + 60_000, initialMs: 30_000, maxMs: 30_000, signal: controller.signal },
    );
    await assert.rejects(done, /down/);
    assert.equal(calls, 1);
  });
});

describe('Restarter', () => {
  test('runs again after each failure until it succeeds; one run pending at a time', async () => {
    const errors: number[] = [];
    const restarter = new Restarter({
      onError: (_err, attempt) => errors.push(attempt),
      initialMs: 1,
      maxMs: 2,
    });
    let runs = 0;
    const done = new Promise<void>((resolve) => {
      const start = () => {
        runs++;
        if (runs < 3) return Promise.reject(new Error('not yet'));
        resolve();
        return Promise.resolve();
      };
      restarter.schedule(start);
      restarter.schedule(start); // ignored: one is pending
    });
    await done;
    assert.equal(runs, 3);
    assert.deepEqual(errors, [0, 1]);
    assert.equal(restarter.pending, false);
  });

  test('nothing runs after stop()', () => {
    const restarter = new Restarter({ onError: () => assert.fail('no run expected'), initialMs: 1 });
    restarter.schedule(() => Promise.reject(new Error('must not run')));
    assert.equal(restarter.pending, true);
    restarter.stop();
    assert.equal(restarter.pending, false);
    restarter.schedule(() => Promise.reject(new Error('must not run')));
    assert.equal(restarter.pending, false);
  });
});
