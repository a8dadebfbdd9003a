import type { Logger } from '@chat/shared';
import type { MemberTable } from './member-table.js';
import type { MembershipSource } from './membership/types.js';

/** Why a router is not ready (`/readyz` body `reason`). */
export type NotReadyReason = 'stopping' | 'replaying' | 'probing' | 'no_member';

export interface Readiness {
  readonly ready: boolean;
  /** The view settled once (members replayed and each probed); it stays settled. */
  readonly settled: boolean;
  readonly reason?: NotReadyReason;
}

export interface RouterReadinessOptions {
  readonly membership: Pick<MembershipSource, 'replayed'>;
  readonly members: Pick<MemberTable, 'allProbed' | 'owners' | 'on' | 'off'>;
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * Whether the router may place connections. A restarted router must not place a user on a partial ring
 * and move them a moment later, so it is ready only once its view has settled: the membership source has
 * given its whole start-up view (the members topic replayed to its end) and every member in it has been
 * probed at least once (answered, failed or timed out). Settling happens once; after that, a new member
 * joins the owner table when its probe says so, and the router is ready while the table has a member and
 * it is not stopping. Until ready, `/readyz` answers 503 and upgrades get 503 with `Retry-After`.
 */
export class RouterReadiness {
  readonly #o: RouterReadinessOptions;
  readonly #log: Logger;
  readonly #startedAt: number;
  #settled = false;
  #stopping = false;
  readonly #onProbed = () => void this.check();

  constructor(options: RouterReadinessOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'readiness' });
    this.#startedAt = (options.now ?? Date.now)();
    // Settling is noticed (and logged) after each probe round, not only when someone asks.
    options.members.on('probed', this.#onProbed);
  }

  /** The router is shutting down: not ready from now on. */
  stop(): void {
    this.#stopping = true;
    this.#o.members.off('probed', this.#onProbed);
  }

  check(): Readiness {
    if (!this.#settled && this.#o.membership.replayed && this.#o.members.allProbed) {
      this.#settled = true;
      this.#log.info(
        {
          members: this.#o.members.owners.members.map((m) => m.id),
          afterMs: (this.#o.now ?? Date.now)() - this.#startedAt,
        },
        'membership view settled',
      );
    }
    const settled = this.#settled;
    const reason: NotReadyReason | undefined = this.#stopping
      ? 'stopping'
      : !settled
        ? this.#o.membership.replayed
          ? 'probing'
          : 'replaying'
        : this.#o.members.owners.size === 0
          ? 'no_member'
          : undefined;
    return reason === undefined ? { ready: true, settled } : { ready: false, settled, reason };
  }
}
