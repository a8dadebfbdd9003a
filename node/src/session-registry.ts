import type { TokenBucket } from '@chat/shared';
import type { WebSocket } from 'ws';

/** One live WebSocket of one user. A user may have several (devices, tabs). */
export interface Session {
  readonly id: number;
  readonly userId: string;
  readonly socket: WebSocket;
  /** The router's id for the proxied connection (x-chat-connection-id), so it can ask for a migration. */
  readonly connectionId: string | undefined;
  /** Last time anything (frame or pong) arrived: liveness for the ping loop. */
  lastSeen: number;
  /** Messages-per-second limit of this connection (absent in unit tests that do not need it). */
  readonly bucket?: TokenBucket;
  /** Frames refused in a row for the rate limit. */
  refused?: number;
  /** Closes the session when its token expires (cleared on refresh and close). */
  expiryTimer?: NodeJS.Timeout;
}

/**
 * userId -> that user's sessions on this node. Adding the first session of a user or removing the last
 * one is reported, so presence is published per user, not per socket.
 */
export class SessionRegistry {
  readonly #byUser = new Map<string, Set<Session>>();
  #count = 0;

  /** Adds a session; true when it is the user's first on this node. */
  add(session: Session): boolean {
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
  remove(session: Session): boolean {
    const set = this.#byUser.get(session.userId);
    if (!set?.delete(session)) return false;
    this.#count--;
    if (set.size > 0) return false;
    this.#byUser.delete(session.userId);
    return true;
  }

  /** The user's sessions here (empty when none). */
  sessionsOf(userId: string): ReadonlySet<Session> {
    return this.#byUser.get(userId) ?? EMPTY;
  }

  has(userId: string): boolean {
    return this.#byUser.has(userId);
  }

  /** Sessions whose router connection id is in `ids`. */
  byConnectionIds(ids: ReadonlySet<string>): Session[] {
    return this.all().filter((s) => s.connectionId !== undefined && ids.has(s.connectionId));
  }

  all(): Session[] {
    return [...this.#byUser.values()].flatMap((set) => [...set]);
  }

  get sessionCount(): number {
    return this.#count;
  }

  get userCount(): number {
    return this.#byUser.size;
  }
}

const EMPTY: ReadonlySet<Session> = new Set();
