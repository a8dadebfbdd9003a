import { EventEmitter } from 'node:events';
import { ChatRing, OwnerTable, callNode, type Logger } from '@chat/shared';
import type { RouterMetrics } from './metrics.js';
import type { MemberInfo } from './membership/types.js';

export interface MemberStatus extends MemberInfo {
  /** The last probe answered with `accepting: true` (after `probeFailures` misses it turns false). */
  readonly healthy: boolean;
  /** Drained through this router's admin API. */
  readonly adminDrained: boolean;
  /** The node says it is draining: its heartbeat's `state`, or its last /readyz body. */
  readonly draining: boolean;
  /** Probed at least once since it appeared (whatever the answer, or a timeout). */
  readonly probed: boolean;
  /**
   * Its HTTP listener answers (any status): false after `probeFailures` probes in a row got no answer at
   * all (refused, timed out). A draining node is reachable while it closes its sessions.
   */
  readonly reachable: boolean;
  readonly inRing: boolean;
  /** Shards this member owns in the router's owner table (0 when it is not in the table). */
  readonly shards: number;
  /**
   * The node's own readiness, as its last /readyz said (`ready`: accepting and its bus works); false until
   * an answer said so, and after a probe that got none. Placement goes by `healthy` (accepting) instead: a
   * node whose bus is down keeps its users, but is not ready, and an operator must see that.
   */
  readonly ready: boolean;
  /** Whether its bus (Kafka) works, as its last /readyz said; null before any answer and after a miss. */
  readonly bus: boolean | null;
}

export interface MemberTableOptions {
  /** Shards of the cluster (`CHAT_CLUSTER_SHARDS`): the owner table's size. */
  readonly shardCount: number;
  readonly probeIntervalMs: number;
  readonly probeTimeoutMs: number;
  readonly probeFailures: number;
  /**
   * The member list comes from heartbeats (Kafka): a listed member is alive by its heartbeats, so it is
   * dead only once the source drops it. False (a static list): a member is dead when it is unreachable.
   */
  readonly heartbeats?: boolean;
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
}

interface Entry {
  info: MemberInfo;
  healthy: boolean;
  failures: number;
  probed: boolean;
  /** Probes in a row that got no answer at all. */
  unanswered: number;
  /** The last answered /readyz said `draining`. */
  saysDraining: boolean;
  /** `ready` and `bus` of the last probe's /readyz body (false and null when it got none). */
  ready: boolean;
  bus: boolean | null;
}

/**
 * What the rebalancer may do with a member's connections: `gone` (no longer listed) and `dead`
 * (unreachable, and no heartbeats say otherwise) are cut, since nobody will close them; `draining` (alive,
 * closing its sessions itself) and `active` are left to the node.
 */
export type Liveness = 'gone' | 'dead' | 'draining' | 'active';

/**
 * Joins what the membership source says (who exists, active or draining) with this router's own probes
 * of each member's /readyz and the admin drains, and keeps the owner table (`OwnerTable`, shared with the
 * nodes) of the members that are active, healthy and not drained: placement is owner(shard(key)). The
 * hash ring of the same members is kept beside it for its version and member list. Emits `owners` (new
 * table, old table) whenever the table's version changes (a member joined, left or changed weight).
 */
export class MemberTable extends EventEmitter<{ owners: [OwnerTable, OwnerTable]; probed: [] }> {
  readonly #o: MemberTableOptions;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #drained = new Set<string>();
  #ring = new ChatRing([]);
  #owners: OwnerTable;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;

