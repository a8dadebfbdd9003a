import type { MembersAnswer, PlanAnswer, ShardsAnswer } from '../admin-types.js';
import { CliError, EXIT } from '../exit-codes.js';
import { HttpError, clientsFor, type ConnectOptions } from '../http.js';
import { percent, renderTable } from '../table.js';

export type PlanRequest = { readonly add: string; readonly weight?: number } | { readonly remove: string };

/** One node's shards before and after the change, and its share of all shards. */
export interface ShareRow {
  readonly node: string;
  readonly before: number;
  readonly after: number;
  readonly beforeShare: number;
  readonly afterShare: number;
}

/** `chatctl plan ... --json`. */
export interface PlanReport {
  readonly change: PlanAnswer['change'];
  readonly shards: number;
  readonly ownerTableVersion: string;
  readonly afterVersion: string;
  /** Shards that change owner, with the connections on them (summed over the routers given). */
  readonly moved: PlanAnswer['moved'];
  readonly movedShards: number;
  readonly movedConnections: number;
  /** Connections on every shard, summed over the routers given. */
  readonly totalConnections: number;
  readonly share: readonly ShareRow[];
}

/**
 * What adding or removing a node would move, from the live tables: the first router computes the
 * hypothetical owner table with the code it places by (`GET /plan`), and the connections on the moved
 * shards are summed over every router given (`GET /shards`). Nothing is changed. Adding a node that is
 * already a member, or removing one that is not, is a `CliError` with exit 5.
 */
export async function plan(o: ConnectOptions, request: PlanRequest): Promise<PlanReport> {
  const [first, ...others] = clientsFor(o);
  if (!first) throw new Error('unreachable: clientsFor returns at least one client');
  const members = await first.get<MembersAnswer>('/members');
  const id = 'add' in request ? request.add : request.remove;
  const listed = members.members.some((m) => m.id === id);
  if ('add' in request && listed) throw new CliError(EXIT.notFound, `node ${id} is already a member`);
  if ('remove' in request && !listed) throw new CliError(EXIT.notFound, `node ${id} is not a member`);
  const query =
    'add' in request
      ? `add=${encodeURIComponent(request.add)}${request.weight === undefined ? '' : `&weight=${request.weight}`}`
      : `remove=${encodeURIComponent(request.remove)}`;
  let answer: PlanAnswer;
  try {
    answer = await first.get<PlanAnswer>(`/plan?${query}`);
  } catch (err) {
    if (err instanceof HttpError && err.status === 404)
      throw new CliError(EXIT.notFound, `node ${id} is not a member`);
    if (err instanceof HttpError && err.status === 400)
      throw new CliError(
        EXIT.usage,
        `${err.message}: ${typeof err.body.reason === 'string' ? err.body.reason : 'bad request'}`,
      );
    throw err;
  }
  const perShard = new Array<number>(answer.shards).fill(0);
  for (const c of [first, ...others]) {
    const shards = await c.get<ShardsAnswer>('/shards');
    for (const s of shards.shards) perShard[s.shard] = (perShard[s.shard] ?? 0) + s.connections;
  }
  return summarisePlan(answer, perShard);
}

/** The report from the router's plan and the connections per shard (pure: unit-tested). */
export function summarisePlan(answer: PlanAnswer, connectionsPerShard: readonly number[]): PlanReport {
  const moved = answer.moved.map((m) => ({ ...m, connections: connectionsPerShard[m.shard] ?? 0 }));
  const before = new Map(answer.before.members.map((m) => [m.id, m.shards]));
  const after = new Map(answer.after.members.map((m) => [m.id, m.shards]));
  const nodes = [...new Set([...before.keys(), ...after.keys()])].sort();
  const total = answer.shards;
  return {
    change: answer.change,
    shards: total,
    ownerTableVersion: answer.before.version,
    afterVersion: answer.after.version,
    moved,
    movedShards: moved.length,
    movedConnections: moved.reduce((n, m) => n + m.connections, 0),
    totalConnections: connectionsPerShard.reduce((n, c) => n + c, 0),
    share: nodes.map((node) => ({
      node,
      before: before.get(node) ?? 0,
      after: after.get(node) ?? 0,
      beforeShare: (before.get(node) ?? 0) / total,
      afterShare: (after.get(node) ?? 0) / total,
    })),
  };
}

/** The human view: a summary line, the share per node, then every shard that moves. */
export function renderPlan(r: PlanReport): string {
  const what =
    'add' in r.change ? `add ${r.change.add} (weight ${r.change.weight})` : `remove ${r.change.remove}`;
  const head =
    `plan: ${what}; nothing is changed\n` +
    `owner table ${r.ownerTableVersion} -> ${r.afterVersion}\n` +
    `moves ${r.movedShards} of ${r.shards} shards (${percent(r.movedShards, r.shards)}), ` +
    `${r.movedConnections} of ${r.totalConnections} connections (${percent(r.movedConnections, r.totalConnections)})\n\n`;
  const share = renderTable(
    [
      { header: 'NODE' },
      { header: 'SHARDS BEFORE', align: 'right' },
      { header: 'SHARE', align: 'right' },
      { header: 'SHARDS AFTER', align: 'right' },
      { header: 'SHARE', align: 'right' },
    ],
    r.share.map((s) => [
      s.node,
      String(s.before),
      percent(s.before, r.shards),
      String(s.after),
      percent(s.after, r.shards),
    ]),
  );
  if (r.moved.length === 0) return `${head}${share}\nno shard changes owner\n`;
  const moves = renderTable(
    [
      { header: 'SHARD', align: 'right' },
      { header: 'FROM' },
      { header: 'TO' },
      { header: 'CONNECTIONS', align: 'right' },
    ],
    r.moved.map((m) => [String(m.shard), m.from ?? '-', m.to ?? '-', String(m.connections)]),
  );
  return `${head}${share}\n${moves}`;
}
