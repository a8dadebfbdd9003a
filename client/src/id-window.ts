/**
 * The last N server message ids seen, to drop a message delivered twice (a retried send the server
 * delivered on two paths, a durable replay overlapping what arrived live). Bounded: the oldest id leaves
 * when a new one comes in over the limit.
 */
export class IdWindow {
  readonly #limit: number;
  readonly #ids = new Set<string>();

  constructor(limit = 10_000) {
    this.#limit = Math.max(1, limit);
  }

  /** Records `id`; false when it was already in the window (a duplicate). */
  add(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    // A Set iterates in insertion order: its first element is the oldest.
    if (this.#ids.size > this.#limit) {
      const oldest = this.#ids.values().next();
      if (!oldest.done) this.#ids.delete(oldest.value);
    }
    return true;
  }

  get size(): number {
    return this.#ids.size;
  }
}
