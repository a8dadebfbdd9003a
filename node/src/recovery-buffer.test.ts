import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BusMessage } from '@chat/shared';
import { RecoveryBuffer } from './recovery-buffer.js';

function msg(id: string, to: string, ts = 1000): BusMessage {
  return {
    v: 1,
    id,
    origin: 'n',
    from: 'alice',
    to,
    ts,
    frame: { type: 'message', id, from: 'alice', to, body: id, ts },
  };
}

describe('RecoveryBuffer.add and after', () => {
  test('keeps records in offset order and returns a receiver’s records after a position', () => {
    let now = 1000;
    const buffer = new RecoveryBuffer({ maxPerShard: 10, ttlMs: 60_000, now: () => now });
    buffer.open(3, 5);
    buffer.add(msg('a', 'bob'), { shard: 3, offset: 5 });
    buffer.add(msg('b', 'carol'), { shard: 3, offset: 6 });
    buffer.add(msg('c', 'bob'), { shard: 3, offset: 7 });
    buffer.add(msg('a', 'bob'), { shard: 3, offset: 5 }); // read again: ignored
    assert.deepEqual(
      buffer.after(3, 'bob', 4).map((e) => e.message.id),
      ['a', 'c'],
    );
    assert.deepEqual(
      buffer.after(3, 'bob', 5).map((e) => e.offset),
      [7],
    );
    assert.equal(buffer.size, 3);
    assert.equal(buffer.nextOf(3), 8);
    now += 1;
  });
});

describe('RecoveryBuffer.covers', () => {
  test('covered from the opening offset; too old once a record before the position left', () => {
    const buffer = new RecoveryBuffer({ maxPerShard: 2, ttlMs: 60_000, now: () => 1000 });
    assert.equal(buffer.covers(0, 10), undefined);
    buffer.open(0, 10);
    assert.equal(buffer.covers(0, 9), 'covered'); // nothing missed: the client got offset 9
    assert.equal(buffer.covers(0, 8), 'too_old');
    buffer.add(msg('a', 'bob'), { shard: 0, offset: 10 });
    buffer.add(msg('b', 'bob'), { shard: 0, offset: 11 });
    buffer.add(msg('c', 'bob'), { shard: 0, offset: 12 }); // evicts offset 10
    assert.equal(buffer.covers(0, 9), 'too_old');
    assert.equal(buffer.covers(0, 10), 'covered');
    assert.equal(buffer.size, 2);
  });

  test('records past the age limit leave, and positions before them become too old', () => {
    let now = 1000;
    const buffer = new RecoveryBuffer({ maxPerShard: 100, ttlMs: 500, now: () => now });
    buffer.open(1, 0);
    buffer.add(msg('a', 'bob', 1000), { shard: 1, offset: 0 });
    buffer.add(msg('b', 'bob', 1400), { shard: 1, offset: 1 });
    now = 1600;
    buffer.sweep();
    assert.equal(buffer.size, 1);
    assert.equal(buffer.covers(1, -1), 'too_old');
    assert.equal(buffer.covers(1, 0), 'covered');
  });

  test('a zero bound keeps nothing: only the latest position is covered', () => {
    const buffer = new RecoveryBuffer({ maxPerShard: 0, ttlMs: 500, now: () => 0 });
    buffer.add(msg('a', 'bob', 0), { shard: 1, offset: 4 });
    assert.equal(buffer.size, 0);
    assert.equal(buffer.covers(1, 4), 'covered');
    assert.equal(buffer.covers(1, 3), 'too_old');
  });
});

describe('RecoveryBuffer.release', () => {
  test('drops a shard’s records', () => {
    const buffer = new RecoveryBuffer({ maxPerShard: 10, ttlMs: 60_000, now: () => 1000 });
    buffer.add(msg('a', 'bob'), { shard: 2, offset: 0 });
    buffer.release(2);
    assert.equal(buffer.size, 0);
    assert.equal(buffer.has(2), false);
    assert.deepEqual(buffer.after(2, 'bob', -1), []);
  });
});
