import { EventEmitter } from 'node:events';
import { callNode, type Logger, type OwnerTable } from '@chat/shared';
import type { ConnectionTable, ProxiedConnection } from './connections.js';
import type { MemberTable } from './member-table.js';
import type { CutReason, RouterMetrics } from './metrics.js';

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
  /**
   * Extra time after the window before the router asks an active node again for the connections it did
   * not close (default 3000 ms). No node's connections are cut on time alone while it is alive.
   */
  readonly forceAfterMs?: number;
  /** Connection ids per close request (default 10,000). */
  readonly closeBatch?: number;
  /**
   * While connections wait for their node, how often the router looks again at the node's liveness (and
   * asks again a node it could not reach) (default 1000 ms).
   */
  readonly recheckMs?: number;
}

/** One batch of a migration, settled: every connection closed, `forced` of them cut by the router. */
export interface MigrationSettled {
  readonly nodeId: string;
  /** The node accepted the close request (false: not asked, could not be asked, or it is draining). */
  readonly asked: boolean;
  readonly connections: number;
  readonly forced: number;
  /** Why the router cut them (only when `forced` > 0). */
  readonly reason?: CutReason;
}

const FORCE_AFTER_MS = 3000;
const RECHECK_MS = 1000;
/** Connection ids per close request: about 200 KB a body, far below the nodes' request body limit (16 MiB). */
const CLOSE_BATCH = 10_000;

/**
 * When the owner table changes, moves exactly the connections of the shards whose owner changed
 * (`previous.movedTo(next)`). Exactly one party closes a moved connection, its node, with 4002 and a
 * retry hint, spread over the migration window, so the clients come back through the router to the
 * shard's new owner without a reconnect storm. Connections of shards that did not move are never touched.
 *
 * What happens to a batch depends on its node's liveness (`MemberTable#liveness`):
 * - `active`: asked (POST /internal/sessions/close) to close them within the window. A slow node is
 *   never cut: one that does not answer in time (or answers 5xx) is asked again every `recheckMs`, and
 *   what it accepted but did not close after the window plus `forceAfterMs` is asked for again, round
 *   after round, while it stays alive (heartbeats fresh or probes answered). Only a node that answers
 *   but refuses (4xx, an answer outside the contract: it never will close them) is cut at once.
 * - `draining`: not asked and never cut while it is alive: the node closes every session itself
 *   (4001 on SIGTERM, 4002 after an admin drain), spread over its own drain window.
 * - `dead` or `gone` (now or later, while the router waits): cut, since nobody will close those sockets.
 *
 * Every cut is counted by reason (`chat_router_connections_cut_total`) and logged. Emits `asked` per
 * close request and `settled` per batch once every connection in it is closed.
 */
