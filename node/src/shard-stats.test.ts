import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ShardStats } from './shard-stats.js';

describe('ShardStats', () => {
  test('count: one more on that shard; out-of-range shards are ignored', () => {
    const stats = new ShardStats(4);
    stats.count(1);
    stats.count(1);
    stats.count(3);
    stats.count(4);
    stats.count(-1);
    assert.deepEqual(stats.snapshot(), [0, 2, 0, 1]);
  });

  test('snapshot: a copy the caller may keep', () => {
    const stats = new ShardStats(2);
    const before = stats.snapshot();
    stats.count(0);
    assert.deepEqual(before, [0, 0]);
    assert.deepEqual(stats.snapshot(), [1, 0]);
  });
});
