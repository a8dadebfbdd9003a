// The operator's steps of the procedures in docs/operations.md ("Scale out", "Scale in", "Rolling
// restart"), as the chaos scenarios run them under load: the `chatctl` an SRE types (the repository's
// entry point in a child process: `plan add|remove`, `drain` and `undrain` waiting until the move is done,
// `status`), and a meter of what did move (the router's counters and the load client's closes), so a
// scenario reports each plan next to the outcome.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { OwnerTable, type RingMember } from '@chat/shared';
import { sumMetric } from '../harness/node-process.js';
import type { RouterProcess } from '../harness/router-process.js';
import { repoRoot } from '../paths.js';
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
  /** The owner table the change leads to (`chatctl status --wait-version` waits for it). */
  readonly afterVersion?: string;
}

/** How long a chatctl process may run past its own `--timeout` before it is killed. */
const CHATCTL_GRACE_MS = 30_000;

/** One chatctl run: its exit code, its `--json` report (undefined when stdout was not JSON), stderr. */
export interface ChatctlRun {
  readonly code: number | null;
  readonly report: unknown;
  readonly stderr: string;
}

/**
 * Runs `chatctl ARGS --json --router URL --timeout MS` as `npm run chatctl` does (node, tsx, the source
 * entry point), against `router`'s admin API. Killed if it outlives its own timeout by 30 s.
 */
export async function chatctl(
  router: RouterProcess,
  args: readonly string[],
  timeoutMs: number,
): Promise<ChatctlRun> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=source',
      '--import',
      'tsx',
      'chatctl/src/main.ts',
      ...args,
      '--json',
      '--router',
      `http://127.0.0.1:${router.adminPort}`,
      '--timeout',
      String(Math.max(1, Math.round(timeoutMs))),
    ],
    { cwd: repoRoot, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs + CHATCTL_GRACE_MS);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const [code] = (await once(child, 'exit')) as [number | null];
    let report: unknown;
    try {
      report = JSON.parse(stdout);
    } catch {
      report = undefined;
    }
    return { code, report, stderr: stderr.trim() };
  } finally {
    clearTimeout(killer);
  }
}

/** Throws unless the run exited 0, naming the command, its exit code and its error line. */
function expectOk(run: ChatctlRun, command: string): void {
  if (run.code !== 0)
    throw new Error(
      `chatctl ${command}: exit ${run.code}${run.stderr ? `: ${run.stderr.split('\n')[0]}` : ''}`,
    );
}

/** The fields of `chatctl plan --json` used here (docs/chatctl.md). */
interface PlanReport {
  afterVersion: string;
  shards: number;
  movedShards: number;
  movedConnections: number;
  totalConnections: number;
}

/**
 * `chatctl plan add NODE [--weight W]` / `chatctl plan remove NODE`: what would move. Throws when chatctl
 * refuses (exit 5: a node to add that is a member already, an unknown node to remove).
 */
export async function planChange(
  router: RouterProcess,
  change: { readonly add: string; readonly weight?: number } | { readonly remove: string },
  timeoutMs = 10_000,
): Promise<MovePlan> {
  const args =
    'add' in change
      ? ['plan', 'add', change.add, ...(change.weight ? ['--weight', String(change.weight)] : [])]
      : ['plan', 'remove', change.remove];
  const run = await chatctl(router, args, timeoutMs);
  expectOk(run, args.join(' '));
  const plan = run.report as PlanReport;
  return {
    change: args.slice(1).join(' '),
    shardCount: plan.shards,
    shards: plan.movedShards,
    connections: plan.movedConnections,
    totalConnections: plan.totalConnections,
    afterVersion: plan.afterVersion,
  };
}

/**
 * `chatctl status --wait-version V`: what `plan add` tells the operator to run once the node is started;
 * waits until every router has owner table V, agrees and is healthy. Throws when it is not within `timeoutMs`.
 */
export async function waitVersion(router: RouterProcess, version: string, timeoutMs: number): Promise<void> {
  expectOk(
    await chatctl(router, ['status', '--wait-version', version], timeoutMs),
    `status --wait-version ${version}`,
  );
}

interface MembersBody {
  shards: number;
  members: { id: string; weight: number; inRing: boolean; adminDrained: boolean }[];
}
interface ShardsBody {
  shards: { shard: number; connections: number }[];
}

async function adminJson<T>(router: RouterProcess, path: string): Promise<T> {
  const res = await router.admin(path);
  if (!res.ok) throw new Error(`admin GET ${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
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
 * Waits until the router no longer lists `id` (a node stopped with SIGTERM says goodbye; otherwise it
 * leaves after the member timeout). Resolves false when it is still listed after `timeoutMs`.
 */
export async function leftMembers(router: RouterProcess, id: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const members = await adminJson<MembersBody>(router, '/members');
    if (!members.members.some((m) => m.id === id)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Whether the router holds an admin drain of `id` (it ends when the member leaves the list). */
export async function adminDrained(router: RouterProcess, id: string): Promise<boolean> {
  const members = await adminJson<MembersBody>(router, '/members');
  return members.members.find((m) => m.id === id)?.adminDrained ?? false;
}

/**
 * `chatctl drain NODE`: waits (its own polling) until the node has no connection and owns no shard.
 * Throws when chatctl says it is not done within `timeoutMs` (exit 1) or does not know the node (exit 5).
 */
export async function drainAndWait(router: RouterProcess, id: string, timeoutMs: number): Promise<void> {
  expectOk(await chatctl(router, ['drain', id], timeoutMs), `drain ${id}`);
}

/** `chatctl undrain NODE`: waits until the router has it back in its owner table with its shards. */
export async function undrain(router: RouterProcess, id: string, timeoutMs: number): Promise<void> {
  expectOk(await chatctl(router, ['undrain', id], timeoutMs), `undrain ${id}`);
}

/** `chatctl status`: exit 0 when every router and active member is ready and the routers agree. */
export async function statusHealthy(router: RouterProcess, timeoutMs = 10_000): Promise<ChatctlRun> {
  return chatctl(router, ['status'], timeoutMs);
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
    `${plan.change.startsWith('undrain') ? `\`chatctl ${plan.change}\` (its plan computed like the router's: \`plan add\` refuses a member)` : `\`chatctl plan ${plan.change}\``} predicted ${plan.shards} of ${plan.shardCount} shards (${pct(plan.shards, plan.shardCount)})`,
    `and ${plan.connections} of ${plan.totalConnections} connections (${pct(plan.connections, plan.totalConnections)});`,
    `moved: ${moved.shards} shards (router chat_router_shards_moved_total),`,
    `${migrated} connections (chat_router_migrations_total: ${list(moved.migrations)}),`,
    `closes of open sessions at the load client: ${list(moved.closes)}`,
  ].join(' ');
}
