import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  ChatError,
  bearerMatches,
  createTokenVerifier,
  directoryAuthFromConfig,
  kafkaConnectionOptions,
  type ConfigOf,
  type Logger,
  type routerConfigSchema,
} from '@chat/shared';
import { createAdminHandler } from './admin-api.js';
import { ConnectionTable } from './connections.js';
import { MemberTable } from './member-table.js';
import { KafkaMembership } from './membership/kafka-membership.js';
import { StaticMembership, parseStaticMembers } from './membership/static-membership.js';
import type { MembershipSource } from './membership/types.js';
import { RouterMetrics } from './metrics.js';
import { RouterReadiness } from './readiness.js';
import { Rebalancer } from './rebalancer.js';
import { TrustedProxies } from './trusted-proxies.js';
import { refusalStyleOf, refuseUpgrade } from './upgrade-refusal.js';
import { WsProxy } from './ws-proxy.js';

export type RouterConfig = ConfigOf<typeof routerConfigSchema>;

export interface RouterDeps {
  readonly logger: Logger;
  /** Defaults to CHAT_ROUTER_NODES when set, else the Kafka members topic. */
  readonly membership?: MembershipSource;
  readonly metrics?: RouterMetrics;
}

export interface Router {
  readonly members: MemberTable;
  readonly metrics: RouterMetrics;
  readonly connections: ConnectionTable;
  /** Listens on the public and admin ports; resolves once membership started (members probed once). */
  start(): Promise<{ port: number; adminPort: number }>;
  /** Stops accepting, asks nodes to move this router's connections (4002), closes what is left. */
  stop(drainMs?: number): Promise<void>;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Picks the membership source a configuration asks for. */
export function membershipFromConfig(
  config: RouterConfig,
  logger: Logger,
  metrics?: RouterMetrics,
): MembershipSource {
  if (config.nodes.length > 0) return new StaticMembership(parseStaticMembers(config.nodes));
  if (config.kafkaBrokers.length > 0) {
    // Refused here (exit 78) when the Kafka credentials are incomplete or there is no cluster secret.
    const recordAuth = directoryAuthFromConfig(config);
    if (recordAuth.warning) logger.warn({ setting: 'CHAT_CLUSTER_RECORD_AUTH' }, recordAuth.warning);
    return new KafkaMembership({
      brokers: config.kafkaBrokers,
      connection: kafkaConnectionOptions(config),
      recordAuth,
      onIgnored: (reason) => metrics?.memberRecordsIgnored.inc({ reason }),
      onUnsignedAccepted: () => metrics?.memberRecordsUnsignedAccepted.inc(),
      topicPrefix: config.kafkaTopicPrefix,
      timeoutMs: config.memberTimeoutMs,
      logger,
    });
  }
  throw new ChatError(
    'CONFIG_ERR_INVALID',
    'no membership source: set CHAT_ROUTER_NODES or CHAT_KAFKA_BROKERS',
  );
}

/** The router: public WebSocket endpoint, placement, proxy, membership, rebalancing, admin API. */
export function createRouter(config: RouterConfig, deps: RouterDeps): Router {
  const log = deps.logger.child({ subsystem: 'router' });
  const metrics = deps.metrics ?? new RouterMetrics();
  const membership = deps.membership ?? membershipFromConfig(config, deps.logger, metrics);
  const connections = new ConnectionTable();
  const members = new MemberTable({
    shardCount: config.clusterShards,
    probeIntervalMs: config.probeIntervalMs,
    probeTimeoutMs: config.probeTimeoutMs,
    probeFailures: config.probeFailures,
    heartbeats: membership.kind === 'kafka',
    metrics,
    logger: deps.logger,
  });
  const readiness = new RouterReadiness({ membership, members, logger: deps.logger });
  // Credentials for the nodes' /internal API.
  const nodeHeaders: Record<string, string> = config.internalToken
    ? { authorization: `Bearer ${config.internalToken}` }
    : {};
  const rebalancer = new Rebalancer({
    nodeHeaders,
    windowMs: config.migrationWindowMs,
    connections,
    members,
    metrics,
    logger: deps.logger,
  });
  members.on('owners', (next, previous) => void rebalancer.onOwnersChange(next, previous));
  metrics.watchShards({
    owners: () => members.owners,
    liveness: (id) => members.liveness(id),
    connections: () => connections.all(),
  });
  const verifier = createTokenVerifier(config, { logger: deps.logger, keyErrors: metrics.authKeyErrors });
  if (!verifier) log.warn('authentication is OFF (CHAT_AUTH_MODE=off): any client can connect as any user');
  // Refused here (exit 78) when an entry is not a CIDR block or address (the loader checks it first).
  const trustedProxies = new TrustedProxies(config.trustedProxies);
  if (trustedProxies.size > 0) {
    log.info({ trustedProxies: config.trustedProxies }, 'X-Forwarded-For is believed from these proxies');
  }
  if (!config.adminToken && !isLoopbackHost(config.adminHost)) {
    throw new ChatError(
      'CONFIG_ERR_INVALID',
      `CHAT_ROUTER_ADMIN_HOST=${config.adminHost} is not loopback: set CHAT_ROUTER_ADMIN_TOKEN to protect the admin API and metrics`,
    );
  }
  const proxy = new WsProxy({
    routerId: randomBytes(3).toString('hex'),
    handshake: {
      verifier,
      allowQueryToken: config.authQueryToken,
      allowedOrigins: config.authAllowedOrigins,
    },
    handshakeRatePerSec: config.handshakeRatePerSec,
    trustedProxies,
    affinityQuery: config.affinityQuery,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    stallTimeoutMs: config.stallTimeoutMs,
    members,
    connections,
    metrics,
    logger: deps.logger,
    onMisplaced: (connection) => void rebalancer.migrate([connection], config.migrationWindowMs),
  });
  let stopping = false;
  /** Upgrade sockets open now (in handshake or proxied), against CHAT_ROUTER_MAX_CONNECTIONS. */
  let upgraded = 0;
  const upgradeClosed = () => void upgraded--;

  const publicServer: Server = createServer(
    {
      maxHeaderSize: config.maxHeaderBytes,
      // A client that never finishes its request head (slowloris) gets 408 after the handshake timeout.
      headersTimeout: config.handshakeTimeoutMs,
      requestTimeout: config.handshakeTimeoutMs * 2,
      connectionsCheckingInterval: Math.min(1000, config.handshakeTimeoutMs),
    },
    (req, res) => serveHttp(req, res),
  );
  function serveHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const { ready, settled, reason } = readiness.check();
      return json(ready ? 200 : 503, {
        ready,
        settled,
        ...(reason ? { reason } : {}),
        ringSize: members.ring.size,
        ringVersion: members.ring.version,
        ownerTableVersion: members.owners.version,
      });
    }
    return json(404, { error: 'ROUTER_ERR_NOT_FOUND' });
  }
  publicServer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // Refused here: an HTTP status, or the REFUSED_* close a client asked for with ?refusal=close.
    if (stopping) {
      socket.on('error', () => undefined);
      metrics.upgrades.inc({ result: 'no_node' });
      const style = refusalStyleOf(req);
      if (style.kind === 'close') {
        refuseUpgrade(socket, style, 503, 'ROUTER_ERR_NO_NODE', { 'Retry-After': '1' }, head);
        return;
      }
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    // No placement before the view has settled: a partial ring would place users that move a moment later.
    if (!readiness.check().settled) {
      socket.on('error', () => undefined);
      metrics.upgrades.inc({ result: 'not_ready' });
      refuseUpgrade(socket, refusalStyleOf(req), 503, 'ROUTER_ERR_NO_NODE', { 'Retry-After': '1' }, head);
      return;
    }
    if (upgraded >= config.maxConnections) {
      socket.on('error', () => undefined);
      metrics.upgrades.inc({ result: 'full' });
      refuseUpgrade(socket, refusalStyleOf(req), 503, 'ROUTER_ERR_FULL', { 'Retry-After': '1' }, head);
      return;
    }
    upgraded++;
    socket.once('close', upgradeClosed);
    proxy.handle(req, socket, head);
  });
  // Malformed requests and oversize heads: answer with a status, count, never crash.
  publicServer.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const [reason, status] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? (['header_too_large', '431 Request Header Fields Too Large'] as const)
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? (['timeout', '408 Request Timeout'] as const)
          : (['malformed', '400 Bad Request'] as const);
    metrics.badRequests.inc({ reason });
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    setTimeout(() => socket.destroy(), 1000).unref();
  });

  const adminHandler = createAdminHandler({
    members,
    connections,
    logger: deps.logger,
    nodeHeaders,
    readiness: () => readiness.check(),
  });
  // Admin API and metrics share a listener (loopback by default) and, when set, a bearer token.
  const adminServer = createServer((req, res) => void serveAdmin(req, res));
  async function serveAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (config.adminToken && !bearerMatches(req.headers.authorization, config.adminToken)) {
      metrics.authFailures.inc({ code: 'AUTH_ERR_UNAUTHORIZED' });
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
      res.end('{"error":"AUTH_ERR_UNAUTHORIZED"}\n');
      return;
    }
    if ((req.url ?? '').split('?')[0] === '/metrics') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
      return;
    }
    return adminHandler(req, res);
  }

  const listen = (server: Server, port: number, host: string) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
    });

  return {
    members,
    metrics,
    connections,
    async start() {
      await membership.start((list) => members.setMembers(list));
      // One probe round before listening: a static list has settled by the time the router listens.
      await members.probeAll();
      members.start();
      const port = await listen(publicServer, config.port, config.host);
      const adminPort = await listen(adminServer, config.adminPort, config.adminHost);
      log.info({ port, adminPort, membership: membership.kind }, 'router listening');
      return { port, adminPort };
    },
    async stop(drainMs = 1000) {
      stopping = true;
      readiness.stop();
      members.stop();
      const closed = new Promise<void>((resolve) => publicServer.close(() => resolve()));
      if (connections.size > 0) await rebalancer.migrate(connections.all(), drainMs);
      const deadline = Date.now() + drainMs + 2000;
      while (connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const left = connections.all();
      if (left.length > 0) {
        metrics.connectionsCut.inc({ reason: 'router_stop' }, left.length);
        log.warn({ connections: left.length }, 'router stopping: cut connections still open');
      }
      for (const c of left) {
        c.client.destroy();
        c.upstream.destroy();
      }
      publicServer.closeAllConnections();
      await closed;
      await new Promise<void>((resolve) => adminServer.close(() => resolve()));
      adminServer.closeAllConnections();
      proxy.close();
      await membership.stop();
      log.info('router stopped');
    },
  };
}
