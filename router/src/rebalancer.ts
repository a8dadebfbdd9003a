import { callNode, type ChatRing, type Logger } from '@chat/shared';
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
  /** How long to wait for a node's answer to the close request (default 2000 ms). */
  readonly requestTimeoutMs?: number;
  /** Extra time after the window before the router cuts a connection its node did not close (default 3000 ms). */
  readonly forceAfterMs?: number;
}

const FORCE_AFTER_MS = 3000;
/** Connection ids per close request: keeps each body far below the nodes' request body limit (1 MiB). */
const CLOSE_BATCH = 10_000;

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

  /**
   * Asks each connection's node to close it with 4002 within `windowMs` (POST /internal/sessions/close,
   * in batches of CLOSE_BATCH ids); cuts what is left `forceAfterMs` after the window, and at once what
   * its node could not be asked about (unknown, dead, refused the request).
   */
  async migrate(targets: ProxiedConnection[], windowMs: number): Promise<void> {
    const byNode = new Map<string, ProxiedConnection[]>();
    for (const c of targets) {
      c.migrating = true;
      const list = byNode.get(c.nodeId);
      if (list) list.push(c);
      else byNode.set(c.nodeId, [c]);
    }
    const window = Math.min(600_000, Math.max(0, Math.round(windowMs)));
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        const url = this.#o.members.member(nodeId)?.url;
        if (url === undefined) this.#log.warn({ node: nodeId }, 'node unknown: cutting its connections');
        const batches: ProxiedConnection[][] = [];
        for (let i = 0; i < list.length; i += CLOSE_BATCH) batches.push(list.slice(i, i + CLOSE_BATCH));
        await Promise.all(
          batches.map(async (batch) => {
            const asked = url !== undefined && (await this.#ask(nodeId, url, batch, window));
            if (asked) this.#o.metrics.migrations.inc({ result: 'asked' }, batch.length);
            const cutAfter = asked ? window + (this.#o.forceAfterMs ?? FORCE_AFTER_MS) : 0;
            setTimeout(() => this.#cut(batch), cutAfter).unref();
          }),
        );
      }),
    );
  }

  async #ask(nodeId: string, url: string, batch: ProxiedConnection[], windowMs: number): Promise<boolean> {
    const answer = await callNode(
      url,
      'closeSessions',
      { connections: batch.map((c) => c.id), windowMs },
      { headers: this.#o.nodeHeaders, timeoutMs: this.#o.requestTimeoutMs ?? 2000 },
    );
    if (!answer.ok) {
      this.#log.warn(
        { node: nodeId, status: answer.status, err: answer.error, connections: batch.length },
        'could not ask node to migrate',
      );
    }
    return answer.ok;
  }

  /** Cuts the connections of `batch` that are still open. */
  #cut(batch: ProxiedConnection[]): void {
    for (const c of batch) {
      if (c.client.destroyed) continue;
      this.#o.metrics.migrations.inc({ result: 'forced' });
      c.client.destroy();
      c.upstream.destroy();
    }
  }
}
