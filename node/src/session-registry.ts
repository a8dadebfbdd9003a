import type { Connection } from './connection.js';

/** What the registry needs of a session (a `Connection` in the node; plain objects in unit tests). */
export type SessionLike = Pick<Connection, 'userId' | 'connectionId'>;

/**
 * userId -> that user's sessions (live connections) on this node. Adding the first session of a user or
 * removing the last one is reported, so presence is published per user, not per socket.
 */
export class SessionRegistry<S extends SessionLike = Connection> {
  readonly #byUser = new Map<string, Set<S>>();
  #count = 0;

  /** Adds a session; true when it is the user's first on this node. */
  add(session: S): boolean {
    let set = this.#byUser.get(session.userId);
    const first = set === undefined;
    if (!set) {
      set = new Set();
      this.#byUser.set(session.userId, set);
    }
    if (!set.has(session)) {
      set.add(session);
      this.#count++;
    }
    return first;
  }

  /** Removes one session (only that one); true when it was the user's last on this node. */
  remove(session: S): boolean {
    const set = this.#byUser.get(session.userId);
    if (!set?.delete(session)) return false;
    this.#count--;
    if (set.size > 0) return false;
    this.#byUser.delete(session.userId);
    return true;
  }

  /** The user's sessions here (empty when none). */
  sessionsOf(userId: string): ReadonlySet<S> {
    return this.#byUser.get(userId) ?? EMPTY;
  }

  has(userId: string): boolean {
    return this.#byUser.has(userId);
  }

  /** Sessions whose router connection id is in `ids`. */
  byConnectionIds(ids: ReadonlySet<string>): S[] {
    return this.all().filter((s) => s.connectionId !== undefined && ids.has(s.connectionId));
  }

  all(): S[] {
    return [...this.#byUser.values()].flatMap((set) => [...set]);
  }

  get sessionCount(): number {
    return this.#count;
  }

  get userCount(): number {
    return this.#byUser.size;
  }
}

const EMPTY: ReadonlySet<never> = new Set();
