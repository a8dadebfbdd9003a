// The per-key log rate limit, on an injected clock (router handshake refusals, token refusals).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LogThrottle } from './log-throttle.js';

function manualClock(start = 5_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe('LogThrottle#hit', () => {
  test('logs the first event of a key, then at most one per interval with the count held back', () => {
    const clock = manualClock();
    const throttle = new LogThrottle({ intervalMs: 10_000, now: clock.now });
    assert.deepEqual(throttle.hit('A'), { log: true, suppressed: 0 });
    for (let i = 0; i < 5; i++) assert.equal(throttle.hit('A').log, false);
    clock.advance(9_999);
    assert.equal(throttle.hit('A').log, false);
    clock.advance(1);
    assert.deepEqual(throttle.hit('A'), { log: true, suppressed: 6 });
    clock.advance(10_000);
    assert.deepEqual(throttle.hit('A'), { log: true, suppressed: 0 }, 'the count starts again');
  });

  test('keys are limited separately', () => {
    const clock = manualClock();
    const throttle = new LogThrottle({ intervalMs: 10_000, now: clock.now });
    assert.equal(throttle.hit('A').log, true);
    assert.equal(throttle.hit('B').log, true);
    assert.equal(throttle.hit('A').log, false);
    assert.equal(throttle.hit('B').log, false);
  });

  test('beyond `maxKeys`, new keys share one limit: many distinct keys cannot flood the log', () => {
    const clock = manualClock();
    const throttle = new LogThrottle({ intervalMs: 10_000, maxKeys: 3, now: clock.now });
    const logged = Array.from({ length: 1000 }, (_, i) => throttle.hit(`k${i}`).log).filter(Boolean);
    assert.equal(logged.length, 4, 'three remembered keys plus one line for all the others');
    assert.equal(throttle.hit('k0').log, false, 'a remembered key keeps its own limit');
    clock.advance(10_000);
    assert.deepEqual(throttle.hit('k999'), { log: true, suppressed: 996 });
  });
});
