/**
 * A token bucket: `rate` tokens per second, at most `burst` stored. `take(cost)` spends `cost` tokens (one
 * by default) if there are that many. Used for frames and bytes per connection and per user (node) and
 * handshakes per source address (router).
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;

  constructor(rate: number, burst: number, now: () => number = Date.now) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#now = now;
    this.#last = now();
  }

  /** A cost above the burst costs the whole burst (it passes only when the bucket is full). */
  take(cost = 1): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    const spend = Math.min(cost, this.#burst);
    if (this.#tokens < spend) return false;
    this.#tokens -= spend;
    return true;
  }

  /** True when the bucket is full again (an idle entry that can be forgotten). */
  get full(): boolean {
    const tokens = this.#tokens + ((this.#now() - this.#last) / 1000) * this.#rate;
    return tokens >= this.#burst;
  }
}
