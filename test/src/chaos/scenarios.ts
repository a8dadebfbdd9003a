// The chaos scenarios: each is the fault and the recovery it waits for, run by run-scenario.ts between a
// warm-up and a settle on a fresh cluster under load. Events go to the scenario's timeline.
import type { KafkaBroker } from '../kafka/broker.js';
import { pollUntil } from '../poll.js';
import { interruptBroker } from '../kafka/harness.js';
import type { ChaosCluster, UserView } from './cluster.js';
import type { CloseEvent } from './load-client.js';
import {
  drainAndWait,
  planChange,
  adminDrained,
  leftMembers,
  planUndrain,
  startMoveMeter,
  statusHealthy,
  undrain,
  waitVersion,
  type Moved,
  type MovePlan,
} from './procedures.js';

export interface FaultContext {
  readonly cluster: ChaosCluster;
  readonly view: UserView;
  /** The run's broker, for the broker scenarios (undefined when the run shares a broker it may not stop). */
  readonly broker: KafkaBroker | undefined;
  /** The load client's closes so far (it keeps adding to it): what the users saw of a move. */
  readonly closes: readonly CloseEvent[];
  /** Deadline for one recovery wait, also used for an operator's step that waits (a drain). */
  readonly stepTimeoutMs: number;
  /** Adds an event to the timeline (time taken now). */
  mark(event: string): void;
  /** Records an operator's step's plan next to what moved, for the report and the CI subset's checks. */
  moved(step: string, plan: MovePlan, moved: Moved): void;
  /**
   * Waits until the cluster settled on its serving nodes; marks `recovered` or, after the recovery
   * deadline, notes that it did not (and goes on: the load's counts still say what happened).
   */
  recovered(what: string): Promise<void>;
}

export interface Scenario {
  readonly name: string;
  /** One line for the report. */
  readonly title: string;
  /** Needs a broker it can stop and freeze. */
  readonly needsBroker?: boolean;
  /** Nodes at the start (default 3). */
  readonly nodes?: number;
  fault(ctx: FaultContext): Promise<void>;
}

/** How long the broker stays away in the broker scenarios. */
export const BROKER_OUTAGE_MS = 8000;

async function stopAndMaybeRestart(
  ctx: FaultContext,
  signal: 'SIGKILL' | 'SIGTERM',
  restart: boolean,
): Promise<void> {
  const victim = await ctx.cluster.busiestNode(ctx.view.users);
  ctx.mark(`${signal === 'SIGKILL' ? 'kill -9' : 'SIGTERM'} ${victim}`);
  const exit = await ctx.cluster.stopNode(victim, signal);
  ctx.mark(`${victim} exited (${exit.code ?? exit.signal}) after ${exit.ms} ms`);
  await ctx.recovered(`users of ${victim} moved`);
  if (!restart) return;
  ctx.mark(`${victim} starting again`);
  await ctx.cluster.startNode(victim);
  ctx.mark(`${victim} ready`);
  await ctx.recovered(`${victim} back in the ring`);
}

async function brokerOutage(ctx: FaultContext, kind: 'stop' | 'freeze'): Promise<void> {
  const broker = ctx.broker;
  if (!broker) throw new Error('this scenario needs a broker of its own');
  const at = Date.now();
  ctx.mark(kind === 'stop' ? 'broker stop (SIGTERM)' : 'broker freeze (SIGSTOP)');
  const restore = await interruptBroker(broker, kind);
  ctx.mark(kind === 'stop' ? 'broker exited' : 'broker stopped');
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, at + BROKER_OUTAGE_MS - Date.now())));
  ctx.mark(kind === 'stop' ? 'broker restart' : 'broker thaw (SIGCONT)');
  await restore();
  ctx.mark('broker back');
  await ctx.recovered('every node ready again');
}

/** The procedures' "done when": `chatctl status` exits 0 (polled until it does, within the step deadline). */
async function statusDone(ctx: FaultContext): Promise<void> {
  let last = 'not run';
  await pollUntil(
    async () => {
      const run = await statusHealthy(ctx.cluster.router);
      const problems = (run.report as { problems?: string[] } | undefined)?.problems ?? [];
      last = `exit ${run.code}${problems.length ? `: ${problems.join('; ')}` : ''}`;
      return run.code === 0;
    },
    { timeoutMs: ctx.stepTimeoutMs, intervalMs: 200, what: 'chatctl status to exit 0' },
  ).catch(() => {
    throw new Error(`chatctl status: not healthy after ${ctx.stepTimeoutMs} ms (${last})`);
  });
  ctx.mark('chatctl status: exit 0');
}

