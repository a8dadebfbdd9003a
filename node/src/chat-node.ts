import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  ROUTER_HEADER_ALLOWANCE_BYTES,
  createTokenVerifier,
  type ConfigOf,
  type Logger,
  type ReadyzBody,
  type nodeConfigSchema,
} from '@chat/shared';
import type { ChatBus } from './bus/types.js';
import { ClientGateway } from './client-gateway.js';
import { DeliveredIds } from './delivered-ids.js';
import { Delivery } from './delivery.js';
import { FrameHandler } from './frame-handler.js';
import { Handoff } from './handoff.js';
import { createHttpApi } from './http-api.js';
import { Membership } from './membership.js';
import { NodeMetrics } from './metrics.js';
import { PresenceDirectory } from './presence-directory.js';
import { RecoveryBuffer } from './recovery-buffer.js';
import { SendDedup } from './send-dedup.js';
import { SessionRegistry } from './session-registry.js';
import { ShardOwnership } from './shard-ownership.js';
import { ShardStats } from './shard-stats.js';

export type NodeConfig = ConfigOf<typeof nodeConfigSchema>;

export interface ChatNodeDeps {
  readonly logger: Logger;
  /** Kafka in a cluster, an in-process hub otherwise (see main.ts). */
  readonly bus: ChatBus;
  /** This process's incarnation id; the same one the bus was given. */
  readonly epoch: string;
  readonly metrics?: NodeMetrics;
}

export interface ChatNode {
  readonly nodeId: string;
  readonly metrics: NodeMetrics;
  /** Listens, starts the bus and the heartbeats; resolves with the bound address once ready. */
  start(): Promise<AddressInfo>;
  /**
   * Graceful shutdown: not ready, stop accepting, close sessions with 4001 spread over the drain window,
   * flush presence and the producer, commit offsets, close the server. Resolves true when it finished
   * within the grace period (false: what was left was terminated).
   */
  stop(): Promise<boolean>;
  isReady(): boolean;
  /**
   * Leaves the ring (heartbeat `draining`, no new sessions); once its shards went to the others, closes
   * every session itself with 4002 and a retry hint, spread over the drain window (routers leave them to
   * it). Resolves once the heartbeat is out; the closes go on in the background.
   */
  drain(): Promise<void>;
  /** Back in the ring; closes of an admin drain not yet made are called off. */
  undrain(): Promise<void>;
}

/**
 * The chat node: wiring and lifecycle. Clients come in through the `ClientGateway` (upgrade checks, one
 * `Connection` per socket), their frames go to the `FrameHandler`, sends to `Delivery` (local first, then
 * the bus); `Membership` publishes heartbeats and presence, the `PresenceDirectory` reads them back, and
 * the HTTP API serves health, readiness, metrics and the routers' internal calls.
 */
