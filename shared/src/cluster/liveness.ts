/**
 * Heartbeat liveness that survives a bus outage. A member is alive while its last heartbeat is younger
 * than `timeoutMs`, measured not from "now" but from the heartbeat stream itself (the stream clock):
 *
 * - While no fresh heartbeat arrives (Kafka down, this process cut off from it, or only an old backlog
 *   being replayed), the stream clock stops at `newest + timeoutMs / 2`: members that were beating when
 *   the stream stalled are kept (routers' probes still notice dead nodes), while members already silent
 *   before the stall still expire.
 * - When the stream moves on again (the first heartbeat newer than the held clock, whoever sent it), the
 *   clock jumps forward. Without more, every member last seen before the stall would then be older than
 *   the timeout at once and expire before its own fresh heartbeat arrives a moment later (the ring went
 *   from three nodes to none). So the stream's resumption counts as a fresh sighting of every member that
 *   was alive when the clock stopped: each gets a full timeout after the resume to show up. "Absence of
 *   news is not news of absence": a stall or a backlog never empties the ring, while a member that really
 *   died (silent for a whole timeout after the stream resumed) still expires.
 *
 * The grace is kept as one pair (`#liftFrom`, `#liftTo`): a member last seen at or after `#liftFrom`
 * counts as seen at `#liftTo` at the earliest. Successive stalls compose into one pair (see `saw`).
 */
export class HeartbeatClock {
  #newest = Number.NEGATIVE_INFINITY;
  /** Members last seen at or after this time were alive when the stream last stalled... */
  #liftFrom = Number.POSITIVE_INFINITY;
  /** ...and count as seen at this time (the stream clock when it moved on again) at the earliest. */
  #liftTo = Number.NEGATIVE_INFINITY;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(timeoutMs: number, now: () => number = Date.now) {
    this.#timeoutMs = timeoutMs;
    this.#now = now;
  }

  /** The stream clock: now, but held at `newest + timeoutMs / 2` while no fresh heartbeat arrives. */
  #reference(): number {
    return Math.min(this.#now(), this.#newest + this.#timeoutMs / 2);
  }

  /** Records a heartbeat sent at `ts` (capped at now); returns the capped time. */
  saw(ts: number): number {
    const seen = Math.min(ts, this.#now());
    if (seen <= this.#newest) return seen;
    if (this.#newest === Number.NEGATIVE_INFINITY) {
      // The first heartbeat ever (start-up replay): nothing stalled, nobody to lift.
      this.#newest = seen;
      return seen;
    }
    const before = this.#reference();
    this.#newest = seen;
    const after = this.#reference();
    if (after > before) {
      // The clock was held (stall or backlog) and moves on: lift whoever was alive at `before`.
      // Alive at `before` means effectively seen at or after `threshold`. In terms of the raw last-seen
      // time, with the previous lift applied: when the threshold is past the previous lift's time, only
      // members really seen since then qualify; otherwise every member the previous lift covered does too.
      const threshold = before - this.#timeoutMs;
      this.#liftFrom = threshold > this.#liftTo ? threshold : Math.min(threshold, this.#liftFrom);
      this.#liftTo = after;
    }
    return seen;
  }

  /** True while a member last seen at `lastSeen` counts as alive. */
  alive(lastSeen: number): boolean {
    const effective = lastSeen >= this.#liftFrom ? Math.max(lastSeen, this.#liftTo) : lastSeen;
    return this.#reference() - effective <= this.#timeoutMs;
  }
}
