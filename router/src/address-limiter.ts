import { TokenBucket } from '@chat/shared';

/** Entries kept at most; beyond it the oldest full (idle) buckets are forgotten first. */
const MAX_ENTRIES = 100_000;

/** One token bucket per source address (handshakes per second), with memory bounded. */
export class AddressLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #rate: number;
  readonly #burst: number;

  constructor(rate: number, burst: number) {
    this.#rate = rate;
    this.#burst = burst;
  }

  allow(address: string): boolean {
    let bucket = this.#buckets.get(address);
    if (!bucket) {
      if (this.#buckets.size >= MAX_ENTRIES) this.#evict();
      bucket = new TokenBucket(this.#rate, this.#burst);
      this.#buckets.set(address, bucket);
    }
    return bucket.take();
  }

  get size(): number {
    return this.#buckets.size;
  }

  #evict(): void {
    for (const [address, bucket] of this.#buckets) if (bucket.full) this.#buckets.delete(address);
    // Everyone is busy: drop the oldest half rather than grow without bound.
    if (this.#buckets.size >= MAX_ENTRIES) {
      let n = 0;
      for (const address of this.#buckets.keys()) {
        if (n++ >= MAX_ENTRIES / 2) break;
        this.#buckets.delete(address);
      }
    }
  }
}
