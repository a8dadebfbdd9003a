import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  CLOSE_CODES,
  SUBPROTOCOL,
  UserId,
  closeReason,
  decodeClientFrame,
  isChatError,
  readJsonBody,
  rejectUpgrade,
  encodeServerFrame,
  errorFrame,
  TokenBucket,
  bearerMatches,
  checkHandshake,
  createTokenVerifier,
  type ConfigOf,
  type Logger,
  type ServerFrame,
  type nodeConfigSchema,
} from '@chat/shared';
import type { ChatBus } from './bus/types.js';
import { Delivery } from './delivery.js';
import { Membership } from './membership.js';
import { NodeMetrics } from './metrics.js';
import { PresenceDirectory } from './presence-directory.js';
import { SessionRegistry, type Session } from './session-registry.js';

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
  /** Leaves the ring (heartbeat `draining`, no new sessions); sessions stay until routers migrate them. */
  drain(): Promise<void>;
  undrain(): Promise<void>;
}

/** Header through which a router names the proxied connection (for migrations). */
export const CONNECTION_ID_HEADER = 'x-chat-connection-id';
const CONNECTION_ID = /^[A-Za-z0-9._:-]{1,100}$/;

const CHAT_PATH = /^\/chat\/([^/]*)$/;

/** True for 127.0.0.0/8 and ::1 (also IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a.startsWith('127.');
}

/** The chat node: sessions, protocol, local-first delivery, bus, membership, lifecycle. */
export function createChatNode(config: NodeConfig, deps: ChatNodeDeps): ChatNode {
  const log = deps.logger.child({ subsystem: 'node' });
  const metrics = deps.metrics ?? new NodeMetrics();
  const sessions = new SessionRegistry();
  const directory = new PresenceDirectory({ timeoutMs: config.heartbeatTimeoutMs });
  let address: AddressInfo | undefined;
  let listening = false;
  let draining = false;
  let drained = false; // admin drain: out of the ring, process stays
  let nextSessionId = 1;
  let messageSeq = 0;
  const idPrefix = `${config.nodeId}-${deps.epoch.slice(0, 8)}-`;

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
  const delivery = new Delivery({
    nodeId: config.nodeId,
    sessions,
    directory,
    bus: deps.bus,
    metrics,
    logger: deps.logger,
    newId: () => idPrefix + (++messageSeq).toString(36),
    afterWrite: (session) => checkBuffer(session.socket),
    mode: config.deliveryMode,
  });

  // Throws CONFIG_ERR_INVALID when jwt mode has no key material.
  const verifier = createTokenVerifier(config);
  if (!verifier) log.warn('authentication is OFF (CHAT_AUTH_MODE=off): any client can connect as any user');
  const handshakeCheck = {
    verifier,
    allowQueryToken: config.authQueryToken,
    allowedOrigins: config.authAllowedOrigins,
  };

  const accepting = () => listening && !draining && !drained;
  const isReady = () => accepting() && deps.bus.isReady();
  const updateReadyGauge = () => metrics.ready.set(isReady() ? 1 : 0);

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: config.maxPayloadBytes,
    clientTracking: false,
    handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  });

  const server: Server = createServer((req, res) => void handleHttp(req, res));

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://node');
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    // Everything under /internal is for routers and operators: the internal token, or loopback without one.
    if (url.pathname.startsWith('/internal/') && !internalAllowed(req)) {
      metrics.authFailures.inc({ code: 'AUTH_ERR_UNAUTHORIZED' });
      return void json(401, { error: 'AUTH_ERR_UNAUTHORIZED' });
    }
    if (req.method === 'POST') return handleInternalPost(url.pathname, req, json);
    switch (url.pathname) {
      case '/healthz':
        return void json(200, { status: 'ok', nodeId: config.nodeId });
      case '/readyz': {
        const ready = isReady();
        // `accepting` is what routers use: a node whose bus is down still serves its local users.
        return void json(ready ? 200 : 503, {
          ready,
          accepting: accepting(),
          draining: draining || drained,
          bus: deps.bus.isReady(),
          nodeId: config.nodeId,
        });
      }
      case '/metrics': {
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
        return;
      }
      case '/internal/presence': {
        const userId = url.searchParams.get('user') ?? '';
        if (!UserId.safeParse(userId).success) return void json(400, { error: 'NODE_ERR_BAD_PATH' });
        return void json(200, {
          user: userId,
          localSessions: sessions.sessionsOf(userId).size,
          remoteNodes: directory.remoteNodesOf(userId, config.nodeId),
        });
      }
      default:
        return void json(404, { error: 'not found' });
    }
  }

  function internalAllowed(req: IncomingMessage): boolean {
    return config.internalToken
      ? bearerMatches(req.headers.authorization, config.internalToken)
      : isLoopback(req.socket.remoteAddress);
  }

  /** Internal API for routers: migrate sessions, drain, undrain (authorised by the caller). */
  async function handleInternalPost(
    path: string,
    req: IncomingMessage,
    json: (status: number, body: unknown) => void,
  ): Promise<void> {
    switch (path) {
      case '/internal/drain':
        await drain();
        return json(200, { nodeId: config.nodeId, draining: true });
      case '/internal/undrain':
        await undrain();
        return json(200, { nodeId: config.nodeId, draining: false });
      case '/internal/sessions/close': {
        const body = await readJsonBody(req, 1_048_576).catch(() => undefined);
        const ids = (body as { connections?: unknown } | undefined)?.connections;
        const windowMs = Number((body as { windowMs?: unknown } | undefined)?.windowMs ?? 0);
        if (
          !Array.isArray(ids) ||
          !ids.every((id) => typeof id === 'string') ||
          !(windowMs >= 0 && windowMs <= 600_000)
        ) {
          return json(400, { error: 'NODE_ERR_BAD_REQUEST' });
        }
        const targets = sessions.byConnectionIds(new Set(ids));
        for (const session of targets) {
          const delay = Math.random() * windowMs;
          setTimeout(() => {
            session.socket.close(CLOSE_CODES.MOVED.code, closeReason('MOVED', Math.random() * 1000));
          }, delay).unref();
        }
        metrics.migrations.inc(targets.length);
        return json(200, { closing: targets.length });
      }
      default:
        return json(404, { error: 'not found' });
    }
  }

  async function drain(): Promise<void> {
    if (drained) return;
    drained = true;
    updateReadyGauge();
    log.info('drained by admin: leaving the ring');
    await membership.setState('draining');
  }

  async function undrain(): Promise<void> {
    if (!drained) return;
    drained = false;
    updateReadyGauge();
    log.info('undrained by admin: back in the ring');
    await membership.setState('active');
  }

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err: err.message }, 'upgrade socket error'));
    void onUpgrade(req, socket, head);
  });

  async function onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const match = CHAT_PATH.exec(path);
    if (!match) return rejectUpgrade(socket, 404, 'NODE_ERR_BAD_PATH');
    const userId = match[1] ?? '';
    if (!UserId.safeParse(userId).success) return rejectUpgrade(socket, 400, 'NODE_ERR_BAD_PATH');
    // Starting or draining: no. Kafka down: yes, local delivery works and cross-node sends say why not.
    if (!accepting()) return rejectUpgrade(socket, 503, 'NODE_ERR_NOT_READY', { 'Retry-After': '1' });
    if (sessions.sessionCount >= config.maxConnections) {
      metrics.limitHits.inc({ limit: 'node_connections' });
      return rejectUpgrade(socket, 503, 'NODE_ERR_FULL', { 'Retry-After': '5' });
    }
    if (sessions.sessionsOf(userId).size >= config.maxConnectionsPerUser) {
      metrics.limitHits.inc({ limit: 'user_connections' });
      return rejectUpgrade(socket, 429, 'NODE_ERR_TOO_MANY_CONNECTIONS');
    }
    // Checked again here, whatever the router did: a node may be reached without it.
    const auth = await checkHandshake(req, userId, handshakeCheck);
    if (!auth.ok) {
      metrics.authFailures.inc({ code: auth.code });
      return rejectUpgrade(socket, auth.status, auth.code);
    }
    if (socket.destroyed) return;
    const header = req.headers[CONNECTION_ID_HEADER];
    const connectionId = typeof header === 'string' && CONNECTION_ID.test(header) ? header : undefined;
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, userId, connectionId, auth.token?.exp));
  }

  function sendFrame(session: Session, frame: ServerFrame): void {
    if (session.socket.readyState !== session.socket.OPEN) return;
    session.socket.send(encodeServerFrame(frame));
    metrics.framesOut.inc({ type: frame.type });
    if (frame.type === 'error') metrics.errorsSent.inc({ code: frame.code });
    checkBuffer(session.socket);
  }

  /** A reader slower than what it is sent is cut (4009), so memory stays bounded. */
  function checkBuffer(socket: WebSocket): void {
    if (socket.bufferedAmount <= config.maxBufferedBytes || socket.readyState !== socket.OPEN) return;
    metrics.limitHits.inc({ limit: 'slow_consumer' });
    socket.close(CLOSE_CODES.SLOW_CONSUMER.code, closeReason('SLOW_CONSUMER', 1000));
    // The close frame waits behind the full buffer; do not wait for it long.
    setTimeout(() => socket.terminate(), 1000).unref();
  }

  /** Closes the session with 4003 when its token expires, unless an `auth` frame refreshed it. */
  function armExpiry(session: Session, exp: number | undefined): void {
    clearTimeout(session.expiryTimer);
    if (exp === undefined) return;
    const ms = exp * 1000 + config.authClockToleranceSec * 1000 - Date.now();
    session.expiryTimer = setTimeout(
      () => {
        metrics.authFailures.inc({ code: 'AUTH_ERR_TOKEN_EXPIRED' });
        session.socket.close(CLOSE_CODES.TOKEN_EXPIRED.code, closeReason('TOKEN_EXPIRED'));
      },
      Math.max(0, Math.min(ms, 2_147_483_647)),
    );
    session.expiryTimer.unref();
  }

  function onConnection(
    ws: WebSocket,
    userId: string,
    connectionId: string | undefined,
    exp: number | undefined,
  ): void {
    const session: Session = {
      id: nextSessionId++,
      userId,
      socket: ws,
      lastSeen: Date.now(),
      connectionId,
      bucket: new TokenBucket(config.ratePerSec, config.rateBurst),
      refused: 0,
    };
    if (sessions.add(session)) membership.touch(userId);
    metrics.connections.set(sessions.sessionCount);
    metrics.users.set(sessions.userCount);
    armExpiry(session, exp);

    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself (1009 too big, 1007 invalid UTF-8, 1002 protocol error).
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') metrics.limitHits.inc({ limit: 'frame_size' });
      else metrics.framesIn.inc({ type: 'protocol_error' });
      log.debug({ err: err.message, code: err.code, session: session.id }, 'client socket error');
    });
    ws.on('pong', () => (session.lastSeen = Date.now()));
    ws.on('message', (data: RawData, isBinary: boolean) => {
      session.lastSeen = Date.now();
      if (draining) {
        metrics.framesIn.inc({ type: 'draining' });
        return sendFrame(session, errorFrame('NODE_ERR_DRAINING', 'node is shutting down; reconnect'));
      }
      if (isBinary) {
        metrics.framesIn.inc({ type: 'binary' });
        return sendFrame(session, errorFrame('PROTO_ERR_BINARY_UNSUPPORTED', 'send JSON text frames'));
      }
      onText(session, (data as Buffer).toString('utf8'));
    });
    ws.on('close', () => {
      clearTimeout(session.expiryTimer);
      if (sessions.remove(session)) membership.touch(userId);
      metrics.connections.set(sessions.sessionCount);
      metrics.users.set(sessions.userCount);
    });
  }

  /** The rate limit: true when the frame may be processed. Sustained excess closes with 4008. */
  function withinRate(session: Session): boolean {
    if (!session.bucket || session.bucket.take()) {
      session.refused = 0;
      return true;
    }
    session.refused = (session.refused ?? 0) + 1;
    metrics.limitHits.inc({ limit: 'rate' });
    if (session.refused >= config.rateCloseAfter && session.socket.readyState === session.socket.OPEN) {
      metrics.limitHits.inc({ limit: 'rate_close' });
      session.socket.close(
        CLOSE_CODES.RATE_LIMITED.code,
        closeReason('RATE_LIMITED', 1000 + Math.random() * 4000),
      );
    }
    return false;
  }

  function onText(session: Session, text: string): void {
    const inbound = decodeClientFrame(text, { userId: session.userId });
    metrics.framesIn.inc({ type: inbound.kind });
    if (!withinRate(session)) {
      // Only the first refusal of a run is answered, so a flood cannot make us write a flood.
      if (session.refused === 1) {
        const cid = inbound.kind === 'send' || inbound.kind === 'auth' ? inbound.frame.cid : undefined;
        sendFrame(session, errorFrame('NODE_ERR_RATE_LIMITED', 'slow down', cid));
      }
      return;
    }
    switch (inbound.kind) {
      case 'ping':
        if (session.socket.readyState === session.socket.OPEN) session.socket.send('pong');
        metrics.framesOut.inc({ type: 'pong' });
        return;
      case 'invalid':
        return sendFrame(session, errorFrame(inbound.error.code, inbound.error.message, inbound.error.cid));
      case 'auth':
        return void refreshToken(session, inbound.frame.token, inbound.frame.cid);
      case 'send':
      case 'legacy':
        delivery.send(session, inbound).then(
          (reply) => sendFrame(session, reply),
          (err: unknown) => {
            log.error({ err }, 'send failed unexpectedly');
            sendFrame(session, errorFrame('NODE_ERR_INTERNAL', 'internal error'));
          },
        );
        return;
    }
  }

  async function refreshToken(session: Session, token: string, cid: string | undefined): Promise<void> {
    if (!verifier) return sendFrame(session, { type: 'auth_ok', exp: 0, ...(cid ? { cid } : {}) });
    try {
      const verified = await verifier.verify(token);
      if (verified.sub !== session.userId) {
        metrics.authFailures.inc({ code: 'AUTH_ERR_SUBJECT_MISMATCH' });
        return sendFrame(session, errorFrame('AUTH_ERR_SUBJECT_MISMATCH', 'token is for another user', cid));
      }
      armExpiry(session, verified.exp);
      sendFrame(session, { type: 'auth_ok', exp: verified.exp, ...(cid ? { cid } : {}) });
    } catch (err) {
      const code = isChatError(err) ? err.code : 'AUTH_ERR_INVALID_TOKEN';
      metrics.authFailures.inc({ code });
      sendFrame(session, errorFrame(code, 'token refused; the current one stays until it expires', cid));
    }
  }

  // Dead peers: ping every interval; terminate a client silent for longer than the idle timeout.
  const pingTimer = setInterval(() => {
    const now = Date.now();
    for (const session of sessions.all()) {
      if (now - session.lastSeen > config.idleTimeoutMs) {
        metrics.deadPeers.inc();
        session.socket.terminate();
      } else if (session.socket.readyState === session.socket.OPEN) {
        session.socket.ping();
      }
    }
  }, config.pingIntervalMs);
  pingTimer.unref();

  async function start(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    address = server.address() as AddressInfo;
    await deps.bus.start({
      onMessage: (message) => delivery.fromBus(message),
      onPresence: (nodeId, userId, record) => directory.applyPresence(userId, nodeId, record?.epoch ?? null),
      onMember: (id, heartbeat) => directory.applyMember(id, heartbeat),
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

  async function closeSessions(): Promise<void> {
    const all = sessions.all();
    if (all.length === 0) return;
    const step = all.length > 1 ? config.drainWindowMs / (all.length - 1) : 0;
    const closed = all.map(
      (session, i) =>
        new Promise<void>((resolve) => {
          session.socket.once('close', () => resolve());
          const timer = setTimeout(() => {
            session.socket.close(CLOSE_CODES.DRAINING.code, closeReason('DRAINING', Math.random() * 1000));
          }, i * step);
          timer.unref();
        }),
    );
    await Promise.all(closed);
  }

  async function shutdown(): Promise<void> {
    draining = true;
    updateReadyGauge();
    log.info({ sessions: sessions.sessionCount }, 'draining');
    await membership.setState('draining');
    // Stop accepting: close the listener (upgraded sockets stay until closeSessions).
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await closeSessions();
    await membership.stop();
    await deps.bus.stop();
    server.closeAllConnections();
    await serverClosed;
  }

  async function stop(): Promise<boolean> {
    clearInterval(pingTimer);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), config.shutdownGraceMs);
    });
    const clean = await Promise.race([shutdown().then(() => true as const), graceOver]);
    clearTimeout(timer);
    if (!clean) {
      log.warn('grace period over; terminating what is left');
      for (const session of sessions.all()) session.socket.terminate();
      server.closeAllConnections();
    }
    log.info({ clean }, 'stopped');
    return clean;
  }

  return {
    nodeId: config.nodeId,
    metrics,
    start,
    stop,
    isReady,
    drain,
    undrain,
  };
}
