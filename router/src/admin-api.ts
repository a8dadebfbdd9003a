import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  OwnerTable,
  UserId,
  callNode,
  readJsonBody,
  shardOf,
  type Logger,
  type RingMember,
} from '@chat/shared';
import type { ConnectionTable } from './connections.js';
import type { MemberTable } from './member-table.js';
import type { Readiness } from './readiness.js';

export interface AdminApiOptions {
  /** Headers for the nodes' /internal API (the bearer token). */
  readonly nodeHeaders: Record<string, string>;
  readonly members: MemberTable;
  readonly connections: ConnectionTable;
  readonly logger: Logger;
  /** This router's readiness, shown in `GET /members` as `router` (absent: not shown). */
  readonly readiness?: () => Readiness;
  /** How long the fan-out views (`/users/{id}`, `/shards?messages=1`) wait for each node (default 2 s). */
  readonly nodeTimeoutMs?: number;
}

const NODE_ID = '[A-Za-z0-9._-]{1,64}';
const NODE_ACTION = new RegExp(`^/nodes/(${NODE_ID})/(drain|undrain)$`);
const NODE_ID_ONLY = new RegExp(`^${NODE_ID}$`);
const USER_PATH = /^\/users\/([^/]+)$/;
const MAX_LOOKUP_KEYS = 100_000;

/** A change `GET /plan` is asked about: a node joining with a weight, or a member leaving. */
export type PlanChange = { readonly add: string; readonly weight: number } | { readonly remove: string };

/** One shard that changes owner under a plan, with this router's connections on it. */
export interface PlannedMove {
  readonly shard: number;
  readonly from: string | null;
  readonly to: string | null;
  readonly connections: number;
}

/** Members of one owner table with the shards each owns. */
export interface PlanSide {
  readonly version: string;
  readonly members: { readonly id: string; readonly weight: number; readonly shards: number }[];
}

/** What `GET /plan` answers: the tables before and after the change, and the shards that move. */
export interface Plan {
  readonly shards: number;
  readonly change: PlanChange;
  readonly before: PlanSide;
  readonly after: PlanSide;
  readonly moved: PlannedMove[];
}

/**
 * What a membership change would move, computed with the owner-table code the routers and nodes place
 * by (`OwnerTable`): the table of `current` against the table of `current` with the change applied. A
 * removal of a member that is not in `current` (drained, unhealthy) moves nothing. Nothing is changed.
 */
export function planChange(
  current: readonly RingMember[],
  shardCount: number,
  change: PlanChange,
  connectionsOf: (shard: number) => number = () => 0,
): Plan {
  const next =
    'add' in change
      ? [...current.filter((m) => m.id !== change.add), { id: change.add, weight: change.weight }]
      : current.filter((m) => m.id !== change.remove);
  const before = new OwnerTable(current, shardCount);
  const after = new OwnerTable(next, shardCount);
  const side = (table: OwnerTable): PlanSide => ({
    version: table.version,
    members: table.members.map((m) => ({ id: m.id, weight: m.weight, shards: table.shardsOf(m.id).length })),
  });
  return {
    shards: shardCount,
    change,
    before: side(before),
    after: side(after),
    moved: before.movedTo(after).map((shard) => ({
      shard,
      from: before.ownerOf(shard) ?? null,
      to: after.ownerOf(shard) ?? null,
      connections: connectionsOf(shard),
    })),
  };
}

/**
 * The admin API, on its own listener (loopback by default):
 *   GET  /members                  members with health (placement), their own readiness and bus state
 *                                  (/readyz), drain state, shards owned; owner table version
 *   GET  /ring                     ring version, size and members
 *   GET  /shards                   every shard with its owner and this router's connections on it
 *   GET  /shards?messages=1        the same, with the messages each shard handled (summed over the nodes)
 *   GET  /lookup?key=K             key K's shard and the node owning it
 *   POST /lookup  {"keys":[...]}   shards and owners of many keys at once
 *   GET  /users/{id}[?key=K]       the user's shard and owner, and where the nodes say it is connected
 *   GET  /plan?add=ID[&weight=W]   what would move if ID joined (or ?remove=ID left); nothing changes
 *   POST /nodes/{id}/drain         the node leaves the ring and closes its sessions itself (4002)
 *   POST /nodes/{id}/undrain       the node is back in the ring
 *   GET  /metrics                  Prometheus metrics (served by router.ts on the same listener)
 */
