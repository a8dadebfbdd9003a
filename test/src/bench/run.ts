// `pnpm bench`: the benchmark harness. Bounded loads on 127.0.0.1, every figure of issue 11 side by side
// from one invocation, one report in docs/benchmarks.md. A script, not a test: nothing is asserted; a
// phase that loses, duplicates or fails is reported as such in the table (and in the log), never hidden.
//   pnpm bench [--scale-nodes 2,4,6] [--scale-rate 1000] [--scale-seconds 6] [--scale-users 40]
//              [--rates 2000,5000] [--users 2000] [--groups 100] [--local-share 0.8] [--seconds 8]
//              [--sat-rates 2000,...,48000] [--sat-seconds 3]
//              [--idle 5000] [--idle-window 10] [--out docs/benchmarks.md] [--node-env K=V,K=V]
// Phases (one Kafka broker for all):
//   1. scale-out: 2, 4, 6 node processes, ours and the seed design, cross-node messages only, straight to
//      the owners; Kafka records read per cross-node message and node CPU per delivered message;
//   2. idle CPU of every process with no clients, over a fixed window (/proc/PID/stat);
//   3. latency at each rate (local and cross-node apart) and the whole cluster's CPU per 1,000 messages:
//      ours through the router, ours straight to the nodes, Socket.IO + Redis adapter;
//   4. saturation of one node (local messages) next to a bare ws relay;
//   5. idle memory per connection at a steady state (forced GC through the inspector, median RSS).
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { nodeConfigSchema } from '@chat/shared';
import { forkService, startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter } from '../harness/router-process.js';
import { KafkaBroker } from '../kafka/broker.js';
import { kafkaVersion } from '../kafka/maven.js';
import { freePort, portInUse } from '../net.js';
import { pollUntil } from '../poll.js';
import { repoRoot } from '../paths.js';
import { Inspector } from './inspector.js';
import type { LoadPlan, LoadResult } from './loadgen.js';

const { values } = parseArgs({
  options: {
    'scale-rate': { type: 'string', default: '1000' },
    'scale-seconds': { type: 'string', default: '6' },
    'scale-users': { type: 'string', default: '40' },
    'scale-nodes': { type: 'string', default: '2,4,6' },
    rates: { type: 'string', default: '2000,5000' },
    users: { type: 'string', default: '2000' },
    groups: { type: 'string', default: '100' },
    'local-share': { type: 'string', default: '0.8' },
    seconds: { type: 'string', default: '8' },
    'sat-seconds': { type: 'string', default: '3' },
    'sat-rates': { type: 'string', default: '2000,4000,8000,12000,16000,24000,32000,48000' },
    idle: { type: 'string', default: '5000' },
    'idle-window': { type: 'string', default: '10' },
    out: { type: 'string', default: 'docs/benchmarks.md' },
    'node-env': { type: 'string', default: '' },
  },
});
const SCALE_RATE = Number(values['scale-rate']);
const SCALE_SECONDS = Number(values['scale-seconds']);
const SCALE_USERS = Number(values['scale-users']); // per node
const SCALE_NODES = String(values['scale-nodes']).split(',').map(Number);
const RATES = String(values.rates).split(',').map(Number);
const USERS = Number(values.users);
const GROUPS = Number(values.groups);
const LOCAL_SHARE = Number(values['local-share']);
const SECONDS = Number(values.seconds);
const SAT_SECONDS = Number(values['sat-seconds']);
const SAT_RATES = String(values['sat-rates']).split(',').map(Number);
const IDLE = Number(values.idle);
const IDLE_WINDOW = Number(values['idle-window']);
const OUT = String(values.out);
/** Extra settings for our nodes (`--node-env K=V,K=V`), to compare a tuning in the same harness. */
const NODE_ENV: Record<string, string> = Object.fromEntries(
  String(values['node-env'])
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const ARGS = process.argv.slice(2).join(' ');

const RUN_DIR = mkdtempSync(join(tmpdir(), 'chat-bench-'));
const LOG_FILE = join(RUN_DIR, 'bench.log');
const PROFILE_DIR = join(RUN_DIR, 'prof');
const log = (msg: string) => {
  const line = `[${new Date().toISOString().slice(11, 19)}] ${msg}`;
  process.stderr.write(`bench: ${line}\n`);
  appendFileSync(LOG_FILE, `${line}\n`);
};

const scopes = new Set<Scope>();

/** A set of processes stopped together (SIGKILL through the harness's cleanups). */
class Scope {
  readonly #fns: (() => unknown)[] = [];
  constructor() {
    scopes.add(this);
  }
  after(fn: () => unknown): void {
    this.#fns.push(fn);
  }
  async close(): Promise<void> {
    scopes.delete(this);
    for (const fn of this.#fns.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        log(`cleanup: ${(err as Error).message}`);
      }
    }
  }
}
const root = new Scope();

/** Problems seen (lost or duplicated messages, failed phases), with the logs that show them. */
const problems: string[] = [];
function problem(text: string, logs: readonly string[] = []): void {
  const kept = logs.map((f) => {
    const to = join(RUN_DIR, `${basename(dirname(f))}.log`);
    try {
      copyFileSync(f, to);
    } catch {
      return f;
    }
    return to;
  });
  const line = kept.length ? `${text} (logs: ${kept.join(', ')})` : text;
  problems.push(line);
  log(`PROBLEM: ${line}`);
}

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * Counters and histograms of the nodes' /metrics, summed over nodes, flattened to `key -> value` so the
 * run can take differences: `AS` for a counter, `AS|le` buckets, `AS|sum`, `AS|count`.
 */
async function nodeMetrics(
  nodes: readonly { httpUrl(path: string): string }[],
  wanted: readonly { name: string; as: string; labels?: Record<string, string>; histogram?: boolean }[],
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const add = (k: string, v: number) => (out[k] = (out[k] ?? 0) + v);
  for (const n of nodes) {
    const text = await (await fetch(n.httpUrl('/metrics'))).text();
    for (const w of wanted) {
      const labels = Object.entries(w.labels ?? {});
      for (const line of text.split('\n')) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!m) continue;
        const [, name = '', labelText = '', value = '0'] = m;
        if (!labels.every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue;
        if (!w.histogram && name === w.name) add(w.as, Number(value));
        else if (w.histogram && name === `${w.name}_bucket`)
          add(`${w.as}|${/le="([^"]+)"/.exec(labelText)?.[1] ?? ''}`, Number(value));
        else if (w.histogram && name === `${w.name}_sum`) add(`${w.as}|sum`, Number(value));
        else if (w.histogram && name === `${w.name}_count`) add(`${w.as}|count`, Number(value));
      }
    }
  }
  return out;
}

/** From flattened histogram differences: the bucket bound (ms) under which p50 and p99 fall, and the mean. */
function histogramStats(
  c: Record<string, number>,
  as: string,
): { count: number; mean: number; p50: string; p99: string } {
  const count = c[`${as}|count`] ?? 0;
  const bounds = Object.keys(c)
    .filter((k) => k.startsWith(`${as}|`) && !k.endsWith('|sum') && !k.endsWith('|count'))
    .map((k) => k.slice(as.length + 1))
    .filter((le) => le !== '+Inf')
    .sort((a, b) => Number(a) - Number(b));
  const at = (q: number) => {
    for (const b of bounds)
      if ((c[`${as}|${b}`] ?? 0) >= q * count) return `<= ${+(Number(b) * 1000).toFixed(1)}`;
    return `> ${+(Number(bounds.at(-1) ?? 0) * 1000).toFixed(1)}`;
  };
  return {
    count,
    mean: count > 0 ? ((c[`${as}|sum`] ?? 0) * 1000) / count : NaN,
    p50: count ? at(0.5) : 'n/a',
    p99: count ? at(0.99) : 'n/a',
  };
}

