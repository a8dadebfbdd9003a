import type { ChildProcess } from 'node:child_process';
import type { Cleanup } from '../kafka/harness.js';
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
  return {
    port,
    adminPort,
    child,
    logFile,
    exited,
    wsUrl: (userId, query) => `ws://127.0.0.1:${port}/chat/${userId}${query ? `?${query}` : ''}`,
    httpUrl,
    admin,
    async members() {
      return (await (await admin('/members')).json()) as {
        ringVersion: string;
        ringSize: number;
        members: MemberView[];
      };
    },
    async lookup(keys) {
      const res = await admin('/lookup', { method: 'POST', body: JSON.stringify({ keys }) });
      return ((await res.json()) as { nodes: (string | null)[] }).nodes;
    },
    async metric(name, labels = {}) {
      return sumMetric(await (await admin('/metrics')).text(), name, labels);
    },
  };
}
