import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Coalescer, type CoalescerOptions } from './batcher.js';

/** A flush whose calls the test answers by hand. */
function manualFlush<T>() {
  const calls: { items: T[]; resolve: () => void; reject: (err: Error) => void }[] = [];
  const flush = (items: T[]) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ items, resolve, reject });
    });
  return { calls, flush };
}

/** Options with long deadlines; tests that need deadlines pass a clock they move (`now`). */
function options<T>(
  flush: (items: T[]) => Promise<void>,
  extra: Partial<CoalescerOptions<T>> = {},
): CoalescerOptions<T> {
  return {
    timeoutMs: 60_000,
    maxItems: 100,
    flush,
    expiredWaiting: () => new Error('expired waiting'),
    expiredInFlight: () => new Error('expired in flight'),
    ...extra,
  };
}

const settled = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (err: Error) => err.message,
  );

test('with nothing in flight an item is flushed at once, alone', () => {
  const { calls, flush } = manualFlush<number>();
  const c = new Coalescer(options(flush));
  void c.add([1]);
  assert.deepEqual(
    calls.map((x) => x.items),
    [[1]],
  );
  assert.equal(c.inFlight, 1);
  calls[0]?.resolve();
});

test('what arrives while a flush is in flight goes out together in the next one, in order', async () => {
  const { calls, flush } = manualFlush<number>();
  const c = new Coalescer(options(flush));
  const first = c.add([1]);
  const rest = [c.add([2]), c.add([3, 4]), c.add([5])];
  assert.equal(calls.length, 1);
  assert.equal(c.waiting, 4);
  calls[0]?.resolve();
  await first;
  assert.deepEqual(
    calls.map((x) => x.items),
    [[1], [2, 3, 4, 5]],
  );
  calls[1]?.resolve();
  await Promise.all(rest);
  assert.equal(c.waiting + c.inFlight, 0);
});

test('a flush takes at most maxItems items and maxWeight weight; an entry is never split', async () => {
  const { calls, flush } = manualFlush<string>();
  const c = new Coalescer(options(flush, { maxItems: 3, maxWeight: 10, weight: (s: string) => s.length }));
  const all = [c.add(['a']), c.add(['b', 'c']), c.add(['d', 'e']), c.add(['ffffffffff']), c.add(['g'])];
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    calls[i]?.resolve();
  }
  await Promise.all(all);
  assert.deepEqual(
    calls.map((x) => x.items),
    [['a'], ['b', 'c'], ['d', 'e'], ['ffffffffff'], ['g']],
  );
  // An entry bigger than the caps goes alone.
  const big = c.add(['x', 'y', 'z', 'w']);
  calls[5]?.resolve();
  await big;
  assert.deepEqual(calls[5]?.items, ['x', 'y', 'z', 'w']);
});

test('a failed flush rejects its own entries only; the next flush goes on', async () => {
  const { calls, flush } = manualFlush<number>();
  const c = new Coalescer(options(flush));
  const a = settled(c.add([1]));
  const b = settled(c.add([2]));
  calls[0]?.reject(new Error('boom'));
  assert.equal(await a, 'boom');
  calls[1]?.resolve();
  assert.equal(await b, 'resolved');
});

test('each entry has its own deadline: a hung flush is abandoned at its oldest entry’s, waiting ones at theirs', async () => {
  const { calls, flush } = manualFlush<number>();
  let now = 0;
  let abandoned = 0;
  const c = new Coalescer(options(flush, { timeoutMs: 40, now: () => now, onAbandoned: () => abandoned++ }));
  const hung = settled(c.add([1]));
  now = 20;
  const queued = settled(c.add([2]));
  // The flush of [1] never answers. At t=40 it is abandoned ([1]: outcome unknown) and [2] goes out.
  now = 40;
  assert.equal(await hung, 'expired in flight');
  assert.equal(abandoned, 1);
  assert.deepEqual(calls[1]?.items, [2]);
  // That one hangs too: abandoned at its own deadline (t=60), not 40 ms after it was handed over.
  now = 60;
  assert.equal(await queued, 'expired in flight');
  assert.equal(abandoned, 2);
  // A late answer of an abandoned flush changes nothing.
  calls[0]?.resolve();
  calls[1]?.resolve();
  await c.drain();
});

test('failWaiting rejects what was not handed over yet and leaves the flush in flight alone', async () => {
  const { calls, flush } = manualFlush<number>();
  const c = new Coalescer(options(flush));
  const first = settled(c.add([1]));
  const second = settled(c.add([2]));
  const third = settled(c.add([3]));
  assert.deepEqual(c.failWaiting(new Error('gone')), [2, 3]);
  assert.equal(await second, 'gone');
  assert.equal(await third, 'gone');
  calls[0]?.resolve();
  assert.equal(await first, 'resolved');
  assert.equal(calls.length, 1);
});

test('a waiting entry expires as never sent when its flush cannot start in time', async () => {
  let now = 0;
  // One item per flush, so [2] waits behind [1], whose flush hangs; the clock jumps past both deadlines.
  const calls: number[][] = [];
  const c = new Coalescer<number>({
    timeoutMs: 40,
    maxItems: 1,
    now: () => now,
    flush: (items) => (calls.push(items), new Promise<void>(() => {})),
    expiredWaiting: () => new Error('expired waiting'),
    expiredInFlight: () => new Error('expired in flight'),
  });
  const a = settled(c.add([1]));
  const b = settled(c.add([2]));
  // Both deadlines pass at once: [1] in flight (unknown), [2] never handed over (not sent).
  now = 100;
  assert.equal(await a, 'expired in flight');
  assert.equal(await b, 'expired waiting');
  assert.deepEqual(calls, [[1]]);
});

test('drain resolves once every entry is answered', async () => {
  const { calls, flush } = manualFlush<number>();
  const c = new Coalescer(options(flush));
  const a = c.add([1]);
  const b = c.add([2]);
  let drained = false;
  const d = c.drain().then(() => (drained = true));
  calls[0]?.resolve();
  await a;
  assert.equal(drained, false);
  calls[1]?.resolve();
  await Promise.all([b, d]);
  assert.equal(drained, true);
});