/** Garbage collection pauses (prom-client's default metrics), by kind. */
const GC_METRICS = (as: string) => [
  { name: 'nodejs_gc_duration_seconds', as: `${as}.major`, labels: { kind: 'major' }, histogram: true },
  { name: 'nodejs_gc_duration_seconds', as: `${as}.minor`, labels: { kind: 'minor' }, histogram: true },
  {
    name: 'nodejs_gc_duration_seconds',
    as: `${as}.incremental`,
    labels: { kind: 'incremental' },
    histogram: true,
  },
];

const BUS_METRICS = [
  { name: 'chat_node_bus_records_consumed_total', as: 'consumed', labels: { kind: 'message' } },
  { name: 'chat_node_bus_records_produced_total', as: 'produced', labels: { kind: 'message' } },
  { name: 'chat_node_bus_produce_duration_seconds', as: 'produce', histogram: true },
  { name: 'chat_node_delivery_latency_seconds', as: 'bus', labels: { path: 'bus' }, histogram: true },
  { name: 'chat_node_delivery_latency_seconds', as: 'local', labels: { path: 'local' }, histogram: true },
];

/** CPU ms per second of each process over a quiet window. */
async function idleWindow(
  pids: Record<string, number | undefined>,
  seconds: number,
): Promise<[string, number][]> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
  const t = performance.now();
  await delay(seconds * 1000);
  const secs = (performance.now() - t) / 1000;
  return Object.entries(pids).map(([k, p]) => [k, ((cpuSeconds(p) - (before[k] ?? 0)) * 1000) / secs]);
}

function raiseFdLimit(pid: number | undefined): void {
  if (pid !== undefined) spawnSync('prlimit', [`--pid=${pid}`, '--nofile=65536:65536']);
}

const f0 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(0));
const f1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(1));
const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(2));
const grouped = (x: number) => x.toLocaleString('en-US', { maximumFractionDigits: 0 });

type User = { id: string; group: number; site: number; url: string };

interface Measured {
  readonly name: string;
  readonly result?: LoadResult;
  /** CPU milliseconds used during the send and drain, by process. */
  readonly cpuMs: Record<string, number>;
  readonly loadgenCpuMs: number;
  /** Wall-clock seconds the CPU figures cover (send, drain). */
  readonly windowS: number;
  /** Counter deltas over the run (e.g. Kafka records). */
  readonly counters: Record<string, number>;
  /** Empty when every message reached its receiver exactly once. */
  readonly failure: string;
}

interface RunOptions {
  readonly name: string;
  readonly protocol: 'chat' | 'socketio';
  readonly users: readonly User[];
  readonly rate: number;
  readonly seconds: number;
  readonly localShare: number;
  readonly drainMs?: number;
  /** Processes whose CPU is counted (not the load generator's). */
  readonly pids: Record<string, number | undefined>;
  /** Read before and after the run; the report gets the differences. */
  readonly counters?: () => Promise<Record<string, number>>;
  /** Resolves once every connected user is known where it is. */
  readonly settled?: ((users: readonly User[]) => Promise<void>) | undefined;
  /** Logs to keep when the run fails. */
  readonly logs?: readonly string[];
  /** Over-capacity runs (saturation) report loss as a result, not as a problem. */
  readonly lossExpected?: boolean;
}

