import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OwnerTable, murmur2, shardOf, shardQuotas } from './shards.js';

const nodes = (n: number, weight = 1) =>
  Array.from({ length: n }, (_, i) => ({ id: `node-${i + 1}`, weight }));
const utf8 = (s: string) => new TextEncoder().encode(s);

describe('murmur2', () => {
  test("matches Kafka's own test vectors (UtilsTest.testMurmur2)", () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [input, expected] of cases) assert.equal(murmur2(utf8(input)), expected, input);
  });
});

describe('shardOf', () => {
  test("is Kafka's default partition for the key: positive murmur2 mod the shard count", () => {
    assert.equal(shardOf('foobar', 128), (-790332482 & 0x7fffffff) % 128);
    assert.equal(shardOf('21', 7), (-973932308 & 0x7fffffff) % 7);
  });

  test('spreads keys over every shard, and hashes UTF-8 bytes', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 5000; i++) seen.add(shardOf(`team-${i}`, 128));
    assert.equal(seen.size, 128);
    assert.equal(shardOf('é', 1 << 30), (murmur2(Uint8Array.from([0xc3, 0xa9])) & 0x7fffffff) % (1 << 30));
  });
});

describe('shardQuotas', () => {
  test('add up to the shard count, each within one shard of its weighted share', () => {
    for (const members of [nodes(3), nodes(7), [...nodes(2), { id: 'big', weight: 3 }]]) {
      const quotas = shardQuotas(members, 128);
      const total = members.reduce((s, m) => s + m.weight, 0);
      assert.equal(
        [...quotas.values()].reduce((a, b) => a + b, 0),
        128,
      );
      for (const m of members) assert.ok(Math.abs((quotas.get(m.id) ?? 0) - (128 * m.weight) / total) < 1);
    }
  });
});

describe('OwnerTable', () => {
  test('every router and node computes the same table from the same members, in any order', () => {
    const a = new OwnerTable(nodes(4), 128);
    const b = new OwnerTable([...nodes(4)].reverse(), 128);
    assert.equal(a.version, b.version);
    for (let s = 0; s < 128; s++) assert.equal(a.ownerOf(s), b.ownerOf(s));
    assert.notEqual(new OwnerTable(nodes(4), 64).version, a.version, 'the shard count is in the version');
    assert.notEqual(new OwnerTable([...nodes(3), { id: 'node-4', weight: 2 }], 128).version, a.version);
  });

  test('keeps every member within +-15% of its weighted share (128 shards, 1-10 members, mixed weights)', () => {
    for (let n = 1; n <= 10; n++) {
      for (const members of [nodes(n), [...nodes(n), { id: 'heavy', weight: 2 }]]) {
        const table = new OwnerTable(members, 128);
        const total = members.reduce((s, m) => s + m.weight, 0);
        let sum = 0;
        for (const m of members) {
          const share = (128 * m.weight) / total;
          const held = table.shardsOf(m.id).length;
          sum += held;
          assert.ok(
            Math.abs(held - share) <= Math.max(1, 0.15 * share),
            `${m.id} of ${members.length}: ${held}`,
          );
        }
        assert.equal(sum, 128);
      }
    }
  });

  test('adding the (N+1)th member moves about 1/(N+1) of the shards', () => {
    for (let n = 2; n <= 5; n++) {
      const before = new OwnerTable(nodes(n), 128);
      const after = new OwnerTable(nodes(n + 1), 128);
      const moved = before.movedTo(after);
      const toNew = moved.filter((s) => after.ownerOf(s) === `node-${n + 1}`);
      assert.equal(
        toNew.length,
        after.shardsOf(`node-${n + 1}`).length,
        'the new member gets only moved shards',
      );
      // Exact quotas cost a little more movement than the ring alone (docs/design.md has the table).
      assert.ok(moved.length <= 1.35 * (128 / (n + 1)), `${n} -> ${n + 1}: ${moved.length} moved`);
    }
  });

  test('removing a member moves only what it owned, plus what the quotas rebalance', () => {
    const before = new OwnerTable(nodes(4), 128);
    const after = new OwnerTable(nodes(3), 128);
    const moved = before.movedTo(after);
    for (const s of before.shardsOf('node-4')) assert.ok(moved.includes(s));
    assert.ok(moved.length <= 1.35 * 32, `${moved.length} moved`);
  });

  test('an empty table owns nothing', () => {
    const table = new OwnerTable([], 8);
    assert.equal(table.version, 'empty');
    assert.equal(table.ownerOf(0), undefined);
    assert.equal(table.ownerOfKey('team-1'), undefined);
    assert.deepEqual(table.shardsOf('node-1'), []);
  });

  test('refuses a shard count that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      assert.throws(() => new OwnerTable(nodes(2), bad), RangeError);
  });

  test('ownerOfKey is the owner of shardOf(key)', () => {
    const table = new OwnerTable(nodes(3), 128);
    for (const key of ['alice', 'team-7', 'clinic-42'])
      assert.equal(table.ownerOfKey(key), table.ownerOf(shardOf(key, 128)));
  });
});
