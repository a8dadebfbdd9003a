/**
 * Heartbeat liveness that survives a bus outage. A member is alive while its last heartbeat is younger
 * than `timeoutMs`, measured not from "now" but from the heartbeat stream itself: when no heartbeat at all
 * has arrived for a while (Kafka down, or this process cut off from it), the clock stops at
 * `newest + timeoutMs / 2`, so members that were beating when the stream stalled are kept (routers and
 * probes still notice dead nodes), while members already silent before the stall still expire.
 */
export class HeartbeatClock {
  #newest = Number.NEGATIVE_INFINITY;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(timeoutMs: number, now: () => number = Date.now) {
    this.#timeoutMs = timeoutMs;
    this.#now = now;
  }

  /** Records a heartbeat sent at `ts` (capped at now); returns the capped time. */
  saw(ts: number): number {
    const seen = Math.min(ts, this.#now());
    if (seen > this.#newest) this.#newest = seen;
    return seen;
  }

  /** True while a member last seen at `lastSeen` counts as alive. */
  alive(lastSeen: number): boolean {
    const reference = Math.min(this.#now(), this.#newest + this.#timeoutMs / 2);
    return reference - lastSeen <= this.#timeoutMs;
  }
}
