/**
 * Collects items for up to `windowMs` (or until `max` are waiting) and flushes them in one call, one
 * flush at a time, in arrival order: kafkajs has no linger.ms, so this gives the producer its batches.
 * Each `add` resolves or rejects with the outcome of the flush that carried its item.
 */
export class Batcher<T> {
  readonly #windowMs: number;
  readonly #max: number;
  readonly #flush: (items: T[]) => Promise<void>;
  #pending: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(options: { windowMs: number; max: number; flush: (items: T[]) => Promise<void> }) {
    this.#windowMs = options.windowMs;
    this.#max = options.max;
    this.#flush = options.flush;
  }

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (this.#pending.length >= this.#max) this.#cut();
      else this.#timer ??= setTimeout(() => this.#cut(), this.#windowMs);
    });
  }

  /** Items waiting for their window to end (not yet handed to flush). */
  get waiting(): number {
    return this.#pending.length;
  }

  /** Flushes what is waiting now and resolves when every flush so far has finished. */
  async drain(): Promise<void> {
    this.#cut();
    await this.#chain;
  }

  #cut(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    // Flushes run one after another, so records keep their order across batches.
    this.#chain = this.#chain.then(async () => {
      try {
        await this.#flush(batch.map((p) => p.item));
        for (const p of batch) p.resolve();
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    });
  }
}
