import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeartbeatClock } from './liveness.js';

test('members expire when their heartbeats stop while others keep beating', () => {
  let now = 0;
  const clock = new HeartbeatClock(5000, () => now);
  const dead = clock.saw(now);
  for (; now <= 10_000; now += 1000) clock.saw(now); // another member keeps beating
  assert.equal(clock.alive(dead), false);
  assert.equal(clock.alive(now - 1000), true);
});

test('when the whole stream stalls (bus down), members that were beating are kept', () => {
  let now = 0;
  const clock = new HeartbeatClock(5000, () => now);
  let a = 0;
  let b = 0;
  for (; now <= 10_000; now += 1000) {
    a = clock.saw(now);
    b = clock.saw(now - 500);
  }
  const deadBefore = 2000; // silent long before the stall
  now += 600_000; // ten minutes without any heartbeat
  assert.equal(clock.alive(a), true);
  assert.equal(clock.alive(b), true);
  assert.equal(clock.alive(deadBefore), false);
});

test('heartbeats from the future count from now', () => {
  let now = 1000;
  const clock = new HeartbeatClock(5000, () => now);
  const seen = clock.saw(now + 60_000);
  assert.equal(seen, 1000);
  now += 5001;
  clock.saw(now);
  assert.equal(clock.alive(seen), false);
});
