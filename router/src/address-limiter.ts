import { TokenBucket } from '@chat/shared';

/** Entries kept at most by default; beyond it the idle (full) buckets are forgotten first. */
const MAX_ENTRIES = 100_000;

export interface AddressLimiterOptions {
  /** Addresses remembered at most (default 100,000). */
  readonly maxEntries?: number;
  /** The clock the buckets refill by, in milliseconds (default `Date.now`). */
  readonly now?: () => number;
}

/**
 * One token bucket per source address (handshakes per second: `rate` per second, `burst` at once), with
 * memory bounded: when a new address would exceed `maxEntries`, the idle addresses are forgotten, then
 * the oldest busy ones down to three quarters of the limit (a forgotten address starts again with a full
 * bucket).
 */
export class AddressLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(rate: number, burst: number, options: AddressLimiterOptions = {}) {
    this.#rate = rate;
    this.#burst = burst;
    this.#maxEntries = options.maxEntries ?? MAX_ENTRIES;
    this.#now = options.now ?? Date.now;
  }

  /** Spends one of `address`'s tokens; false when it has none left (refuse the handshake). */
  allow(address: string): boolean {
    let bucket = this.#buckets.get(address);
    if (!bucket) {
      if (this.#buckets.size >= this.#maxEntries) this.#evict();
      bucket = new TokenBucket(this.#rate, this.#burst, this.#now);
      this.#buckets.set(address, bucket);
    }
    return bucket.take();
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Makes room: forgets the idle addresses, then the oldest until at most three quarters of the limit
   * are left, so that the next quarter of new addresses costs no scan (a flood of new addresses must not
   * make every handshake walk the whole table).
   */
  #evict(): void {
    for (const [address, bucket] of this.#buckets) if (bucket.full) this.#buckets.delete(address);
    const keep = Math.floor((this.#maxEntries * 3) / 4);
    for (const address of this.#buckets.keys()) {
      if (this.#buckets.size <= keep) break;
      this.#buckets.delete(address);
    }
  }
}
