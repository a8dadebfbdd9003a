// `pnpm bench`: the benchmark harness. Bounded loads on loopback, the peers side by side, one table in
// docs/benchmarks.md. A script, not a test:
//   pnpm bench [--users 2000] [--rate 2000] [--seconds 10] [--local-share 0.8] [--idle 10000]
// Every scenario runs the same workload from a load generator process of its own (loadgen.ts) and checks
// that every message reached its receiver exactly once; a scenario that loses or duplicates fails the run.
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { forkService, startNode, type NodeProcess } from '../harness/node-process.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { KafkaBroker } from '../kafka/broker.js';
import { kafkaVersion } from '../kafka/maven.js';
import { freePort, portInUse } from '../net.js';
import { pollUntil } from '../poll.js';
import { repoRoot } from '../paths.js';
import type { LoadPlan, LoadResult } from './loadgen.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '10' },
    'local-share': { type: 'string', default: '0.8' },
    idle: { type: 'string', default: '10000' },
    groups: { type: 'string', default: '100' },
  },
});
const USERS = Number(values.users);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const LOCAL_SHARE = Number(values['local-share']);
const IDLE = Number(values.idle);
const GROUPS = Number(values.groups);

const PROFILE_DIR = mkdtempSync(join(tmpdir(), 'chat-bench-prof-'));
const cleanups: (() => unknown)[] = [];
const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

interface Scenario {
  readonly name: string;
  readonly protocol: 'chat' | 'socketio';
  /** Where each user connects. */
  readonly urlOf: (user: string, group: number) => string;
  /** Processes whose CPU counts for this system (not the load generator). */
  readonly pids: () => Record<string, number | undefined>;
  /** Kafka records produced and consumed so far (chat clusters only). */
  readonly kafkaRecords?: () => Promise<number>; /** Resolves once every user is known where it is (presence has crossed the bus). */
  readonly settled?: (users: readonly { id: string; group: number }[]) => Promise<void>;
}

interface Outcome {
  readonly scenario: string;
  readonly result: LoadResult;
  readonly cpuMsPerKMsg: Record<string, number>;
  readonly kafkaPerMsg: number | undefined;
}

function users(count: number, tag: string): { id: string; group: number }[] {
  return Array.from({ length: count }, (_, i) => ({ id: `${tag}${i}`, group: i % GROUPS }));
}

