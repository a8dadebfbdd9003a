// The operator's steps of the procedures in docs/operations.md ("Scale out", "Scale in", "Rolling
// restart"), as the chaos scenarios run them under load: `plan add|remove` (what would move, from the
// live tables), `drain` waiting until the move is done, `undrain`; and a meter of what did move (the
// router's counters and the load client's closes), so a scenario reports the plan next to the outcome.
import { OwnerTable, type RingMember } from '@chat/shared';
import { sumMetric } from '../harness/node-process.js';
import type { RouterProcess } from '../harness/router-process.js';
import { pollUntil } from '../poll.js';
import type { CloseEvent } from './load-client.js';

/** What a membership change would move, from the router's live tables before anyone acts. */
export interface MovePlan {
  /** `add n4`, `remove n4`, `undrain n1`. */
  readonly change: string;
  readonly shardCount: number;
  /** Shards whose owner the change would change. */
  readonly shards: number;
  /** The router's connections on those shards (they would be asked to reconnect). */
  readonly connections: number;
  /** All of the router's connections at the time. */
  readonly totalConnections: number;
}

/** The router's `GET /plan` answer (router/src/admin-api.ts), the fields used here. */
interface PlanBody {
  shards: number;
  moved: { shard: number; connections: number }[];
}
interface MembersBody {
  shards: number;
  members: { id: string; weight: number; inRing: boolean; connections: number }[];
}
interface ShardsBody {
  shards: { shard: number; connections: number }[];
}

