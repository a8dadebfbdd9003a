// A chaos cluster: N chat node processes and one router on 127.0.0.1 (ports 0), on a topic prefix of
// their own, with the operations the scenarios use (kill, SIGTERM, start again under the same id, admin
// drain, router kill and restart) and one notion of "settled": every node that should serve is ready, the
// router's ring is exactly those nodes, routers and nodes agree on the owner table, and every user is
// connected to the owner of its affinity key's shard.
import { nodeConfigSchema } from '@chat/shared';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import type { Cleanup } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';

/** Scopes not closed yet, so a runner stopped by a signal or its time limit can close them all. */
const openScopes = new Set<Scope>();

/** Cleanups run together, last registered first; errors are logged, never thrown. */
export class Scope implements Cleanup {
  readonly #fns: (() => unknown)[] = [];
  #closed = false;
  constructor(private readonly log: (msg: string) => void = () => undefined) {
    openScopes.add(this);
  }
  /** Registers `fn`; once the scope is closed (a step still running after its time limit), runs it at once. */
  after(fn: () => unknown): void {
    if (!this.#closed) this.#fns.push(fn);
    else
      void Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.log(`cleanup: ${(err as Error).message}`));
  }
  async close(): Promise<void> {
    this.#closed = true;
    openScopes.delete(this);
    for (const fn of this.#fns.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        this.log(`cleanup: ${(err as Error).message}`);
      }
    }
  }
}

/** Closes every scope still open (every process a scenario started). */
export async function closeAllScopes(): Promise<void> {
  for (const scope of [...openScopes].reverse()) await scope.close();
}

export interface ChaosClusterOptions {
  readonly brokers: string;
  /** Topic prefix: a fresh one per scenario. */
  readonly prefix: string;
  /** Node ids to start (e.g. n1, n2, n3). */
  readonly nodeIds: readonly string[];
  /** CHAT_CLUSTER_SHARDS (default: the schema's). */
  readonly shards?: number;
  /** Extra node and router settings. */
  readonly nodeEnv?: Record<string, string>;
  readonly routerEnv?: Record<string, string>;
}

interface NodeReadyz {
  ready?: boolean;
  ownerTableVersion?: string;
}

/** The users as the load client has them, and how to tell whether they are all connected. */
export interface UserView {
  readonly users: readonly { readonly id: string; readonly group: number }[];
  readonly openCount: number;
}

/** The affinity key of a group (`affinity` query parameter). */
export const groupKey = (group: number): string => `grp${group}`;

export class ChaosCluster {
  /** Live node processes by id (a killed or stopped node is removed). */
  readonly nodes = new Map<string, NodeProcess>();
  /** Nodes an admin drained (running, but out of the ring). */
  readonly drained = new Set<string>();
  router!: RouterProcess;
  readonly #scope: Scope;
  readonly #o: ChaosClusterOptions;
  readonly #common: Record<string, string>;
  /** Every log file of every process this cluster started. */
  readonly logFiles: string[] = [];

