/** Sums of fractional refills are off by rounding (0.996 + 0.004 < 1): tolerated, not waited for. */
const EPSILON = 1e-9;

/**
 * Paces the client's writes under the node's per-connection message rate (CHAT_NODE_RATE_PER_SEC, 50 by
 * default, burst 100): a backlog of queued sends flushed at once after a reconnect would otherwise be cut
 * off with NODE_ERR_RATE_LIMITED and then 4008. A token bucket holding one second of the rate: at most
 * `ratePerSec` writes at once, then `ratePerSec` a second.
 */
export class TokenBucket {
  readonly #ratePerSec: number;
  readonly #capacity: number;
  readonly #now: () => number;
  /** Tokens now; fractional between refills. */
  #tokens: number;
  #at: number;

  constructor(ratePerSec: number, now: () => number = Date.now) {
    this.#ratePerSec = ratePerSec;
    this.#capacity = Math.max(1, ratePerSec);
    this.#now = now;
    this.#tokens = this.#capacity;
    this.#at = now();
  }

  /** Takes one token when there is one (the write may go now); false when the caller must wait. */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1 - EPSILON) return false;
    this.#tokens = Math.max(0, this.#tokens - 1);
    return true;
  }

  /** Milliseconds until `take()` can succeed (at least 1, so a waiting caller never spins). */
  msUntilNext(): number {
    this.#refill();
    return Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#ratePerSec - EPSILON));
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((now - this.#at) * this.#ratePerSec) / 1000);
    this.#at = now;
  }
}
