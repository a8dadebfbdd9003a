import { EventEmitter } from 'node:events';
import { callNode, type Logger, type OwnerTable } from '@chat/shared';
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
  /** Connection ids per close request (default 10,000). */
  readonly closeBatch?: number;
}

/** One batch of a migration, settled: the router cut what was still open (`forced` of `connections`). */
export interface MigrationSettled {
  readonly nodeId: string;
  /** The node accepted the close request; false: it could not be asked, so everything was cut at once. */
  readonly asked: boolean;
  readonly connections: number;
  readonly forced: number;
}

const FORCE_AFTER_MS = 3000;
/** Connection ids per close request: about 200 KB a body, far below the nodes' request body limit (16 MiB). */
const CLOSE_BATCH = 10_000;

/**
 * When the owner table changes, moves exactly the connections of the shards whose owner changed
 * (`previous.movedTo(next)`): the node holding each is asked (POST /internal/sessions/close) to close it
 * with 4002 at a random moment in the migration window, so the clients come back through the router to
 * the shard's new owner without a reconnect storm. Connections of shards that did not move are never
 * touched. If the node cannot be asked (it
 * is dead) or does not close one in time, the router cuts it. Emits `settled` per batch once that is
 * decided.
 */
export class Rebalancer extends EventEmitter<{ settled: [MigrationSettled] }> {
  readonly #o: RebalancerOptions;
  readonly #log: Logger;

  constructor(options: RebalancerOptions) {
    super();
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'rebalancer' });
  }

  /**
   * The connections (not already migrating) on the shards whose owner differs between `previous` and
   * `next`, except any already on the new owner. A connection of a shard that kept its owner stays.
   */
  moved(previous: OwnerTable, next: OwnerTable): ProxiedConnection[] {
    const shards = new Set(previous.movedTo(next));
    if (shards.size === 0) return [];
    return this.#o.connections
      .all()
      .filter((c) => !c.migrating && shards.has(c.shard) && c.nodeId !== next.ownerOf(c.shard));
  }

  /** Moves the connections of the shards that changed owner from `previous` to `next` (see `moved`). */
  async onOwnersChange(next: OwnerTable, previous: OwnerTable): Promise<void> {
    const moved = this.moved(previous, next);
    if (moved.length === 0) return;
    this.#log.info(
      { connections: moved.length, shards: new Set(moved.map((c) => c.shard)).size, version: next.version },
      'migrating connections of moved shards',
    );
    await this.migrate(moved, this.#o.windowMs);
  }

  /**
   * Asks each connection's node to close it with 4002 within `windowMs` (POST /internal/sessions/close,
   * in batches of `closeBatch` ids); cuts what is left `forceAfterMs` after the window, and at once what
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
        const size = this.#o.closeBatch ?? CLOSE_BATCH;
        for (let i = 0; i < list.length; i += size) batches.push(list.slice(i, i + size));
        await Promise.all(
          batches.map(async (batch) => {
            const asked = url !== undefined && (await this.#ask(nodeId, url, batch, window));
            if (asked) this.#o.metrics.migrations.inc({ result: 'asked' }, batch.length);
            if (!asked) return this.#cut(nodeId, batch, false);
            // Settled when the last one closes, or cut what is left after the window and a grace.
            let open = batch.filter((c) => !c.client.destroyed).length;
            if (open === 0) return this.#cut(nodeId, batch, true);
            let done = false;
            const settle = () => {
              if (done) return;
              done = true;
              clearTimeout(timer);
              this.#cut(nodeId, batch, true);
            };
            const timer = setTimeout(settle, window + (this.#o.forceAfterMs ?? FORCE_AFTER_MS)).unref();
            for (const c of batch) {
              if (!c.client.destroyed) c.client.once('close', () => --open === 0 && settle());
            }
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
  #cut(nodeId: string, batch: ProxiedConnection[], asked: boolean): void {
    let forced = 0;
    for (const c of batch) {
      if (c.client.destroyed) continue;
      forced++;
      c.client.destroy();
      c.upstream.destroy();
    }
    if (forced > 0) {
      this.#o.metrics.migrations.inc({ result: 'forced' }, forced);
      this.#log.warn(
        { node: nodeId, forced, asked },
        asked
          ? 'node did not close migrated connections in time: cut'
          : 'cut connections of a node not asked',
      );
    }
    this.emit('settled', { nodeId, asked, connections: batch.length, forced });
  }
}
