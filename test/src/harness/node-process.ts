import { fork, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callNode, NODE_API, nodeConfigSchema, OwnerTable, type PresenceResponse } from '@chat/shared';
import { repoRoot } from '../paths.js';
import type { Cleanup } from '../kafka/harness.js';

export interface NodeProcess {
  readonly nodeId: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** `ws://127.0.0.1:PORT/chat/USER`. */
  wsUrl(userId: string): string;
  httpUrl(path: string): string;
  /** The node's own log (JSON lines), for diagnosing a failure. */
  readonly logFile: string;
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sum of a metric's samples whose labels include `labels`. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** The node's `/internal/presence` answer for `userId` (throws when the node does not give one). */
  presence(userId: string): Promise<PresenceResponse>;
  /** True when `/readyz` says ready (HTTP 200). */
  ready(): Promise<boolean>;
}

/** The cluster secret every process forked by the harness shares unless a test sets its own. */
export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789abcdef';

/** Forks a TypeScript entry point through tsx with a clean environment; resolves on its IPC `ready`. */
export async function forkService(
  cleanup: Cleanup,
  name: string,
  entry: string,
  env: Record<string, string>,
  timeoutMs = 60_000,
  /** Extra Node.js flags (e.g. `--cpu-prof` for the benchmark's profile). */
  nodeFlags: readonly string[] = [],
): Promise<{
  child: ChildProcess;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ready: Record<string, unknown>;
}> {
  const dir = await mkdtemp(join(tmpdir(), `chat-${name}-`));
  const logFile = join(dir, 'service.log');
  const out = openSync(logFile, 'a');
  const child = fork(join(repoRoot, entry), [], {
    cwd: repoRoot,
    execArgv: ['--conditions=source', '--import', 'tsx', ...nodeFlags],
    // Authentication is off unless a test turns it on (the security tests do).
    env: {
      PATH: process.env.PATH ?? '',
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
      CHAT_LOG_LEVEL: 'info',
      CHAT_AUTH_MODE: 'off',
      // Kafka-mode processes refuse to start without a cluster secret (membership records are signed).
      CHAT_CLUSTER_SECRET: TEST_CLUSTER_SECRET,
      ...env,
    },
    stdio: ['ignore', out, out, 'ipc'],
  });
  closeSync(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  cleanup.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} not ready in time; log:\n${tail(logFile)}`)),
      timeoutMs,
    );
    child.on('message', (msg: Record<string, unknown>) => {
      if (msg.type === 'ready') {
        clearTimeout(timer);
        resolve(msg);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before ready; log:\n${tail(logFile)}`));
    });
  });
  return { child, logFile, exited, ready };
}

export interface StartNodeOptions {
  readonly nodeId: string;
  /** Extra environment (CHAT_*). CHAT_NODE_PORT defaults to 0, CHAT_LOG_LEVEL to info. */
  readonly env?: Record<string, string>;
  /** How long to wait for the node to report ready (default 60 s). */
  readonly timeoutMs?: number;
  /** Extra Node.js flags. */
  readonly nodeFlags?: readonly string[];
}

/**
 * Starts a real chat node process (node/src/main.ts through tsx), waits for its IPC `ready` message and
 * registers a cleanup that kills it. Its log goes to a file, not the test output.
 */
export async function startNode(cleanup: Cleanup, options: StartNodeOptions): Promise<NodeProcess> {
  const { child, logFile, exited, ready } = await forkService(
    cleanup,
    options.nodeId,
    'node/src/main.ts',
    { CHAT_NODE_ID: options.nodeId, CHAT_NODE_PORT: '0', ...options.env },
    options.timeoutMs,
    options.nodeFlags,
  );
  const port = Number(ready.port);
  const cluster = joinCluster(options.nodeId, { CHAT_NODE_ID: options.nodeId, ...options.env }, exited);
  const httpUrl = (path: string) => `http://127.0.0.1:${port}${path}`;
  return {
    nodeId: options.nodeId,
    port,
    child,
    logFile,
    exited,
    wsUrl: (userId) =>
      `ws://127.0.0.1:${port}/chat/${userId}${placementQuery(cluster, options.nodeId, userId)}`,
    httpUrl,
    async metric(name, labels = {}) {
      const text = await (await fetch(httpUrl(NODE_API.metrics.path))).text();
      return sumMetric(text, name, labels);
    },
    async presence(userId) {
      const token = options.env?.CHAT_INTERNAL_TOKEN;
      const answer = await callNode(httpUrl(''), 'presence', undefined, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        query: { user: userId },
      });
      if (!answer.ok) throw new Error(`${options.nodeId} presence of ${userId}: ${answer.error}`);
      return answer.body;
    },
    async ready() {
      const answer = await callNode(httpUrl(''), 'readyz', undefined);
      return answer.ok && answer.status === 200;
    },
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

/** Sums the samples of `name` in Prometheus text whose labels include every pair of `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labelText = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** The nodes started by this process per cluster (brokers and topic prefix), for `wsUrl` placement. */
const clusters = new Map<string, { shards: number; members: Map<string, number> }>();

function joinCluster(
  nodeId: string,
  env: Record<string, string>,
  exited: Promise<unknown>,
): { shards: number; members: Map<string, number> } {
  // The in-process bus: every node is a cluster of its own.
  const id = env.CHAT_KAFKA_BROKERS
    ? `${env.CHAT_KAFKA_BROKERS}|${env.CHAT_KAFKA_TOPIC_PREFIX ?? 'chat'}`
    : nodeId;
  let cluster = clusters.get(id);
  if (!cluster) {
    cluster = {
      shards: Number(env.CHAT_CLUSTER_SHARDS ?? nodeConfigSchema.clusterShards.default),
      members: new Map(),
    };
    clusters.set(id, cluster);
  }
  cluster.members.set(nodeId, Number(env.CHAT_NODE_WEIGHT ?? 1));
  const joined = cluster;
  void exited.then(() => joined.members.delete(nodeId));
  return joined;
}

/**
 * A client connecting straight to a node (no router) lands where the router would have put it only if
 * the node owns its shard. Tests name users freely, so `wsUrl` adds an `affinity` parameter that puts the
 * user in a shard `nodeId` owns under the owner table of the nodes this process started (none when the
 * user's own shard is already the node's).
 */
function placementQuery(
  cluster: { shards: number; members: Map<string, number> },
  nodeId: string,
  userId: string,
): string {
  const table = new OwnerTable(
    [...cluster.members].map(([id, weight]) => ({ id, weight })),
    cluster.shards,
  );
  if (table.ownerOfKey(userId) === nodeId || !table.members.some((m) => m.id === nodeId)) return '';
  for (let i = 0; i < 10_000; i++) {
    const key = `${userId}-${i}`;
    if (table.ownerOfKey(key) === nodeId) return `?affinity=${encodeURIComponent(key)}`;
  }
  return '';
}
