// Runs one chaos scenario from a fresh cluster (its own topic prefix): start, connect the load client,
// wait until placement and presence have settled, warm-up under load, the fault and its recovery, more
// load, stop writing, settle (every answer in, every acked message at its receiver, a quiet second), then
// count. Bounded in time at every step; every process and socket is stopped at the end, even on failure.
import { randomBytes } from 'node:crypto';
import { nodeConfigSchema } from '@chat/shared';
import type { KafkaBroker } from '../kafka/broker.js';
import { account, type Counts } from './accounting.js';
import { ChaosCluster, Scope, groupKey } from './cluster.js';
import { LoadClient } from './load-client.js';
import type { Moved, MovePlan } from './procedures.js';
import type { Scenario } from './scenarios.js';

export interface ScenarioOptions {
  readonly users: number;
  readonly groups: number;
  readonly ratePerSec: number;
  readonly crossShare: number;
  /** Users per second whose app closes and reopens its socket (see LoadClientOptions.churnPerSec). */
  readonly churnPerSec: number;
  /** Load before the fault, as a duration at the rate (the phase ends after that many messages). */
  readonly warmupMs: number;
  /** Load after the recovery, before the writing stops (as `warmupMs`). */
  readonly afterMs: number;
  /** Deadline for each recovery wait (the cluster settling after a step of the fault). */
  readonly recoverTimeoutMs: number;
  /** Deadline for the final settle, and the quiet time that ends it. */
  readonly settleMs: number;
  readonly quietMs: number;
  /** The whole scenario (start to cleanup) is cut at this. */
  readonly limitMs: number;
  readonly shards?: number;
  /** Extra node settings (`--node-env`). */
  readonly nodeEnv?: Record<string, string>;
  /** The load client resumes from its last position on every reconnect (durable mode, `--mode durable`). */
  readonly resume?: boolean;
  readonly log?: (msg: string) => void;
}

export const DEFAULT_OPTIONS: ScenarioOptions = {
  users: 120,
  groups: 12,
  ratePerSec: 200,
  crossShare: 0.3,
  churnPerSec: 1,
  warmupMs: 5000,
  afterMs: 4000,
  recoverTimeoutMs: 40_000,
  settleMs: 30_000,
  quietMs: 1000,
  limitMs: 180_000,
};

export interface TimelineEvent {
  /** Milliseconds from the fault's start (negative: before it). */
  readonly t: number;
  readonly event: string;
}

/** One operator's step of a procedure scenario: what its plan predicted and what moved. */
export interface MoveRecord {
  readonly step: string;
  readonly plan: MovePlan;
  readonly moved: Moved;
}

export interface ScenarioResult {
  readonly name: string;
  readonly title: string;
  /** Undefined when the scenario could not run (its error says why). */
  readonly counts: Counts | undefined;
  readonly timeline: readonly TimelineEvent[];
  /** Recovery waits that hit their deadline, with the cluster's last reason. */
  readonly notRecovered: readonly string[];
  /** Milliseconds from the fault's start to the last recovery. */
  readonly recoveredMs: number | undefined;
  /** Whether the final settle was reached before its deadline. */
  readonly settled: boolean;
  readonly durationMs: number;
  readonly error: string | undefined;
  readonly logFiles: readonly string[];
  /** Node-side counters summed over the nodes alive at the end (a killed node's are gone). */
  readonly nodeCounters: Readonly<Record<string, number>>;
  /** The operator's steps' plans next to what moved (the procedure scenarios), in order. */
  readonly moves: readonly MoveRecord[];
}

/** The node counters the report shows next to the client's counts. */
const NODE_COUNTERS: readonly { as: string; name: string; labels?: Record<string, string> }[] = [
  { as: 'handoff delivered', name: 'chat_node_handoff_total', labels: { result: 'delivered' } },
  { as: 'handoff expired', name: 'chat_node_handoff_total', labels: { result: 'expired' } },
  { as: 'handoff overflow', name: 'chat_node_handoff_total', labels: { result: 'overflow' } },
  { as: 'handoff released', name: 'chat_node_handoff_total', labels: { result: 'released' } },
  { as: 'retries replayed', name: 'chat_node_send_retries_total', labels: { result: 'replayed' } },
  { as: 'retries joined', name: 'chat_node_send_retries_total', labels: { result: 'joined' } },
  { as: 'retries resent', name: 'chat_node_send_retries_total', labels: { result: 'resent' } },
  { as: 'duplicates dropped', name: 'chat_node_duplicates_dropped_total' },
  { as: 'resumes recovered', name: 'chat_node_resumes_total', labels: { result: 'recovered' } },
  { as: 'resumes too old', name: 'chat_node_resumes_total', labels: { result: 'too_old' } },
  { as: 'resumes not owner', name: 'chat_node_resumes_total', labels: { result: 'not_owner' } },
  { as: 'resume replayed', name: 'chat_node_resume_replayed_messages_total' },
];

async function nodeCounters(cluster: ChaosCluster | undefined): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const node of cluster?.nodes.values() ?? []) {
    for (const c of NODE_COUNTERS) {
      const v = await node.metric(c.name, c.labels).catch(() => 0);
      out[c.as] = (out[c.as] ?? 0) + v;
    }
  }
  return out;
}