/**
 * "Scale out" and "Scale in" of docs/operations.md: `plan add`, start the node, wait until settled; then
 * `plan remove`, `drain` waiting until done, stop the node. Each plan is reported next to what moved.
 */
async function scaleOutIn(ctx: FaultContext): Promise<void> {
  const { cluster } = ctx;
  const id = `n${cluster.nodes.size + 1}`;
  const out = await planChange(cluster.router, { add: id });
  ctx.mark(`chatctl plan add ${id}: ${out.shards} shards, ${out.connections} connections`);
  let meter = await startMoveMeter(cluster.router, ctx.closes);
  ctx.mark(`${id} starting`);
  await cluster.startNode(id);
  ctx.mark(`${id} ready`);
  if (out.afterVersion) {
    await waitVersion(cluster.router, out.afterVersion, ctx.stepTimeoutMs);
    ctx.mark(`chatctl status --wait-version ${out.afterVersion}: exit 0`);
  }
  await ctx.recovered(`${id} in the ring, its users moved`);
  ctx.moved('Scale out', out, await meter.read());
  await statusDone(ctx);

  const back = await planChange(cluster.router, { remove: id });
  ctx.mark(`chatctl plan remove ${id}: ${back.shards} shards, ${back.connections} connections`);
  meter = await startMoveMeter(cluster.router, ctx.closes);
  ctx.mark(`chatctl drain ${id}`);
  await drainAndWait(cluster.router, id, ctx.stepTimeoutMs);
  cluster.drained.add(id);
  ctx.mark(`chatctl drain ${id}: done`);
  const exit = await cluster.stopNode(id, 'SIGTERM');
  ctx.mark(`${id} stopped (SIGTERM): exit ${exit.code ?? exit.signal} after ${exit.ms} ms`);
  await ctx.recovered(`${id} gone, its users moved back`);
  ctx.moved('Scale in', back, await meter.read());
  await statusDone(ctx);
}

/**
 * "Rolling restart" by hand, as docs/operations.md writes it: for each node in turn `drain` (waiting until
 * done), stop (SIGTERM), start again (same id), wait until ready, `undrain`, wait until settled.
 */
