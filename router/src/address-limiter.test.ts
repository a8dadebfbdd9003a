// The handshake limiter per source address, on an injected clock: one describe per public member.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AddressLimiter } from './address-limiter.js';

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe('AddressLimiter#allow', () => {
  test('allows a burst per address, then refuses until the bucket refills at `rate` per second', () => {
    const clock = manualClock();
    const limiter = new AddressLimiter(2, 3, { now: clock.now });
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.allow('10.0.0.1')),
      [true, true, true, false],
    );
    clock.advance(499); // 0.998 of a token at 2 per second
    assert.equal(limiter.allow('10.0.0.1'), false);
    clock.advance(1);
    assert.equal(limiter.allow('10.0.0.1'), true);
    assert.equal(limiter.allow('10.0.0.1'), false);
  });

  test('addresses have their own buckets', () => {
    const clock = manualClock();
    const limiter = new AddressLimiter(1, 1, { now: clock.now });
    assert.equal(limiter.allow('10.0.0.1'), true);
    assert.equal(limiter.allow('10.0.0.1'), false);
    assert.equal(limiter.allow('10.0.0.2'), true, 'another address is not limited by the first');
    assert.equal(limiter.allow('::1'), true);
  });

  test('never stores more than a burst: a long idle time does not buy a bigger burst', () => {
    const clock = manualClock();
    const limiter = new AddressLimiter(10, 2, { now: clock.now });
    limiter.allow('a');
    clock.advance(3_600_000);
    assert.deepEqual(
      [1, 2, 3].map(() => limiter.allow('a')),
      [true, true, false],
    );
  });

  test('at the entry limit, idle addresses are forgotten first and busy ones keep their state', () => {
    const clock = manualClock();
    const limiter = new AddressLimiter(1, 1, { maxEntries: 4, now: clock.now });
    limiter.allow('idle-1');
    limiter.allow('idle-2');
    clock.advance(1000); // both refilled: idle
    limiter.allow('busy-1');
    limiter.allow('busy-2');
    assert.equal(limiter.size, 4);
    assert.equal(limiter.allow('new'), true);
    assert.equal(limiter.size, 3, 'the two idle addresses were forgotten');
    assert.equal(limiter.allow('busy-1'), false, 'a busy address is still limited');
    assert.equal(limiter.allow('busy-2'), false);
  });

  test('when every address is busy, the oldest are forgotten down to three quarters of the limit', () => {
    const clock = manualClock();
    const limiter = new AddressLimiter(1, 1, { maxEntries: 8, now: clock.now });
    for (let i = 0; i < 8; i++) limiter.allow(`busy-${i}`);
    assert.equal(limiter.size, 8);
    assert.equal(limiter.allow('newcomer'), true);
    assert.equal(limiter.size, 7, 'six kept (3/4 of 8) plus the newcomer');
    // The two oldest were forgotten: they start again with a full bucket. The newer ones did not.
    assert.equal(limiter.allow('busy-0'), true);
    assert.equal(limiter.allow('busy-7'), false);
    assert.equal(limiter.allow('newcomer'), false);
    assert.ok(limiter.size <= 8);
  });

  test('memory stays bounded under a flood of distinct addresses', () => {
    const clock = manualClock();
    const limiter = new AddressLimiter(1, 1, { maxEntries: 100, now: clock.now });
    for (let i = 0; i < 10_000; i++) assert.equal(limiter.allow(`198.51.${i >> 8}.${i & 255}`), true);
    assert.ok(limiter.size <= 100, `size ${limiter.size}`);
  });
});

describe('AddressLimiter#size', () => {
  test('counts the addresses remembered, once each', () => {
    const limiter = new AddressLimiter(5, 5);
    assert.equal(limiter.size, 0);
    limiter.allow('a');
    limiter.allow('a');
    limiter.allow('b');
    assert.equal(limiter.size, 2);
  });
});