export class Rebalancer extends EventEmitter<{
  settled: [MigrationSettled];
  /** A close request to `nodeId` for `connections` ids got its answer (`ok`) or failed. */
  asked: [nodeId: string, connections: number, ok: boolean];
}> {
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
   * Has each connection's node close it with 4002 within `windowMs` (in batches of `closeBatch` ids),
   * as the class comment says. Resolves once every batch was asked, left to its draining node or cut;
   * each batch then settles in the background (`settled`).
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
    const size = this.#o.closeBatch ?? CLOSE_BATCH;
    const started: Promise<void>[] = [];
    for (const [nodeId, list] of byNode) {
      for (let i = 0; i < list.length; i += size) {
        started.push(
          new Promise<void>((resolve) => {
            this.#settle(nodeId, list.slice(i, i + size), window, resolve).catch((err: unknown) => {
              this.#log.error({ err, node: nodeId }, 'migration failed');
              resolve();
            });
          }),
        );
      }
    }
    await Promise.all(started);
  }

  /**
   * Follows one batch until every connection in it is closed: asks, waits, looks again at the node's
   * liveness every `recheckMs`, cuts when the rules say so. Calls `started` once the first decision
   * (asked, left to the node, cut) is made.
   */
  async #settle(
    nodeId: string,
    batch: ProxiedConnection[],
    windowMs: number,
    started: () => void,
  ): Promise<void> {
    const recheckMs = this.#o.recheckMs ?? RECHECK_MS;
    /** Set when the node accepted a close request: its window plus the grace. */
    let deadline: number | undefined;
    let asked = false;
    /** Close requests the node accepted for this batch so far. */
    let rounds = 0;
    let left = false;
    let unreachableLogged = false;
    try {
      for (;;) {
        const open = batch.filter((c) => !c.client.destroyed);
        if (open.length === 0) return this.#settled(nodeId, batch, rounds > 0);
        const liveness = this.#o.members.liveness(nodeId);
        if (liveness === 'gone' || liveness === 'dead') return this.#cut(nodeId, batch, rounds > 0, liveness);
        if (liveness === 'draining') {
          // Its node closes them itself (4001/4002 over its drain window): wait for that, or its death.
          if (!left && rounds === 0) {
            left = true;
            this.#o.metrics.migrations.inc({ result: 'draining' }, batch.length);
            this.#log.info(
              { node: nodeId, connections: open.length },
              'node is draining: its connections are left to it',
            );
          }
          started();
          await this.#closedOr(open, recheckMs);
          continue;
        }
        if (!asked) {
          const answer = await this.#ask(nodeId, open, windowMs);
          if (answer.ok) {
            asked = true;
            deadline = Date.now() + windowMs + (this.#o.forceAfterMs ?? FORCE_AFTER_MS);
            this.#o.metrics.migrations.inc({ result: rounds === 0 ? 'asked' : 'asked_again' }, open.length);
            rounds++;
          } else if (
            answer.status !== 0 &&
            answer.status < 500 &&
            this.#o.members.liveness(nodeId) === 'active'
          ) {
            // It answered and will not close them (a wrong token, an answer outside the contract).
            return this.#cut(nodeId, batch, false, 'refused');
          } else if (!unreachableLogged) {
            // No answer in time, or a 5xx: a slow node, alive, is asked again, never cut for it.
            unreachableLogged = true;
            this.#log.warn(
              { node: nodeId, err: answer.error, status: answer.status, connections: open.length },
              'could not ask node to migrate; asking again while it is alive',
            );
          }
        } else if (deadline !== undefined && Date.now() >= deadline) {
          // Asked, still open after the window and grace, the node alive: slow, not gone. Ask again for
          // those still open (a node that began to drain meanwhile is left to close them itself).
          if (this.#o.members.liveness(nodeId) !== 'active') continue;
          this.#log.warn(
            { node: nodeId, connections: open.length, round: rounds },
            'node did not close moved connections in time; asking again while it is alive',
          );
          asked = false;
          deadline = undefined;
          continue;
        }
        started();
        const untilDeadline = deadline === undefined ? recheckMs : Math.max(0, deadline - Date.now());
        await this.#closedOr(open, Math.min(recheckMs, untilDeadline));
      }
    } finally {
      started();
    }
  }

  /** Resolves when every socket in `open` has closed, or after `ms`. */
  #closedOr(open: ProxiedConnection[], ms: number): Promise<void> {
    return new Promise((resolve) => {
      let left = open.length;
      const done = () => {
        clearTimeout(timer);
        for (const c of open) c.client.off('close', onClose);
        resolve();
      };
      const onClose = () => --left === 0 && done();
      const timer = setTimeout(done, ms);
      timer.unref();
      for (const c of open) c.client.once('close', onClose);
    });
  }

  #ask(nodeId: string, batch: ProxiedConnection[], windowMs: number) {
    const url = this.#o.members.member(nodeId)?.url ?? '';
    return callNode(
      url,
      'closeSessions',
      { connections: batch.map((c) => c.id), windowMs },
      { headers: this.#o.nodeHeaders, timeoutMs: this.#o.requestTimeoutMs ?? 2000 },
    ).then((answer) => {
      this.emit('asked', nodeId, batch.length, answer.ok);
      if (!answer.ok && answer.status !== 0) {
        this.#log.warn(
          { node: nodeId, status: answer.status, err: answer.error, connections: batch.length },
          'node refused to migrate',
        );
      }
      return answer;
    });
  }

  #settled(nodeId: string, batch: ProxiedConnection[], asked: boolean): void {
    this.emit('settled', { nodeId, asked, connections: batch.length, forced: 0 });
  }

  /** Cuts the connections of `batch` that are still open, counted and logged under `reason`. */
  #cut(nodeId: string, batch: ProxiedConnection[], asked: boolean, reason: CutReason): void {
    let forced = 0;
    for (const c of batch) {
      if (c.client.destroyed) continue;
      forced++;
      c.client.destroy();
      c.upstream.destroy();
    }
    if (forced > 0) {
      this.#o.metrics.migrations.inc({ result: 'forced' }, forced);
      this.#o.metrics.connectionsCut.inc({ reason }, forced);
      this.#log.warn({ node: nodeId, forced, asked, reason }, 'cut connections of moved shards');
    }
    this.emit('settled', {
      nodeId,
      asked,
      connections: batch.length,
      forced,
      ...(forced > 0 ? { reason } : {}),
    });
  }
}
