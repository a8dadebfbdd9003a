// The send pacer on its own, with a hand-driven clock: a burst of one second's rate, then the rate.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from '@chat/client';

test('a full bucket gives ratePerSec tokens at once, then one per 1000/ratePerSec ms', () => {
  let now = 1_000;
  const bucket = new TokenBucket(4, () => now);
  for (let i = 0; i < 4; i++) assert.equal(bucket.take(), true, `burst ${i}`);
  assert.equal(bucket.take(), false, 'empty');
  assert.equal(bucket.msUntilNext(), 250);
  now += 249;
  assert.equal(bucket.take(), false, 'not before the refill');
  assert.equal(bucket.msUntilNext(), 1);
  now += 1;
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
});

test('an idle bucket refills to one second of the rate, no more', () => {
  let now = 0;
  const bucket = new TokenBucket(3, () => now);
  for (let i = 0; i < 3; i++) bucket.take();
  now += 60_000;
  let taken = 0;
  while (bucket.take()) taken++;
  assert.equal(taken, 3);
});

test('a rate under one a second still gives one token at once, and waits are never 0 ms', () => {
  let now = 0;
  const bucket = new TokenBucket(0.5, () => now);
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  assert.equal(bucket.msUntilNext(), 2000);
  now += 2000;
  assert.equal(bucket.msUntilNext(), 1);
  assert.equal(bucket.take(), true);
});
