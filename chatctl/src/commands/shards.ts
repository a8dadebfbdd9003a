import { setTimeout as delay } from 'node:timers/promises';
import { SHAPES, type ShardsAnswer } from '../admin-types.js';
import { clientsFor, type ConnectOptions } from '../http.js';
import { renderTable } from '../table.js';

export interface ShardsOptions extends ConnectOptions {
  /** Only the N hottest shards (0: all). Default 20. */
  readonly top?: number;
  /** Time between the two samples the message rate is taken from (default 1000 ms). */
  readonly intervalMs?: number;
}

export interface ShardRow {
  readonly shard: number;
  readonly owner: string | null;
  /** Connections on the shard, summed over the routers given. */
  readonly connections: number;
  /** Messages the nodes handled on the shard per second, between the two samples. */
  readonly messagesPerSec: number;
}

/** `chatctl shards --json`. */
export interface ShardsReport {
  readonly ownerTableVersion: string;
  readonly shardCount: number;
  readonly intervalMs: number;
  /** Nodes that did not answer either sample: the rates leave their messages out. */
  readonly unanswered: readonly string[];
  /** Hottest first: messages per second, then connections, then shard number. */
  readonly shards: readonly ShardRow[];
}

/**
 * The shard table with hot shards first. Messages per second come from two samples `intervalMs` apart of
 * the nodes' cumulative per-shard counts (the first router's `GET /shards?messages=1`); a count that went
 * down (a node restarted or left) gives 0 for that interval. Connections are summed over every router.
 */
export async function shards(o: ShardsOptions): Promise<ShardsReport> {
  const intervalMs = o.intervalMs ?? 1000;
  const clients = clientsFor(o, 10_000 + intervalMs);
  const [first, ...others] = clients;
  if (!first) throw new Error('unreachable: clientsFor returns at least one client');
  const startedAt = performance.now();
  const a = await first.get<ShardsAnswer>('/shards?messages=1', SHAPES.shards);
  await delay(intervalMs);
  const b = await first.get<ShardsAnswer>('/shards?messages=1', SHAPES.shards);
  const elapsedMs = Math.max(1, performance.now() - startedAt - 0);
  const connections = b.shards.map((s) => s.connections);
  for (const c of others) {
    const answer = await c.get<ShardsAnswer>('/shards', SHAPES.shards);
    for (const s of answer.shards) connections[s.shard] = (connections[s.shard] ?? 0) + s.connections;
  }
  return summariseShards(a, b, connections, elapsedMs, o.top ?? 20);
}

/** The report from two samples (pure: unit-tested). */
export function summariseShards(
  a: ShardsAnswer,
  b: ShardsAnswer,
  connections: readonly number[],
  elapsedMs: number,
  top: number,
): ShardsReport {
  const rows = b.shards.map((s): ShardRow => {
    const delta = (s.messages ?? 0) - (a.shards[s.shard]?.messages ?? 0);
    return {
      shard: s.shard,
      owner: s.owner,
      connections: connections[s.shard] ?? s.connections,
      messagesPerSec: Math.round((Math.max(0, delta) * 1000 * 10) / elapsedMs) / 10,
    };
  });
  rows.sort(
    (x, y) => y.messagesPerSec - x.messagesPerSec || y.connections - x.connections || x.shard - y.shard,
  );
  const unanswered = [
    ...new Set([...(a.unanswered ?? []), ...(b.unanswered ?? [])].map((u) => u.node)),
  ].sort();
  return {
    ownerTableVersion: b.ownerTableVersion,
    shardCount: b.shards.length,
    intervalMs: Math.round(elapsedMs),
    unanswered,
    shards: top > 0 ? rows.slice(0, top) : rows,
  };
}

export function renderShards(r: ShardsReport): string {
  const table = renderTable(
    [
      { header: 'SHARD', align: 'right' },
      { header: 'OWNER' },
      { header: 'CONNECTIONS', align: 'right' },
      { header: 'MSG/S', align: 'right' },
    ],
    r.shards.map((s) => [
      String(s.shard),
      s.owner ?? '-',
      String(s.connections),
      s.messagesPerSec.toFixed(1),
    ]),
  );
  const shown =
    r.shards.length < r.shardCount ? `${r.shards.length} hottest of ${r.shardCount}` : `all ${r.shardCount}`;
  const warn = r.unanswered
    .map((n) => `warning: node ${n} did not answer; its messages are not counted\n`)
    .join('');
  return `${table}\n${shown} shards, owner table ${r.ownerTableVersion}, rates over ${(r.intervalMs / 1000).toFixed(1)} s\n${warn}`;
}
