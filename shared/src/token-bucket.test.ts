import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from './token-bucket.js';

test('a bucket allows its burst, then its rate', () => {
  let now = 0;
  const bucket = new TokenBucket(10, 3, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
  now += 100; // 10/s: one token back
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  assert.equal(bucket.full, false);
  now += 10_000;
  assert.equal(bucket.full, true);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
});

test('a bucket charges by cost; a cost above the burst needs the whole bucket', () => {
  let now = 0;
  const bytes = new TokenBucket(1000, 4000, () => now);
  assert.equal(bytes.take(3000), true);
  assert.equal(bytes.take(1500), false, 'not enough left: nothing is spent');
  assert.equal(bytes.take(1000), true);
  now += 4000;
  assert.equal(bytes.take(10_000), true, 'charged as 4000 when the bucket is full');
  assert.equal(bytes.take(1), false);
  now += 1000;
  assert.equal(bytes.take(10_000), false, 'and refused until it is full again');
  assert.equal(bytes.take(1000), true);
});
