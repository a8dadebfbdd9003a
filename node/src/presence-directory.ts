import { HeartbeatClock, type MemberHeartbeat, type MemberState } from '@chat/shared';

/** What the directory knows of one node from its heartbeats. */
export interface MemberView {
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  readonly state: MemberState;
  readonly epoch: string;
  /** When its last heartbeat was sent (ms), capped at the time it was read. */
  readonly lastSeen: number;
}

/**
 * The cluster-wide presence directory every node keeps in memory, fed from the compacted presence and
 * members topics: which users each node holds, and which nodes are alive. A node's entries count only
 * while its heartbeats are fresh (`timeoutMs`) and only for its current incarnation (`epoch`), so a node
 * killed with kill -9 stops counting within the timeout and a restarted node's old entries never count.
 * While no heartbeat arrives at all (the bus is down), nobody expires: receivers on other nodes stay
 * "elsewhere" (a retryable bus error) instead of turning "offline". A user who left, or whose node died,
 * stays reachable through their last shard for the grace period (`shardOf`), so a send to someone who is
 * only reconnecting is accepted into their shard's log (its owner holds it), not answered `offline`.
 */
export class PresenceDirectory {
  readonly #usersNodes = new Map<string, Map<string, { epoch: string; shard: number | undefined }>>();
  readonly #members = new Map<string, MemberView>();
  readonly #clock: HeartbeatClock;
  /** The last known shard of users who just left, until when it is kept. */
  readonly #recent = new Map<string, { shard: number; until: number }>();
  readonly #graceMs: number;
  readonly #now: () => number;

  /**
   * `timeoutMs`: a node whose last heartbeat is older is dead (CHAT_NODE_HEARTBEAT_TIMEOUT_MS).
   * `graceMs`: how long a user who left, or whose node died, stays reachable through their last shard,
   * counted from when they left or from their node's last heartbeat (CHAT_NODE_PRESENCE_GRACE_MS,
   * default 60 s).
   */
  constructor(options: { timeoutMs: number; now?: () => number; graceMs?: number }) {
    this.#clock = new HeartbeatClock(options.timeoutMs, options.now);
    this.#now = options.now ?? Date.now;
    this.#graceMs = options.graceMs ?? 60_000;
  }

