// The operator's steps of the procedures in docs/operations.md ("Scale out", "Scale in", "Rolling
// restart"), as the chaos scenarios run them under load: `plan add|remove` (what would move, from the
// live tables), `drain` waiting until the move is done, `undrain`; and a meter of what did move (the
// router's counters and the load client's closes), so a scenario reports the plan next to the outcome.
import { OwnerTable, type RingMember } from '@chat/shared';
import { sumMetric } from '../harness/node-process.js';
import type { RouterProcess } from '../harness/router-process.js';
import { pollUntil } from '../poll.js';
import type { CloseEvent } from './load-client.js';

/** What a membership change would move, computed from the router's live tables before anyone acts. */
export interface MovePlan {
  /** `add n4`, `remove n4`. */
  readonly change: string;
  readonly shardCount: number;
  /** Shards whose owner the change would change. */
  readonly shards: number;
  /** The router's connections on those shards (they would be asked to reconnect). */
  readonly connections: number;
  /** All of the router's connections at the time. */
  readonly totalConnections: number;
  /** The table the plan starts from is the router's (same version): the prediction is about the real one. */
  readonly baseMatches: boolean;
}

export type PlanChange = { readonly add: string; readonly weight?: number } | { readonly remove: string };

interface MembersBody {
  ownerTableVersion: string;
  shards: number;
  members: { id: string; weight?: number; inRing: boolean }[];
}
interface ShardsBody {
  shards: { shard: number; owner: string | null; connections: number }[];
}

async function adminJson<T>(router: RouterProcess, path: string, init?: RequestInit): Promise<T> {
  const res = await router.admin(path, init);
  if (!res.ok) throw new Error(`admin ${init?.method ?? 'GET'} ${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/**
 * `plan add NODE [--weight W]` / `plan remove NODE` from the router's admin API: the owner table of the
 * members in its ring, the same table with the change, the shards whose owner differs and the router's
 * connections on them. The tables are computed with the code the routers and nodes use (`OwnerTable`).
 */
export async function planChange(router: RouterProcess, change: PlanChange): Promise<MovePlan> {
  const [members, shards] = await Promise.all([
    adminJson<MembersBody>(router, '/members'),
    adminJson<ShardsBody>(router, '/shards'),
  ]);
  const ring: RingMember[] = members.members
    .filter((m) => m.inRing)
    .map((m) => ({ id: m.id, weight: m.weight ?? 1 }));
  const base = new OwnerTable(ring, members.shards);
  const next =
    'add' in change
      ? new OwnerTable(
          [
            ...ring.filter((m) => m.id !== change.add),
            {
              id: change.add,
              weight: change.weight ?? members.members.find((m) => m.id === change.add)?.weight ?? 1,
            },
          ],
          members.shards,
        )
      : new OwnerTable(
          ring.filter((m) => m.id !== change.remove),
          members.shards,
        );
  const moved = new Set(base.movedTo(next));
  let connections = 0;
  let total = 0;
  for (const s of shards.shards) {
    total += s.connections;
    if (moved.has(s.shard)) connections += s.connections;
  }
  return {
    change: 'add' in change ? `add ${change.add}` : `remove ${change.remove}`,
    shardCount: members.shards,
    shards: moved.size,
    connections,
    totalConnections: total,
    baseMatches: base.version === members.ownerTableVersion,
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
    `\`plan ${plan.change}\` predicted ${plan.shards} of ${plan.shardCount} shards (${pct(plan.shards, plan.shardCount)})`,
    `and ${plan.connections} of ${plan.totalConnections} connections (${pct(plan.connections, plan.totalConnections)})${plan.baseMatches ? '' : " (**its base table was not the router's**)"};`,
    `moved: ${moved.shards} shards (router chat_router_shards_moved_total),`,
    `${migrated} connections (chat_router_migrations_total: ${list(moved.migrations)}),`,
    `closes of open sessions at the load client: ${list(moved.closes)}`,
  ].join(' ');
}
