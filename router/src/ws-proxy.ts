import { Agent, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createProxyServer } from 'http-proxy-3';
import {
  AFFINITY_HEADER,
  CONNECTION_ID_HEADER,
  UserId,
  affinityKeyOf,
  checkHandshake,
  shardOf,
  rejectUpgrade,
  type ErrorCode,
  type HandshakeCheck,
  type Logger,
} from '@chat/shared';
import { AddressLimiter } from './address-limiter.js';
import type { ConnectionTable, ProxiedConnection } from './connections.js';
import { LogThrottle } from './log-throttle.js';
import type { MemberTable } from './member-table.js';
import type { RouterMetrics } from './metrics.js';

export interface WsProxyOptions {
  readonly routerId: string;
  /** Origin allowlist and token verifier (undefined verifier: authentication off). */
  readonly handshake: HandshakeCheck;
  readonly handshakeRatePerSec: number;
  readonly affinityQuery: boolean;
  readonly handshakeTimeoutMs: number;
  readonly members: MemberTable;
  readonly connections: ConnectionTable;
  readonly metrics: RouterMetrics;
  readonly logger: Logger;
  /**
   * Called with a connection whose shard changed owner while its handshake was in flight (the owner
   * table's change event came before the connection was in the table): the router migrates it.
   */
  readonly onMisplaced?: (connection: ProxiedConnection) => void;
  /** At most one log line per refusal code per this many milliseconds (default 10 s). */
  readonly refusalLogIntervalMs?: number;
  /** The clock of the refusal log's rate limit (default `Date.now`). */
  readonly now?: () => number;
}

const CHAT_PATH = /^\/chat\/([^/]*)$/;
const HALF_CLOSE_GRACE_MS = 5000;
const MAX_EARLY_BYTES = 64 * 1024;

