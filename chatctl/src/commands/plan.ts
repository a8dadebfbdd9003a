import { SHAPES, type MembersAnswer, type PlanAnswer, type ShardsAnswer } from '../admin-types.js';
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
  /**
   * Of the moved shards, those going to the added node or leaving the removed one, and the connections
   * on them: what `drain NODE` counts (it reports the drained node's connections only).
   */
  readonly ofNode: { readonly node: string; readonly shards: number; readonly connections: number };
  /** Of the moved shards, those moving between the other nodes (exact quotas), and their connections. */
  readonly between: { readonly shards: number; readonly connections: number };
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
  const members = await first.get<MembersAnswer>('/members', SHAPES.members);
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
    answer = await first.get<PlanAnswer>(`/plan?${query}`, SHAPES.plan);
  } catch (err) {
    if (err instanceof HttpError && err.is(404, 'ROUTER_ERR_UNKNOWN_NODE'))
      throw new CliError(EXIT.notFound, `node ${id} is not a member`);
    if (err instanceof HttpError && err.is(400, 'ROUTER_ERR_BAD_REQUEST'))
      throw new CliError(
        EXIT.usage,
        `${err.message}: ${typeof err.body.reason === 'string' ? err.body.reason : 'bad request'}`,
      );
    throw err;
  }
  const perShard = new Array<number>(answer.shards).fill(0);
  for (const c of [first, ...others]) {
    const shards = await c.get<ShardsAnswer>('/shards', SHAPES.shards);
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
  const node = 'add' in answer.change ? answer.change.add : answer.change.remove;
  const mine = moved.filter((m) => m.from === node || m.to === node);
  const others = moved.filter((m) => m.from !== node && m.to !== node);
  const sum = (list: readonly { connections: number }[]) => list.reduce((n, m) => n + m.connections, 0);
  return {
    change: answer.change,
    shards: total,
    ownerTableVersion: answer.before.version,
    afterVersion: answer.after.version,
    moved,
    movedShards: moved.length,
    movedConnections: moved.reduce((n, m) => n + m.connections, 0),
    totalConnections: connectionsPerShard.reduce((n, c) => n + c, 0),
    ofNode: { node, shards: mine.length, connections: sum(mine) },
    between: { shards: others.length, connections: sum(others) },
    share: nodes.map((node) => ({
      node,
      before: before.get(node) ?? 0,
      after: after.get(node) ?? 0,
      beforeShare: (before.get(node) ?? 0) / total,
      afterShare: (after.get(node) ?? 0) / total,
    })),
  };
}

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** The human view: a summary line, the share per node, then every shard that moves. */
export function renderPlan(r: PlanReport): string {
  const what =
    'add' in r.change ? `add ${r.change.add} (weight ${r.change.weight})` : `remove ${r.change.remove}`;
  const head =
    `plan: ${what}; nothing is changed\n` +
    `owner table ${r.ownerTableVersion} -> ${r.afterVersion}\n` +
    `moves ${r.movedShards} of ${r.shards} shards (${percent(r.movedShards, r.shards)}), ` +
    `${r.movedConnections} of ${r.totalConnections} connections (${percent(r.movedConnections, r.totalConnections)}): ` +
    `every shard that changes owner, and the connections on it\n` +
    `  ${'add' in r.change ? 'to' : 'from'} ${r.ofNode.node}: ${count(r.ofNode.shards, 'shard')}, ${count(r.ofNode.connections, 'connection')}` +
    `${'remove' in r.change ? ` (what \`chatctl drain ${r.ofNode.node}\` counts: its own connections)` : ''}\n` +
    `  between the other nodes: ${count(r.between.shards, 'shard')}, ${count(r.between.connections, 'connection')} (they reconnect too)\n` +
    `${'add' in r.change ? `once ${r.change.add} runs, wait for this table: chatctl status --wait-version ${r.afterVersion}\n` : ''}\n`;
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
