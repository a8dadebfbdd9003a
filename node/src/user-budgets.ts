import { TokenBucket } from '@chat/shared';

/** The per-connection limits a user's budget is a multiple of. */
export interface UserBudgetLimits {
  readonly ratePerSec: number;
  readonly rateBurst: number;
  readonly rateBytesPerSec: number;
  readonly rateBytesBurst: number;
  /** The user's budget, in connections' worth of the limits above (CHAT_NODE_USER_RATE_CONNECTIONS). */
  readonly userRateConnections: number;
}

/** Which of a user's limits a frame went over. */
export type UserLimit = 'user_rate' | 'user_rate_bytes';

/** One user's frames and bytes per second across all their connections on this node. */
export class UserBudget {
  readonly #frames: TokenBucket;
  readonly #bytes: TokenBucket;

  constructor(limits: UserBudgetLimits, now: () => number) {
    const n = limits.userRateConnections;
    this.#frames = new TokenBucket(limits.ratePerSec * n, limits.rateBurst * n, now);
    this.#bytes = new TokenBucket(limits.rateBytesPerSec * n, limits.rateBytesBurst * n, now);
  }

  /** Charges one frame of `bytes`; the limit it went over, or undefined when it is within budget. */
  take(bytes: number): UserLimit | undefined {
    if (!this.#frames.take()) return 'user_rate';
    if (!this.#bytes.take(bytes)) return 'user_rate_bytes';
    return undefined;
  }

  /** Both buckets full: nothing owed, the entry can be forgotten. */
  get idle(): boolean {
    return this.#frames.full && this.#bytes.full;
  }
}

/** How often budgets that refilled completely are forgotten. */
const SWEEP_MS = 10_000;

/**
 * Every user's budget on this node, so one user's connections share one budget: ten connections cannot
 * send ten times what one may. Entries live while their user owes anything; a sweep (at most every 10 s,
 * run by the next lookup) drops the rest, so the map is bounded by the users who sent lately.
 */
export class UserBudgets {
  readonly #budgets = new Map<string, UserBudget>();
  readonly #now: () => number;
  #lastSweep: number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#lastSweep = now();
  }

  /** The budget of `userId` (a full one if they had none). */
  of(userId: string, limits: UserBudgetLimits): UserBudget {
    this.#sweep();
    let budget = this.#budgets.get(userId);
    if (budget === undefined) {
      budget = new UserBudget(limits, this.#now);
      this.#budgets.set(userId, budget);
    }
    return budget;
  }

  /** Users with a budget entry. */
  get size(): number {
    return this.#budgets.size;
  }

  #sweep(): void {
    const now = this.#now();
    if (now - this.#lastSweep < SWEEP_MS) return;
    this.#lastSweep = now;
    for (const [userId, budget] of this.#budgets) if (budget.idle) this.#budgets.delete(userId);
  }
}
