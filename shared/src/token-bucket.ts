/**
 * A token bucket: `rate` tokens per second, at most `burst` stored. `take()` spends one token if there is
 * one. Used for messages per connection (node) and handshakes per source address (router).
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

  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** True when the bucket is full again (an idle entry that can be forgotten). */
  get full(): boolean {
    const tokens = this.#tokens + ((this.#now() - this.#last) / 1000) * this.#rate;
    return tokens >= this.#burst;
  }
}