export function createAdminHandler(o: AdminApiOptions) {
  const log = o.logger.child({ subsystem: 'admin' });
  const nodeCall = { headers: o.nodeHeaders, timeoutMs: o.nodeTimeoutMs ?? 2000 };

  /** This router's connections per shard. */
  const connectionsPerShard = (shardCount: number): number[] => {
    const perShard = new Array<number>(shardCount).fill(0);
    for (const c of o.connections.all()) perShard[c.shard] = (perShard[c.shard] ?? 0) + 1;
    return perShard;
  };

  /**
   * Every listed member's cumulative messages per shard, summed (a drained member still holds the counts
   * of the shards it had); members that did not answer are named, so a reader knows the sum is partial.
   */
  const shardMessages = async (shardCount: number) => {
    const answers = await Promise.all(
      o.members
        .members()
        .map(async (m) => ({ id: m.id, answer: await callNode(m.url, 'shardStats', undefined, nodeCall) })),
    );
    const messages = new Array<number>(shardCount).fill(0);
    const from: string[] = [];
    const unanswered: { node: string; error: string }[] = [];
    for (const { id, answer } of answers) {
      if (!answer.ok) {
        unanswered.push({ node: id, error: answer.error });
        continue;
      }
      from.push(id);
      answer.body.messages.forEach((n, shard) => {
        if (shard < shardCount) messages[shard] = (messages[shard] ?? 0) + n;
      });
    }
    return { messages, from, unanswered };
  };

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const json = (status: number, body: unknown): void =>
      void res
        .writeHead(status, { 'content-type': 'application/json' })
        .end(`${JSON.stringify(body, null, 2)}\n`);
    const ring = o.members.ring;
    const owners = o.members.owners;

    if (req.method === 'GET' && url.pathname === '/members') {
      const perNode = new Map<string, number>();
      for (const c of o.connections.all()) perNode.set(c.nodeId, (perNode.get(c.nodeId) ?? 0) + 1);
      return json(200, {
        ...(o.readiness ? { router: o.readiness() } : {}),
        ownerTableVersion: owners.version,
        shards: owners.shardCount,
        ringVersion: ring.version,
        ringSize: ring.size,
        members: o.members.members().map((m) => ({ ...m, connections: perNode.get(m.id) ?? 0 })),
      });
    }
    if (req.method === 'GET' && url.pathname === '/ring') {
      return json(200, { version: ring.version, size: ring.size, members: ring.members });
    }
    if (req.method === 'GET' && url.pathname === '/shards') {
      const perShard = connectionsPerShard(owners.shardCount);
      const withMessages = url.searchParams.get('messages') === '1';
      const stats = withMessages ? await shardMessages(owners.shardCount) : undefined;
      return json(200, {
        ownerTableVersion: owners.version,
        ...(stats ? { messagesFrom: stats.from, unanswered: stats.unanswered } : {}),
        shards: perShard.map((connections, shard) => ({
          shard,
          owner: owners.ownerOf(shard) ?? null,
          connections,
          ...(stats ? { messages: stats.messages[shard] ?? 0 } : {}),
        })),
      });
    }
    if (req.method === 'GET' && url.pathname === '/plan') {
      const add = url.searchParams.get('add');
      const remove = url.searchParams.get('remove');
      const weightParam = url.searchParams.get('weight');
      const weight = weightParam === null ? 1 : Number(weightParam);
      const id = add ?? remove ?? '';
      if ((add === null) === (remove === null) || !NODE_ID_ONLY.test(id)) {
        return json(400, { error: 'ROUTER_ERR_BAD_REQUEST', reason: 'give add=ID or remove=ID' });
      }
      if (add !== null && (!Number.isInteger(weight) || weight < 1 || weight > 1000)) {
        return json(400, { error: 'ROUTER_ERR_BAD_REQUEST', reason: 'weight must be an integer 1-1000' });
      }
      const listed = o.members.member(id) !== undefined;
      if (add !== null && listed) {
        return json(400, { error: 'ROUTER_ERR_BAD_REQUEST', reason: 'already a member', id });
      }
      if (remove !== null && !listed) return json(404, { error: 'ROUTER_ERR_UNKNOWN_NODE', id });
      const perShard = connectionsPerShard(owners.shardCount);
      const change: PlanChange = add !== null ? { add, weight } : { remove: id };
      return json(200, {
        ownerTableVersion: owners.version,
        ...planChange(owners.members, owners.shardCount, change, (shard) => perShard[shard] ?? 0),
      });
    }
    const user = USER_PATH.exec(url.pathname);
    if (req.method === 'GET' && user) {
      const id = decodeURIComponent(user[1] ?? '');
      const key = url.searchParams.get('key') ?? id;
      if (!UserId.safeParse(id).success) return json(400, { error: 'ROUTER_ERR_BAD_USER_ID' });
      if (!UserId.safeParse(key).success) return json(400, { error: 'ROUTER_ERR_BAD_AFFINITY' });
      const shard = shardOf(key, owners.shardCount);
      const answers = await Promise.all(
        o.members.members().map(async (m) => ({
          id: m.id,
          answer: await callNode(m.url, 'presence', undefined, { ...nodeCall, query: { user: id } }),
        })),
      );
      const sessions: { node: string; sessions: number }[] = [];
      const presence = new Set<string>();
      const unanswered: { node: string; error: string }[] = [];
      for (const { id: node, answer } of answers) {
        if (!answer.ok) {
          unanswered.push({ node, error: answer.error });
          continue;
        }
        if (answer.body.localSessions > 0) sessions.push({ node, sessions: answer.body.localSessions });
        for (const other of answer.body.remoteNodes) presence.add(other);
      }
      return json(200, {
        user: id,
        key,
        shard,
        owner: owners.ownerOf(shard) ?? null,
        ownerTableVersion: owners.version,
        sessions,
        presence: [...presence].sort(),
        unanswered,
      });
    }
    if (url.pathname === '/lookup') {
      if (req.method === 'GET') {
        const key = url.searchParams.get('key') ?? '';
        if (!UserId.safeParse(key).success) return json(400, { error: 'ROUTER_ERR_BAD_AFFINITY' });
        const shard = shardOf(key, owners.shardCount);
        const owner = owners.ownerOf(shard) ?? null;
        // `node` repeats `owner` for version 1 callers.
        return json(200, { key, shard, owner, ownerTableVersion: owners.version, node: owner });
      }
      if (req.method === 'POST') {
        const body = await readJsonBody(req, 8 * 1024 * 1024).catch(() => undefined);
        const keys = (body as { keys?: unknown } | undefined)?.keys;
        if (
          !Array.isArray(keys) ||
          keys.length > MAX_LOOKUP_KEYS ||
          !keys.every((k) => typeof k === 'string')
        ) {
          return json(400, { error: 'ROUTER_ERR_BAD_REQUEST' });
        }
        const shards = keys.map((k) => shardOf(k, owners.shardCount));
        return json(200, {
          ownerTableVersion: owners.version,
          shards,
          nodes: shards.map((s) => owners.ownerOf(s) ?? null),
        });
      }
    }
    const action = NODE_ACTION.exec(url.pathname);
    if (action && req.method === 'POST') {
      const [, id = '', verb] = action;
      const member = o.members.member(id);
      if (!member) return json(404, { error: 'ROUTER_ERR_UNKNOWN_NODE', id });
      // The node first, so every router (through its heartbeats) and the node's /readyz agree, and so the
      // rebalancer here already knows the node is draining: it closes its sessions itself (4002, spread
      // over its drain window) and the router leaves them to it.
      const answer = await callNode(member.url, verb === 'drain' ? 'drain' : 'undrain', undefined, {
        headers: o.nodeHeaders,
      });
      if (answer.ok) o.members.nodeSaid(id, answer.body.draining);
      if (verb === 'drain') o.members.drain(id);
      else o.members.undrain(id);
      const nodeTold = answer.ok;
      if (!answer.ok) {
        log.warn(
          { node: id, verb, status: answer.status, err: answer.error },
          'could not tell the node itself',
        );
      }
      log.info({ node: id, verb, nodeTold }, 'admin action');
      return json(200, {
        id,
        drained: verb === 'drain',
        nodeTold,
        ringVersion: o.members.ring.version,
        ownerTableVersion: o.members.owners.version,
      });
    }
    return json(404, { error: 'ROUTER_ERR_NOT_FOUND' });
  };
}