export function createChatNode(config: NodeConfig, deps: ChatNodeDeps): ChatNode {
  const log = deps.logger.child({ subsystem: 'node' });
  const metrics = deps.metrics ?? new NodeMetrics();
  const sessions = new SessionRegistry();
  const directory = new PresenceDirectory({
    timeoutMs: config.heartbeatTimeoutMs,
    graceMs: config.presenceGraceMs,
  });
  const ownership = new ShardOwnership({
    nodeId: config.nodeId,
    shards: config.clusterShards,
    directory,
    bus: deps.bus,
    mode: config.deliveryMode,
    metrics,
    logger: deps.logger,
  });
  let address: AddressInfo | undefined;
  let listening = false;
  let draining = false; // shutting down
  let drained = false; // admin drain: out of the ring, process stays
  let messageSeq = 0;
  const idPrefix = `${config.nodeId}-${deps.epoch.slice(0, 8)}-`;

  // Throws CONFIG_ERR_INVALID when jwt mode has no key material.
  const verifier = createTokenVerifier(config, { logger: deps.logger, keyErrors: metrics.authKeyErrors });
  if (!verifier) log.warn('authentication is OFF (CHAT_AUTH_MODE=off): any client can connect as any user');

  const accepting = () => listening && !draining && !drained;
  const isReady = () => accepting() && deps.bus.isReady();
  const updateReadyGauge = () => metrics.ready.set(isReady() ? 1 : 0);

  const membership = new Membership({
    nodeId: config.nodeId,
    epoch: deps.epoch,
    url: () => config.advertisedUrl || `http://${config.host}:${address?.port ?? config.port}`,
    weight: config.weight,
    intervalMs: config.heartbeatIntervalMs,
    bus: deps.bus,
    sessions,
    logger: deps.logger,
  });
  const handoff = new Handoff({
    graceMs: config.handoffGraceMs,
    maxMessages: config.handoffMaxMessages,
    metrics,
    logger: deps.logger,
  });
  const durable = config.deliveryMode === 'durable';
  const delivery = new Delivery({
    ...(durable
      ? {
          recovery: new RecoveryBuffer({
            maxPerShard: config.recoveryMaxPerShard,
            ttlMs: config.recoveryTtlMs,
          }),
          recoveryWaitMs: config.recoveryWaitMs,
        }
      : {}),
    handoff,
    delivered: new DeliveredIds({ windowMs: config.sendDedupWindowMs }),
    nodeId: config.nodeId,
    sessions,
    directory,
    bus: deps.bus,
    ownership,
    shards: config.clusterShards,
    metrics,
    logger: deps.logger,
    newId: () => idPrefix + (++messageSeq).toString(36),
    mode: config.deliveryMode,
  });
  const sendDedup = new SendDedup({ windowMs: config.sendDedupWindowMs, metrics });
  // Messages per shard for operators (`chatctl shards`): sends by sessions on a shard, records read from it.
  const shardStats = new ShardStats(config.clusterShards);
  const gateway = new ClientGateway({
    limits: config,
    shards: config.clusterShards,
    maxPayloadBytes: config.maxPayloadBytes,
    maxConnections: config.maxConnections,
    maxConnectionsPerUser: config.maxConnectionsPerUser,
    handshake: {
      verifier,
      allowQueryToken: config.authQueryToken,
      allowedOrigins: config.authAllowedOrigins,
    },
    accepting,
    sessions,
    frames: new FrameHandler({
      delivery,
      verifier,
      metrics,
      logger: deps.logger,
      draining: () => draining,
      sendDedup,
      onSend: (conn) => shardStats.count(conn.shard),
    }),
    metrics,
    logger: deps.logger,
    onPresenceChange: (userId) => membership.touch(userId),
    onSessionAdded: (userId, conn, since) => delivery.arrived(userId, conn, since),
  });

  const status = (): ReadyzBody => ({
    ready: isReady(),
    // What routers place on: a node whose bus is down still serves its local users.
    accepting: accepting(),
    draining: draining || drained,
    bus: deps.bus.isReady(),
    nodeId: config.nodeId,
    ownerTableVersion: ownership.table.version,
    shardsOwned: ownership.table.shardsOf(config.nodeId).length,
  });

  const server: Server = createServer(
    // The router's limit plus what it adds: a head it let through is never refused here (issue 15, item 10).
    { maxHeaderSize: config.maxHeaderBytes + ROUTER_HEADER_ALLOWANCE_BYTES },
    createHttpApi({
      nodeId: config.nodeId,
      logger: log,
      internalToken: config.internalToken,
      metrics,
      status,
      presence: (userId) => ({
        localSessions: sessions.sessionsOf(userId).size,
        remoteNodes: directory.remoteNodesOf(userId, config.nodeId),
      }),
      shardMessages: () => shardStats.snapshot(),
      drain,
      undrain,
      closeSessions: (ids, windowMs) => {
        const targets = sessions.byConnectionIds(ids);
        // Draining (SIGTERM or admin): the node is closing every session itself, over its own window.
        if (draining || drained) return targets.length;
        for (const conn of targets)
          void conn.closeAfter(Math.random() * windowMs, 'MOVED', Math.random() * 1000);
        metrics.migrations.inc(targets.length);
        return targets.length;
      },
    }),
  );
  server.on('upgrade', (req, socket, head) => gateway.onUpgrade(req, socket as Socket, head));

  /** The admin drain's closes in progress (called off by undrain or superseded by shutdown). */
  let drainCloses: AbortController | undefined;

  async function drain(): Promise<void> {
    if (drained) return;
    drained = true;
    updateReadyGauge();
    log.info('drained by admin: leaving the ring');
    await membership.setState('draining');
    const abort = new AbortController();
    drainCloses = abort;
    void (async () => {
      await shardsHandedOver(abort.signal);
      await closeSessions('MOVED', abort.signal);
      if (!abort.signal.aborted) log.info('drained by admin: every session closed');
    })();
  }

  async function undrain(): Promise<void> {
    if (!drained) return;
    drained = false;
    drainCloses?.abort();
    updateReadyGauge();
    log.info('undrained by admin: back in the ring');
    await membership.setState('active');
  }

  // Dead peers: ping every interval; a client silent for longer than the idle timeout is terminated.
  const pingTimer = setInterval(() => {
    for (const conn of sessions.all()) conn.heartbeat();
  }, config.pingIntervalMs);
  pingTimer.unref();
  // Members expire without a record arriving: look again every heartbeat interval.
  const ownershipTimer = setInterval(() => {
    ownership.refresh();
    directory.sweep();
    delivery.sweep();
  }, config.heartbeatIntervalMs);
  ownershipTimer.unref();

  async function start(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    address = server.address() as AddressInfo;
    await deps.bus.start({
      onMessage: (message, position) => {
        if (!position.backfill) shardStats.count(position.shard);
        delivery.fromBus(message, position);
      },
      heldFloorOf: (shard) => handoff.floorOf(shard),
      onShardReleased: (shard) => {
        handoff.release(shard);
        delivery.shardReleased(shard);
      },
      // Durable mode reads back a window before each shard it takes, for its recovery buffer.
      backfill: durable ? config.recoveryMaxPerShard : 0,
      onShardTaken: (shard, from, start) => delivery.shardTaken(shard, from, start),
      onPresence: (nodeId, userId, record) =>
        directory.applyPresence(userId, nodeId, record?.epoch ?? null, record?.shard),
      onMember: (id, heartbeat) => {
        directory.applyMember(id, heartbeat);
        ownership.refresh();
      },
      isMemberAlive: (nodeId, epoch) => directory.isMemberAlive(nodeId, epoch),
      onReadyChange: (ready) => {
        log.info({ ready }, 'bus readiness');
        updateReadyGauge();
      },
    });
    membership.clearStale(directory.staleEntriesOf(config.nodeId, deps.epoch));
    await membership.start();
    listening = true;
    updateReadyGauge();
    log.info(
      { host: address.address, port: address.port, bus: deps.bus.kind, epoch: deps.epoch },
      'chat node ready',
    );
    return address;
  }

  /**
   * Resolves once this node's own owner table no longer gives it any shard: its `draining` heartbeat has
   * gone round the members topic, which every router reads too, so a client told to reconnect now lands
   * on the shard's new owner. Bounded (Kafka may be down): at most the heartbeat timeout, and at most
   * half of what the shutdown grace leaves after the drain window.
   */
  async function shardsHandedOver(signal?: AbortSignal): Promise<void> {
    const boundMs = Math.min(
      config.heartbeatTimeoutMs,
      Math.max(0, config.shutdownGraceMs - config.drainWindowMs) / 2,
    );
    const started = Date.now();
    while (ownership.table.shardsOf(config.nodeId).length > 0 && !signal?.aborted) {
      if (Date.now() - started >= boundMs) {
        log.warn({ waitedMs: Date.now() - started }, 'shards not handed over in time: closing anyway');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Closes every session with `name` (4001 on shutdown, 4002 after an admin drain) and a retry hint,
   * spread evenly over the drain window, then any that opened meanwhile; resolves once all are closed.
   * An aborted `signal` (undrain) stops the closes not yet made and resolves at once.
   */
  async function closeSessions(name: 'DRAINING' | 'MOVED', signal?: AbortSignal): Promise<void> {
    const hint = () => Math.random() * 1000;
    // Sessions already closing (an earlier drain, a migration) are waited for, not given a slot.
    const all = sessions.all();
    const open = all.filter((conn) => conn.isOpen);
    const step = open.length > 1 ? config.drainWindowMs / (open.length - 1) : 0;
    log.info({ sessions: open.length, windowMs: config.drainWindowMs, code: name }, 'closing sessions');
    open.forEach((conn, i) => {
      setTimeout(() => signal?.aborted || conn.close(name, hint()), i * step).unref();
    });
    const closed = all.map((conn) => conn.whenClosed());
    const aborted = new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve()));
    await Promise.race([Promise.all(closed), aborted]);
    if (signal?.aborted) return;
    // A handshake that was past its checks when the drain began: closed now.
    const late = sessions.all();
    for (const conn of late) conn.close(name, hint());
    await Promise.race([Promise.all(late.map((conn) => conn.whenClosed())), aborted]);
  }

  async function shutdown(): Promise<void> {
    draining = true;
    drainCloses?.abort();
    updateReadyGauge();
    log.info({ sessions: sessions.sessionCount }, 'draining');
    await membership.setState('draining');
    // The listener stays open until every session is closed: upgrades get 503 with Retry-After (not
    // accepting), /readyz answers 503 saying `draining`, and a router's migrate request is answered.
    await shardsHandedOver();
    await closeSessions('DRAINING');
    // Presence withdrawn and the heartbeat tombstone; then the bus commits and releases its shards.
    await membership.stop();
    await deps.bus.stop();
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await serverClosed;
  }

  async function stop(): Promise<boolean> {
    clearInterval(pingTimer);
    clearInterval(ownershipTimer);
    handoff.stop();
    sendDedup.close();
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), config.shutdownGraceMs);
    });
    const clean = await Promise.race([shutdown().then(() => true as const), graceOver]);
    clearTimeout(timer);
    if (!clean) {
      log.warn('grace period over; terminating what is left');
      for (const conn of sessions.all()) conn.terminate();
      server.closeAllConnections();
    }
    log.info({ clean }, 'stopped');
    return clean;
  }

  return { nodeId: config.nodeId, metrics, start, stop, isReady, drain, undrain };
}
