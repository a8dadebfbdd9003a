import type { ChatRing, Logger } from '@chat/shared';
import type { ConnectionTable, ProxiedConnection } from './connections.js';
import type { MemberTable } from './member-table.js';
import type { RouterMetrics } from './metrics.js';

export interface RebalancerOptions {
  /** Headers for the nodes' /internal API (the bearer token). */
  readonly nodeHeaders: Record<string, string>;
  readonly windowMs: number;
  readonly connections: ConnectionTable;
  readonly members: MemberTable;
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
}

/** Extra time after the window before the router cuts a connection its node did not close. */
const FORCE_AFTER_MS = 3000;

/**
 * When the ring changes, moves exactly the connections whose affinity key now maps to another node: the
 * node holding each is asked (POST /internal/sessions/close) to close it with 4002 at a random moment in
 * the migration window, so the clients come back through the router to the new owner without a
 * reconnect storm. Connections whose key did not move are not touched. If the node cannot be asked (it
 * is dead) or does not close one in time, the router cuts it.
 */
export class Rebalancer {
  readonly #o: RebalancerOptions;
  readonly #log: Logger;

  constructor(options: RebalancerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'rebalancer' });
  }

  /** The connections that `ring` places elsewhere than where they are. */
  moved(ring: ChatRing): ProxiedConnection[] {
    return this.#o.connections.all().filter((c) => !c.migrating && ring.get(c.key) !== c.nodeId);
  }

  async onRingChange(ring: ChatRing): Promise<void> {
    const moved = this.moved(ring);
    if (moved.length === 0) return;
    this.#log.info({ connections: moved.length, version: ring.version }, 'migrating connections');
    await this.migrate(moved, this.#o.windowMs);
  }

  /** Asks each connection's node to close it with 4002 within `windowMs`; cuts what is left after. */
  async migrate(targets: ProxiedConnection[], windowMs: number): Promise<void> {
    const byNode = new Map<string, ProxiedConnection[]>();
    for (const c of targets) {
      c.migrating = true;
      byNode.set(c.nodeId, [...(byNode.get(c.nodeId) ?? []), c]);
    }
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        const url = this.#o.members.member(nodeId)?.url;
        let asked = false;
        if (url) {
          try {
            const res = await fetch(`${url}/internal/sessions/close`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', ...this.#o.nodeHeaders },
              body: JSON.stringify({ connections: list.map((c) => c.id), windowMs }),
              signal: AbortSignal.timeout(2000),
            });
            asked = res.ok;
          } catch (err) {
            this.#log.warn({ node: nodeId, err: (err as Error).message }, 'could not ask node to migrate');
          }
        }
        if (asked) this.#o.metrics.migrations.inc({ result: 'asked' }, list.length);
        const cutAfter = asked ? windowMs + FORCE_AFTER_MS : 0;
        setTimeout(() => {
          for (const c of list) {
            if (c.client.destroyed) continue;
            this.#o.metrics.migrations.inc({ result: 'forced' });
            c.client.destroy();
            c.upstream.destroy();
          }
        }, cutAfter).unref();
      }),
    );
  }
}