async function rollingDrain(ctx: FaultContext): Promise<void> {
  const { cluster } = ctx;
  for (const id of [...cluster.nodes.keys()].sort()) {
    const out = await planChange(cluster.router, { remove: id });
    const meter = await startMoveMeter(cluster.router, ctx.closes);
    ctx.mark(`chatctl drain ${id} (plan remove: ${out.shards} shards, ${out.connections} connections)`);
    await drainAndWait(cluster.router, id, ctx.stepTimeoutMs);
    cluster.drained.add(id);
    ctx.mark(`chatctl drain ${id}: done`);
    const drained = await meter.read();
    const exit = await cluster.stopNode(id, 'SIGTERM');
    ctx.mark(`${id} stopped (SIGTERM): exit ${exit.code ?? exit.signal} after ${exit.ms} ms`);
    // Its goodbye takes it off the member list, and its admin drain with it: started again, it is a new
    // member and takes its shards back by itself (`chatctl plan add`). Still listed (no goodbye seen within
    // the member timeout), it comes back drained and `chatctl undrain` returns it.
    const left = await leftMembers(cluster.router, id, 7000);
    const back = left ? await planChange(cluster.router, { add: id }) : await planUndrain(cluster.router, id);
    const backMeter = await startMoveMeter(cluster.router, ctx.closes);
    ctx.mark(
      `${left ? `${id} left the member list; chatctl plan add` : 'still listed; undrain plan'} ${id}: ${back.shards} shards, ${back.connections} connections`,
    );
    await cluster.startNode(id);
    ctx.mark(`${id} ready`);
    if (back.afterVersion) {
      await waitVersion(cluster.router, back.afterVersion, ctx.stepTimeoutMs);
      ctx.mark(`chatctl status --wait-version ${back.afterVersion}: exit 0`);
    }
    if (await adminDrained(cluster.router, id)) {
      ctx.mark(`chatctl undrain ${id}`);
      await undrain(cluster.router, id, ctx.stepTimeoutMs);
      ctx.mark(`chatctl undrain ${id}: done`);
    }
    await ctx.recovered(`${id} back, settled`);
    ctx.moved(`${id} out`, out, drained);
    ctx.moved(`${id} back`, back, await backMeter.read());
    await statusDone(ctx);
  }
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'kill9',
    title:
      'kill -9 the node with the most users; its users reconnect elsewhere; then it starts again (same id)',
    fault: (ctx) => stopAndMaybeRestart(ctx, 'SIGKILL', true),
  },
  {
    name: 'sigterm',
    title: 'SIGTERM the node with the most users (drain and exit); then it starts again (same id)',
    fault: (ctx) => stopAndMaybeRestart(ctx, 'SIGTERM', true),
  },
  {
    name: 'drain',
    title: 'admin drain (router POST /nodes/{id}/drain) of the node with the most users; it stays drained',
    async fault(ctx) {
      const victim = await ctx.cluster.busiestNode(ctx.view.users);
      ctx.mark(`admin drain ${victim}`);
      const answer = await ctx.cluster.drain(victim);
      ctx.mark(`drain answered ${answer.status}`);
      await ctx.recovered(`users of ${victim} moved`);
    },
  },
  {
    name: 'add',
    title: 'add a 4th node (scale out); the shards it now owns move to it',
    async fault(ctx) {
      const id = `n${ctx.cluster.nodes.size + 1}`;
      ctx.mark(`${id} starting`);
      await ctx.cluster.startNode(id);
      ctx.mark(`${id} ready`);
      await ctx.recovered(`${id} in the ring, its users moved`);
    },
  },
  {
    name: 'remove',
    title: 'remove the node with the most users (SIGTERM, not replaced: scale in)',
    fault: (ctx) => stopAndMaybeRestart(ctx, 'SIGTERM', false),
  },
  {
    name: 'rolling',
    title: 'rolling restart: each node in turn SIGTERM, start again, wait until settled',
    async fault(ctx) {
      for (const id of [...ctx.cluster.nodes.keys()].sort()) {
        ctx.mark(`SIGTERM ${id}`);
        const exit = await ctx.cluster.stopNode(id, 'SIGTERM');
        ctx.mark(`${id} exited (${exit.code ?? exit.signal}) after ${exit.ms} ms`);
        await ctx.cluster.startNode(id);
        ctx.mark(`${id} ready`);
        await ctx.recovered(`${id} back, settled`);
      }
    },
  },
  {
    name: 'scale-out-in',
    title:
      'scale out 3 -> 4 and back, as docs/operations.md says, with chatctl: plan add n4, start n4, wait until settled and status exits 0; plan remove n4, drain n4 (waits until done), stop it, status',
    fault: scaleOutIn,
  },
  {
    name: 'rolling-drain',
    title:
      'rolling restart by hand, as docs/operations.md says, with chatctl: each node in turn drain (waits until done), stop (SIGTERM), start again (undrain if still drained), wait until settled and status exits 0',
    fault: rollingDrain,
  },
  {
    name: 'broker-stop',
    title: `Kafka broker stopped (SIGTERM) for ${BROKER_OUTAGE_MS / 1000} s, then restarted on the same port and data`,
    needsBroker: true,
    fault: (ctx) => brokerOutage(ctx, 'stop'),
  },
  {
    name: 'broker-freeze',
    title: `Kafka broker frozen (SIGSTOP) for ${BROKER_OUTAGE_MS / 1000} s, then thawed (SIGCONT)`,
    needsBroker: true,
    fault: (ctx) => brokerOutage(ctx, 'freeze'),
  },
  {
    name: 'router-kill',
    title: 'kill -9 the router; a new one starts on the same ports',
    async fault(ctx) {
      ctx.mark('kill -9 router');
      await ctx.cluster.killRouter();
      ctx.mark('router exited; starting again');
      await ctx.cluster.startRouter(true);
      ctx.mark('router listening');
      await ctx.recovered('every user connected through the new router');
    },
  },
];

/**
 * The CI subset (reliability.test.ts, every push): the node faults and the procedures of
 * docs/operations.md, in fast mode; the rest (broker, router, scale without the plan) and durable mode run
 * in `pnpm chaos` only, to keep CI within its time.
 */
export const CI_SCENARIOS: readonly string[] = ['kill9', 'sigterm', 'drain', 'scale-out-in', 'rolling-drain'];

/** The scenarios named in `names` (all when empty), in the suite's order; throws on an unknown name. */
export function pickScenarios(names: readonly string[]): Scenario[] {
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0)
    throw new Error(
      `unknown scenario(s) ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
  return names.length === 0 ? [...SCENARIOS] : SCENARIOS.filter((s) => names.includes(s.name));
}