/** One load generator process (loadgen.ts) over IPC: connect, settle, measure, check exactly-once. */
async function runLoad(o: RunOptions): Promise<Measured> {
  const gen = fork(join(repoRoot, 'test/src/bench/loadgen.ts'), [], {
    execArgv: ['--conditions=source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  raiseFdLimit(gen.pid);
  const inbox: { type: string; result?: LoadResult; error?: string }[] = [];
  const waiters: (() => void)[] = [];
  gen.on('message', (m: { type: string }) => {
    inbox.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => gen.once('exit', resolve));
  void exited.then(() => {
    for (const w of waiters.splice(0)) w();
  });
  const next = async (type: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = inbox.find((x) => x.type === type || x.type === 'error');
      if (m?.type === 'error') throw new Error(m.error);
      if (m) return m;
      if (gen.exitCode !== null) throw new Error(`load generator exited ${gen.exitCode}`);
      if (Date.now() > deadline) throw new Error(`no ${type} from the load generator in time`);
      await Promise.race([new Promise<void>((r) => waiters.push(r)), delay(1000)]);
    }
  };
  const drainMs = o.drainMs ?? 10_000;
  const pids = Object.fromEntries(Object.entries(o.pids).filter(([, pid]) => pid !== undefined));
  const plan: LoadPlan = {
    protocol: o.protocol,
    users: o.users,
    rate: o.rate,
    durationMs: o.seconds * 1000,
    localShare: o.localShare,
    drainMs,
  };
  try {
    gen.send(plan);
    await next('connected', 120_000);
    await o.settled?.(o.users);
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
    const genBefore = cpuSeconds(gen.pid);
    const countersBefore = (await o.counters?.()) ?? {};
    const t0 = performance.now();
    gen.send('start');
    const { result } = await next('result', (o.seconds + 30) * 1000 + drainMs);
    if (!result) throw new Error('no result');
    const loadgenCpuMs = (cpuSeconds(gen.pid) - genBefore) * 1000;
    // Nodes that read records they do not deliver (the seed design) may still be reading: the window
    // (CPU and counters) closes once the records read stop moving (checked every 500 ms, at most 10 s).
    let countersAfter: Record<string, number> = {};
    if (o.counters) {
      countersAfter = await o.counters();
      for (let i = 0; i < 20; i++) {
        await delay(500);
        const now = await o.counters();
        const still = now.consumed === countersAfter.consumed;
        countersAfter = now;
        if (still) break;
      }
    }
    const cpuMs = Object.fromEntries(
      Object.entries(pids).map(([k, pid]) => [k, (cpuSeconds(pid) - (before[k] ?? 0)) * 1000]),
    );
    const windowS = (performance.now() - t0) / 1000;
    const counters = Object.fromEntries(
      Object.entries(countersAfter).map(([k, v]) => [k, v - (countersBefore[k] ?? 0)]),
    );
    const errs = Object.entries(result.errors)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const failure =
      result.missing > 0 || result.duplicates > 0 || result.delivered !== result.sent
        ? `sent ${result.sent}, delivered ${result.delivered}, missing ${result.missing}, duplicates ${result.duplicates}${errs ? `, answers: ${errs}` : ''}`
        : '';
    log(
      `${o.name}: sent ${result.sent} (${result.sentCross} cross-node), delivered ${result.delivered}, ${result.deliveredPerSec.toFixed(0)}/s, local p50/p99 ${f2(result.local.p50)}/${f2(result.local.p99)} ms, cross ${f2(result.cross.p50)}/${f2(result.cross.p99)} ms${failure ? ` -- ${failure}` : ''}`,
    );
    if (failure && !o.lossExpected) problem(`${o.name}: ${failure}`, o.logs);
    return { name: o.name, result, cpuMs, loadgenCpuMs, windowS, counters, failure };
  } catch (err) {
    const failure = `failed: ${(err as Error).message}`;
    problem(`${o.name}: ${failure}`, o.logs);
    return { name: o.name, cpuMs: {}, loadgenCpuMs: 0, windowS: 0, counters: {}, failure };
  } finally {
    if (gen.exitCode === null) gen.kill('SIGKILL');
    await exited;
  }
}

const readyz = async (n: NodeProcess) =>
  (await (await fetch(n.httpUrl('/readyz'))).json()) as {
    ready: boolean;
    ownerTableVersion: string;
    shardsOwned: number;
  };

/** Every node ready, one owner table, every shard owned once (by the table; seed nodes read them all). */
async function nodesSettled(nodes: NodeProcess[], shards: number) {
  await pollUntil(
    async () => {
      const all = await Promise.all(nodes.map(readyz));
      const owned = all.reduce((s, r) => s + r.shardsOwned, 0);
      return (
        all.every((r) => r.ready && r.ownerTableVersion === all[0]?.ownerTableVersion) && owned === shards
      );
    },
    { timeoutMs: 90_000, intervalMs: 250, what: `${nodes.length} nodes agreeing on the owner table` },
  );
}

/**
 * Waits until, for every user, one node other than its own sees it there (presence has crossed the bus),
 * so that no cross-node send is answered `offline` for want of presence.
 */
async function presenceSettled(
  nodes: NodeProcess[],
  siteNode: (site: number) => NodeProcess,
  list: readonly User[],
) {
  let k = 0;
  const checks = list.map((u) => {
    const owner = siteNode(u.site);
    const others = nodes.filter((n) => n !== owner);
    return { u, owner, other: others[k++ % Math.max(1, others.length)] };
  });
  let waiting = checks.filter((c) => c.other !== undefined);
  await pollUntil(
    async () => {
      const still: typeof waiting = [];
      for (let i = 0; i < waiting.length; i += 100) {
        const chunk = waiting.slice(i, i + 100);
        const seen = await Promise.all(
          chunk.map(async (c) => (await c.other?.presence(c.u.id))?.remoteNodes.includes(c.owner.nodeId)),
        );
        chunk.forEach((c, j) => !seen[j] && still.push(c));
      }
      waiting = still;
      return waiting.length === 0;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'presence of every user on another node' },
  );
}

const nodeEnv = (kafka: string, prefix: string, mode: 'local-first' | 'seed') => ({
  CHAT_KAFKA_BROKERS: kafka,
  CHAT_KAFKA_TOPIC_PREFIX: prefix,
  CHAT_LOG_LEVEL: 'warn',
  CHAT_NODE_DELIVERY_MODE: mode,
  // A benchmark measures the data path, not the per-connection rate limit.
  CHAT_NODE_RATE_PER_SEC: '100000',
  CHAT_NODE_RATE_BURST: '1000000',
  CHAT_NODE_MAX_CONNECTIONS_PER_USER: '10',
  ...NODE_ENV,
});

/** The cluster's shard count as the nodes see it (CHAT_CLUSTER_SHARDS, its default unless `--node-env` sets it). */
const SHARDS = Number(NODE_ENV.CHAT_CLUSTER_SHARDS ?? nodeConfigSchema.clusterShards.default);

// ---------------------------------------------------------------------------------------------------
// 1. Scale-out

interface ScaleRow {
  readonly nodes: number;
  readonly mode: 'local-first' | 'seed';
  readonly m: Measured;
  readonly startupS: number;
  /** The nodes' CPU with no clients (ms per second, all nodes together). */
  readonly idleMsPerS: number;
}

async function scaleOut(kafka: string): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  for (const n of SCALE_NODES) {
    for (const mode of ['local-first', 'seed'] as const) {
      const scope = new Scope();
      const t0 = Date.now();
      const prefix = `bench-scale-${mode}-${n}-${Date.now()}`;
      try {
        const env = nodeEnv(kafka, prefix, mode);
        const nodes = await Promise.all(
          Array.from({ length: n }, (_, i) => startNode(scope, { nodeId: `s${n}${mode[0]}${i + 1}`, env })),
        );
        await nodesSettled(nodes, SHARDS);
        const startupS = (Date.now() - t0) / 1000;
        const pids = Object.fromEntries(nodes.map((x) => [x.nodeId, x.child.pid]));
        const userList = (tag: string): User[] =>
          nodes.flatMap((node, site) =>
            Array.from({ length: SCALE_USERS }, (_, j) => {
              const id = `${tag}${site}x${j}`;
              return { id, group: site, site, url: node.wsUrl(id) };
            }),
          );
        const common = {
          protocol: 'chat' as const,
          rate: SCALE_RATE,
          localShare: 0,
          pids,
          counters: () => nodeMetrics(nodes, BUS_METRICS),
          settled:
            mode === 'seed'
              ? undefined
              : (l: readonly User[]) => presenceSettled(nodes, (s) => nodes[s] ?? nodes[0]!, l),
          logs: nodes.map((x) => x.logFile),
        };
        // Warm-up (not reported): JIT, fetch sessions, the first records of each partition.
        await runLoad({
          ...common,
          name: `scale ${n} ${mode} warm-up`,
          users: userList('w'),
          seconds: 2,
          drainMs: 5000,
          lossExpected: true,
        });
        const m = await runLoad({
          ...common,
          name: `scale-out ${n} nodes, ${mode}`,
          users: userList('m'),
          seconds: SCALE_SECONDS,
        });
        // The same nodes with no clients (warm, after the run): what "above idle" takes off.
        await delay(2000);
        const idleMsPerS = (await idleWindow(pids, 3)).reduce((sum, [, v]) => sum + v, 0);
        rows.push({ nodes: n, mode, m, startupS, idleMsPerS });
      } catch (err) {
        problem(`scale-out ${n} nodes ${mode}: ${(err as Error).message.split('\n')[0]}`);
        rows.push({
          nodes: n,
          mode,
          m: {
            name: '',
            cpuMs: {},
            loadgenCpuMs: 0,
            windowS: 0,
            counters: {},
            failure: `failed: ${(err as Error).message.split('\n')[0]}`,
          },
          idleMsPerS: NaN,
          startupS: (Date.now() - t0) / 1000,
        });
      } finally {
        await scope.close();
      }
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  const durations: [string, number][] = [];
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    log(`phase: ${name}`);
    try {
      return await fn();
    } finally {
      durations.push([name, (Date.now() - t) / 1000]);
    }
  };
  const load0 = loadavg()[0] ?? 0;
  log(`run directory ${RUN_DIR}; load average at start ${load0.toFixed(2)}`);
  ensureRedis();
  const broker = await phase('Kafka broker start', () => KafkaBroker.start({ log }));
  root.after(() => broker.dispose());
  const kafka = broker.brokers;

  // 1. Scale-out.
  const scale = await phase(`1. scale-out (${SCALE_NODES.join(', ')} nodes, ours and seed)`, () =>
    scaleOut(kafka),
  );

  // The comparison cluster: two nodes (node l1 under --cpu-prof) and a router; Socket.IO + Redis; relay.
  const cluster = new Scope();
  const prefix = `bench-lat-${Date.now()}`;
  const env = nodeEnv(kafka, prefix, 'local-first');
  const { nodes, router, io, redis, relay } = await phase('cluster and peers start', async () => {
    const nodes = await Promise.all(
      ['l1', 'l2'].map((id) =>
        startNode(cluster, {
          nodeId: id,
          env,
          ...(id === 'l1'
            ? { nodeFlags: ['--cpu-prof', '--cpu-prof-interval=5000', `--cpu-prof-dir=${PROFILE_DIR}`] }
            : {}),
        }),
      ),
    );
    const router = await startRouter(cluster, {
      CHAT_KAFKA_BROKERS: kafka,
      CHAT_KAFKA_TOPIC_PREFIX: prefix,
      CHAT_LOG_LEVEL: 'warn',
      CHAT_ROUTER_AFFINITY_QUERY: 'true',
      CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '1000000',
      CHAT_CLUSTER_SHARDS: String(SHARDS),
    });
    for (const p of [...nodes.map((n) => n.child.pid), router.child.pid]) raiseFdLimit(p);
    await nodesSettled(nodes, SHARDS);
    await pollUntil(async () => (await router.members()).ringSize === 2, {
      timeoutMs: 30_000,
      what: 'both nodes in the router ring',
    });
    const redisPort = await freePort();
    const redis: ChildProcess = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    cluster.after(() => redis.kill('SIGTERM'));
    await pollUntil(() => portInUse(redisPort), { timeoutMs: 10_000, what: 'redis-server listening' });
    const io = await Promise.all(
      [0, 1].map((i) =>
        forkService(cluster, `socketio-${i}`, 'test/src/bench/peers/socketio-server.ts', {
          CHAT_BENCH_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        }),
      ),
    );
    for (const s of io) raiseFdLimit(s.child.pid);
    const relay = await forkService(cluster, 'ws-relay', 'test/src/bench/peers/ws-relay.ts', {});
    raiseFdLimit(relay.child.pid);
    return { nodes, router, io, redis, relay };
  });
  const [l1, l2] = nodes as [NodeProcess, NodeProcess];
  const logs = [l1.logFile, l2.logFile, router.logFile];

  // 2. Idle CPU: no clients, a fixed window, after a few seconds of quiet.
  const idlePids: Record<string, number | undefined> = {
    router: router.child.pid,
    'node l1 (under --cpu-prof)': l1.child.pid,
    'node l2': l2.child.pid,
    'Kafka broker (JVM)': broker.pid,
    'socket.io 1': io[0]?.child.pid,
    'socket.io 2': io[1]?.child.pid,
    'redis-server': redis.pid,
    'ws relay': relay.child.pid,
  };
  const idleCpu = await phase(`2. idle CPU (${IDLE_WINDOW} s window)`, async () => {
    await delay(3000);
    return idleWindow(idlePids, IDLE_WINDOW);
  });

  // 3. Latency and the cluster's CPU per message.
  const owners = new Map<number, string>();
  const keys = Array.from({ length: GROUPS }, (_, g) => `g${g}`);
  (await router.lookup(keys)).forEach((o, g) => owners.set(g, o ?? ''));
  const siteOf = (g: number) => (owners.get(g) === 'l1' ? 0 : 1);
  const nodeOfSite = (s: number) => (s === 0 ? l1 : l2);
  let runNo = 0;
  const usersFor = (url: (id: string, g: number) => string): User[] => {
    runNo++;
    return Array.from({ length: USERS }, (_, i) => {
      const id = `r${runNo}u${i}`;
      const group = i % GROUPS;
      return { id, group, site: siteOf(group), url: url(id, group) };
    });
  };
  const settled = (l: readonly User[]) => presenceSettled(nodes, nodeOfSite, l);
  const oursPids = {
    router: router.child.pid,
    'node l1': l1.child.pid,
    'node l2': l2.child.pid,
    'Kafka broker': broker.pid,
  };
  const ioPids = {
    'socket.io 1': io[0]?.child.pid,
    'socket.io 2': io[1]?.child.pid,
    'redis-server': redis.pid,
  };
  const routerAdmin = { httpUrl: (path: string) => `http://127.0.0.1:${router.adminPort}${path}` };
  const kafkaCounters = async () => ({
    ...(await nodeMetrics(nodes, [...BUS_METRICS, ...GC_METRICS('ngc')])),
    ...(await nodeMetrics([routerAdmin], GC_METRICS('rgc'))),
  });
  const latency = await phase('3. latency and cluster CPU', async () => {
    const out: { rate: number; router: Measured; direct: Measured; io: Measured }[] = [];
    await runLoad({
      name: 'warm-up (router)',
      protocol: 'chat',
      users: usersFor((id, g) => router.wsUrl(id, `affinity=g${g}`)),
      rate: RATES[0] ?? 2000,
      seconds: 3,
      localShare: LOCAL_SHARE,
      drainMs: 5000,
      pids: {},
      settled,
      logs,
      lossExpected: true,
    });
    for (const rate of RATES) {
      const common = {
        protocol: 'chat' as const,
        rate,
        seconds: SECONDS,
        localShare: LOCAL_SHARE,
        settled,
        logs,
        counters: kafkaCounters,
      };
      const viaRouter = await runLoad({
        ...common,
        name: `ours via router at ${rate}/s`,
        users: usersFor((id, g) => router.wsUrl(id, `affinity=g${g}`)),
        pids: oursPids,
      });
      const direct = await runLoad({
        ...common,
        name: `ours straight to the owners at ${rate}/s`,
        users: usersFor((id, g) => `ws://127.0.0.1:${nodeOfSite(siteOf(g)).port}/chat/${id}?affinity=g${g}`),
        pids: { ...oursPids, router: undefined },
      });
      const sio = await runLoad({
        name: `Socket.IO + Redis at ${rate}/s`,
        protocol: 'socketio',
        rate,
        seconds: SECONDS,
        localShare: LOCAL_SHARE,
        users: usersFor((_id, g) => `http://127.0.0.1:${String(io[siteOf(g)]?.ready.port)}`),
        pids: ioPids,
      });
      out.push({ rate, router: viaRouter, direct, io: sio });
    }
    return out;
  });

  // 4. Saturation: one node, local messages only, next to the bare ws relay; doubling-ish steps.
  const saturation = await phase('4. one-node saturation (local) and ws relay', async () => {
    const l1Groups = [...owners]
      .filter(([, o]) => o === 'l1')
      .map(([g]) => g)
      .slice(0, 20);
    const satUsers = (url: (id: string, g: number) => string): User[] => {
      runNo++;
      return Array.from({ length: 200 }, (_, i) => {
        const id = `r${runNo}u${i}`;
        const group = l1Groups[i % l1Groups.length] ?? 0;
        return { id, group, site: 0, url: url(id, group) };
      });
    };
    const steps = async (
      system: string,
      url: (id: string, g: number) => string,
      pids: Record<string, number | undefined>,
    ) => {
      const rows: { rate: number; m: Measured }[] = [];
      for (const rate of SAT_RATES) {
        const m = await runLoad({
          name: `${system} at ${rate}/s (local)`,
          protocol: 'chat',
          users: satUsers(url),
          rate,
          seconds: SAT_SECONDS,
          localShare: 1,
          drainMs: 5000,
          pids,
          lossExpected: true,
        });
        rows.push({ rate, m });
        if (!m.result || m.failure || m.result.deliveredPerSec < rate * 0.95 || m.result.p99 > 250) break;
      }
      return rows;
    };
    const ours = await steps('node l1', (id, g) => `ws://127.0.0.1:${l1.port}/chat/${id}?affinity=g${g}`, {
      'node l1': l1.child.pid,
    });
    const bare = await steps('ws relay', (id) => `ws://127.0.0.1:${String(relay.ready.port)}/chat/${id}`, {
      relay: relay.child.pid,
    });
    return { ours, bare };
  });

  // Node l1 ran under --cpu-prof through phases 3 and 4; a graceful stop writes the profile.
  l1.child.kill('SIGTERM');
  await Promise.race([l1.exited, delay(30_000)]);
  const profileFile = (() => {
    try {
      return readdirSync(PROFILE_DIR).find((f) => f.endsWith('.cpuprofile'));
    } catch {
      return undefined;
    }
  })();
  const profile = profileFile ? summariseProfile(join(PROFILE_DIR, profileFile)) : undefined;
  await cluster.close();

  // 5. Idle memory per connection: fresh processes under the inspector (forced GC), each measured once.
  const memory = await phase(`5. idle memory (${IDLE} connections)`, () => idleMemory(kafka));

  await root.close();
  const totalS = (Date.now() - started) / 1000;
  const load1 = loadavg()[0] ?? 0;
  log(`done in ${totalS.toFixed(0)} s; load average at the end ${load1.toFixed(2)}`);

  // ---- The report.
  const lines: string[] = [];
  const cmd = `pnpm bench${ARGS ? ` ${ARGS}` : ''}`;
  const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
    .stdout.trim()
    .split(' ')
    .slice(0, 3)
    .join(' ');
  const perMsgUs = (m: Measured, keysOf: (k: string) => boolean) =>
    m.result
      ? (Object.entries(m.cpuMs)
          .filter(([k]) => keysOf(k))
          .reduce((s, [, v]) => s + v, 0) *
          1000) /
        Math.max(1, m.result.delivered)
      : NaN;
  const status = (m: Measured) => (m.failure ? `**${m.failure}**` : 'exactly once');
  lines.push(
    '# Benchmarks',
    '',
    '<!-- Written by `pnpm bench` (test/src/bench/run.ts) from one run; edit the harness, not this file. -->',
    '',
    `Command: \`${cmd}\`, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${totalS.toFixed(0)} s in all (${durations.map(([n, s]) => `${n.replace(/^\d\. /, '')} ${s.toFixed(0)} s`).join('; ')}).`,
    '',
    `Machine: nproc ${cpus().length} (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, Apache Kafka ${await kafkaVersion()} (one broker, KRaft, acks=all), ${redisVersion}; ${SHARDS} shards. Shared with other work: load average ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end. Every process (load generator, services, broker) shares the same cores, no pinning; 127.0.0.1 only; authentication off (it costs only at connect). CPU is user+system time from /proc/PID/stat over the measured window (send and drain).`,
    '',
  );

  const summaryAt = lines.length;

  // 1.
  lines.push(
    '## 1. Scale-out: Kafka records read per cross-node message',
    '',
    `Every message crosses nodes (sender and receiver on different nodes), ${SCALE_USERS} users per node connected straight to the node that owns their shard (no router: this isolates the nodes), ${grouped(SCALE_RATE)} msgs/s for ${SCALE_SECONDS} s after a 2 s warm-up, fresh node processes and topics for each row. Records read = the sum over nodes of \`chat_node_bus_records_consumed_total{kind="message"}\` over the run, divided by the cross-node messages sent. Node CPU = the nodes' CPU summed, per delivered message; "above idle" first takes off what the same nodes used with no clients (a 3 s window starting 2 s after the measured run, once its clients are gone; shown), since kafkajs fetch loops cost CPU at any rate. Seed = \`CHAT_NODE_DELIVERY_MODE=seed\` on the same number of node processes (every node reads every shard; every message goes through Kafka).`,
    '',
    '| Nodes | Design | Cross-node msgs sent | Records read per cross-node msg | Records produced per msg | Node CPU µs per delivered msg | above idle | Nodes idle CPU ms/s | Cross-node p50 / p99 ms | Delivery | Start-up s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of scale) {
    const res = r.m.result;
    lines.push(
      `| ${r.nodes} | ${r.mode === 'seed' ? 'seed' : 'ours (shards)'} | ${res ? grouped(res.sentCross) : '-'} | ${res ? f2((r.m.counters.consumed ?? NaN) / Math.max(1, res.sentCross)) : '-'} | ${res ? f2((r.m.counters.produced ?? NaN) / Math.max(1, res.sent)) : '-'} | ${res ? f0(perMsgUs(r.m, () => true)) : '-'} | ${res ? f0(perMsgUs(r.m, () => true) - (r.idleMsPerS * r.m.windowS * 1000) / Math.max(1, res.delivered)) : '-'} | ${f0(r.idleMsPerS)} | ${res ? `${f2(res.cross.p50)} / ${f2(res.cross.p99)}` : '-'} | ${status(r.m)} | ${f0(r.startupS)} |`,
    );
  }
  const oursReads = scale
    .filter((r) => r.mode === 'local-first' && r.m.result)
    .map((r) => (r.m.counters.consumed ?? NaN) / Math.max(1, r.m.result?.sentCross ?? 0));
  const seedReads = scale
    .filter((r) => r.mode === 'seed' && r.m.result)
    .map(
      (r) =>
        `${r.nodes} nodes ${f2((r.m.counters.consumed ?? NaN) / Math.max(1, r.m.result?.sentCross ?? 0))}`,
    );
  lines.push(
    '',
    `Ours: ${oursReads.map(f2).join(', ')} records read per cross-node message (target 1.0 +-0.05: ${oursReads.length === SCALE_NODES.length && oursReads.every((x) => Math.abs(x - 1) <= 0.05) ? 'met at every N' : '**not met**'}); seed: ${seedReads.join(', ')}.`,
    '',
  );

  // 3. Latency.
  lines.push(
    '## 2. Latency, local and cross-node apart',
    '',
    `${grouped(USERS)} users in ${GROUPS} affinity groups on 2 nodes (a group's users on one node: the router places them by owner(shard(group)); Socket.IO gets the same placement on its 2 servers), ${(LOCAL_SHARE * 100).toFixed(0)}% of messages within a group (local), the rest to a user on the other node/server (cross-node). Open loop for ${SECONDS} s at each rate, one load generator process; time from the sender's \`ws.send\` to the receiver's socket, one clock. A 3 s warm-up through the router first, not reported. Every run checked exactly-once delivery.`,
    '',
    '| Rate msgs/s | System | Local p50 / p99 ms | Cross-node p50 / p99 ms | Cross-node p99.9 ms | Delivered msgs/s | Delivery |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  const latRow = (rate: number, sys: string, m: Measured) => {
    const r = m.result;
    return `| ${grouped(rate)} | ${sys} | ${r ? `${f2(r.local.p50)} / ${f2(r.local.p99)}` : '-'} | ${r ? `${f2(r.cross.p50)} / ${f2(r.cross.p99)}` : '-'} | ${r ? f2(r.cross.p999) : '-'} | ${r ? f0(r.deliveredPerSec) : '-'} | ${status(m)} |`;
  };
  for (const l of latency) {
    lines.push(
      latRow(l.rate, 'ours, through the router', l.router),
      latRow(l.rate, 'ours, straight to the owners', l.direct),
      latRow(l.rate, 'Socket.IO + Redis adapter', l.io),
    );
  }
  lines.push('');
  for (const l of latency) {
    const ours = l.router.result?.cross;
    const oursD = l.direct.result?.cross;
    const sio = l.io.result?.cross;
    lines.push(
      `- ${grouped(l.rate)} msgs/s, cross-node p99: ours through the router ${f2(ours?.p99)} ms (x${f2((ours?.p99 ?? NaN) / (sio?.p99 ?? NaN))} Socket.IO), straight ${f2(oursD?.p99)} ms (x${f2((oursD?.p99 ?? NaN) / (sio?.p99 ?? NaN))}), Socket.IO + Redis ${f2(sio?.p99)} ms.`,
    );
  }
  lines.push(
    '',
    "One cross-node message's time in ours, from the nodes' histograms over the same runs (bucket bounds, ms): produce = the origin node handing the record to kafkajs until the broker's ack (acks=all); bus path = the origin's receive time to the owner writing it to the receiver's socket (two clocks of one machine), which covers produce, the broker, the owner's fetch and delivery; end to end = the load generator's figure, which adds the client sockets (and the router).",
    '',
    '| Rate msgs/s | Run | Produce p50 / p99 / mean | Bus path p50 / p99 / mean | Bus path - produce, mean (broker hand-off, fetch, delivery) | End to end p50 / p99 | Local path in the node p99 |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const l of latency) {
    for (const [run, m] of [
      ['through the router', l.router],
      ['straight to the owners', l.direct],
    ] as const) {
      const pr = histogramStats(m.counters, 'produce');
      const bus = histogramStats(m.counters, 'bus');
      const loc = histogramStats(m.counters, 'local');
      lines.push(
        `| ${grouped(l.rate)} | ${run} | ${pr.p50} / ${pr.p99} / ${f1(pr.mean)} | ${bus.p50} / ${bus.p99} / ${f1(bus.mean)} | ${f1(bus.mean - pr.mean)} | ${f2(m.result?.cross.p50)} / ${f2(m.result?.cross.p99)} | ${loc.p99} |`,
      );
    }
  }
  lines.push(
    '',
    "Garbage collection in the same runs (prom-client's `nodejs_gc_duration_seconds`, summed over the window): pause time per second of run, and the bucket under which 99% of pauses fall. A pause stops every socket of the process, so it lands in the latency tail of whatever was in flight.",
    '',
    '| Rate msgs/s | Run | Router GC ms/s (major / minor / incremental) | Router pause p99 | Nodes GC ms/s, both (major / minor / incremental) | Nodes pause p99 |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  const gcRow = (m: Measured, as: string) => {
    const kinds = ['major', 'minor', 'incremental'].map((k) => histogramStats(m.counters, `${as}.${k}`));
    const perS = kinds
      .map((k) => f1((k.count ? k.mean * k.count : 0) / Math.max(1e-9, m.windowS)))
      .join(' / ');
    const worst = kinds.map((k) => k.p99).join(' / ');
    return `${perS} | ${worst}`;
  };
  for (const l of latency) {
    for (const [run, m] of [
      ['through the router', l.router],
      ['straight to the owners', l.direct],
    ] as const) {
      lines.push(`| ${grouped(l.rate)} | ${run} | ${gcRow(m, 'rgc')} | ${gcRow(m, 'ngc')} |`);
    }
  }
  lines.push('');

  // 4. CPU per 1,000 messages.
  const per1k = (m: Measured) =>
    Object.entries(m.cpuMs).map(
      ([k, v]) => [k, (v * 1000) / Math.max(1, m.result?.delivered ?? 0)] as [string, number],
    );
  const sum = (xs: [string, number][], keep: (k: string) => boolean = () => true) =>
    xs.filter(([k]) => keep(k)).reduce((s, [, v]) => s + v, 0);
  const idleOf = (names: string[], m: Measured) =>
    (idleCpu.filter(([k]) => names.some((n) => k.startsWith(n))).reduce((s, [, v]) => s + v, 0) *
      m.windowS *
      1000) /
    Math.max(1, m.result?.delivered ?? 0);
  lines.push(
    `## 3. The whole cluster's CPU per 1,000 messages (${((1 - LOCAL_SHARE) * 100).toFixed(0)}% cross-node)`,
    '',
    `From the latency runs above (ours through the router), over each run's measured window (send and drain). Every process of each system counted: router, both nodes and the Kafka broker's JVM for ours; both Socket.IO servers and redis-server for Socket.IO. The load generator is not counted (shown apart). Node l1 ran under \`--cpu-prof\` at a 5 ms sampling interval, node l2 did not. The per-process "idle" and the idle burn column are what the same processes use with no traffic at all (the idle CPU below, times the window), included in the figures.`,
    '',
    '| Rate msgs/s | System | CPU ms per 1,000 msgs, by process | Total | Total without the router | Of the total, idle burn | Load generator | Kafka records per msg (produced / read) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  const cpuSummary: {
    rate: number;
    ours: number;
    oursNoRouter: number;
    sio: number;
    broker: number;
    recPerMsg: number;
    nodes: number;
    servers: number;
    idleOurs: number;
  }[] = [];
  for (const l of latency) {
    const ours = per1k(l.router);
    const sio = per1k(l.io);
    const rec = l.router.counters;
    const delivered = Math.max(1, l.router.result?.delivered ?? 0);
    const gen = (m: Measured) => f0((m.loadgenCpuMs * 1000) / Math.max(1, m.result?.delivered ?? 0));
    const byProcess = (xs: [string, number][], m: Measured) =>
      xs.map(([k, v]) => `${k} ${f0(v)} (idle ${f0(idleOf([k], m))})`).join(', ');
    lines.push(
      `| ${grouped(l.rate)} | ours | ${byProcess(ours, l.router)} | **${f0(sum(ours))}** | **${f0(sum(ours, (k) => k !== 'router'))}** | ${f0(idleOf(['router', 'node l', 'Kafka'], l.router))} | ${gen(l.router)} | ${f2((rec.produced ?? NaN) / delivered)} / ${f2((rec.consumed ?? NaN) / delivered)} |`,
      `| ${grouped(l.rate)} | Socket.IO + Redis | ${byProcess(sio, l.io)} | **${f0(sum(sio))}** | (no router) | ${f0(idleOf(['socket.io', 'redis'], l.io))} | ${gen(l.io)} | - |`,
    );
    cpuSummary.push({
      rate: l.rate,
      ours: sum(ours),
      oursNoRouter: sum(ours, (k) => k !== 'router'),
      sio: sum(sio),
      broker: ours.find(([k]) => k === 'Kafka broker')?.[1] ?? NaN,
      recPerMsg: (rec.produced ?? NaN) / delivered,
      nodes: sum(ours, (k) => k.startsWith('node')),
      servers: sum(sio, (k) => k.startsWith('socket.io')),
      idleOurs: idleOf(['node l', 'Kafka'], l.router),
    });
  }
  lines.push('');
  for (const c of cpuSummary)
    lines.push(
      `- ${grouped(c.rate)} msgs/s: ours without the router / Socket.IO + Redis x${f2(c.oursNoRouter / c.sio)} (with the router x${f2(c.ours / c.sio)}); the broker ${f0(c.broker)} ms per 1,000 messages, ${f2(c.broker / c.recPerMsg)} ms per 1,000 records it carries. Where ours' extra goes (router aside): the nodes ${f0(c.nodes)} against the Socket.IO servers' ${f0(c.servers)}, the broker ${f0(c.broker)} against redis-server's ${f0(c.sio - c.servers)}; of ours, ${f0(c.idleOurs)} is what the nodes and the broker burn with no traffic.`,
    );
  lines.push('');

  // Saturation and idle CPU.
  const best = (rows: { rate: number; m: Measured }[]) =>
    Math.max(
      0,
      ...rows
        .filter(
          (r) =>
            r.m.result &&
            !r.m.failure &&
            r.m.result.deliveredPerSec >= r.rate * 0.95 &&
            r.m.result.p99 <= 250,
        )
        .map((r) => r.m.result?.deliveredPerSec ?? 0),
    );
  lines.push(
    '## 4. One node at saturation (local messages) and idle CPU',
    '',
    `200 users on one node (all in shards node l1 owns, straight to it) or on the bare \`ws\` relay (one process, a map from user to socket), every message local; offered rate stepped up, ${SAT_SECONDS} s each, until under 95% delivered, p99 over 250 ms, or a message not delivered within 5 s. Sustained = the highest delivered rate of a step that kept up. The load generator shares the 2 cores: its CPU is shown, because at the top it is the limit as much as the server.`,
    '',
    '| System | Offered msgs/s | Delivered msgs/s | p50 / p99 ms | Server CPU ms per 1,000 msgs | Load generator CPU % of a core | Outcome |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [sys, rows] of [
    ['node (ours)', saturation.ours],
    ['bare ws relay', saturation.bare],
  ] as const) {
    for (const r of rows) {
      const res = r.m.result;
      lines.push(
        `| ${sys} | ${grouped(r.rate)} | ${res ? f0(res.deliveredPerSec) : '-'} | ${res ? `${f2(res.p50)} / ${f2(res.p99)}` : '-'} | ${res ? f0(perMsgUs(r.m, () => true)) : '-'} | ${res ? f0(r.m.loadgenCpuMs / 10 / Math.max(0.001, res.seconds + 0.3)) : '-'} | ${r.m.failure ? r.m.failure : res && res.deliveredPerSec >= r.rate * 0.95 && res.p99 <= 250 ? 'kept up' : 'over capacity'} |`,
      );
    }
  }
  const so = best(saturation.ours);
  const sb = best(saturation.bare);
  lines.push(
    '',
    `Sustained: one node ${grouped(so)} msgs/s, bare ws relay ${grouped(sb)} msgs/s (node / relay x${f2(so / sb)}).${SAT_RATES.length && (saturation.bare.at(-1)?.rate ?? 0) === SAT_RATES.at(-1) && !saturation.bare.at(-1)?.m.failure ? ' The relay kept up at the highest step: its ceiling is above it.' : ''}`,
    '',
    `Idle CPU, no clients connected, over a ${IDLE_WINDOW} s window after 3 s of quiet (CPU ms per second = thousandths of a core):`,
    '',
    '| Process | Idle CPU ms/s |',
    '| --- | --- |',
    ...idleCpu.map(([k, v]) => `| ${k} | ${f1(v)} |`),
    '',
  );

  // Memory.
  const kib = (x: number) => (x > 0 ? `${f1(x / 1024)} KiB` : `n/a (fell by ${f1(-x / 1024)} KiB)`);
  lines.push(
    '## 5. Idle memory per connection',
    '',
    `Fresh processes (2 nodes, a router) started with \`--inspect=127.0.0.1:PORT\`; the harness attaches over the DevTools protocol and forces two full GCs (\`HeapProfiler.collectGarbage\`) before each reading, then takes RSS as the median of 5 samples 200 ms apart (/proc/PID/status) and the V8 heap in use (\`Runtime.getHeapUsage\`). Baseline before connecting, reading once all ${grouped(IDLE)} connections are open and idle for 2 s; per connection = (reading - baseline) / connections. Each process is measured once, from fresh, so nothing a previous phase left behind is freed in between (which is what made earlier runs report negative figures). RSS includes what glibc keeps after GC; the V8 heap figure is the JS objects alone.`,
    '',
    '| Path | Connected | Process | RSS per connection | V8 heap per connection |',
    '| --- | --- | --- | --- | --- |',
    ...memory.map(
      (r) => `| ${r.path} | ${r.connected} of ${IDLE} | ${r.process} | ${kib(r.rss)} | ${kib(r.heap)} |`,
    ),
    '',
  );

  if (profile) {
    lines.push(
      '## CPU profile of a node',
      '',
      'Node l1 ran under `--cpu-prof` through the latency and saturation phases; self time, idle left out.',
      '',
      '| Area | Share |',
      '| --- | --- |',
      ...profile.areas.map(([a, v]) => `| ${a} | ${v.toFixed(1)}% |`),
      '',
      '| Function | Share |',
      '| --- | --- |',
      ...profile.top.map(([f, v]) => `| \`${f}\` | ${v.toFixed(1)}% |`),
      '',
    );
  } else lines.push('(No CPU profile was written: node l1 did not stop gracefully.)', '');

  // The issue's targets next to this run's figures (read, not asserted).
  const yes = (ok: boolean) => (ok ? 'met' : '**not met**');
  const seedSeries = scale
    .filter((r) => r.mode === 'seed' && r.m.result)
    .map((r) => (r.m.counters.consumed ?? NaN) / Math.max(1, r.m.result?.sentCross ?? 0));
  const top = latency.find((l) => l.rate === 5000) ?? latency.at(-1);
  const cpu2k = cpuSummary.find((c) => c.rate === 2000) ?? cpuSummary[0];
  const p99 = (m: Measured | undefined) => m?.result?.cross.p99 ?? NaN;
  const summary = [
    '## Summary against issue 11',
    '',
    '| Figure | This run | Target |',
    '| --- | --- | --- |',
    `| Kafka records read per cross-node message, ours at ${SCALE_NODES.join(', ')} nodes | ${oursReads.map(f2).join(', ')} | 1.0 +-0.05: ${yes(oursReads.length === SCALE_NODES.length && oursReads.every((x) => Math.abs(x - 1) <= 0.05))} |`,
    `| The same, seed design | ${seedSeries.map(f2).join(', ')} | grows with N: ${yes(seedSeries.length > 1 && seedSeries.every((x, i) => i === 0 || x > (seedSeries[i - 1] ?? Infinity)))} |`,
    ...(top
      ? [
          `| Cross-node p99 at ${grouped(top.rate)} msgs/s: ours through the router / straight / Socket.IO + Redis | ${f2(p99(top.router))} / ${f2(p99(top.direct))} / ${f2(p99(top.io))} ms | at most 10 ms: ${yes(p99(top.router) <= 10)} through the router, ${yes(p99(top.direct) <= 10)} straight; at most 2x Socket.IO: ${yes(p99(top.router) <= 2 * p99(top.io))} through the router (x${f2(p99(top.router) / p99(top.io))}), ${yes(p99(top.direct) <= 2 * p99(top.io))} straight (x${f2(p99(top.direct) / p99(top.io))}) |`,
        ]
      : []),
    ...(cpu2k
      ? [
          `| Cluster CPU ms per 1,000 msgs at ${grouped(cpu2k.rate)} msgs/s, router aside / Socket.IO + Redis | ${f0(cpu2k.oursNoRouter)} / ${f0(cpu2k.sio)} (with the router ${f0(cpu2k.ours)}) | no more than Socket.IO + Redis: ${yes(cpu2k.oursNoRouter <= cpu2k.sio)} |`,
        ]
      : []),
    `| Messages lost or duplicated in measured runs | ${problems.length ? `${problems.length} problem(s), listed at the end` : 'none'} | none |`,
    '',
  ];
  lines.splice(summaryAt, 0, ...summary);

  lines.push(
    '## Problems seen in this run',
    '',
    ...(problems.length
      ? problems.map((p) => `- ${p}`)
      : ['None: every measured run delivered every message exactly once.']),
    '',
  );
  writeFileSync(resolve(repoRoot, OUT), lines.join('\n'));
  console.log(lines.join('\n'));
  log(`wrote ${OUT}; log ${LOG_FILE}`);
}

async function idleMemory(kafka: string) {
  const scope = new Scope();
  const rows: { path: string; process: string; connected: number; rss: number; heap: number }[] = [];
  try {
    const prefix = `bench-mem-${Date.now()}`;
    const ports = { m1: await freePort(), m2: await freePort(), router: await freePort() };
    const env = nodeEnv(kafka, prefix, 'local-first');
    const [m1, m2] = (await Promise.all(
      (['m1', 'm2'] as const).map((id) =>
        startNode(scope, { nodeId: id, env, nodeFlags: [`--inspect=127.0.0.1:${ports[id]}`] }),
      ),
    )) as [NodeProcess, NodeProcess];
    const routerSvc = await forkService(
      scope,
      'router-mem',
      'router/src/main.ts',
      {
        CHAT_ROUTER_PORT: '0',
        CHAT_ROUTER_ADMIN_PORT: '0',
        CHAT_KAFKA_BROKERS: kafka,
        CHAT_KAFKA_TOPIC_PREFIX: prefix,
        CHAT_LOG_LEVEL: 'warn',
        CHAT_ROUTER_AFFINITY_QUERY: 'true',
        CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '1000000',
      },
      60_000,
      [`--inspect=127.0.0.1:${ports.router}`],
    );
    const routerPort = Number(routerSvc.ready.port);
    const adminPort = Number(routerSvc.ready.adminPort);
    for (const p of [m1.child.pid, m2.child.pid, routerSvc.child.pid]) raiseFdLimit(p);
    await nodesSettled([m1, m2], SHARDS);
    await pollUntil(
      async () =>
        ((await (await fetch(`http://127.0.0.1:${adminPort}/members`)).json()) as { ringSize: number })
          .ringSize === 2,
      { timeoutMs: 30_000, what: 'both nodes in the memory router ring' },
    );
    const res = await fetch(`http://127.0.0.1:${adminPort}/lookup`, {
      method: 'POST',
      body: JSON.stringify({ keys: Array.from({ length: GROUPS }, (_, g) => `g${g}`) }),
    });
    const owners = ((await res.json()) as { nodes: (string | null)[] }).nodes;
    const groupOn = (id: string) =>
      owners
        .map((o, g) => [o, g] as const)
        .filter(([o]) => o === id)
        .map(([, g]) => g);
    const measure = async (
      path: string,
      targets: [string, number | undefined, number][],
      url: (id: string, i: number) => string,
    ) => {
      const inspectors = await Promise.all(targets.map(([, , port]) => Inspector.attach(port)));
      try {
        const before = await Promise.all(inspectors.map((ins, i) => ins.steady(targets[i]?.[1])));
        const gen = fork(join(repoRoot, 'test/src/bench/loadgen.ts'), [], {
          execArgv: ['--conditions=source', '--import', 'tsx'],
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        raiseFdLimit(gen.pid);
        const exited = new Promise((r) => gen.once('exit', r));
        const plan: LoadPlan = {
          protocol: 'chat',
          users: Array.from({ length: IDLE }, (_, i) => ({
            id: `${path[0]}idle${i}`,
            group: 0,
            site: 0,
            url: url(`${path[0]}idle${i}`, i),
          })),
          rate: 0,
          durationMs: 0,
          localShare: 0,
          drainMs: 0,
          wave: 500,
        };
        const connected = await new Promise<number>((resolve, reject) => {
          gen.on('message', (m: { type: string; error?: string; connected?: number }) => {
            if (m.type === 'connected') resolve(m.connected ?? 0);
            else if (m.type === 'error') reject(new Error(m.error));
          });
          gen.send(plan);
        });
        await delay(2000);
        const after = await Promise.all(inspectors.map((ins, i) => ins.steady(targets[i]?.[1])));
        gen.send('start');
        await Promise.race([exited, delay(20_000)]);
        if (gen.exitCode === null) gen.kill('SIGKILL');
        if (connected < IDLE) problem(`idle memory ${path}: ${connected} of ${IDLE} connected`);
        targets.forEach(([name], i) => {
          const n = Math.max(1, connected);
          const b = before[i];
          const a = after[i];
          if (!a || !b) return;
          log(
            `memory ${path} ${name}: RSS ${f1(b.rss / 2 ** 20)} -> ${f1(a.rss / 2 ** 20)} MiB, heap ${f1(b.heap / 2 ** 20)} -> ${f1(a.heap / 2 ** 20)} MiB, ${connected} connections`,
          );
          rows.push({
            path,
            process: name,
            connected,
            rss: (a.rss - b.rss) / n,
            heap: (a.heap - b.heap) / n,
          });
        });
      } finally {
        for (const ins of inspectors) ins.close();
      }
    };
    const g1 = groupOn('m1');
    const g2 = groupOn('m2');
    await measure(
      'straight to a node',
      [['node m1', m1.child.pid, ports.m1]],
      (id, i) => `ws://127.0.0.1:${m1.port}/chat/${id}?affinity=g${g1[i % g1.length] ?? 0}`,
    );
    await measure(
      'through the router',
      [
        ['router', routerSvc.child.pid, ports.router],
        ['node m2', m2.child.pid, ports.m2],
      ],
      (id, i) => `ws://127.0.0.1:${routerPort}/chat/${id}?affinity=g${g2[i % g2.length] ?? 0}`,
    );
  } catch (err) {
    problem(`idle memory: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await scope.close();
  }
  return rows;
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
}

/** Self time by area and the top functions of a V8 CPU profile (idle time left out). */
function summariseProfile(path: string): { areas: [string, number][]; top: [string, number][] } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const area = (url: string, fn: string): string => {
    if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)') return fn;
    if (url.includes('/ws/')) return 'ws (frames, sockets)';
    if (url.includes('kafkajs')) return 'kafkajs';
    if (url.includes('/zod/')) return 'zod (validation)';
    if (url.includes('prom-client')) return 'prom-client';
    if (url.includes('pino')) return 'pino';
    if (url.includes('/node/src/') || url.includes('/shared/src/')) return 'chat node code';
    if (url.startsWith('node:') || url === '') return 'Node.js runtime (net, streams, JSON, timers)';
    return 'other libraries';
  };
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)' || hits === 0) continue;
    total += hits;
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + hits);
    const key = `${functionName || '(anonymous)'} (${url.split('/').slice(-2).join('/') || 'native'}:${lineNumber + 1})`;
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
  }
  const share = (m: Map<string, number>, k: number) =>
    [...m]
      .sort((x, y) => y[1] - x[1])
      .slice(0, k)
      .map(([name, hits]) => [name, (100 * hits) / Math.max(1, total)] as [string, number]);
  return { areas: share(byArea, 8), top: share(byFn, 10) };
}

/** redis-server for the Socket.IO peer: Debian's package, installed when missing and we are root. */
function ensureRedis(): void {
  if (spawnSync('redis-server', ['--version']).status === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error('redis-server is needed for the Socket.IO peer: apt-get install redis-server');
  log("installing Debian's redis-server");
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'],
  ]) {
    const r = spawnSync('apt-get', args, {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed`);
  }
}

async function closeAll(): Promise<void> {
  for (const s of [...scopes].reverse()) await s.close();
}

// Hard bound on the whole run: whatever hangs, every process is stopped.
const HARD_LIMIT_MS = 20 * 60_000;
const watchdog = setTimeout(() => {
  log('hard time limit reached: stopping everything');
  void closeAll().finally(() => process.exit(2));
}, HARD_LIMIT_MS);
watchdog.unref();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    log(`${signal}: stopping everything`);
    void closeAll().finally(() => process.exit(130));
  });
try {
  await main();
} finally {
  await closeAll();
  log(`log: ${LOG_FILE}`);
}
