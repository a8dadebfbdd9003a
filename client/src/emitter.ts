/** A typed event emitter small enough for a browser bundle (no Node `events`). */
export class Emitter<Events extends object> {
  readonly #listeners = new Map<keyof Events, Set<(event: never) => void>>();

  /** Adds `listener`; returns the function that removes it. */
  on<K extends keyof Events>(event: K, listener: (e: Events[K]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    const l = listener as (event: never) => void;
    set.add(l);
    return () => void set.delete(l);
  }

  /**
   * Calls every listener of `event`. A listener that throws does not stop the others or the client: its
   * error is rethrown on its own (an uncaught error, as the platform reports one).
   */
  emit<K extends keyof Events>(event: K, e: Events[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      try {
        (l as (e: Events[K]) => void)(e);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.size ?? 0;
  }
}
