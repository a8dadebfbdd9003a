import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { OwnerTable } from '@chat/shared';
import type { ProxiedConnection } from './connections.js';
import type { Liveness } from './member-table.js';

/** Why the router cut a proxied connection itself (`chat_router_connections_cut_total{reason}`). */
export const CUT_REASONS = ['gone', 'dead', 'refused', 'router_stop', 'stalled'] as const;
export type CutReason = (typeof CUT_REASONS)[number];

/** What the shard gauges read when scraped: the router's live tables (see `RouterMetrics#watchShards`). */
export interface ShardTables {
  owners(): OwnerTable;
  liveness(nodeId: string): Liveness;
  connections(): readonly ProxiedConnection[];
}

/** The shard gauges' values, computed from the tables at scrape time (one pass over each). */
export function shardGaugeValues(tables: ShardTables): {
  shards: number;
  withoutOwner: number;
  movingShards: number;
  movingConnections: number;
} {
  const owners = tables.owners();
  let withoutOwner = 0;
  const seen = new Map<string, Liveness>();
  for (let shard = 0; shard < owners.shardCount; shard++) {
    const owner = owners.ownerOf(shard);
    if (owner === undefined) {
      withoutOwner++;
      continue;
    }
    let liveness = seen.get(owner);
    if (liveness === undefined) seen.set(owner, (liveness = tables.liveness(owner)));
    if (liveness === 'dead' || liveness === 'gone') withoutOwner++;
  }
  const moving = new Set<number>();
  let movingConnections = 0;
  for (const c of tables.connections()) {
    if (!c.migrating || c.client.destroyed) continue;
    movingConnections++;
    moving.add(c.shard);
  }
  return { shards: owners.shardCount, withoutOwner, movingShards: moving.size, movingConnections };
}

/** Every metric of one router, on its own registry. Labels are low-cardinality enums only. */
export class RouterMetrics {
  readonly registry: Registry;
  readonly upgrades: Counter<'result'>;
  readonly proxied: Gauge;
  readonly sockets: Gauge<'side'>;
  readonly proxyErrors: Counter<'kind'>;
  readonly closed: Counter<'by'>;
  readonly ringMembers: Gauge;
  readonly ringVersion: Gauge<'version'>;
  readonly ringChanges: Counter;
  readonly ownerTableVersion: Gauge<'version'>;
  readonly shardsMoved: Counter;
  readonly migrations: Counter<'result'>;
  readonly connectionsCut: Counter<'reason'>;
  readonly probeFailures: Counter;
  readonly badRequests: Counter<'reason'>;
  readonly authFailures: Counter<'code'>;
  readonly authKeyErrors: Counter<'source'>;
  readonly memberRecordsIgnored: Counter<'reason'>;
  readonly clientAddresses: Counter<'source'>;
  readonly memberRecordsUnsignedAccepted: Counter;
  readonly shardCount: Gauge;
  readonly shardsWithoutOwner: Gauge;
  readonly shardMoves: Gauge;
  readonly migratingConnections: Gauge;
  /** The router's tables, once `watchShards` was called: the shard gauges read them when scraped. */
  #shardTables: ShardTables | undefined;

