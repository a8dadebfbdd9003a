/**
 * The producer's send queue: no window. When nothing is in flight, what is added goes to `flush` at once;
 * what arrives while a flush is in flight waits and goes out together in the next one (up to `maxItems`
 * items and `maxWeight` weight per flush). One flush at a time, in arrival order, so order holds across
 * flushes. Each `add` is one entry: its items share one outcome (the promise `add` returned).
 *
 * Every entry has its own deadline, `timeoutMs` after it was added, kept whatever is in flight:
 * - an entry still waiting at its deadline is rejected with `expiredWaiting()`: it was never handed to
 *   `flush`, so it was definitely not sent;
 * - a flush still unanswered at the deadline of its oldest entry is abandoned: every entry it carries is
 *   rejected with `expiredInFlight()` (the outcome is unknown: it may still complete), `onAbandoned` runs
 *   and the next flush may start. What the abandoned flush does later is ignored.
 * A flush that rejects rejects the entries it carried with its error.
 */
export interface CoalescerOptions<T> {
  readonly timeoutMs: number;
  /** At most this many items per flush (an entry with more goes alone). */
  readonly maxItems: number;
  /** At most this much weight per flush (an entry that alone weighs more goes alone). */
  readonly maxWeight?: number;
  readonly weight?: (item: T) => number;
  readonly flush: (items: T[]) => Promise<void>;
  readonly expiredWaiting: () => Error;
  readonly expiredInFlight: () => Error;
  /** A flush was abandoned at its deadline (called after its entries were rejected). */
  readonly onAbandoned?: () => void;
  /** Milliseconds, monotonic; `performance.now` by default (tests may pass their own). */
  readonly now?: () => number;
}

interface Entry<T> {
  readonly items: T[];
  readonly weight: number;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class Coalescer<T> {
  readonly #o: CoalescerOptions<T>;
  readonly #now: () => number;
  #waiting: Entry<T>[] = [];
  /** The flush in flight: its entries, or undefined. A new array per flush (its identity is the flush). */
  #inFlight: Entry<T>[] | undefined;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #idle: (() => void)[] = [];

  constructor(options: CoalescerOptions<T>) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Queues `items` as one entry; resolves or rejects with the outcome of the flush that carried them. */
  add(items: T[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const weigh = this.#o.weight;
      const weight = weigh ? items.reduce((sum, item) => sum + weigh(item), 0) : 0;
      this.#waiting.push({ items, weight, deadline: this.#now() + this.#o.timeoutMs, resolve, reject });
      if (!this.#inFlight) this.#next();
      this.#arm();
    });
  }

  /** Items waiting (not yet handed to flush). */
  get waiting(): number {
    let n = 0;
    for (const e of this.#waiting) n += e.items.length;
    return n;
  }

  /** Items in the flush in flight. */
  get inFlight(): number {
    let n = 0;
    for (const e of this.#inFlight ?? []) n += e.items.length;
    return n;
  }

  /** Rejects every waiting entry with `err` (none of them was handed to flush); returns their items. */
  failWaiting(err: Error): T[] {
    const failed = this.#waiting;
    this.#waiting = [];
    for (const e of failed) e.reject(err);
    this.#settleIdle();
    return failed.flatMap((e) => e.items);
  }

  /** Resolves once nothing is waiting or in flight (every entry so far answered). */
  drain(): Promise<void> {
    if (!this.#inFlight && this.#waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #next(): void {
    if (this.#inFlight || this.#waiting.length === 0) {
      this.#settleIdle();
      return;
    }
    const maxItems = this.#o.maxItems;
    const maxWeight = this.#o.maxWeight ?? Infinity;
    let take = 0;
    let items = 0;
    let weight = 0;
    for (const e of this.#waiting) {
      if (take > 0 && (items + e.items.length > maxItems || weight + e.weight > maxWeight)) break;
      take++;
      items += e.items.length;
      weight += e.weight;
    }
    const batch = this.#waiting.splice(0, take);
    this.#inFlight = batch;
    let flushing: Promise<void>;
    try {
      flushing = this.#o.flush(batch.flatMap((e) => e.items));
    } catch (err) {
      flushing = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    flushing.then(
      () => this.#done(batch, undefined),
      (err: unknown) => this.#done(batch, err ?? new Error('flush failed')),
    );
  }

  #done(batch: Entry<T>[], err: unknown): void {
    if (this.#inFlight !== batch) return; // abandoned at its deadline: already answered
    this.#inFlight = undefined;
    for (const e of batch) {
      if (err === undefined) e.resolve();
      else e.reject(err);
    }
    this.#next();
  }

  /**
   * Arms the one timer for the earliest deadline. It may fire early (its entry was answered since): then
   * it expires nothing and is armed again for the earliest deadline left.
   */
  #arm(): void {
    const at = Math.min(this.#inFlight?.[0]?.deadline ?? Infinity, this.#waiting[0]?.deadline ?? Infinity);
    if (at === Infinity) return;
    this.#timer?.ref();
    if (at >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - this.#now()));
  }

  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#now();
    const batch = this.#inFlight;
    // The oldest entry of a flush is its first: the flush is late once that one is.
    if (batch?.[0] && batch[0].deadline <= now) {
      this.#inFlight = undefined;
      const err = this.#o.expiredInFlight();
      for (const e of batch) e.reject(err);
      this.#o.onAbandoned?.();
    }
    // Deadlines grow along the queue: the expired ones are a prefix.
    let expired = 0;
    while (expired < this.#waiting.length && this.#waiting[expired]!.deadline <= now) expired++;
    if (expired > 0) {
      const err = this.#o.expiredWaiting();
      for (const e of this.#waiting.splice(0, expired)) e.reject(err);
    }
    this.#next();
    this.#arm();
  }

  #settleIdle(): void {
    if (this.#inFlight || this.#waiting.length > 0) return;
    // The timer stays armed (re-arming one per flush costs more than a spare wake-up every timeoutMs),
    // but it no longer keeps the process alive.
    this.#timer?.unref();
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}