async function adminJson<T>(router: RouterProcess, path: string, init?: RequestInit): Promise<T> {
  const res = await router.admin(path, init);
  if (!res.ok) throw new Error(`admin ${init?.method ?? 'GET'} ${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

async function totalConnections(router: RouterProcess): Promise<number> {
  const { members } = await adminJson<MembersBody>(router, '/members');
  return members.reduce((n, m) => n + m.connections, 0);
}

/**
 * `plan add NODE [--weight W]` / `plan remove NODE`: the router's `GET /plan` (what chatctl shows), its
 * moved shards and the router's connections on them. Throws when the router refuses (unknown node, a node
 * to add that is a member already).
 */
export async function planChange(
  router: RouterProcess,
  change: { readonly add: string; readonly weight?: number } | { readonly remove: string },
): Promise<MovePlan> {
  const query =
    'add' in change
      ? `add=${change.add}${change.weight ? `&weight=${change.weight}` : ''}`
      : `remove=${change.remove}`;
  const [plan, total] = await Promise.all([
    adminJson<PlanBody>(router, `/plan?${query}`),
    totalConnections(router),
  ]);
  return {
    change: 'add' in change ? `add ${change.add}` : `remove ${change.remove}`,
    shardCount: plan.shards,
    shards: plan.moved.length,
    connections: plan.moved.reduce((n, m) => n + m.connections, 0),
    totalConnections: total,
  };
}

/**
 * What `undrain NODE` would move back: the router's plan refuses `add` for a member it lists (a drained
 * node is one), so this computes it the way the router does (`OwnerTable` over the members in its ring,
 * with and without the node) from `GET /members` and `GET /shards`.
 */
export async function planUndrain(router: RouterProcess, id: string): Promise<MovePlan> {
  const [members, shards] = await Promise.all([
    adminJson<MembersBody>(router, '/members'),
    adminJson<ShardsBody>(router, '/shards'),
  ]);
  const member = members.members.find((m) => m.id === id);
  if (!member) throw new Error(`undrain ${id}: not a member`);
  const ring: RingMember[] = members.members
    .filter((m) => m.inRing && m.id !== id)
    .map((m) => ({ id: m.id, weight: m.weight }));
  const base = new OwnerTable(ring, members.shards);
  const next = new OwnerTable([...ring, { id, weight: member.weight }], members.shards);
  const moved = new Set(base.movedTo(next));
  return {
    change: `undrain ${id}`,
    shardCount: members.shards,
    shards: moved.size,
    connections: shards.shards.reduce((n, s) => n + (moved.has(s.shard) ? s.connections : 0), 0),
    totalConnections: shards.shards.reduce((n, s) => n + s.connections, 0),
  };
}

/**
 * `drain NODE`, waiting until the move is done: the router drains it (the node closes its sessions itself
 * with 4002), then this waits until the node is out of the router's ring and holds no connection through
 * it. Throws on a refused drain or when the move is not done within `timeoutMs`.
 */
export async function drainAndWait(router: RouterProcess, id: string, timeoutMs: number): Promise<void> {
  await adminJson(router, `/nodes/${id}/drain`, { method: 'POST' });
  let last = 'not checked';
  await pollUntil(
    async () => {
      const { members } = await adminJson<{
        members: { id: string; inRing: boolean; connections: number }[];
      }>(router, '/members');
      const m = members.find((x) => x.id === id);
      last = m ? `in ring ${m.inRing}, ${m.connections} connections` : 'not a member';
      return m !== undefined && !m.inRing && m.connections === 0;
    },
    { timeoutMs, intervalMs: 200, what: `${id} drained` },
  ).catch(() => {
    throw new Error(`drain ${id}: not done after ${timeoutMs} ms (${last})`);
  });
}

/** `undrain NODE`: the router puts it back in its ring (its shards move back to it). */
export async function undrain(router: RouterProcess, id: string): Promise<void> {
  await adminJson(router, `/nodes/${id}/undrain`, { method: 'POST' });
}

/** What moved between a meter's start and its reading. */
export interface Moved {
  /** The router's chat_router_shards_moved_total. */
  readonly shards: number;
  /** The router's chat_router_migrations_total by result (asked, asked_again, draining, forced). */
  readonly migrations: Readonly<Record<string, number>>;
  /** Closes of open sessions at the load client (not the app's own), by code. */
  readonly closes: Readonly<Record<string, number>>;
}

const MIGRATION_RESULTS = ['asked', 'asked_again', 'draining', 'forced'] as const;

async function routerCounts(router: RouterProcess): Promise<{ shards: number; migrations: number[] }> {
  const text = await (await router.admin('/metrics')).text();
  return {
    shards: sumMetric(text, 'chat_router_shards_moved_total'),
    migrations: MIGRATION_RESULTS.map((result) =>
      sumMetric(text, 'chat_router_migrations_total', { result }),
    ),
  };
}

/**
 * Starts counting what moves: the router's shard moves and migrations (counters: the router must not
 * restart meanwhile) and the load client's closes of open sessions. `read()` gives the differences so far.
 */
export async function startMoveMeter(
  router: RouterProcess,
  closes: readonly CloseEvent[],
): Promise<{ read(): Promise<Moved> }> {
  const from = await routerCounts(router);
  const closesFrom = closes.length;
  return {
    async read() {
      const now = await routerCounts(router);
      const migrations: Record<string, number> = {};
      MIGRATION_RESULTS.forEach((result, i) => {
        const n = (now.migrations[i] ?? 0) - (from.migrations[i] ?? 0);
        if (n > 0) migrations[result] = n;
      });
      const byCode: Record<string, number> = {};
      for (const c of closes.slice(closesFrom))
        if (c.wasOpen && !c.byClient) byCode[c.code] = (byCode[c.code] ?? 0) + 1;
      return { shards: now.shards - from.shards, migrations, closes: byCode };
    },
  };
}

const pct = (n: number, of: number) => (of === 0 ? 'n/a' : `${((100 * n) / of).toFixed(0)}%`);
const list = (m: Readonly<Record<string, number>>) =>
  Object.keys(m).length === 0
    ? 'none'
    : Object.entries(m)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');

/** One report line: the plan's prediction next to what moved. */
export function describeMove(plan: MovePlan, moved: Moved): string {
  const migrated = Object.values(moved.migrations).reduce((a, b) => a + b, 0);
  return [
    `${plan.change.startsWith('undrain') ? plan.change : `\`plan ${plan.change}\``} predicted ${plan.shards} of ${plan.shardCount} shards (${pct(plan.shards, plan.shardCount)})`,
    `and ${plan.connections} of ${plan.totalConnections} connections (${pct(plan.connections, plan.totalConnections)});`,
    `moved: ${moved.shards} shards (router chat_router_shards_moved_total),`,
    `${migrated} connections (chat_router_migrations_total: ${list(moved.migrations)}),`,
    `closes of open sessions at the load client: ${list(moved.closes)}`,
  ].join(' ');
}