  /** From now on the shard gauges report `tables` (0 until then, e.g. in a registry made for docs). */
  watchShards(tables: ShardTables): void {
    this.#shardTables = tables;
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = new Registry();
    this.registry = registry;
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.upgrades = new Counter({
      name: 'chat_router_upgrades_total',
      help: 'WebSocket upgrade requests by result (ok, bad_request, not_found, unauthorized, origin_forbidden, rate_limited, no_node, not_ready, full, upstream_refused, upstream_timeout, upstream_rejected, client_gone).',
      labelNames: ['result'],
      registers,
    });
    this.proxied = new Gauge({
      name: 'chat_router_proxied_connections',
      help: 'WebSocket connections currently proxied to a node.',
      registers,
    });
    this.sockets = new Gauge({
      name: 'chat_router_open_sockets',
      help: 'Sockets the router holds for upgrades, by side (client, upstream); returns to 0 when idle.',
      labelNames: ['side'],
      registers,
    });
    this.proxyErrors = new Counter({
      name: 'chat_router_proxy_errors_total',
      help: 'Proxy failures by kind (connect_failed, handshake_timeout, client_gone, upstream_error, client_error).',
      labelNames: ['kind'],
      registers,
    });
    this.closed = new Counter({
      name: 'chat_router_connections_closed_total',
      help: 'Proxied connections ended, by the side whose TCP connection closed first (client, upstream, router).',
      labelNames: ['by'],
      registers,
    });
    this.ringMembers = new Gauge({
      name: 'chat_router_ring_members',
      help: 'Nodes on the hash ring and in the owner table (healthy, active, not drained).',
      registers,
    });
    this.ringVersion = new Gauge({
      name: 'chat_router_ring_version_info',
      help: 'Always 1; the `version` label is the current ring digest (equal on routers with the same view).',
      labelNames: ['version'],
      registers,
    });
    this.ringChanges = new Counter({
      name: 'chat_router_ring_changes_total',
      help: 'Times the ring changed (member joined, left, drained, weight changed).',
      registers,
    });
    this.ownerTableVersion = new Gauge({
      name: 'chat_router_owner_table_version_info',
      help: 'Always 1; the `version` label is the current owner table digest (members, weights, shard count): equal on routers and nodes that place every shard alike.',
      labelNames: ['version'],
      registers,
    });
    this.shardsMoved = new Counter({
      name: 'chat_router_shards_moved_total',
      help: 'Shards whose owner changed (to, from or between members) when the owner table changed.',
      registers,
    });
    this.migrations = new Counter({
      name: 'chat_router_migrations_total',
      help: 'Connections moved because their shard moved to another node, by result (asked: the node was asked to close them with 4002; asked_again: a slow node, still alive, was asked again for those it had not closed after the window and grace; draining: their node is draining and closes them itself, so the router waits; forced: the router cut them, see chat_router_connections_cut_total).',
      labelNames: ['result'],
      registers,
    });
    this.connectionsCut = new Counter({
      name: 'chat_router_connections_cut_total',
      help: 'Proxied connections the router cut itself (the client sees 1006), by reason (gone: their node left the membership; dead: their node is unreachable and no heartbeats say it is alive; refused: their node answered a close request with a refusal (4xx or outside the contract); router_stop: this router shut down with them still open; stalled: a side did not take the bytes queued for it within CHAT_ROUTER_STALL_TIMEOUT_MS). A node that is alive (draining or slow) never has its connections cut: it is asked again.',
      labelNames: ['reason'],
      registers,
    });
    this.probeFailures = new Counter({
      name: 'chat_router_probe_failures_total',
      help: 'Failed /readyz probes of members.',
      registers,
    });
    this.authFailures = new Counter({
      name: 'chat_router_auth_failures_total',
      help: 'Requests refused for their token or origin, by error code: upgrades (AUTH_ERR_*; a browser Origin outside the allowlist is AUTH_ERR_ORIGIN_FORBIDDEN) and the admin API (AUTH_ERR_UNAUTHORIZED).',
      labelNames: ['code'],
      registers,
    });
    this.authKeyErrors = new Counter({
      name: 'chat_router_auth_key_errors_total',
      help: 'JWKS loads that failed (unreadable, not JSON, no keys, fetch failed), each broken version once, by source (file, url); the last good key set stays in use.',
      labelNames: ['source'],
      registers,
    });
    this.badRequests = new Counter({
      name: 'chat_router_bad_requests_total',
      help: 'Requests refused before routing, by reason (header_too_large, malformed, timeout).',
      labelNames: ['reason'],
      registers,
    });
    this.clientAddresses = new Counter({
      name: 'chat_router_client_addresses_total',
      help: 'Handshakes by where the router took the client address from (CHAT_ROUTER_TRUSTED_PROXIES): peer (the TCP peer: not a trusted proxy, or no X-Forwarded-For), forwarded (X-Forwarded-For of a trusted proxy), malformed (a trusted proxy sent one the router could not read: its address was used, so its clients share one handshake budget).',
      labelNames: ['source'],
      registers,
    });
    this.memberRecordsIgnored = new Counter({
      name: 'chat_router_member_records_ignored_total',
      help: 'Heartbeats on the members topic ignored by reason: unsigned or bad_signature (not signed with the cluster secret: a forgery, or a node with another secret) and stale (older than one already read for the same node: a replay, or the consumer reading the topic again).',
      labelNames: ['reason'],
      registers,
    });
    this.memberRecordsUnsignedAccepted = new Counter({
      name: 'chat_router_member_records_unsigned_accepted_total',
      help: 'Unsigned heartbeats accepted because CHAT_CLUSTER_RECORD_AUTH=permissive (a rolling upgrade from a version that did not sign).',
      registers,
    });
    // Computed when scraped (a pass over the S shards and the open connections each), never kept in step
    // by hand with every move.
    const sample = () => (this.#shardTables ? shardGaugeValues(this.#shardTables) : undefined);
    this.shardCount = new Gauge({
      name: 'chat_router_shard_count',
      help: "The cluster's shard count (CHAT_CLUSTER_SHARDS, fixed for its life): what the nodes' chat_node_shards_owned add up to when they agree.",
      registers,
      collect() {
        this.set(sample()?.shards ?? 0);
      },
    });
    this.shardsWithoutOwner = new Gauge({
      name: 'chat_router_shards_without_owner',
      help: "Shards of this router's owner table without a live owner: all of them while no node is eligible (their new connections get 503), and those whose owner it sees dead or gone until it leaves the table (their connections are cut, not moved).",
      registers,
      collect() {
        this.set(sample()?.withoutOwner ?? 0);
      },
    });
    this.shardMoves = new Gauge({
      name: 'chat_router_shard_moves_in_progress',
      help: 'Shards whose owner changed and whose connections on the old owner are still open while the router moves them (asked to close with 4002, left to a draining node, or waiting to be cut): distinct shards of chat_router_migrating_connections. 0 when every move is done.',
      registers,
      collect() {
        this.set(sample()?.movingShards ?? 0);
      },
    });
    this.migratingConnections = new Gauge({
      name: 'chat_router_migrating_connections',
      help: "Proxied connections the router is moving to their shard's new owner and that are still open on the old one (see chat_router_migrations_total for how each was moved).",
      registers,
      collect() {
        this.set(sample()?.movingConnections ?? 0);
      },
    });
    // Series exist from the start (at 0), so rate() and alerts see them before the first event.
    for (const result of ['asked', 'draining', 'forced']) this.migrations.inc({ result }, 0);
    for (const reason of CUT_REASONS) this.connectionsCut.inc({ reason }, 0);
    for (const kind of [
      'connect_failed',
      'handshake_timeout',
      'client_gone',
      'upstream_error',
      'client_error',
    ]) {
      this.proxyErrors.inc({ kind }, 0);
    }
    for (const by of ['client', 'upstream', 'router']) this.closed.inc({ by }, 0);
    for (const reason of ['unsigned', 'bad_signature', 'stale']) this.memberRecordsIgnored.inc({ reason }, 0);
    for (const source of ['peer', 'forwarded', 'malformed']) this.clientAddresses.inc({ source }, 0);
  }
}
