import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger, type BusMessage } from '@chat/shared';
import { Handoff } from './handoff.js';
import { NodeMetrics } from './metrics.js';

const logger = createLogger({ name: 'test', level: 'silent' });

let seq = 0;
function message(to: string, body = `b${seq}`): BusMessage {
  const id = `m${seq++}`;
  return {
    v: 1,
    id,
    origin: 'n0',
    from: 'alice',
    to,
    ts: 0,
    frame: { type: 'message', id, from: 'alice', to, body, ts: 0 },
  };
}

function setup(t: TestContext, options: { graceMs?: number; maxMessages?: number } = {}) {
  let now = 1000;
  const metrics = new NodeMetrics({ defaultMetrics: false });
  const handoff = new Handoff({
    graceMs: options.graceMs ?? 60_000,
    maxMessages: options.maxMessages ?? 100,
    metrics,
    logger,
    now: () => now,
  });
  t.after(() => handoff.stop());
  const counts = async () => {
    const { values } = await metrics.handoff.get();
    const out: Record<string, number> = {};
    for (const v of values) out[String(v.labels.result)] = v.value;
    return out;
  };
  const held = async () => (await metrics.handoffHeld.get()).values[0]?.value;
  return {
    handoff,
    counts,
    held,
    advance: (ms: number) => (now += ms),
  };
}

describe('Handoff.hold / take', () => {
  test('per receiver, in arrival order; take empties it and counts delivered', async (t) => {
    const s = setup(t);
    const [b1, c1, b2] = [message('bob'), message('carol'), message('bob')];
    assert.equal(s.handoff.hold(b1, { shard: 3, offset: 10 }), 'held');
    assert.equal(s.handoff.hold(c1, { shard: 3, offset: 11 }), 'held');
    assert.equal(s.handoff.hold(b2, { shard: 5, offset: 4 }), 'held');
    assert.equal(s.handoff.size, 3);
    assert.equal(await s.held(), 3);
    assert.deepEqual(s.handoff.take('bob'), [b1, b2]);
    assert.deepEqual(s.handoff.take('bob'), [], 'taken once');
    assert.deepEqual(s.handoff.take('nobody'), []);
    assert.equal(s.handoff.size, 1);
    assert.equal(await s.held(), 1);
    assert.deepEqual(await s.counts(), { delivered: 2, expired: 0, overflow: 0, released: 0 });
  });

  test('the same id held twice for a receiver (read again) is held once', (t) => {
    const s = setup(t);
    const m = message('bob');
    s.handoff.hold(m, { shard: 1, offset: 7 });
    assert.equal(s.handoff.hold(m, { shard: 1, offset: 7 }), 'duplicate');
    assert.deepEqual(s.handoff.take('bob'), [m]);
  });

  test('a grace period of 0 holds nothing (counted expired)', async (t) => {
    const s = setup(t, { graceMs: 0 });
    assert.equal(s.handoff.hold(message('bob'), { shard: 1, offset: 1 }), 'dropped');
    assert.equal(s.handoff.size, 0);
    assert.equal((await s.counts()).expired, 1);
  });
});

describe('Handoff.sweep', () => {
  test('records held past the grace period are dropped and counted expired; younger ones stay', async (t) => {
    const s = setup(t, { graceMs: 5000 });
    s.handoff.hold(message('bob'), { shard: 1, offset: 1 });
    s.advance(3000);
    const young = message('bob');
    s.handoff.hold(young, { shard: 1, offset: 2 });
    s.advance(1999);
    s.handoff.sweep();
    assert.equal(s.handoff.size, 2, 'not yet');
    s.advance(1);
    s.handoff.sweep();
    assert.equal(s.handoff.size, 1);
    assert.equal(s.handoff.floorOf(1), 2, 'the floor moves past what expired');
    assert.deepEqual(s.handoff.take('bob'), [young]);
    assert.deepEqual(await s.counts(), { delivered: 1, expired: 1, overflow: 0, released: 0 });
    assert.equal(await s.held(), 0);
  });

  test('the sweep timer runs by itself while something is held', async (t) => {
    // A real clock: grace 50 ms, the timer runs every 50 ms.
    const metrics = new NodeMetrics({ defaultMetrics: false });
    const handoff = new Handoff({ graceMs: 50, maxMessages: 10, metrics, logger });
    t.after(() => handoff.stop());
    handoff.hold(message('bob'), { shard: 0, offset: 0 });
    const deadline = Date.now() + 5000;
    while (handoff.size > 0) {
      assert.ok(Date.now() < deadline, 'expired by the timer');
      await delay(5);
    }
    const { values } = await metrics.handoff.get();
    assert.equal(values.find((v) => v.labels.result === 'expired')?.value, 1);
  });
});

