import type { IncomingMessage, ServerResponse } from 'node:http';
import { UserId, callNode, readJsonBody, shardOf, type Logger } from '@chat/shared';
import type { ConnectionTable } from './connections.js';
import type { MemberTable } from './member-table.js';

export interface AdminApiOptions {
  /** Headers for the nodes' /internal API (the bearer token). */
  readonly nodeHeaders: Record<string, string>;
  readonly members: MemberTable;
  readonly connections: ConnectionTable;
  readonly logger: Logger;
}

const NODE_ACTION = /^\/nodes\/([A-Za-z0-9._-]{1,64})\/(drain|undrain)$/;
const MAX_LOOKUP_KEYS = 100_000;

/**
 * The admin API, on its own listener (loopback by default):
 *   GET  /members                  members with health, drain state, shards owned; owner table version
 *   GET  /ring                     ring version, size and members
 *   GET  /shards                   every shard with its owner and this router's connections on it
 *   GET  /lookup?key=K             key K's shard and the node owning it
 *   POST /lookup  {"keys":[...]}   shards and owners of many keys at once
 *   POST /nodes/{id}/drain         the node leaves the ring and closes its sessions itself (4002)
 *   POST /nodes/{id}/undrain       the node is back in the ring
 *   GET  /metrics                  Prometheus metrics (served by router.ts on the same listener)
 */
export function createAdminHandler(o: AdminApiOptions) {
  const log = o.logger.child({ subsystem: 'admin' });
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
      const perShard = new Array<number>(owners.shardCount).fill(0);
      for (const c of o.connections.all()) perShard[c.shard] = (perShard[c.shard] ?? 0) + 1;
      return json(200, {
        ownerTableVersion: owners.version,
        shards: perShard.map((connections, shard) => ({
          shard,
          owner: owners.ownerOf(shard) ?? null,
          connections,
        })),
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
