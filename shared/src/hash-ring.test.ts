import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChatRing, ringVersion } from './hash-ring.js';

const keys = (n: number) => Array.from({ length: n }, (_, i) => `team-${i}`);
const nodes = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `node-${i + 1}`, weight: 1 }));

function counts(ring: ChatRing, ks: string[]): Map<string, number> {
  const c = new Map<string, number>();
  for (const k of ks) {
    const owner = ring.get(k);
    assert.ok(owner);
    c.set(owner, (c.get(owner) ?? 0) + 1);
  }
  return c;
}

test('an empty ring places nothing and says so', () => {
  const ring = new ChatRing([]);
  assert.equal(ring.get('anything'), undefined);
  assert.deepEqual(ring.candidates('anything', 2), []);
  assert.equal(ring.version, 'empty');
  assert.equal(ring.size, 0);
});

test('placement and version do not depend on member order', () => {
  const members = nodes(5);
  const a = new ChatRing(members);
  const b = new ChatRing([...members].reverse());
  assert.equal(a.version, b.version);
  for (const k of keys(2000)) assert.equal(a.get(k), b.get(k));
});

test('10,000 keys over 4 equal members land within ±15% of even', () => {
  const c = counts(new ChatRing(nodes(4)), keys(10_000));
  assert.equal(c.size, 4);
  for (const [id, n] of c) assert.ok(n > 2500 * 0.85 && n < 2500 * 1.15, `${id} got ${n}`);
});

test('adding a 5th member moves about 1/5 of the keys, all of them to the new member', () => {
  const ks = keys(10_000);
  const before = new ChatRing(nodes(4));
  const after = before.with({ id: 'node-5', weight: 1 });
  let moved = 0;
  for (const k of ks) {
    const was = before.get(k);
    const now = after.get(k);
    if (was !== now) {
      moved++;
      assert.equal(now, 'node-5');
    }
  }
  assert.ok(moved > 10_000 * 0.2 * 0.8 && moved < 10_000 * 0.2 * 1.2, `moved ${moved}`);
  assert.notEqual(before.version, after.version);
});

test('weights shift the share: a weight-2 member gets about twice a weight-1 share', () => {
  const c = counts(new ChatRing([...nodes(3), { id: 'big', weight: 2 }]), keys(20_000));
  const big = c.get('big') ?? 0;
  const small = ((c.get('node-1') ?? 0) + (c.get('node-2') ?? 0) + (c.get('node-3') ?? 0)) / 3;
  assert.ok(big / small > 1.6 && big / small < 2.4, `ratio ${big / small}`);
});

test('candidates start at the owner and list distinct members', () => {
  const ring = new ChatRing(nodes(3));
  for (const k of keys(200)) {
    const c = ring.candidates(k, 5);
    assert.equal(c.length, 3);
    assert.equal(c[0], ring.get(k));
    assert.equal(new Set(c).size, 3);
  }
});

test('bad members are refused', () => {
  assert.throws(() => new ChatRing([{ id: '', weight: 1 }]), RangeError);
  assert.throws(() => new ChatRing([{ id: 'a', weight: 0 }]), RangeError);
  assert.throws(() => new ChatRing([{ id: 'a', weight: 1.5 }]), RangeError);
  assert.throws(
    () =>
      new ChatRing([
        { id: 'a', weight: 1 },
        { id: 'a', weight: 2 },
      ]),
    RangeError,
  );
});

test('the version changes with weights and removal, and without() of a stranger is a no-op', () => {
  const ring = new ChatRing(nodes(3));
  assert.notEqual(ring.with({ id: 'node-1', weight: 2 }).version, ring.version);
  assert.notEqual(ring.without('node-1').version, ring.version);
  assert.equal(ring.without('nobody').version, ring.version);
  assert.equal(ringVersion(ring.members), ring.version);
  assert.match(ring.version, /^[0-9a-f]{16}$/);
});
