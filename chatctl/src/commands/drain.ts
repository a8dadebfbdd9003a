import { setTimeout as delay } from 'node:timers/promises';
import { SHAPES, type DrainAnswer, type MembersAnswer } from '../admin-types.js';
import { CliError, EXIT, type ExitCode } from '../exit-codes.js';
import { HttpError, clientsFor, type AdminClient, type ConnectOptions } from '../http.js';
import type { Progress } from '../progress.js';

/** How long drain and undrain wait for the move unless `--timeout` says otherwise. */
export const DEFAULT_WAIT_MS = 300_000;
const POLL_MS = 250;
/** Requests may run this much past the wait's end, so the last look is answered, not cut. */
const REQUEST_GRACE_MS = 5000;

export interface DrainOptions extends ConnectOptions {
  readonly node: string;
  /** false (`--no-wait`): return once the routers were told. */
  readonly wait?: boolean;
  readonly progress?: Progress;
}

/** `chatctl drain|undrain --json`. */
export interface DrainReport {
  readonly node: string;
  readonly action: 'drain' | 'undrain';
  /** The node itself was told (by at least one router); false: the routers move its connections. */
  readonly nodeTold: boolean;
  readonly waited: boolean;
  /** drain: no connection left on any router and no shard owned; undrain: back in every router's table. */
  readonly done: boolean;
  /**
   * The node's own connections (summed over the routers) when the command began; not those on shards
   * that move between the other nodes, which `plan remove` counts too.
   */
  readonly connectionsBefore: number;
  readonly connectionsLeft: number;
  /** Shards the node owns, the most any router says. */
  readonly shards: number;
  readonly elapsedMs: number;
}

interface Look {
  connections: number;
  shards: number;
  inEveryTable: boolean;
}

async function look(clients: readonly AdminClient[], node: string): Promise<Look> {
  const answers = await Promise.all(clients.map((c) => c.get<MembersAnswer>('/members', SHAPES.members)));
  const views = answers.map((a) => a.members.find((m) => m.id === node));
  return {
    connections: views.reduce((n, m) => n + (m?.connections ?? 0), 0),
    shards: Math.max(0, ...views.map((m) => m?.shards ?? 0)),
    inEveryTable: views.every((m) => m?.inRing === true && m.shards > 0),
  };
}

/**
 * Drains (or undrains) `node` on every router given, then waits until the move is done: for a drain, the
 * node has no connection left on any router and owns no shard; for an undrain, every router has it back
 * in its owner table. Bounded by `timeoutMs` (default 300 s): `done: false` when it ran out. An unknown
 * node is a `CliError` with exit 5.
 */
export async function drainNode(
  o: DrainOptions,
  action: 'drain' | 'undrain' = 'drain',
): Promise<DrainReport> {
  const started = Date.now();
  const waitMs = o.timeoutMs ?? DEFAULT_WAIT_MS;
  const clients = clientsFor({ ...o, timeoutMs: waitMs + REQUEST_GRACE_MS });
  const node = o.node;
  const first = await clients[0]?.get<MembersAnswer>('/members', SHAPES.members);
  if (!first?.members.some((m) => m.id === node))
    throw new CliError(EXIT.notFound, `node ${node} is not a member`);
  const before = await look(clients, node);
  let nodeTold = false;
  // Every router is told (each keeps its own drain set; each also tells the node, which is idempotent).
  for (const c of clients) {
    try {
      const answer = await c.post<DrainAnswer>(`/nodes/${encodeURIComponent(node)}/${action}`, SHAPES.drain);
      nodeTold ||= answer.nodeTold;
    } catch (err) {
      if (err instanceof HttpError && err.is(404, 'ROUTER_ERR_UNKNOWN_NODE'))
        throw new CliError(EXIT.notFound, `node ${node} is not a member of ${c.url}`);
      throw err;
    }
  }
  const report = (now: Look, waited: boolean, done: boolean): DrainReport => ({
    node,
    action,
    nodeTold,
    waited,
    done,
    connectionsBefore: before.connections,
    connectionsLeft: now.connections,
    shards: now.shards,
    elapsedMs: Date.now() - started,
  });
  if (o.wait === false) return report(before, false, false);
  const isDone = (l: Look) => (action === 'drain' ? l.connections === 0 && l.shards === 0 : l.inEveryTable);
  const deadline = started + waitMs;
  for (;;) {
    const now = await look(clients, node);
    const total = Math.max(before.connections, now.connections);
    o.progress?.update(
      action === 'drain' ? total - now.connections : now.shards,
      action === 'drain' ? total : Math.max(now.shards, 1),
      action === 'drain'
        ? `connections moved off ${node}, ${now.shards} shards still owned`
        : `shards owned by ${node}${now.inEveryTable ? '' : ', not yet in every router’s table'}`,
    );
    if (isDone(now)) {
      o.progress?.end();
      return report(now, true, true);
    }
    if (Date.now() + POLL_MS > deadline) {
      o.progress?.end();
      return report(now, true, false);
    }
    await delay(POLL_MS);
  }
}

/** 0 when done (or not waited for), 1 when the wait ran out. */
export function drainExitCode(r: DrainReport): ExitCode {
  return !r.waited || r.done ? EXIT.ok : EXIT.condition;
}

export function renderDrain(r: DrainReport): string {
  const told = r.nodeTold ? '' : ' (the node itself could not be told: the routers move its connections)';
  if (!r.waited) return `${r.action} ${r.node}: routers told${told}; not waiting (--no-wait)\n`;
  if (r.action === 'drain') {
    return r.done
      ? `drain ${r.node}: done in ${(r.elapsedMs / 1000).toFixed(1)} s: ${r.connectionsBefore} connections of ${r.node} moved ` +
          `(its own only: \`plan remove\` also counts shards moving between the other nodes), no shard left${told}\n`
      : `drain ${r.node}: NOT done after ${(r.elapsedMs / 1000).toFixed(1)} s: ${r.connectionsLeft} connections and ${r.shards} shards left${told}\n`;
  }
  return r.done
    ? `undrain ${r.node}: done in ${(r.elapsedMs / 1000).toFixed(1)} s: back in every router's table, ${r.shards} shards${told}\n`
    : `undrain ${r.node}: NOT done after ${(r.elapsedMs / 1000).toFixed(1)} s: not yet in every router's table (is it ready?)${told}\n`;
}
