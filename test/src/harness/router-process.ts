import type { ChildProcess } from 'node:child_process';
import type { Cleanup } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { forkService, sumMetric } from './node-process.js';

export interface MemberView {
  id: string;
  url: string;
  healthy: boolean;
  inRing: boolean;
  adminDrained: boolean;
  state: string;
  connections: number;
}

export interface RouterProcess {
  readonly port: number;
  readonly adminPort: number;
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  wsUrl(userId: string, query?: string): string;
  httpUrl(path: string): string;
  admin(path: string, init?: RequestInit): Promise<Response>;
  members(): Promise<{ ringVersion: string; ringSize: number; members: MemberView[] }>;
  /** Owners of many keys at once (admin POST /lookup). */
  lookup(keys: string[]): Promise<(string | null)[]>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** Waits until this router's owner table has exactly the members `ids`; resolves with its ring version. */
  waitRing(ids: readonly string[], timeoutMs?: number): Promise<string>;
  /** `count` user ids (`prefix-N`) whose shard `nodeId` owns in this router's table now. */
  usersOn(nodeId: string, count: number, prefix: string): Promise<string[]>;
}

/** Starts a real router process (router/src/main.ts) on free ports and waits until it listens. */
export async function startRouter(
  cleanup: Cleanup,
  env: Record<string, string>,
  name = 'router',
): Promise<RouterProcess> {
  const { child, logFile, exited, ready } = await forkService(cleanup, name, 'router/src/main.ts', {
    CHAT_ROUTER_PORT: '0',
    CHAT_ROUTER_ADMIN_PORT: '0',
    ...env,
  });
  const port = Number(ready.port);
  const adminPort = Number(ready.adminPort);
  const httpUrl = (path: string) => `http://127.0.0.1:${port}${path}`;
  const adminToken = env.CHAT_ROUTER_ADMIN_TOKEN;
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${adminPort}${path}`, {
      ...init,
      headers: {
        ...(adminToken ? { authorization: `Bearer ${adminToken}` } : {}),
        ...(init.headers as Record<string, string>),
      },
    });
  const members = async () =>
    (await (await admin('/members')).json()) as {
      ringVersion: string;
      ringSize: number;
      members: MemberView[];
    };
  const lookup = async (keys: string[]) => {
    const res = await admin('/lookup', { method: 'POST', body: JSON.stringify({ keys }) });
    return ((await res.json()) as { nodes: (string | null)[] }).nodes;
  };
  return {
    port,
    adminPort,
    child,
    logFile,
    exited,
    wsUrl: (userId, query) => `ws://127.0.0.1:${port}/chat/${userId}${query ? `?${query}` : ''}`,
    httpUrl,
    admin,
    members,
    lookup,
    waitRing: (ids, timeoutMs = 20_000) =>
      pollUntil(
        async () => {
          const m = await members();
          const inRing = m.members
            .filter((x) => x.inRing)
            .map((x) => x.id)
            .sort();
          return JSON.stringify(inRing) === JSON.stringify([...ids].sort()) ? m.ringVersion : undefined;
        },
        { timeoutMs, what: `ring [${ids.join(',')}]` },
      ),
    async usersOn(nodeId, count, prefix) {
      const candidates = Array.from({ length: count * 20 }, (_, i) => `${prefix}-${i}`);
      const owners = await lookup(candidates);
      const users = candidates.filter((_, i) => owners[i] === nodeId).slice(0, count);
      if (users.length < count)
        throw new Error(`only ${users.length} of ${count} candidates are on ${nodeId}`);
      return users;
    },
    async metric(name, labels = {}) {
      return sumMetric(await (await admin('/metrics')).text(), name, labels);
    },
  };
}