  /** Applies a heartbeat (or, with `null`, a node's goodbye tombstone). */
  applyMember(id: string, heartbeat: MemberHeartbeat | null): void {
    if (heartbeat === null) {
      const gone = this.#members.get(id);
      this.#members.delete(id);
      if (gone) this.#lingerAfter(gone);
      return;
    }
    const lastSeen = Math.max(this.#clock.saw(heartbeat.ts), this.#members.get(id)?.lastSeen ?? -Infinity);
    this.#members.set(id, {
      id,
      url: heartbeat.url,
      weight: heartbeat.weight,
      state: heartbeat.state,
      epoch: heartbeat.epoch,
      lastSeen,
    });
  }

  /**
   * Records that `nodeId` (incarnation `epoch`) holds `userId` in `shard`, or no longer does (`epoch`
   * null). The shard of a user who left is kept for the grace period, so messages to a user who is
   * reconnecting still go to the right log.
   */
  applyPresence(userId: string, nodeId: string, epoch: string | null, shard?: number): void {
    let nodes = this.#usersNodes.get(userId);
    if (epoch === null) {
      const left = nodes?.get(nodeId);
      if (left?.shard !== undefined)
        this.#recent.set(userId, { shard: left.shard, until: this.#now() + this.#graceMs });
      if (nodes?.delete(nodeId) && nodes.size === 0) this.#usersNodes.delete(userId);
      return;
    }
    if (!nodes) {
      nodes = new Map();
      this.#usersNodes.set(userId, nodes);
    }
    nodes.set(nodeId, { epoch, shard });
    this.#recent.delete(userId);
  }

  /**
   * The users of a member that said goodbye (tombstone) without removing their entries first stay
   * reachable through their shard for the grace period after its last heartbeat.
   */
  #lingerAfter(member: MemberView): void {
    const until = member.lastSeen + this.#graceMs;
    if (until < this.#now()) return;
    for (const [userId, nodes] of this.#usersNodes) {
      const entry = nodes.get(member.id);
      if (entry?.shard === undefined || entry.epoch !== member.epoch) continue;
      const recent = this.#recent.get(userId);
      if (!recent || recent.until < until) this.#recent.set(userId, { shard: entry.shard, until });
    }
  }

  /**
   * The shard messages to `userId` go to: from a live node's presence entry; else from the entry of a
   * node that stopped heartbeating (kill -9) within the grace period after its last heartbeat; else the
   * last known one of a user who left, within the grace period; undefined when the user is nowhere and
   * was not recently (only then is `offline` the truth).
   */
  shardOf(userId: string): number | undefined {
    let lingering: number | undefined;
    for (const [nodeId, entry] of this.#usersNodes.get(userId) ?? []) {
      const member = this.#members.get(nodeId);
      if (entry.shard === undefined || member?.epoch !== entry.epoch) continue;
      if (this.isAlive(member)) return entry.shard;
      if (lingering === undefined && this.#now() - member.lastSeen <= this.#graceMs) lingering = entry.shard;
    }
    if (lingering !== undefined) return lingering;
    const recent = this.#recent.get(userId);
    if (recent === undefined) return undefined;
    if (recent.until >= this.#now()) return recent.shard;
    this.#recent.delete(userId);
    return undefined;
  }

  /** The distinct shards of `userId`'s entries on live nodes other than `selfId` (usually one). */
  remoteShardsOf(userId: string, selfId: string): number[] {
    const shards = new Set<number>();
    for (const [nodeId, entry] of this.#usersNodes.get(userId) ?? []) {
      if (nodeId === selfId || entry.shard === undefined) continue;
      const member = this.#members.get(nodeId);
      if (member?.epoch === entry.epoch && this.isAlive(member)) shards.add(entry.shard);
    }
    return [...shards];
  }

  /** Whether node `nodeId` in incarnation `epoch` is alive (its heartbeats are fresh). */
  isMemberAlive(nodeId: string, epoch: string): boolean {
    const member = this.#members.get(nodeId);
    return member !== undefined && member.epoch === epoch && this.isAlive(member);
  }

  /** Drops last-known shards past their grace period (call it now and then: memory stays bounded). */
  sweep(): void {
    const now = this.#now();
    for (const [userId, recent] of this.#recent) if (recent.until < now) this.#recent.delete(userId);
  }

  /** True while `member` heartbeats are fresh (judged against the heartbeat stream, see HeartbeatClock). */
  isAlive(member: MemberView): boolean {
    return this.#clock.alive(member.lastSeen);
  }

  /** Live nodes other than `selfId` that hold `userId` in their current incarnation. */
  remoteNodesOf(userId: string, selfId: string): string[] {
    const nodes = this.#usersNodes.get(userId);
    if (!nodes) return [];
    const out: string[] = [];
    for (const [nodeId, { epoch }] of nodes) {
      if (nodeId === selfId) continue;
      const member = this.#members.get(nodeId);
      if (member && member.epoch === epoch && this.isAlive(member)) out.push(nodeId);
    }
    return out;
  }

  /** Users recorded for `nodeId` under an epoch other than `epoch` (a previous life's leftovers). */
  staleEntriesOf(nodeId: string, epoch: string): string[] {
    const out: string[] = [];
    for (const [userId, nodes] of this.#usersNodes) {
      const e = nodes.get(nodeId);
      if (e !== undefined && e.epoch !== epoch) out.push(userId);
    }
    return out;
  }

  /** Members whose heartbeats are fresh. */
  liveMembers(): MemberView[] {
    return [...this.#members.values()].filter((m) => this.isAlive(m));
  }
}
