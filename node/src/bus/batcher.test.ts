import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Batcher } from './batcher.js';

test('items added within the window go out in one flush, in order', async () => {
  const flushed: number[][] = [];
  const batcher = new Batcher<number>({
    windowMs: 5,
    max: 100,
    flush: (items) => (flushed.push(items), Promise.resolve()),
  });
  await Promise.all([1, 2, 3].map((n) => batcher.add(n)));
  assert.deepEqual(flushed, [[1, 2, 3]]);
});

test('a full batch is cut before its window ends', async () => {
  const flushed: number[][] = [];
  const batcher = new Batcher<number>({
    windowMs: 60_000,
    max: 2,
    flush: (items) => (flushed.push(items), Promise.resolve()),
  });
  await Promise.all([batcher.add(1), batcher.add(2)]);
  assert.deepEqual(flushed, [[1, 2]]);
  const third = batcher.add(3);
  assert.equal(batcher.waiting, 1);
  await batcher.drain();
  await third;
  assert.deepEqual(flushed, [[1, 2], [3]]);
});

test('flushes run one at a time, so order holds across batches', async () => {
  const events: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const batcher = new Batcher<string>({
    windowMs: 0,
    max: 1,
    flush: async ([item]) => {
      events.push(`start ${item}`);
      if (item === 'a') await gate;
      events.push(`end ${item}`);
    },
  });
  const a = batcher.add('a');
  const b = batcher.add('b');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, ['start a']);
  release();
  await Promise.all([a, b]);
  assert.deepEqual(events, ['start a', 'end a', 'start b', 'end b']);
});

test('a failed flush rejects every item of its batch and not the next batch', async () => {
  let fail = true;
  const batcher = new Batcher<number>({
    windowMs: 1,
    max: 10,
    flush: () => (fail ? Promise.reject(new Error('down')) : Promise.resolve()),
  });
  const results = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );
  fail = false;
  await batcher.add(3);
});