  constructor(options: MemberTableOptions) {
    super();
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'members' });
    this.#owners = new OwnerTable([], options.shardCount);
  }

  /** The eligible members as a hash ring (its members and version); placement uses `owners`. */
  get ring(): ChatRing {
    return this.#ring;
  }

  /** Who owns each shard, over the eligible members: where every connection is placed. */
  get owners(): OwnerTable {
    return this.#owners;
  }

  /** Replaces the member list (from the membership source). New members are probed at once. */
  setMembers(members: readonly MemberInfo[]): void {
    const seen = new Set<string>();
    for (const info of members) {
      seen.add(info.id);
      const entry = this.#entries.get(info.id);
      if (entry) entry.info = info;
      else
        this.#entries.set(info.id, {
          info,
          healthy: false,
          failures: 0,
          probed: false,
          unanswered: 0,
          saysDraining: false,
          ready: false,
          bus: null,
        });
    }
    for (const id of this.#entries.keys()) {
      if (seen.has(id)) continue;
      this.#entries.delete(id);
      // An admin drain is of the member that left: a node that joins later under the same id (scale out
      // again, a replaced pod) is a new member and starts undrained, as it does on the node itself.
      this.#drained.delete(id);
    }
    this.#recompute();
    void this.probeAll();
  }

  start(): void {
    this.#timer = setInterval(() => void this.probeAll(), this.#o.probeIntervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** True once every listed member has been probed at least once (answered, failed or timed out). */
  get allProbed(): boolean {
    for (const entry of this.#entries.values()) if (!entry.probed) return false;
    return true;
  }

  /** Whether `id`'s connections are left to its node or cut (see `Liveness`). */
  liveness(id: string): Liveness {
    const entry = this.#entries.get(id);
    if (!entry) return 'gone';
    if (!this.#reachable(entry) && !this.#o.heartbeats) return 'dead';
    return entry.info.state === 'draining' || entry.saysDraining ? 'draining' : 'active';
  }

  member(id: string): MemberStatus | undefined {
    const entry = this.#entries.get(id);
    return entry && this.#status(entry);
  }

  members(): MemberStatus[] {
    return [...this.#entries.values()].map((e) => this.#status(e)).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Admin drain: the member leaves this router's owner table. */
  drain(id: string): void {
    this.#drained.add(id);
    this.#recompute();
  }

  undrain(id: string): void {
    this.#drained.delete(id);
    this.#recompute();
  }

  /**
   * The node itself said whether it is draining (its answer to POST /internal/drain or /undrain); kept
   * until its next /readyz answer says otherwise.
   */
  nodeSaid(id: string, draining: boolean): void {
    const entry = this.#entries.get(id);
    if (entry) entry.saysDraining = draining;
  }

  /**
   * Probes every member once and recomputes the ring. While a round is running, a call joins that round
   * instead of starting another; members added meanwhile are probed by a round started right after it
   * (so a new member waits for no interval, and `allProbed` turns true as soon as it can).
   */
  probeAll(): Promise<void> {
    this.#round ??= (async () => {
      try {
        await Promise.all([...this.#entries.values()].map((entry) => this.#probe(entry)));
      } finally {
        this.#round = undefined;
      }
      this.#recompute();
      this.emit('probed');
      if (!this.allProbed) await this.probeAll();
    })();
    return this.#round;
  }

  async #probe(entry: Entry): Promise<void> {
    // A node that is not ready (503) still answers the contract's body; it is placed on `accepting`.
    const answer = await callNode(entry.info.url, 'readyz', undefined, {
      timeoutMs: this.#o.probeTimeoutMs,
    });
    entry.probed = true;
    // Any HTTP answer means the process is there; only silence (refused, timed out) counts against it.
    if (answer.status === 0) entry.unanswered++;
    else entry.unanswered = 0;
    if (answer.ok) entry.saysDraining = answer.body.draining;
    entry.ready = answer.ok && answer.body.ready;
    entry.bus = answer.ok ? answer.body.bus : null;
    const ok = answer.ok && answer.body.accepting;
    if (ok) {
      if (!entry.healthy) this.#log.info({ node: entry.info.id }, 'member healthy');
      entry.healthy = true;
      entry.failures = 0;
      return;
    }
    this.#o.metrics.probeFailures.inc();
    entry.failures++;
    if (entry.healthy && entry.failures >= this.#o.probeFailures) {
      entry.healthy = false;
      this.#log.warn({ node: entry.info.id, failures: entry.failures }, 'member unhealthy');
    }
  }

  #reachable(entry: Entry): boolean {
    return entry.unanswered < this.#o.probeFailures;
  }

  #eligible(entry: Entry): boolean {
    return entry.healthy && entry.info.state === 'active' && !this.#drained.has(entry.info.id);
  }

  #status(entry: Entry): MemberStatus {
    return {
      ...entry.info,
      healthy: entry.healthy,
      adminDrained: this.#drained.has(entry.info.id),
      draining: entry.info.state === 'draining' || entry.saysDraining,
      probed: entry.probed,
      reachable: this.#reachable(entry),
      inRing: this.#ring.has(entry.info.id),
      shards: this.#owners.shardsOf(entry.info.id).length,
      ready: entry.ready,
      bus: entry.bus,
    };
  }

  #recompute(): void {
    const eligible = [...this.#entries.values()]
      .filter((e) => this.#eligible(e))
      .map((e) => ({ id: e.info.id, weight: e.info.weight }));
    const ring = new ChatRing(eligible);
    // The table's version is a digest of the ring's and the (fixed) shard count: they change together.
    if (ring.version === this.#ring.version) return;
    const next = new OwnerTable(ring.members, this.#o.shardCount);
    const previous = this.#owners;
    this.#ring = ring;
    this.#owners = next;
    const moved = previous.movedTo(next).length;
    const { metrics } = this.#o;
    metrics.ringMembers.set(ring.size);
    metrics.ringVersion.reset();
    metrics.ringVersion.set({ version: ring.version }, 1);
    metrics.ringChanges.inc();
    metrics.ownerTableVersion.reset();
    metrics.ownerTableVersion.set({ version: next.version }, 1);
    metrics.shardsMoved.inc(moved);
    this.#log.info(
      {
        version: next.version,
        ringVersion: ring.version,
        members: next.members.map((m) => `${m.id}:${next.shardsOf(m.id).length}`),
        movedShards: moved,
      },
      'owner table changed',
    );
    this.emit('owners', next, previous);
  }
}