/** The run's Kafka: the brokers' address, and the broker itself when the run may stop and freeze it. */
export interface ChaosKafka {
  readonly brokers: string;
  readonly broker: KafkaBroker | undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: over the ${ms} ms limit`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

export async function runScenario(
  kafka: ChaosKafka,
  scenario: Scenario,
  options: ScenarioOptions = DEFAULT_OPTIONS,
): Promise<ScenarioResult> {
  const log = options.log ?? (() => undefined);
  const started = Date.now();
  const scope = new Scope(log);
  const tag = `${scenario.name.replace(/[^A-Za-z0-9]/g, '')}${randomBytes(3).toString('hex')}`;
  const timeline: { at: number; event: string }[] = [];
  const notRecovered: string[] = [];
  const moves: MoveRecord[] = [];
  let faultAt: number | undefined;
  let lastRecoveredAt: number | undefined;
  let cluster: ChaosCluster | undefined;
  let load: LoadClient | undefined;
  let settled = false;
  let error: string | undefined;
  const mark = (event: string) => {
    timeline.push({ at: Date.now(), event });
    log(`${scenario.name}: ${event}`);
  };
  const graceMs = Number(
    options.nodeEnv?.CHAT_NODE_PRESENCE_GRACE_MS ?? nodeConfigSchema.presenceGraceMs.default,
  );

  const body = async () => {
    if (scenario.needsBroker && !kafka.broker) throw new Error('needs a broker of its own');
    if (kafka.broker) {
      // A previous scenario that failed half-way may have left it frozen or stopped.
      if (kafka.broker.frozen) await kafka.broker.thaw();
      if (!kafka.broker.running) await kafka.broker.restart();
    }
    const nodeIds = Array.from({ length: scenario.nodes ?? 3 }, (_, i) => `n${i + 1}`);
    mark(`starting ${nodeIds.length} nodes and a router`);
    const c = await ChaosCluster.start(scope, {
      brokers: kafka.brokers,
      prefix: `chaos-${tag}`,
      nodeIds,
      ...(options.shards ? { shards: options.shards } : {}),
      ...(options.nodeEnv ? { nodeEnv: options.nodeEnv } : {}),
    });
    cluster = c;
    const l = new LoadClient({
      url: (user, group) => c.router.wsUrl(user, `affinity=${groupKey(group)}`),
      users: options.users,
      groups: options.groups,
      ratePerSec: options.ratePerSec,
      crossShare: options.crossShare,
      churnPerSec: options.churnPerSec,
      tag,
      ...(options.resume ? { resume: true } : {}),
    });
    load = l;
    scope.after(() => l.close());
    // The router admits connections once its table has a node: wait for the whole ring first, so the
    // users land where they will stay.
    await c.waitSettled({ users: [], openCount: 0 }, options.recoverTimeoutMs).catch((err: unknown) => {
      throw new Error(`cluster start: ${(err as Error).message}`);
    });
    await l.connect(30_000);
    await c.waitSettled(l, options.recoverTimeoutMs);
    await c.waitPresence(l, options.recoverTimeoutMs);
    mark('settled; load starts');
    l.start();
    const phaseMessages = (ms: number) => Math.round((ms * options.ratePerSec) / 1000);
    await l.written(phaseMessages(options.warmupMs), options.warmupMs * 3);
    faultAt = Date.now();
    await scenario.fault({
      cluster: c,
      view: l,
      broker: kafka.broker,
      closes: l.closes,
      stepTimeoutMs: options.recoverTimeoutMs,
      mark,
      moved: (step, plan, moved) => moves.push({ step, plan, moved }),
      async recovered(what) {
        try {
          await c.waitSettled(l, options.recoverTimeoutMs);
          lastRecoveredAt = Date.now();
          mark(`recovered: ${what}`);
        } catch (err) {
          notRecovered.push(`${what}: ${(err as Error).message}`);
          mark(`NOT recovered: ${what}: ${(err as Error).message}`);
        }
      },
    });
    await l.written(phaseMessages(options.afterMs), options.afterMs * 3);
    l.stop();
    mark(`writing stops (${l.records.size} messages written); settling`);
    settled = await l.settle(options.settleMs, options.quietMs);
    mark(settled ? 'settled' : `NOT settled in ${options.settleMs} ms (${l.pending} unanswered)`);
  };

  try {
    await withTimeout(body(), options.limitMs, scenario.name);
  } catch (err) {
    error = (err as Error).message.split('\n')[0];
    mark(`FAILED: ${error}`);
  }
  // Counting takes what the load client has at this moment; the cleanup then closes everything.
  const counts = load
    ? account({
        records: load.records.values(),
        closes: load.closes,
        reconnectMs: load.reconnectMs,
        spansOf: (u) => load?.spansOf(u) ?? [],
        graceMs,
        uncorrelated: load.uncorrelated,
        ...(faultAt ? { origin: faultAt } : {}),
      })
    : undefined;
  const logFiles = cluster?.logFiles ?? [];
  const counters = await nodeCounters(cluster);
  // What the load client was told when it resumed (durable mode), next to the nodes' own counts.
  for (const [result, n] of load?.resumes.byResult ?? []) counters[`client resumed ${result}`] = n;
  await scope.close();
  const origin = faultAt ?? started;
  return {
    name: scenario.name,
    title: scenario.title,
    counts,
    timeline: timeline.map((e) => ({ t: e.at - origin, event: e.event })),
    notRecovered,
    recoveredMs: faultAt && lastRecoveredAt ? lastRecoveredAt - faultAt : undefined,
    settled,
    durationMs: Date.now() - started,
    error,
    logFiles,
    nodeCounters: counters,
    moves,
  };
}