describe('Handoff overflow', () => {
  test('beyond maxMessages the oldest go first, counted overflow', async (t) => {
    const s = setup(t, { maxMessages: 2 });
    const [a, b, c] = [message('bob'), message('carol'), message('bob')];
    s.handoff.hold(a, { shard: 1, offset: 1 });
    s.handoff.hold(b, { shard: 1, offset: 2 });
    s.handoff.hold(c, { shard: 1, offset: 3 });
    assert.equal(s.handoff.size, 2);
    assert.deepEqual(s.handoff.take('bob'), [c]);
    assert.deepEqual(s.handoff.take('carol'), [b]);
    assert.equal((await s.counts()).overflow, 1);
  });

  test('with maxMessages 0 nothing is held', async (t) => {
    const s = setup(t, { maxMessages: 0 });
    assert.equal(s.handoff.hold(message('bob'), { shard: 1, offset: 1 }), 'dropped');
    assert.equal(s.handoff.size, 0);
    assert.equal((await s.counts()).overflow, 1);
  });
});

describe('Handoff.floorOf / release', () => {
  test('the floor is the oldest offset still held per shard', (t) => {
    const s = setup(t);
    assert.equal(s.handoff.floorOf(1), undefined);
    s.handoff.hold(message('bob'), { shard: 1, offset: 10 });
    s.handoff.hold(message('carol'), { shard: 1, offset: 12 });
    s.handoff.hold(message('dave'), { shard: 2, offset: 3 });
    assert.equal(s.handoff.floorOf(1), 10);
    assert.equal(s.handoff.floorOf(2), 3);
    s.handoff.take('bob');
    assert.equal(s.handoff.floorOf(1), 12, 'bob arrived: the floor moves on');
    s.handoff.take('carol');
    assert.equal(s.handoff.floorOf(1), undefined);
    assert.equal(s.handoff.floorOf(2), 3, 'other shards unchanged');
  });

  test('release drops the shard’s held records (counted released), others stay', async (t) => {
    const s = setup(t);
    const other = message('bob');
    s.handoff.hold(message('bob'), { shard: 1, offset: 10 });
    s.handoff.hold(message('carol'), { shard: 1, offset: 11 });
    s.handoff.hold(other, { shard: 2, offset: 5 });
    s.handoff.release(1);
    s.handoff.release(9); // nothing held there
    assert.equal(s.handoff.floorOf(1), undefined);
    assert.deepEqual(s.handoff.take('carol'), []);
    assert.deepEqual(s.handoff.take('bob'), [other]);
    assert.deepEqual(await s.counts(), { delivered: 1, expired: 0, overflow: 0, released: 2 });
  });

  test('after stop, records are still held (the bus still reads until it stops) and released with their shard', async (t) => {
    const s = setup(t);
    s.handoff.stop();
    assert.equal(s.handoff.hold(message('bob'), { shard: 4, offset: 1 }), 'held');
    assert.equal(s.handoff.floorOf(4), 1);
    s.handoff.release(4);
    assert.equal((await s.counts()).released, 1);
  });
});

describe('Handoff at its bound', () => {
  test('many records for one absent receiver: holding, expiring and taking stay fast (no quadratic work)', (t) => {
    const s = setup(t, { graceMs: 1000, maxMessages: 50_000 });
    const started = performance.now();
    for (let i = 0; i < 100_000; i++) {
      s.handoff.hold(message('flooded'), { shard: 1, offset: i });
      if (i % 1000 === 999) s.advance(20); // half the held ones expire along the way
      if (i % 1000 === 999) s.handoff.sweep();
    }
    const held = s.handoff.size;
    assert.ok(held > 0 && held <= 50_000, `held ${held}`);
    const taken = s.handoff.take('flooded');
    assert.equal(taken.length, held);
    assert.equal(s.handoff.size, 0);
    const ms = performance.now() - started;
    assert.ok(ms < 5000, `took ${Math.round(ms)} ms`);
    // Oldest first.
    const offsets = taken.map((m) => Number(m.id.slice(1)));
    assert.deepEqual(
      offsets,
      [...offsets].sort((a, b) => a - b),
    );
  });
});

test('takeHeld gives each record with the position it was read at', (t) => {
  const { handoff } = setup(t);
  const held = message('bob');
  handoff.hold(held, { shard: 4, offset: 17 });
  assert.deepEqual(
    handoff.takeHeld('bob').map((h) => [h.message.id, h.position]),
    [[held.id, { shard: 4, offset: 17 }]],
  );
  assert.equal(handoff.size, 0);
});
