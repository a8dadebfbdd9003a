import type { Logger, MemberHeartbeat, MemberState } from '@chat/shared';
import type { ChatBus } from './bus/types.js';
import type { SessionRegistry } from './session-registry.js';

export interface MembershipOptions {
  readonly nodeId: string;
  readonly epoch: string;
  readonly url: () => string;
  readonly weight: number;
  readonly intervalMs: number;
  readonly bus: ChatBus;
  readonly sessions: SessionRegistry;
  readonly logger: Logger;
}

/** Presence changes per request at most (a Kafka request stays well under its size limit). */
const MAX_PRESENCE_BATCH = 1000;

/**
 * This node's side of membership and presence: a heartbeat on the members topic every interval, and the
 * presence topic kept equal to the set of users with a session here. Presence changes that the bus
 * refused (Kafka down) stay pending and are retried on every heartbeat, so the directory converges once
 * the bus is back.
 */
export class Membership {
  readonly #o: MembershipOptions;
  readonly #log: Logger;
  readonly #dirty = new Set<string>();
  #state: MemberState = 'active';
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #heartbeatFailing = false;

  constructor(options: MembershipOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'membership' });
  }

  heartbeat(): MemberHeartbeat {
    return {
      v: 1,
      id: this.#o.nodeId,
      url: this.#o.url(),
      weight: this.#o.weight,
      state: this.#state,
      epoch: this.#o.epoch,
      ts: Date.now(),
      intervalMs: this.#o.intervalMs,
    };
  }

  /** Starts the heartbeat loop (first beat at once). */
  async start(): Promise<void> {
    await this.#beat();
    let inFlight = false;
    this.#timer = setInterval(() => {
      // With Kafka down a beat can outlast the interval; never stack them.
      if (inFlight) return;
      inFlight = true;
      void this.#beat().finally(() => (inFlight = false));
    }, this.#o.intervalMs);
  }

  /** Marks the node draining in its next (and this immediate) heartbeat. */
  async setState(state: MemberState): Promise<void> {
    this.#state = state;
    await this.#beat();
  }

  /** The user's presence here may have changed (first session opened or last one closed). */
  touch(userId: string): void {
    this.#dirty.add(userId);
    void this.flushPresence();
  }

  /** Forget entries of a previous incarnation of this node (found in the replayed directory). */
  clearStale(userIds: Iterable<string>): void {
    for (const userId of userIds) if (!this.#o.sessions.has(userId)) this.touch(userId);
  }

  /** Publishes pending presence changes; resolves when nothing is pending or the bus refused. */
  flushPresence(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  get pendingPresence(): number {
    return this.#dirty.size;
  }

  async #flush(): Promise<void> {
    // Everything pending goes in one request (a mass reconnect changes thousands at once); changes made
    // while it is in flight are picked up by the next round.
    while (this.#dirty.size > 0) {
      const users = [...this.#dirty].slice(0, MAX_PRESENCE_BATCH);
      for (const userId of users) this.#dirty.delete(userId);
      const updates = users.map((userId) => {
        const [session] = this.#o.sessions.sessionsOf(userId);
        return {
          userId,
          record: session
            ? { v: 1 as const, userId, nodeId: this.#o.nodeId, epoch: this.#o.epoch, shard: session.shard }
            : null,
        };
      });
      try {
        await this.#o.bus.publishPresence(updates);
      } catch {
        // Keep them for the next heartbeat; the bus logs and counts the failure.
        for (const userId of users) this.#dirty.add(userId);
        return;
      }
    }
  }

  async #beat(): Promise<void> {
    try {
      await this.#o.bus.publishHeartbeat(this.heartbeat());
      if (this.#heartbeatFailing) this.#log.info('heartbeats get through again');
      this.#heartbeatFailing = false;
      if (this.#dirty.size > 0) await this.flushPresence();
    } catch (err) {
      if (!this.#heartbeatFailing) this.#log.warn({ err: (err as Error).message }, 'heartbeat failed');
      this.#heartbeatFailing = true;
    }
  }

  /** Stops the loop and publishes the goodbye tombstone (best effort). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flushPresence();
    await this.#o.bus.publishHeartbeat(null).catch((err: unknown) => {
      this.#log.warn({ err: (err as Error).message }, 'goodbye heartbeat failed');
    });
  }
}