/** Opens a TCP connection to `url`'s host and port; rejects on refusal or after `timeoutMs`. */
function connectTo(url: string, timeoutMs: number): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port || 80) });
    const timer = setTimeout(() => socket.destroy(new Error('connect timeout')), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

interface Pending {
  readonly id: string;
  readonly key: string;
  readonly shard: number;
  readonly nodeId: string;
  readonly client: Socket;
  readonly upstream: Socket;
  proxyReq?: ClientRequest;
  upgraded: boolean;
  done: boolean;
  timer: NodeJS.Timeout;
}

/**
 * The WebSocket hop. Validates the upgrade, derives the affinity key, places the connection on the owner
 * of the key's shard (the node that reads that shard's Kafka partition), opens the TCP connection to it
 * itself (a refusal is a retryable 502: no other node may take the shard), and hands both sockets to
 * http-proxy-3, which forwards the handshake with the connection id and the affinity key and pipes the
 * bytes; the router never parses frames. Every way an upgrade can fail ends with an HTTP status (or a close after the 101), a metric,
 * and both sockets gone: the client leaving before the node answered aborts the proxied request (which
 * http-proxy-3 alone would leak), and a handshake the node never answers gets 504.
 */
export class WsProxy {
  readonly #o: WsProxyOptions;
  readonly #log: Logger;
  readonly #proxy = createProxyServer({ ws: true, xfwd: true });
  readonly #pending = new WeakMap<IncomingMessage, Pending>();
  /** Per client socket: stop the early reading and give back what was read (see handle()). */
  readonly #early = new WeakMap<Socket, () => void>();
  readonly #handshakes: AddressLimiter;
  readonly #refusalLog: LogThrottle;
  #seq = 0;

  constructor(options: WsProxyOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'proxy' });
    this.#handshakes = new AddressLimiter(options.handshakeRatePerSec, options.handshakeRatePerSec * 2, {
      ...(options.now ? { now: options.now } : {}),
    });
    this.#refusalLog = new LogThrottle({
      intervalMs: options.refusalLogIntervalMs ?? 10_000,
      ...(options.now ? { now: options.now } : {}),
    });
    this.#proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
      const p = this.#pending.get(req);
      if (!p) return;
      p.proxyReq = proxyReq;
      proxyReq.once('upgrade', () => this.#upgraded(p));
      proxyReq.once('response', (res: IncomingMessage) => {
        // The node answered with a status instead of 101 (e.g. 503 draining); http-proxy-3 relays it.
        this.#finish(p, 'upstream_rejected');
        this.#log.debug({ node: p.nodeId, status: res.statusCode }, 'node refused the upgrade');
      });
    });
    // Errors without a per-call callback (none expected: every call passes one).
    this.#proxy.on('error', (err: Error) => this.#log.warn({ err: err.message }, 'proxy error'));
  }

  /** The `upgrade` listener of the public server. */
  handle(req: IncomingMessage, client: Socket, head: Buffer): void {
    const { metrics } = this.#o;
    metrics.sockets.inc({ side: 'client' });
    client.once('close', () => metrics.sockets.dec({ side: 'client' }));
    client.on('error', (err) => this.#log.debug({ err: err.message }, 'client socket error'));
    // Until the node's 101, read the client so that a reset or FIN is noticed at once (a paused socket
    // notices neither, and http.Server sockets allow half-open). A client may not send frames before the
    // 101; anything that arrives anyway is kept and handed on (bounded).
    const early: Buffer[] = [];
    let earlyBytes = 0;
    const onData = (chunk: Buffer) => {
      earlyBytes += chunk.length;
      if (earlyBytes > MAX_EARLY_BYTES) client.destroy();
      else early.push(chunk);
    };
    const onEnd = () => client.destroy();
    client.on('data', onData);
    client.once('end', onEnd);
    client.resume();
    this.#early.set(client, () => {
      client.off('data', onData);
      client.off('end', onEnd);
      client.pause();
      if (early.length > 0) client.unshift(Buffer.concat(early));
    });

    const url = new URL(req.url ?? '/', 'http://router');
    const match = CHAT_PATH.exec(url.pathname);
    if (!match) return this.#refuse(client, 404, 'ROUTER_ERR_NOT_FOUND', 'not_found');
    const userId = match[1] ?? '';
    if (!UserId.safeParse(userId).success)
      return this.#refuse(client, 400, 'ROUTER_ERR_BAD_USER_ID', 'bad_request');
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      return this.#refuse(client, 400, 'ROUTER_ERR_BAD_UPGRADE', 'bad_request');
    }
    const address = client.remoteAddress ?? 'unknown';
    if (!this.#handshakes.allow(address)) {
      return this.#refuse(client, 429, 'ROUTER_ERR_RATE_LIMITED', 'rate_limited', { 'Retry-After': '1' });
    }
    const affinity = url.searchParams.get('affinity');
    if (this.#o.affinityQuery && affinity !== null && !UserId.safeParse(affinity).success) {
      return this.#refuse(client, 400, 'ROUTER_ERR_BAD_AFFINITY', 'bad_request');
    }
    void this.#authenticate(req, client, head, userId, this.#o.affinityQuery ? affinity : null);
  }

  /** Checks origin and token before any upstream connection exists, then places and connects. */
  async #authenticate(
    req: IncomingMessage,
    client: Socket,
    head: Buffer,
    userId: string,
    queryAffinity: string | null,
  ): Promise<void> {
    const auth = await checkHandshake(req, userId, this.#o.handshake);
    if (!auth.ok) {
      this.#o.metrics.authFailures.inc({ code: auth.code });
      const origin = auth.code === 'AUTH_ERR_ORIGIN_FORBIDDEN';
      this.#logRefusal(auth.code, origin ? 'warn' : 'info', {
        user: userId,
        ...(origin ? { origin: req.headers.origin?.slice(0, 200) } : {}),
      });
      // 503 (AUTH_ERR_KEYS_UNAVAILABLE): no usable JWKS here; the client may retry.
      const retry = auth.status === 503 ? { 'Retry-After': '5' } : undefined;
      return this.#refuse(
        client,
        auth.status,
        auth.code,
        origin ? 'origin_forbidden' : 'unauthorized',
        retry,
      );
    }
    if (client.destroyed) {
      this.#o.metrics.upgrades.inc({ result: 'client_gone' });
      return;
    }
    // Affinity precedence: the signed claim, then the query parameter (where allowed), then the user.
    const key = affinityKeyOf(auth.token?.affinity, queryAffinity, userId);
    const owners = this.#o.members.owners;
    const shard = shardOf(key, owners.shardCount);
    const nodeId = owners.ownerOf(shard);
    const member = nodeId === undefined ? undefined : this.#o.members.member(nodeId);
    if (nodeId === undefined || member === undefined) {
      return this.#refuse(client, 503, 'ROUTER_ERR_NO_NODE', 'no_node', { 'Retry-After': '1' });
    }
    await this.#connect(req, client, head, { key, shard, nodeId, url: member.url });
  }

  /**
   * Logs why a handshake was refused, at most one line per code per interval (a flood of bad tokens or a
   * foreign origin cannot fill the logs); the line counts those suppressed since the previous one. A
   * browser cannot see the refusal's status or body, so this line and the metrics are how to tell why.
   */
  #logRefusal(code: ErrorCode, level: 'info' | 'warn', fields: Record<string, unknown>): void {
    const decision = this.#refusalLog.hit(code);
    if (!decision.log) return;
    this.#log[level]({ code, ...fields, suppressed: decision.suppressed }, 'handshake refused');
  }

  #refuse(
    client: Socket,
    status: number,
    code: ErrorCode,
    result: string,
    headers: Record<string, string> = {},
  ) {
    this.#o.metrics.upgrades.inc({ result });
    rejectUpgrade(client, status, code, headers);
  }

  /**
   * Connects to the shard's owner. Only the owner reads the shard's partition, so placing the connection
   * anywhere else would lose its messages: when the owner refuses, the client gets a retryable 502 and
   * comes back once the probes have updated the owner table.
   */
  async #connect(
    req: IncomingMessage,
    client: Socket,
    head: Buffer,
    target: { key: string; shard: number; nodeId: string; url: string },
  ): Promise<void> {
    const { metrics, handshakeTimeoutMs } = this.#o;
    const { key, shard, nodeId, url } = target;
    const started = Date.now();
    let upstream: Socket | undefined;
    try {
      upstream = await connectTo(url, handshakeTimeoutMs);
    } catch (err) {
      metrics.proxyErrors.inc({ kind: 'connect_failed' });
      this.#log.warn({ node: nodeId, shard, err: (err as Error).message }, 'node refused the connection');
    }
    if (client.destroyed) {
      upstream?.destroy();
      metrics.upgrades.inc({ result: 'client_gone' });
      metrics.proxyErrors.inc({ kind: 'client_gone' });
      return;
    }
    if (!upstream) {
      return this.#refuse(client, 502, 'ROUTER_ERR_UPSTREAM_REFUSED', 'upstream_refused', {
        'Retry-After': '1',
      });
    }

    metrics.sockets.inc({ side: 'upstream' });
    upstream.once('close', () => metrics.sockets.dec({ side: 'upstream' }));
    const id = `${this.#o.routerId}-${(++this.#seq).toString(36)}`;
    const remaining = Math.max(1, handshakeTimeoutMs - (Date.now() - started));
    const p: Pending = {
      id,
      key,
      shard,
      nodeId,
      client,
      upstream,
      upgraded: false,
      done: false,
      timer: setTimeout(() => {
        if (p.upgraded || p.done) return;
        metrics.proxyErrors.inc({ kind: 'handshake_timeout' });
        this.#finish(p, 'upstream_timeout');
        p.proxyReq?.destroy();
        upstream.destroy();
        rejectUpgrade(client, 504, 'ROUTER_ERR_UPSTREAM_TIMEOUT');
      }, remaining),
    };
    this.#pending.set(req, p);
    // The client leaving before the 101: abort the proxied request so the upstream socket goes too.
    client.once('close', () => {
      if (p.upgraded) return;
      if (!p.done) {
        metrics.proxyErrors.inc({ kind: 'client_gone' });
        this.#finish(p, 'client_gone');
      }
      p.proxyReq?.destroy();
      upstream.destroy();
    });
    const agent = Object.assign(new Agent({ keepAlive: false }), { createConnection: () => upstream });
    this.#proxy.ws(
      req,
      client,
      head,
      {
        target: url,
        agent,
        // Set by the router only: a client's own copy of either header is replaced.
        headers: { [CONNECTION_ID_HEADER]: id, [AFFINITY_HEADER]: key },
      },
      (err: Error) => {
        if (!p.upgraded) {
          if (!p.done) {
            metrics.proxyErrors.inc({ kind: 'upstream_error' });
            this.#finish(p, 'upstream_refused');
            rejectUpgrade(client, 502, 'ROUTER_ERR_UPSTREAM_FAILED');
          }
        } else {
          metrics.proxyErrors.inc({ kind: client.destroyed ? 'client_error' : 'upstream_error' });
        }
        upstream.destroy();
        this.#log.debug({ err: err.message, node: nodeId }, 'proxy stream error');
      },
    );
  }

  #finish(p: Pending, result: string): void {
    if (p.done) return;
    p.done = true;
    clearTimeout(p.timer);
    this.#o.metrics.upgrades.inc({ result });
  }

  #upgraded(p: Pending): void {
    if (p.done) return;
    p.upgraded = true;
    // Runs before http-proxy-3's own upgrade listener pipes the sockets.
    this.#early.get(p.client)?.();
    this.#finish(p, 'ok');
    const { connections, metrics, members } = this.#o;
    const connection: ProxiedConnection = {
      id: p.id,
      key: p.key,
      shard: p.shard,
      nodeId: p.nodeId,
      client: p.client,
      upstream: p.upstream,
      migrating: false,
    };
    connections.add(connection);
    metrics.proxied.set(connections.size);
    let endedBy: 'client' | 'upstream' | undefined;
    p.client.once('close', () => (endedBy ??= 'client'));
    p.upstream.once('close', () => (endedBy ??= 'upstream'));
    const cleanup = () => {
      if (!connections.delete(p.id)) return;
      metrics.proxied.set(connections.size);
      metrics.closed.inc({ by: endedBy ?? 'router' });
      // Whichever side went first, the other follows: end() lets bytes in flight (a close frame) reach
      // it; a peer that never finishes its side is cut after a grace period.
      for (const socket of [p.client, p.upstream]) {
        socket.end();
        setTimeout(() => socket.destroy(), HALF_CLOSE_GRACE_MS).unref();
      }
    };
    p.client.once('close', cleanup);
    p.upstream.once('close', cleanup);
    if (members.owners.ownerOf(p.shard) !== p.nodeId) {
      this.#log.info({ node: p.nodeId, shard: p.shard }, 'shard moved during the handshake');
      this.#o.onMisplaced?.(connection);
    }
  }

  close(): void {
    this.#proxy.close();
  }
}
