import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeliveredIds } from './delivered-ids.js';

describe('DeliveredIds.first', () => {
  test('true the first time a (receiver, id) pair is written, false after; receivers apart', () => {
    const ids = new DeliveredIds({ windowMs: 1000, now: () => 0 });
    assert.equal(ids.first('bob', 'm1'), true);
    assert.equal(ids.first('bob', 'm1'), false);
    assert.equal(ids.first('carol', 'm1'), true, 'the same message to another receiver');
    assert.equal(ids.first('bob', 'm2'), true);
    assert.equal(ids.has('bob', 'm1'), true);
    assert.equal(ids.has('dave', 'm1'), false);
  });

  test('an id is remembered for the whole window, and forgotten within a tenth of a window after it', () => {
    let now = 0;
    const ids = new DeliveredIds({ windowMs: 1000, now: () => now });
    ids.first('bob', 'early');
    now = 99;
    ids.first('bob', 'late-in-bucket');
    now = 1000;
    assert.equal(ids.first('bob', 'early'), false, 'still within the window');
    now = 1098;
    assert.equal(ids.has('bob', 'late-in-bucket'), true, 'written at 99: remembered until at least 1099');
    now = 1100;
    assert.equal(ids.has('bob', 'early'), false, 'forgotten by window + a tenth');
    assert.equal(ids.has('bob', 'late-in-bucket'), false);
    assert.equal(ids.size, 0, 'a repeat is not recorded again');
  });

  test('memory is bounded: past maxEntries the oldest bucket goes early', () => {
    let now = 0;
    const ids = new DeliveredIds({ windowMs: 10_000, maxEntries: 250, now: () => now });
    for (let i = 0; i < 1000; i++) {
      now = i * 10; // ten buckets' worth
      ids.first('u', `m${i}`);
    }
    assert.ok(ids.size <= 250, `size ${ids.size}`);
    assert.equal(ids.has('u', 'm999'), true, 'the newest are kept');
    assert.equal(ids.has('u', 'm0'), false, 'the oldest went first');
  });

  test('a window of 0 remembers nothing (dedup off)', () => {
    const ids = new DeliveredIds({ windowMs: 0 });
    assert.equal(ids.first('bob', 'm1'), true);
    assert.equal(ids.first('bob', 'm1'), true);
    assert.equal(ids.has('bob', 'm1'), false);
    assert.equal(ids.size, 0);
  });
});