  private constructor(scope: Scope, options: ChaosClusterOptions) {
    this.#scope = scope;
    this.#o = options;
    this.#common = {
      CHAT_KAFKA_BROKERS: options.brokers,
      CHAT_KAFKA_TOPIC_PREFIX: options.prefix,
      CHAT_CLUSTER_SHARDS: String(options.shards ?? nodeConfigSchema.clusterShards.default),
      CHAT_LOG_LEVEL: 'info',
    };
  }

  /** Starts the nodes (together) and the router; resolves when every process reported ready. */
  static async start(scope: Scope, options: ChaosClusterOptions): Promise<ChaosCluster> {
    const cluster = new ChaosCluster(scope, options);
    await Promise.all(options.nodeIds.map((id) => cluster.startNode(id)));
    await cluster.startRouter();
    return cluster;
  }

  /** Starts node `id` (again, after a kill or stop: same id, new process, new port). */
  async startNode(id: string): Promise<NodeProcess> {
    const node = await startNode(this.#scope, {
      nodeId: id,
      env: {
        ...this.#common,
        // Clients come through the router; their sends are well under the default rate limit.
        ...this.#o.nodeEnv,
      },
      timeoutMs: 90_000,
    });
    this.logFiles.push(node.logFile);
    this.nodes.set(id, node);
    this.drained.delete(id);
    return node;
  }

  /**
   * Starts the router; `samePorts` reuses the previous router's ports (a restart behind a fixed address),
   * falling back to new ones if they are taken.
   */
  async startRouter(samePorts = false): Promise<RouterProcess> {
    const env = {
      ...this.#common,
      CHAT_ROUTER_AFFINITY_QUERY: 'true',
      // Every load client comes from 127.0.0.1: the per-address handshake limit would throttle them all
      // as one (in production they come from many addresses).
      CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '100000',
      ...this.#o.routerEnv,
    };
    const previous = samePorts ? this.router : undefined;
    let router: RouterProcess;
    try {
      router = await startRouter(
        this.#scope,
        previous
          ? {
              ...env,
              CHAT_ROUTER_PORT: String(previous.port),
              CHAT_ROUTER_ADMIN_PORT: String(previous.adminPort),
            }
          : env,
      );
    } catch (err) {
      if (!previous) throw err;
      router = await startRouter(this.#scope, env);
    }
    this.logFiles.push(router.logFile);
    this.router = router;
    return router;
  }

  /** Sends `signal` to node `id` and resolves once it exited, with how and after how long. */
  async stopNode(
    id: string,
    signal: 'SIGKILL' | 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no live node ${id}`);
    const t = Date.now();
    node.child.kill(signal);
    const exit = await node.exited;
    this.nodes.delete(id);
    this.drained.delete(id);
    return { ...exit, ms: Date.now() - t };
  }

  /** Kills the router (SIGKILL) and resolves once it exited. */
  async killRouter(): Promise<void> {
    this.router.child.kill('SIGKILL');
    await this.router.exited;
  }

  /** Admin drain through the router's admin API (POST /nodes/{id}/drain). */
  async drain(id: string): Promise<{ status: number; body: unknown }> {
    const res = await this.router.admin(`/nodes/${id}/drain`, { method: 'POST' });
    const body: unknown = await res.json().catch(() => undefined);
    if (res.ok) this.drained.add(id);
    return { status: res.status, body };
  }

  /** The nodes that should serve: live and not drained. */
  serving(): string[] {
    return [...this.nodes.keys()].filter((id) => !this.drained.has(id)).sort();
  }

  /** The node owning most of `users`' groups (the fault's victim: the most users to move). */
  async busiestNode(users: UserView['users']): Promise<string> {
    const owners = await this.router.lookup(users.map((u) => groupKey(u.group)));
    const counts = new Map<string, number>();
    for (const o of owners) if (o) counts.set(o, (counts.get(o) ?? 0) + 1);
    const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const id = sorted[0]?.[0];
    if (!id) throw new Error('the router places no user');
    return id;
  }

  /**
   * Why the cluster is not settled for `view` yet (undefined when it is): every serving node ready with
   * the router's owner table version, the router's ring exactly the serving nodes, every user connected
   * and on its owner (per-node connection counts at the router match the owners of the users' keys).
   */
  async unsettled(view: UserView): Promise<string | undefined> {
    const want = this.serving();
    let members;
    try {
      members = await this.router.members();
    } catch {
      return 'the router does not answer';
    }
    const inRing = members.members
      .filter((m) => m.inRing)
      .map((m) => m.id)
      .sort();
    if (inRing.join(',') !== want.join(',')) return `ring [${inRing.join(',')}], want [${want.join(',')}]`;
    const version = (members as { ownerTableVersion?: string }).ownerTableVersion;
    for (const id of want) {
      const node = this.nodes.get(id);
      if (!node) return `${id} not running`;
      const r = (await fetch(node.httpUrl('/readyz'))
        .then((x) => x.json())
        .catch(() => ({}))) as NodeReadyz;
      if (!r.ready) return `${id} not ready`;
      if (version !== undefined && r.ownerTableVersion !== version)
        return `${id} owner table ${r.ownerTableVersion}, router ${version}`;
    }
    if (view.openCount < view.users.length)
      return `${view.users.length - view.openCount} users not connected`;
    const owners = await this.router.lookup(view.users.map((u) => groupKey(u.group)));
    const expected = new Map<string, number>();
    for (const o of owners) expected.set(o ?? '(none)', (expected.get(o ?? '(none)') ?? 0) + 1);
    for (const m of members.members) {
      const e = expected.get(m.id) ?? 0;
      if (m.connections !== e) return `${m.id} holds ${m.connections} connections, owns ${e} users`;
    }
    return undefined;
  }

  /** Polls `unsettled` until it is settled; throws with the last reason after `timeoutMs`. */
  async waitSettled(view: UserView, timeoutMs: number): Promise<void> {
    let last: string | undefined = 'not checked';
    await pollUntil(
      async () => {
        last = await this.unsettled(view);
        return last === undefined;
      },
      { timeoutMs, intervalMs: 200, what: 'the cluster to settle' },
    ).catch(() => {
      throw new Error(`not settled after ${timeoutMs} ms: ${last}`);
    });
  }

  /**
   * Waits until every user is known where it is on some other serving node (presence crossed the bus),
   * so that a send right after does not depend on presence still on its way.
   */
  async waitPresence(view: UserView, timeoutMs: number): Promise<void> {
    const owners = await this.router.lookup(view.users.map((u) => groupKey(u.group)));
    const checks = view.users.map((u, i) => {
      const owner = owners[i] ?? '';
      const others = this.serving().filter((id) => id !== owner);
      return { user: u.id, owner, other: others[i % Math.max(1, others.length)] };
    });
    let waiting = checks.filter((c) => c.other !== undefined);
    await pollUntil(
      async () => {
        const seen = await Promise.all(
          waiting.map(async (c) => {
            const p = await this.nodes
              .get(c.other ?? '')
              ?.presence(c.user)
              .catch(() => undefined);
            return p?.remoteNodes.includes(c.owner) ?? false;
          }),
        );
        waiting = waiting.filter((_, i) => !seen[i]);
        return waiting.length === 0;
      },
      { timeoutMs, intervalMs: 200, what: 'presence of every user on another node' },
    );
  }
}
