import { createHash } from 'node:crypto';
import { ChatRing, type RingMember } from '../hash-ring.js';

/**
 * Shards: one concept for placement and for the Kafka log. A cluster has S shards, fixed for its life;
 * partition p of the messages topic is shard p's log. Every router and node computes the same owner
 * table from the same members, so a connection is placed on the node that reads its shard's partition.
 */

/**
 * The Kafka murmur2 hash of `data` (a signed 32-bit integer), as in Kafka's Java client
 * (`Utils.murmur2`), librdkafka's `murmur2` partitioner and kafkajs's default partitioner.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] ?? 0) |
      ((data[i4 + 1] ?? 0) << 8) |
      ((data[i4 + 2] ?? 0) << 16) |
      ((data[i4 + 3] ?? 0) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= (data[tail + 2] ?? 0) << 16;
  if (rest >= 2) h ^= (data[tail + 1] ?? 0) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[tail] ?? 0), m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

const encoder = new TextEncoder();

/**
 * The affinity key a connection is placed by: the token's signed claim first, then the `affinity` query
 * parameter where the deployment allows it, then the user id. All devices of one user carry the same key.
 */
export function affinityKeyOf(
  claim: string | undefined,
  query: string | null | undefined,
  userId: string,
): string {
  return claim ?? query ?? userId;
}

/**
 * The shard of an affinity key: `(murmur2(UTF-8 bytes of key) & 0x7fffffff) % shardCount`, which is the
 * partition Kafka's default partitioner picks for that key, so any Kafka tool can compute it too.
 */
export function shardOf(key: string, shardCount: number): number {
  return (murmur2(encoder.encode(key)) & 0x7fffffff) % shardCount;
}

/**
 * Each member's whole number of shards: its weighted share rounded down, the remainder given one by one
 * to the largest fractional parts (ties by id), so the quotas add up to `shardCount` exactly.
 */
export function shardQuotas(members: readonly RingMember[], shardCount: number): Map<string, number> {
  const total = members.reduce((sum, m) => sum + m.weight, 0);
  const exact = members.map((m) => ({ id: m.id, share: (shardCount * m.weight) / total }));
  const quotas = new Map(exact.map((e) => [e.id, Math.floor(e.share)]));
  let rest = shardCount - [...quotas.values()].reduce((a, b) => a + b, 0);
  const byFraction = [...exact].sort(
    (a, b) => (b.share % 1) - (a.share % 1) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  for (const e of byFraction) {
    if (rest-- <= 0) break;
    quotas.set(e.id, (quotas.get(e.id) ?? 0) + 1);
  }
  return quotas;
}

/**
 * Who owns each shard, for one set of active members: consistent hashing with bounded loads (Mirrokni,
 * Thorup and Zadimoghaddam 2018) with exact quotas. Shards are taken in order 0..S-1; each goes to the
 * first member in ring order (the `hashring` continuum at `shard-<n>`) that still has room under its
 * quota. With the ring alone, 128 shards on 3 nodes come out about +-12% at one standard deviation; with
 * the quotas every member holds its weighted share within one shard. The price is a little more movement
 * than the ring alone when members change (see docs/design.md for the measured figures).
 */
export class OwnerTable {
  readonly shardCount: number;
  /** The members, sorted by id. */
  readonly members: readonly RingMember[];
  /** Digest of the members, their weights and the shard count (16 hex chars); `empty` with no members. */
  readonly version: string;
  readonly #owners: readonly string[];
  readonly #byMember: ReadonlyMap<string, readonly number[]>;

  constructor(members: Iterable<RingMember>, shardCount: number) {
    if (!Number.isInteger(shardCount) || shardCount < 1) {
      throw new RangeError(`shard count must be a positive integer, got ${shardCount}`);
    }
    const ring = new ChatRing(members);
    this.shardCount = shardCount;
    this.members = ring.members;
    this.version =
      ring.size === 0
        ? 'empty'
        : createHash('sha256').update(`${ring.version}\n${shardCount}`).digest('hex').slice(0, 16);
    const owners: string[] = [];
    const byMember = new Map<string, number[]>(ring.members.map((m) => [m.id, []]));
    if (ring.size > 0) {
      const quotas = shardQuotas(ring.members, shardCount);
      for (let shard = 0; shard < shardCount; shard++) {
        const candidates = ring.candidates(`shard-${shard}`, ring.size);
        // The quotas add up to the shard count, so some candidate always has room.
        const owner = candidates.find((id) => (byMember.get(id)?.length ?? 0) < (quotas.get(id) ?? 0));
        if (owner === undefined) throw new Error('owner table: no member with room (quotas inconsistent)');
        owners.push(owner);
        byMember.get(owner)?.push(shard);
      }
    }
    this.#owners = Object.freeze(owners);
    this.#byMember = byMember;
  }

  get size(): number {
    return this.members.length;
  }

  /** The member that owns `shard`; undefined when the table is empty or the shard out of range. */
  ownerOf(shard: number): string | undefined {
    return this.#owners[shard];
  }

  /** The member that owns `key`'s shard. */
  ownerOfKey(key: string): string | undefined {
    return this.#owners[shardOf(key, this.shardCount)];
  }

  /** The shards `member` owns, ascending (empty when it is not a member). */
  shardsOf(member: string): readonly number[] {
    return this.#byMember.get(member) ?? [];
  }

  /** Shards whose owner differs between this table and `other` (same shard count). */
  movedTo(other: OwnerTable): number[] {
    const moved: number[] = [];
    for (let shard = 0; shard < this.shardCount; shard++) {
      if (this.ownerOf(shard) !== other.ownerOf(shard)) moved.push(shard);
    }
    return moved;
  }
}
