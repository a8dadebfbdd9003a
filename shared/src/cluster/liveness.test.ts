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
  // Another member keeps the stream going (a silent stream would be a stall, see below).
  for (; now <= 6000; now += 500) {
    clock.saw(now);
    assert.equal(clock.alive(seen), true);
  }
  now = 6001;
  clock.saw(now);
  assert.equal(clock.alive(seen), false);
});

/** Three members beating every second from 0 to 10 s (timeout 5 s), then the whole stream stalls. */
function beforeStall() {
  const clock = { now: 0 };
  const hb = new HeartbeatClock(5000, () => clock.now);
  const last = { a: 0, b: 0, c: 0 };
  for (; clock.now <= 10_000; clock.now += 1000) {
    last.a = hb.saw(clock.now);
    last.b = hb.saw(clock.now - 200);
    last.c = hb.saw(clock.now - 400);
  }
  clock.now = 10_000;
  return { clock, hb, last };
}

test('stall then resume: the first member to beat again does not expire the others', () => {
  const { clock, hb, last } = beforeStall();
  clock.now = 20_000; // a 10 s outage, then a fresh heartbeat from a alone
  last.a = hb.saw(clock.now);
  assert.equal(hb.alive(last.a), true);
  assert.equal(hb.alive(last.b), true, 'b expired the moment a came back');
  assert.equal(hb.alive(last.c), true, 'c expired the moment a came back');
  // b and c come back a moment later, in any order.
  clock.now = 20_300;
  last.c = hb.saw(clock.now - 50);
  clock.now = 21_000;
  last.b = hb.saw(clock.now);
  for (; clock.now <= 40_000; clock.now += 1000) {
    last.a = hb.saw(clock.now);
    last.b = hb.saw(clock.now);
    last.c = hb.saw(clock.now);
    assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
  }
});

test('stall then resume: a member dead before the stall still expires', () => {
  let now = 0;
  const hb = new HeartbeatClock(5000, () => now);
  let dead = 0;
  for (; now <= 10_000; now += 1000) {
    hb.saw(now);
    if (now <= 2000) dead = hb.saw(now); // silent from 2 s on: dead at 7 s, before the stall
  }
  now = 30_000;
  assert.equal(hb.alive(dead), false);
  const a = hb.saw(now);
  assert.equal(hb.alive(a), true);
  assert.equal(hb.alive(dead), false, 'the resume brought back a member that died before the stall');
});

test('stall then resume: a member that does not come back expires one timeout after the resume', () => {
  const { clock, hb, last } = beforeStall();
  clock.now = 20_000;
  const resumedAt = clock.now;
  for (; clock.now <= 40_000; clock.now += 100) {
    last.a = hb.saw(clock.now);
    last.b = hb.saw(clock.now); // c never comes back
    const expected = clock.now - resumedAt <= 5000;
    assert.equal(hb.alive(last.c), expected, `c alive at +${clock.now - resumedAt} ms`);
    assert.equal(hb.alive(last.a) && hb.alive(last.b), true);
  }
});

test('backlog replay after a stall (old timestamps first) expires nobody', () => {
  const { clock, hb, last } = beforeStall();
  // The stream comes back with the heartbeats produced (and queued) during the outage, oldest first,
  // a few milliseconds apart, and only then the fresh ones, member by member.
  clock.now = 20_000;
  for (let ts = 10_500; ts < 20_000; ts += 500) {
    last.a = hb.saw(ts);
    if (ts < 15_000) last.b = hb.saw(ts + 100); // b's queued heartbeats stop at 15 s
    clock.now += 5;
    assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
  }
  last.a = hb.saw(clock.now);
  assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
  clock.now += 2000;
  last.a = hb.saw(clock.now);
  last.b = hb.saw(clock.now - 300);
  assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
  clock.now += 1000;
  last.c = hb.saw(clock.now);
  last.a = hb.saw(clock.now);
  assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
});

test('a second stall during the grace of the first keeps the members that have not come back yet', () => {
  const { clock, hb, last } = beforeStall();
  clock.now = 20_000;
  last.a = hb.saw(clock.now); // a comes back alone, and the stream stalls again
  clock.now = 30_000;
  last.a = hb.saw(clock.now);
  assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
  for (; clock.now <= 35_000; clock.now += 500) {
    last.a = hb.saw(clock.now); // a keeps beating; b and c stay away
    assert.equal(hb.alive(last.b), true, `b expired at ${clock.now} (stream resumed at 30000)`);
  }
  clock.now = 35_001;
  last.a = hb.saw(clock.now);
  assert.equal(hb.alive(last.b), false, 'b never came back: expired one timeout after the last resume');
});

test('a member that died during the stall expires one timeout after the resume, not before', () => {
  const { clock, hb, last } = beforeStall();
  // While stalled, nobody expires, however long it lasts.
  for (clock.now = 10_000; clock.now <= 600_000; clock.now += 10_000) {
    assert.deepEqual([hb.alive(last.a), hb.alive(last.b), hb.alive(last.c)], [true, true, true]);
  }
  const resumedAt = clock.now;
  for (; clock.now <= resumedAt + 5000; clock.now += 500) {
    last.a = hb.saw(clock.now); // a and c are back, b died during the stall
    last.c = hb.saw(clock.now);
    assert.equal(hb.alive(last.b), true, `b expired ${clock.now - resumedAt} ms after the resume`);
  }
  clock.now = resumedAt + 5001;
  last.a = hb.saw(clock.now);
  assert.equal(hb.alive(last.b), false);
  assert.equal(hb.alive(last.c), true);
});
