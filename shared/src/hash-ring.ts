import { createHash } from 'node:crypto';
import HashRing from 'hashring';

/** One placement target: a chat node id and its relative weight (1 = normal share). */
export interface RingMember {
  readonly id: string;
  readonly weight: number;
}

/**
 * An immutable consistent-hash ring over `hashring` (ketama-compatible, 160 points per member at equal
 * weights). Every router and node given the same members, in any order, places every key identically and
 * reports the same `version`. A changed membership means a new ring: compare versions to see a change.
 */
export class ChatRing {
  /** Members sorted by id. */
  readonly members: readonly RingMember[];
  /** Digest of the members and weights (16 hex chars); `empty` for a ring with no members. */
  readonly version: string;
  readonly #ring: HashRing | undefined;

  constructor(members: Iterable<RingMember>) {
    const byId = new Map<string, RingMember>();
    for (const m of members) {
      if (m.id.length === 0) throw new RangeError('ring member id must not be empty');
      if (!Number.isInteger(m.weight) || m.weight < 1) {
        throw new RangeError(`ring member ${m.id}: weight must be a positive integer, got ${m.weight}`);
      }
      if (byId.has(m.id)) throw new RangeError(`ring member ${m.id} listed twice`);
      byId.set(m.id, { id: m.id, weight: m.weight });
    }
    // Sorted input keeps equal continuum points (rare md5 collisions) in one order everywhere.
    this.members = Object.freeze([...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    this.version = ringVersion(this.members);
    this.#ring =
      this.members.length === 0
        ? undefined
        : new HashRing(Object.fromEntries(this.members.map((m) => [m.id, { weight: m.weight }])), 'md5', {
            'max cache size': 10_000,
          });
  }

  get size(): number {
    return this.members.length;
  }

  has(id: string): boolean {
    return this.members.some((m) => m.id === id);
  }

  /** The member that owns `key`, or undefined when the ring is empty. */
  get(key: string): string | undefined {
    // hashring returns undefined on an empty ring although its types say string.
    return this.#ring?.get(key);
  }

  /**
   * Up to `count` distinct members in ring order starting at `key`'s owner: the owner first, then the
   * fallbacks a router tries when the owner refuses.
   */
  candidates(key: string, count: number): string[] {
    if (!this.#ring || count <= 0) return [];
    return this.#ring.range(key, Math.min(count, this.members.length), true);
  }

  /** A new ring with `member` added or its weight replaced. */
  with(member: RingMember): ChatRing {
    return new ChatRing([...this.members.filter((m) => m.id !== member.id), member]);
  }

  /** A new ring without `id` (the same members if it was absent). */
  without(id: string): ChatRing {
    return new ChatRing(this.members.filter((m) => m.id !== id));
  }
}

/** The version digest of a member list (order-independent). */
export function ringVersion(members: readonly RingMember[]): string {
  if (members.length === 0) return 'empty';
  const lines = members.map((m) => `${m.id}\t${m.weight}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}