/** A load generator process (loadgen.ts), talking over IPC. */
function forkLoadgen(): ChildProcess {
  return fork(join(repoRoot, 'test/src/bench/loadgen.ts'), [], {
    execArgv: ['--conditions=source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

async function runLoad(scenario: Scenario, count: number, rate: number, seconds: number): Promise<Outcome> {
  const plan: LoadPlan = {
    protocol: scenario.protocol,
    users: users(count, 'u').map((u) => ({ ...u, url: scenario.urlOf(u.id, u.group) })),
    rate,
    durationMs: seconds * 1000,
    localShare: LOCAL_SHARE,
    drainMs: 10_000,
  };
  const gen = forkLoadgen();
  const messages: { type: string; result?: LoadResult; error?: string }[] = [];
  const next = (type: string) =>
    new Promise<{ result?: LoadResult; error?: string }>((resolve, reject) => {
      const check = (m: { type: string; result?: LoadResult; error?: string }) => {
        if (m.type === type) return resolve(m);
        if (m.type === 'error') return reject(new Error(`${scenario.name}: ${m.error}`));
      };
      const found = messages.find((m) => m.type === type || m.type === 'error');
      if (found) return check(found);
      gen.on('message', (m: { type: string }) => check(m));
      gen.once(
        'exit',
        (code) => code !== 0 && reject(new Error(`${scenario.name}: load generator exited ${code}`)),
      );
    });
  gen.on('message', (m: { type: string }) => messages.push(m));
  gen.send(plan);
  await next('connected');
  await scenario.settled?.(plan.users);
  const pids = scenario.pids();
  const cpuBefore = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const genCpuBefore = cpuSeconds(gen.pid);
  const kafkaBefore = await scenario.kafkaRecords?.();
  gen.send('start');
  const { result } = await next('result');
  if (!result) throw new Error(`${scenario.name}: no result`);
  const cpuMsPerKMsg: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids)) {
    cpuMsPerKMsg[k] = ((cpuSeconds(pid) - (cpuBefore[k] ?? 0)) * 1000 * 1000) / Math.max(1, result.delivered);
  }
  cpuMsPerKMsg['load generator'] =
    ((cpuSeconds(gen.pid) - genCpuBefore) * 1e6) / Math.max(1, result.delivered);
  const kafkaAfter = await scenario.kafkaRecords?.();
  if (result.missing > 0 || result.duplicates > 0 || result.delivered !== result.sent) {
    throw new Error(
      `${scenario.name}: CORRECTNESS FAILURE: sent ${result.sent}, delivered ${result.delivered}, missing ${result.missing}, duplicates ${result.duplicates}`,
    );
  }
  log(
    `${scenario.name}: ${result.delivered} delivered, ${result.deliveredPerSec.toFixed(0)}/s, p99 ${result.p99.toFixed(2)} ms`,
  );
  return {
    scenario: scenario.name,
    result,
    cpuMsPerKMsg,
    kafkaPerMsg:
      kafkaBefore === undefined || kafkaAfter === undefined
        ? undefined
        : (kafkaAfter - kafkaBefore) / result.delivered,
  };
}

/** Waits until each node sees every user of the other node there (so no send is acked `offline`). */
async function presenceSettled(
  nodes: NodeProcess[],
  ownerOf: (group: number) => string,
  list: readonly { id: string; group: number }[],
): Promise<void> {
  await pollUntil(
    async () => {
      for (const u of list) {
        const owner = ownerOf(u.group);
        for (const n of nodes) {
          if (n.nodeId === owner) continue;
          if (!(await n.presence(u.id)).remoteNodes.includes(owner)) return false;
        }
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'presence of every user on every node' },
  );
}

async function kafkaRecordsOf(nodes: NodeProcess[]): Promise<number> {
  let total = 0;
  for (const n of nodes) {
    total += await n.metric('chat_node_bus_records_produced_total', { kind: 'message' });
    total += await n.metric('chat_node_bus_records_consumed_total', { kind: 'message' });
  }
  return total;
}

async function chatCluster(
  kafka: string,
  mode: 'local-first' | 'seed',
): Promise<{ nodes: NodeProcess[]; router: RouterProcess }> {
  const env = {
    CHAT_KAFKA_BROKERS: kafka,
    CHAT_KAFKA_TOPIC_PREFIX: `bench-${mode}-${Date.now()}`,
    CHAT_CLUSTER_SHARDS: '6',
    CHAT_LOG_LEVEL: 'warn',
    CHAT_NODE_DELIVERY_MODE: mode,
    CHAT_NODE_MAX_CONNECTIONS_PER_USER: '10',
  };
  const nodes = await Promise.all(
    ['b1', 'b2'].map((id) =>
      startNode(cleanup, {
        nodeId: id,
        env,
        ...(id === 'b1' && mode === 'local-first'
          ? { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] }
          : {}),
      }),
    ),
  );
  const router = await startRouter(cleanup, {
    CHAT_KAFKA_BROKERS: kafka,
    CHAT_KAFKA_TOPIC_PREFIX: env.CHAT_KAFKA_TOPIC_PREFIX,
    CHAT_LOG_LEVEL: 'warn',
    CHAT_ROUTER_AFFINITY_QUERY: 'true',
    CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC: '1000000',
  });
  for (let i = 0; (await router.members()).ringSize < 2; i++) {
    if (i > 400) throw new Error('nodes never joined the ring');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { nodes, router };
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

function raiseFdLimit(pid: number | undefined): void {
  if (pid !== undefined) spawnSync('prlimit', [`--pid=${pid}`, '--nofile=65536:65536']);
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

async function main(): Promise<void> {
  ensureRedis();
  const started = Date.now();
  const lines: string[] = [];
  const broker = await KafkaBroker.start({ log });
  cleanup.after(() => broker.dispose());
  const outcomes: Outcome[] = [];

  // Our cluster: two nodes on Kafka and a router, local-first.
  const { nodes, router } = await chatCluster(broker.brokers, 'local-first');
  for (const p of [...nodes.map((n) => n.child.pid), router.child.pid]) raiseFdLimit(p);
  const owners = new Map<number, string>();
  const ownerOf = async (group: number) => {
    if (!owners.has(group)) owners.set(group, (await router.lookup([`g${group}`]))[0] ?? '');
    return owners.get(group) ?? '';
  };
  for (let g = 0; g < GROUPS; g++) await ownerOf(g);
  const nodeById = new Map(nodes.map((n) => [n.nodeId, n]));
  const clusterPids = () => ({
    router: router.child.pid,
    'node b1': nodes[0]?.child.pid,
    'node b2': nodes[1]?.child.pid,
    kafka: broker.pid,
  });
  const direct = (u: string, g: number) => nodeById.get(owners.get(g) ?? '')?.wsUrl(u) ?? '';

  // Our cluster through the router: warmed up (not measured), measured, then pushed to saturation.
  const settled = (l: readonly { id: string; group: number }[]) =>
    presenceSettled(nodes, (g) => owners.get(g) ?? '', l);
  const viaRouter: Scenario = {
    name: 'router (ours)',
    protocol: 'chat',
    urlOf: (u, g) => router.wsUrl(u, `affinity=g${g}`),
    pids: clusterPids,
    kafkaRecords: () => kafkaRecordsOf(nodes),
    settled,
  };
  // Warm-up first: JIT, connection pools and Kafka fetch sessions settle.
  await runLoad({ ...viaRouter, name: 'warm-up' }, USERS, RATE, 3);
  outcomes.push(await runLoad(viaRouter, USERS, RATE, SECONDS));
  outcomes.push(
    await runLoad(
      {
        name: 'straight to the nodes',
        protocol: 'chat',
        urlOf: direct,
        pids: () => ({ ...clusterPids(), router: undefined }),
        kafkaRecords: () => kafkaRecordsOf(nodes),
        settled,
      },
      USERS,
      RATE,
      SECONDS,
    ),
  );

  // A raw TCP pipe in front of each node: the floor cost of a proxy hop.
  const pipes = new Map<string, { port: number; pid: number | undefined }>();
  for (const n of nodes) {
    const svc = await forkService(cleanup, `pipe-${n.nodeId}`, 'test/src/bench/peers/pipe-proxy.ts', {
      CHAT_BENCH_TARGET: `127.0.0.1:${n.port}`,
    });
    pipes.set(n.nodeId, { port: Number(svc.ready.port), pid: svc.child.pid });
  }
  outcomes.push(
    await runLoad(
      {
        name: 'raw TCP pipe proxy',
        protocol: 'chat',
        urlOf: (u, g) => `ws://127.0.0.1:${pipes.get(owners.get(g) ?? '')?.port ?? 0}/chat/${u}`,
        pids: () => ({ ...clusterPids(), router: undefined, pipes: [...pipes.values()][0]?.pid }),
        kafkaRecords: () => kafkaRecordsOf(nodes),
        settled,
      },
      USERS,
      RATE,
      SECONDS,
    ),
  );

  // Saturation: the router scenario at doubling offered rates until it cannot keep up.
  const saturation: { rate: number; result: LoadResult }[] = [];
  let saturationFailure = '';
  for (let rate = RATE * 2; rate <= RATE * 32; rate *= 2) {
    try {
      const o = await runLoad({ ...viaRouter, name: `router at ${rate}/s` }, USERS, rate, 5);
      saturation.push({ rate, result: o.result });
      if (o.result.deliveredPerSec < rate * 0.95 || o.result.p99 > 500) break;
    } catch (err) {
      log(`saturation at ${rate}/s: ${(err as Error).message}`);
      saturationFailure = `At ${rate} msgs/s the run failed its exactly-once check: ${(err as Error).message.replace(/^.*CORRECTNESS FAILURE: /, '')} (not delivered within the 10 s drain: over capacity).`;
      break;
    }
  }

  // Idle connections: memory per connection on a node (direct) and on the router.
  const idle = async (via: 'node' | 'router') => {
    const target = nodes[0];
    if (!target) throw new Error('no node');
    const before = { node: rssBytes(target.child.pid), router: rssBytes(router.child.pid) };
    const plan: LoadPlan = {
      protocol: 'chat',
      users: users(IDLE, `idle-${via}-`).map((u) => ({
        ...u,
        url:
          via === 'node'
            ? target.wsUrl(u.id)
            : router.wsUrl(u.id, `affinity=g${[...owners].find(([, o]) => o === target.nodeId)?.[0] ?? 0}`),
      })),
      rate: 0,
      durationMs: 0,
      localShare: 0,
      drainMs: 0,
    };
    const gen = forkLoadgen();
    raiseFdLimit(gen.pid);
    let connected = 0;
    await new Promise<void>((resolve, reject) => {
      gen.on('message', (m: { type: string; error?: string; connected?: number }) => {
        if (m.type === 'connected') {
          connected = m.connected ?? 0;
          resolve();
        } else if (m.type === 'error') reject(new Error(m.error));
      });
      gen.send(plan);
    });
    const after = { node: rssBytes(target.child.pid), router: rssBytes(router.child.pid) };
    gen.send('start');
    await new Promise((r) => gen.once('exit', r));
    const n = Math.max(1, connected);
    return { connected, node: (after.node - before.node) / n, router: (after.router - before.router) / n };
  };
  const idleNode = await idle('node');
  const idleRouter = await idle('router');

  // Node b1 ran under --cpu-prof through every local-first scenario; a graceful stop writes the profile.
  nodes[0]?.child.kill('SIGTERM');
  await nodes[0]?.exited;
  const profileFile = readdirSync(PROFILE_DIR).find((f) => f.endsWith('.cpuprofile'));
  const profile = profileFile ? summariseProfile(join(PROFILE_DIR, profileFile)) : undefined;

  // The seed design on the same machine: every message through Kafka, every node consuming everything.
  for (const fn of cleanups.splice(1).reverse()) await fn();
  const seed = await chatCluster(broker.brokers, 'seed');
  const seedOwners = new Map<number, string>();
  for (let g = 0; g < GROUPS; g++) seedOwners.set(g, (await seed.router.lookup([`g${g}`]))[0] ?? '');
  const seedNodes = new Map(seed.nodes.map((n) => [n.nodeId, n]));
  outcomes.push(
    await runLoad(
      {
        name: 'seed design (all via Kafka)',
        protocol: 'chat',
        urlOf: (u, g) => seedNodes.get(seedOwners.get(g) ?? '')?.wsUrl(u) ?? '',
        pids: () => ({
          'node b1': seed.nodes[0]?.child.pid,
          'node b2': seed.nodes[1]?.child.pid,
          kafka: broker.pid,
        }),
        kafkaRecords: () => kafkaRecordsOf(seed.nodes),
      },
      USERS,
      RATE,
      SECONDS,
    ),
  );
  for (const fn of cleanups.splice(1).reverse()) await fn();

  // Socket.IO cluster: two servers joined by the official Redis adapter (redis-server from Debian).
  const redisPort = await freePort();
  const redis: ChildProcess = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  cleanup.after(() => redis.kill('SIGTERM'));
  await pollUntil(() => portInUse(redisPort), { timeoutMs: 10_000, what: 'redis-server listening' });
  const ioServers = await Promise.all(
    [0, 1].map((i) =>
      forkService(cleanup, `socketio-${i}`, 'test/src/bench/peers/socketio-server.ts', {
        CHAT_BENCH_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      }),
    ),
  );
  outcomes.push(
    await runLoad(
      {
        name: 'Socket.IO + Redis adapter',
        protocol: 'socketio',
        // Same placement rule as ours: a group's users on one server.
        urlOf: (_u, g) =>
          `http://127.0.0.1:${String(ioServers[(seedOwners.get(g) ?? '') === 'b1' ? 0 : 1]?.ready.port)}`,
        pids: () => ({
          'socket.io 1': ioServers[0]?.child.pid,
          'socket.io 2': ioServers[1]?.child.pid,
          redis: redis.pid,
        }),
      },
      USERS,
      RATE,
      SECONDS,
    ),
  );

  // A bare ws relay: one process, the ceiling for one node.
  const relay = await forkService(cleanup, 'ws-relay', 'test/src/bench/peers/ws-relay.ts', {});
  outcomes.push(
    await runLoad(
      {
        name: 'bare ws relay (1 process)',
        protocol: 'chat',
        urlOf: (u) => `ws://127.0.0.1:${String(relay.ready.port)}/chat/${u}`,
        pids: () => ({ relay: relay.child.pid }),
      },
      USERS,
      RATE,
      SECONDS,
    ),
  );

  // The report.
  const by = (name: string) => outcomes.find((o) => o.scenario.startsWith(name))?.result;
  const ratio = (a: number | undefined, b: number | undefined) =>
    a !== undefined && b !== undefined && b > 0 ? (a / b).toFixed(2) : 'n/a';
  const ours = by('router');
  const cmd = `pnpm bench --users ${USERS} --rate ${RATE} --seconds ${SECONDS} --local-share ${LOCAL_SHARE} --idle ${IDLE} --groups ${GROUPS}`;
  lines.push(
    '# Benchmarks',
    '',
    '<!-- Written by `pnpm bench` (test/src/bench/run.ts); numbers from one run on the machine below. -->',
    '',
    `Command: \`${cmd}\` (${((Date.now() - started) / 1000).toFixed(0)} s). Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, Apache Kafka ${await kafkaVersion()}, ${spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ').slice(0, 3).join(' ')}.`,
    '',
    `Workload: ${USERS} users in ${GROUPS} affinity groups, ${(LOCAL_SHARE * 100).toFixed(0)}% of messages between users of one group, the rest across groups; open loop at ${RATE} msgs/s for ${SECONDS} s, one load generator process; every system shares the same ${cpus().length} cores with it (no pinning). Every run checked that each message reached its receiver exactly once. Authentication off (it costs only at connect).`,
    '',
    '| System | Delivered msgs/s | p50 ms | p99 ms | p999 ms | CPU ms per 1,000 msgs (by process) | Kafka records per message |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...outcomes.map(
      (o) =>
        `| ${o.scenario} | ${o.result.deliveredPerSec.toFixed(0)} | ${o.result.p50.toFixed(2)} | ${o.result.p99.toFixed(2)} | ${o.result.p999.toFixed(2)} | ${Object.entries(
          o.cpuMsPerKMsg,
        )
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(', ')} | ${o.kafkaPerMsg === undefined ? '-' : o.kafkaPerMsg.toFixed(2)} |`,
    ),
    '',
    'Ratios (same run; latency p99, lower is better):',
    '',
    `1. Through the router versus straight to a node: p99 x${ratio(ours?.p99, by('straight')?.p99)}, p50 x${ratio(ours?.p50, by('straight')?.p50)}.`,
    `2. Local-first versus the seed design (straight to the nodes in both): p99 x${ratio(by('straight')?.p99, by('seed')?.p99)}; Kafka records per message ${outcomes.find((o) => o.scenario.startsWith('straight'))?.kafkaPerMsg?.toFixed(2)} versus ${outcomes.find((o) => o.scenario.startsWith('seed'))?.kafkaPerMsg?.toFixed(2)}.`,
    `3. Ours (router) versus Socket.IO + Redis adapter on the same number of nodes: p99 x${ratio(ours?.p99, by('Socket.IO')?.p99)}.`,
    `4. Ours (router) versus a bare ws relay in one process (the ceiling): p99 x${ratio(ours?.p99, by('bare')?.p99)}.`,
    `5. Raw TCP pipe proxy versus straight to a node (the floor of a hop): p99 x${ratio(by('raw')?.p99, by('straight')?.p99)}; the router versus the pipe: p99 x${ratio(ours?.p99, by('raw')?.p99)}.`,
    '',
    'Saturation (router, doubling the offered rate, 5 s each, until under 95% delivered or p99 over 500 ms):',
    '',
    '| Offered msgs/s | Delivered msgs/s | p50 ms | p99 ms |',
    '| --- | --- | --- | --- |',
    ...saturation.map(
      (s) =>
        `| ${s.rate} | ${s.result.deliveredPerSec.toFixed(0)} | ${s.result.p50.toFixed(2)} | ${s.result.p99.toFixed(2)} |`,
    ),
    '',
    ...(saturationFailure ? ['', saturationFailure] : []),
    ...(profile
      ? [
          'CPU profile of node b1 over the local-first scenarios (self time, idle excluded), by area:',
          '',
          '| Area | Share |',
          '| --- | --- |',
          ...profile.areas.map(([a, v]) => `| ${a} | ${v.toFixed(1)}% |`),
          '',
          'Top functions:',
          '',
          '| Function | Share |',
          '| --- | --- |',
          ...profile.top.map(([f, v]) => `| \`${f}\` | ${v.toFixed(1)}% |`),
          '',
        ]
      : ['(No CPU profile was written.)', '']),
    `Idle connections: RSS per connection on a node ${(idleNode.node / 1024).toFixed(1)} KiB (${idleNode.connected} of ${IDLE} connected straight to it); through the router ${(idleRouter.router / 1024).toFixed(1)} KiB on the router and ${(idleRouter.node / 1024).toFixed(1)} KiB on the node (${idleRouter.connected} of ${IDLE} connected; each costs the router two sockets, and loopback's ephemeral ports can run out).`,
    '',
  );
  writeFileSync(join(repoRoot, 'docs/benchmarks.md'), lines.join('\n'));
  console.log(lines.join('\n'));
}

try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
