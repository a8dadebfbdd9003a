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
 * "elsewhere" (a retryable bus error) instead of turning "offline".
 */
export class PresenceDirectory {
  readonly #usersNodes = new Map<string, Map<string, string>>(); // userId -> nodeId -> epoch
  readonly #members = new Map<string, MemberView>();
  readonly #clock: HeartbeatClock;

  constructor(options: { timeoutMs: number; now?: () => number }) {
    this.#clock = new HeartbeatClock(options.timeoutMs, options.now);
  }

  /** Applies a heartbeat (or, with `null`, a node's goodbye tombstone). */
  applyMember(id: string, heartbeat: MemberHeartbeat | null): void {
    if (heartbeat === null) {
      this.#members.delete(id);
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

  /** Records that `nodeId` (incarnation `epoch`) holds `userId`, or no longer does (`epoch` null). */
  applyPresence(userId: string, nodeId: string, epoch: string | null): void {
    let nodes = this.#usersNodes.get(userId);
    if (epoch === null) {
      if (nodes?.delete(nodeId) && nodes.size === 0) this.#usersNodes.delete(userId);
      return;
    }
    if (!nodes) {
      nodes = new Map();
      this.#usersNodes.set(userId, nodes);
    }
    nodes.set(nodeId, epoch);
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
    for (const [nodeId, epoch] of nodes) {
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
      if (e !== undefined && e !== epoch) out.push(userId);
    }
    return out;
  }

  /** Members whose heartbeats are fresh. */
  liveMembers(): MemberView[] {
    return [...this.#members.values()].filter((m) => this.isAlive(m));
  }
}
