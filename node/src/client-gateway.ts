import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  AFFINITY_HEADER,
  CONNECTION_ID_HEADER,
  ConnectionId,
  SUBPROTOCOL,
  UserId,
  affinityKeyOf,
  checkHandshake,
  parseSince,
  shardOf,
  rejectUpgrade,
  type HandshakeCheck,
  type Logger,
} from '@chat/shared';
import { Connection, type ConnectionLimits } from './connection.js';
import type { Since } from './delivery.js';
import type { FrameHandler } from './frame-handler.js';
import type { NodeMetrics } from './metrics.js';
import type { SessionRegistry } from './session-registry.js';

export interface ClientGatewayOptions {
  readonly limits: ConnectionLimits;
  /** The cluster's shard count. */
  readonly shards: number;
  readonly maxPayloadBytes: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerUser: number;
  readonly handshake: HandshakeCheck;
  /** False while starting or draining: upgrades get 503 with Retry-After. */
  readonly accepting: () => boolean;
  readonly sessions: SessionRegistry;
  readonly frames: FrameHandler;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  /** A user's first session here opened or their last one closed (presence changes). */
  readonly onPresenceChange: (userId: string) => void;
  /**
   * A session of the user registered (what was held for them is written to it). Every one, not only the
   * first: an earlier one may still be registered while it closes, and takes no writes. `since`: the
   * resume position the client named (`?since=<shard>:<offset>:<epoch>`), `invalid` when malformed.
   */
  readonly onSessionAdded?: (userId: string, conn: Connection, since: Since | undefined) => void;
}

const CHAT_PATH = /^\/chat\/([^/]*)$/;

/**
 * Where clients come in: checks each upgrade (path, readiness, limits, token and origin, whatever the
 * router already did), completes it, and gives the socket its `Connection`, registered in the session
 * registry until it closes.
 */
export class ClientGateway {
  readonly #o: ClientGatewayOptions;
  readonly #log: Logger;
  readonly #wss: WebSocketServer;
  #nextId = 1;

  constructor(options: ClientGatewayOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'gateway' });
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: options.maxPayloadBytes,
      clientTracking: false,
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
  }

  /** The HTTP server's `upgrade` event. */
  onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', (err) => this.#log.debug({ err: err.message }, 'upgrade socket error'));
    void this.#upgrade(req, socket, head);
  }

  async #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const { metrics } = this.#o;
    const path = (req.url ?? '').split('?')[0] ?? '';
    const match = CHAT_PATH.exec(path);
    if (!match) return rejectUpgrade(socket, 404, 'NODE_ERR_BAD_PATH');
    const userId = match[1] ?? '';
    if (!UserId.safeParse(userId).success) return rejectUpgrade(socket, 400, 'NODE_ERR_BAD_PATH');
    if (this.#refused(socket, userId)) return;
    // Checked again here, whatever the router did: a node may be reached without it.
    const auth = await checkHandshake(req, userId, this.#o.handshake);
    if (!auth.ok) {
      metrics.authFailures.inc({ code: auth.code });
      // 503 (AUTH_ERR_KEYS_UNAVAILABLE): no usable JWKS here; the client may retry. Logged by the verifier.
      return rejectUpgrade(socket, auth.status, auth.code, auth.status === 503 ? { 'Retry-After': '5' } : {});
    }
    if (socket.destroyed) return;
    // Again after the token check, which may take a while (a JWKS fetch): the node may have begun to
    // shut down, or other handshakes of the same user may have filled the limits meanwhile.
    if (this.#refused(socket, userId)) return;
    const header = req.headers[CONNECTION_ID_HEADER];
    const connectionId = ConnectionId.safeParse(header).success ? (header as string) : undefined;
    // The key the router placed the connection by; a node reached directly computes it the way the router
    // does (a client choosing its own key only chooses where messages to itself go).
    const placed = req.headers[AFFINITY_HEADER];
    const params = new URL(req.url ?? '/', 'http://node').searchParams;
    const query = params.get('affinity');
    // A malformed position is answered on the socket (`resumed`, reason invalid), not refused.
    const since = parseSince(params.get('since'));
    const valid = (k: unknown): k is string => typeof k === 'string' && UserId.safeParse(k).success;
    const key = valid(placed)
      ? placed
      : affinityKeyOf(auth.token?.affinity, valid(query) ? query : null, userId);
    const shard = shardOf(key, this.#o.shards);
    this.#wss.handleUpgrade(req, socket, head, (ws) =>
      this.#open(ws, { userId, connectionId, exp: auth.token?.exp, shard }, since),
    );
  }

  /** Refuses the upgrade when the node does not accept or a connection limit is reached; true if it did. */
  #refused(socket: Socket, userId: string): boolean {
    const { metrics, sessions } = this.#o;
    // Starting or draining: no. Kafka down: yes, local delivery works and cross-node sends say why not.
    if (!this.#o.accepting()) {
      rejectUpgrade(socket, 503, 'NODE_ERR_NOT_READY', { 'Retry-After': '1' });
      return true;
    }
    if (sessions.sessionCount >= this.#o.maxConnections) {
      metrics.limitHits.inc({ limit: 'node_connections' });
      rejectUpgrade(socket, 503, 'NODE_ERR_FULL', { 'Retry-After': '5' });
      return true;
    }
    if (sessions.sessionsOf(userId).size >= this.#o.maxConnectionsPerUser) {
      metrics.limitHits.inc({ limit: 'user_connections' });
      rejectUpgrade(socket, 429, 'NODE_ERR_TOO_MANY_CONNECTIONS');
      return true;
    }
    return false;
  }

  #open(
    ws: WebSocket,
    init: { userId: string; connectionId: string | undefined; exp: number | undefined; shard: number },
    since: Since | undefined,
  ): void {
    const { sessions, metrics } = this.#o;
    const { userId } = init;
    const conn = new Connection(
      ws,
      { id: this.#nextId++, ...init, flavor: ws.protocol === SUBPROTOCOL ? 'v1' : 'seed' },
      { limits: this.#o.limits, metrics, logger: this.#log },
    );
    if (sessions.add(conn)) this.#o.onPresenceChange(userId);
    this.#o.onSessionAdded?.(userId, conn, since);
    this.#countSessions();
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself (1009 too big, 1007 invalid UTF-8, 1002 protocol error).
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') metrics.limitHits.inc({ limit: 'frame_size' });
      else metrics.framesIn.inc({ type: 'protocol_error' });
      this.#log.debug({ err: err.message, code: err.code, session: conn.id }, 'client socket error');
    });
    ws.on('message', (data, isBinary) => this.#o.frames.onMessage(conn, data, isBinary));
    ws.on('close', () => {
      if (sessions.remove(conn)) this.#o.onPresenceChange(userId);
      this.#countSessions();
    });
  }

  #countSessions(): void {
    this.#o.metrics.connections.set(this.#o.sessions.sessionCount);
    this.#o.metrics.users.set(this.#o.sessions.userCount);
  }
}
