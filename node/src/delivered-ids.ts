/** Buckets the window is cut into: memory is freed a tenth of a window at a time. */
const BUCKETS = 10;
/**
 * At most this many ids are remembered (the oldest bucket goes early beyond it): bounded memory. Measured
 * at about 140 bytes per id (a user id and a 24-character server id), so about 28 MB; at 2,000 deliveries
 * per second per node that still covers 100 s, more than the handoff grace period a re-read can span.
 */
const DEFAULT_MAX_ENTRIES = 200_000;

export interface DeliveredIdsOptions {
  /** How long an id is remembered (CHAT_NODE_SEND_DEDUP_WINDOW_MS); 0 remembers nothing. */
  readonly windowMs: number;
  /** At most this many ids (default 200,000); past it the oldest tenth of the window is forgotten early. */
  readonly maxEntries?: number;
  readonly now?: () => number;
}

/**
 * Which (receiver, server message id) pairs this node wrote to a receiver's sessions recently, so the
 * same message is never written to the same receiver twice: a Kafka record read again after a crash or
 * a hand-over, a record held and also read again, a retried send with a derived id. A time-bucketed set:
 * an id is remembered for at least `windowMs` (at most a tenth longer), and memory is bounded by the
 * message rate over the window and by `maxEntries`.
 */
export class DeliveredIds {
  readonly #windowMs: number;
  readonly #bucketMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** Oldest first; each bucket holds the ids first seen in its time slice. */
  readonly #buckets: { start: number; ids: Set<string> }[] = [];
  #size = 0;

  constructor(options: DeliveredIdsOptions) {
    this.#windowMs = options.windowMs;
    this.#bucketMs = Math.max(1, Math.ceil(options.windowMs / BUCKETS));
    this.#max = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Records that message `id` is being written to `receiver`; false when it already was within the
   * window (the caller skips the write).
   */
  first(receiver: string, id: string): boolean {
    if (this.#windowMs <= 0) return true;
    const key = `${receiver}\n${id}`;
    this.#expire();
    for (const bucket of this.#buckets) if (bucket.ids.has(key)) return false;
    const now = this.#now();
    let current = this.#buckets.at(-1);
    if (!current || now - current.start >= this.#bucketMs) {
      current = { start: now, ids: new Set() };
      this.#buckets.push(current);
    }
    current.ids.add(key);
    this.#size++;
    while (this.#size > this.#max && this.#buckets.length > 1) this.#dropOldest();
    return true;
  }

  /** Whether `id` was written to `receiver` within the window (does not record it). */
  has(receiver: string, id: string): boolean {
    if (this.#windowMs <= 0) return false;
    this.#expire();
    const key = `${receiver}\n${id}`;
    return this.#buckets.some((bucket) => bucket.ids.has(key));
  }

  /** Ids remembered now. */
  get size(): number {
    this.#expire();
    return this.#size;
  }

  #expire(): void {
    // A bucket goes once all of it is older than the window.
    const cutoff = this.#now() - this.#windowMs - this.#bucketMs;
    while (this.#buckets.length > 0 && (this.#buckets[0]?.start ?? 0) <= cutoff) this.#dropOldest();
  }

  #dropOldest(): void {
    const oldest = this.#buckets.shift();
    if (oldest) this.#size -= oldest.ids.size;
  }
}
