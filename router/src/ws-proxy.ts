import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import {
  AFFINITY_HEADER,
  CONNECTION_ID_HEADER,
  UserId,
  affinityKeyOf,
  checkHandshake,
  shardOf,
  type ErrorCode,
  type HandshakeCheck,
  type Logger,
} from '@chat/shared';
import { AddressLimiter } from './address-limiter.js';
import type { ConnectionTable, ProxiedConnection } from './connections.js';
import { LogThrottle } from './log-throttle.js';
import type { MemberTable } from './member-table.js';
import type { RouterMetrics } from './metrics.js';
import { SocketPair, type PairEnd, type SocketPairOptions } from './socket-pair.js';
import { TrustedProxies, type ClientAddress } from './trusted-proxies.js';
import {
  HTTP_REFUSAL,
  readNodeRefusal,
  refusalStyleOf,
  refuseUpgrade,
  type RefusalStyle,
} from './upgrade-refusal.js';

export interface WsProxyOptions {
  readonly routerId: string;
  /** Origin allowlist and token verifier (undefined verifier: authentication off). */
  readonly handshake: HandshakeCheck;
  readonly handshakeRatePerSec: number;
  /**
   * Proxies whose X-Forwarded-For is believed for the client address (the handshake limit, log lines,
   * the X-Forwarded-For the node gets); default none: the TCP peer is the client.
   */
  readonly trustedProxies?: TrustedProxies;
  readonly affinityQuery: boolean;
  readonly handshakeTimeoutMs: number;
  /**
   * A proxied connection whose side has not taken what is queued for it for this long is cut (default
   * 30,000 ms; see `SocketPair`).
   */
  readonly stallTimeoutMs?: number;
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
const STALL_TIMEOUT_MS = 30_000;
/** Body of a node's refusal relayed to the client, at most. */
const MAX_RELAYED_BODY = 64 * 1024;
const MAX_EARLY_BYTES = 64 * 1024;

function ignoreError(): void {
  // Every socket error is followed by 'close', where the connection ends and is counted.
}

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

/** What the proxy keeps about a socket until its handshake is over. */
interface Handshake {
  readonly client: ClientAddress;
  /** Set when it asked for `?refusal=close`. */
  readonly close?: { readonly style: RefusalStyle; readonly head: Buffer };
}

interface Pending {
  readonly id: string;
  readonly key: string;
  readonly shard: number;
  readonly nodeId: string;
  readonly client: Socket;
  readonly upstream: Socket;
  proxyReq?: ClientRequest;
  /** Until the 101: the client leaving aborts the handshake (removed once upgraded). */
  onClientClose: () => void;
  upgraded: boolean;
  done: boolean;
  timer: NodeJS.Timeout;
}

/**
 * The WebSocket hop. Validates the upgrade, derives the affinity key, places the connection on the owner
 * of the key's shard (the node that reads that shard's Kafka partition), opens the TCP connection to it
 * itself (a refusal is a retryable 502: no other node may take the shard), sends the handshake over it
 * with the connection id and the affinity key, relays the node's answer, and after a 101 hands both
 * sockets to a `SocketPair`; the router never parses frames. Every way an upgrade can fail ends with an
 * HTTP status (or a close after the 101), a metric, and both sockets gone: the client leaving before the
 * node answered aborts the proxied request, and a handshake the node never answers gets 504.
 */
export class WsProxy {
  readonly #o: WsProxyOptions;
  readonly #log: Logger;
  /** Per client socket: stop the early reading and give back what was read (see handle()). */
  readonly #early = new WeakMap<Socket, () => void>();
  /**
   * Per client socket in handshake: its client address, and, when it asked for `?refusal=close`, how to
   * refuse it and the bytes after its head.
   */
  readonly #handshake = new WeakMap<Socket, Handshake>();
  readonly #proxies: TrustedProxies;
  /** Authenticated handshakes per address. */
  readonly #handshakes: AddressLimiter;
  /** Refused handshakes per address: their own budget, so a flood of them never spends the one above. */
  readonly #failures: AddressLimiter;
  readonly #refusalLog: LogThrottle;
  readonly #pairOptions: SocketPairOptions;
  // Shared listeners (one function for every socket: an idle connection keeps no closure of its own).
  readonly #clientClosed = () => this.#o.metrics.sockets.dec({ side: 'client' });
  readonly #upstreamClosed = () => this.#o.metrics.sockets.dec({ side: 'upstream' });
  #seq = 0;

  constructor(options: WsProxyOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'proxy' });
    this.#proxies = options.trustedProxies ?? new TrustedProxies([]);
    if (this.#proxies.everything.length > 0) {
      // Accepted (a test rig may want it), but never what production means: said once, at start-up.
      this.#log.warn(
        { trustedProxies: this.#proxies.everything },
        'CHAT_ROUTER_TRUSTED_PROXIES trusts every address: any client can claim any address (X-Forwarded-For) and dodge the per-address handshake limit',
      );
    }
    const clock = options.now ? { now: options.now } : {};
    const rate = options.handshakeRatePerSec;
    this.#handshakes = new AddressLimiter(rate, rate * 2, clock);
    this.#failures = new AddressLimiter(rate, rate * 2, clock);
    this.#refusalLog = new LogThrottle({
      intervalMs: options.refusalLogIntervalMs ?? 10_000,
      ...(options.now ? { now: options.now } : {}),
    });
    this.#pairOptions = {
      stallTimeoutMs: options.stallTimeoutMs ?? STALL_TIMEOUT_MS,
      halfCloseGraceMs: HALF_CLOSE_GRACE_MS,
      onEnd: (pair, endedBy) => this.#pairEnded(pair, endedBy),
    };
  }

  /** The `upgrade` listener of the public server. */
  handle(req: IncomingMessage, client: Socket, head: Buffer): void {
    const { metrics } = this.#o;
    metrics.sockets.inc({ side: 'client' });
    client.once('close', this.#clientClosed);
    client.on('error', ignoreError);
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

    const style = refusalStyleOf(req);
    const from = this.#proxies.resolve(client.remoteAddress, req.headers['x-forwarded-for']);
    this.#o.metrics.clientAddresses.inc({ source: from.source });
    if (from.source === 'malformed') this.#logMalformedForward(from.address);
    this.#handshake.set(client, {
      client: from,
      ...(style.kind === 'close' ? { close: { style, head } } : {}),
    });
    const url = new URL(req.url ?? '/', 'http://router');
    const match = CHAT_PATH.exec(url.pathname);
    if (!match) return this.#failed(client, 404, 'ROUTER_ERR_NOT_FOUND', 'not_found');
    const userId = match[1] ?? '';
    if (!UserId.safeParse(userId).success)
      return this.#failed(client, 400, 'ROUTER_ERR_BAD_USER_ID', 'bad_request');
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      return this.#failed(client, 400, 'ROUTER_ERR_BAD_UPGRADE', 'bad_request');
    }
    const affinity = url.searchParams.get('affinity');
    if (this.#o.affinityQuery && affinity !== null && !UserId.safeParse(affinity).success) {
      return this.#failed(client, 400, 'ROUTER_ERR_BAD_AFFINITY', 'bad_request');
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
        ...this.#clientFields(client),
        ...(origin ? { origin: req.headers.origin?.slice(0, 200) } : {}),
      });
      // 503 (AUTH_ERR_KEYS_UNAVAILABLE): no usable JWKS here; the client may retry.
      const retry = auth.status === 503 ? { 'Retry-After': '5' } : undefined;
      if (auth.status === 503) {
        return this.#refuse(client, auth.status, auth.code, 'unauthorized', retry);
      }
      return this.#failed(
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
    // Only an authenticated handshake spends the address's handshake budget.
    if (!this.#handshakes.allow(this.#clientOf(client).address)) {
      return this.#rateLimited(client, 'handshakes', userId);
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

  /**
   * A trusted proxy sent an X-Forwarded-For the router could not read (its client was taken to be the
   * proxy, so all its clients share one handshake budget): a proxy to fix. Rate-limited like refusals.
   */
  #logMalformedForward(proxy: string): void {
    const decision = this.#refusalLog.hit('x-forwarded-for');
    if (!decision.log) return;
    this.#log.warn(
      { proxy, suppressed: decision.suppressed },
      'unreadable X-Forwarded-For from a trusted proxy: its address is used',
    );
  }

  /**
   * Refuses a handshake that failed (bad path, user id, upgrade, affinity, origin or token) with its own
   * status, charged to the address's failure budget; once that is spent, such handshakes get 429 instead.
   * Valid handshakes from the same address have their own budget and are not refused for these.
   */
  #failed(
    client: Socket,
    status: number,
    code: ErrorCode,
    result: string,
    headers: Record<string, string> = {},
  ) {
    if (!this.#failures.allow(this.#clientOf(client).address)) {
      return this.#rateLimited(client, 'failures');
    }
    this.#refuse(client, status, code, result, headers);
  }

  /**
   * 429 for an address past one of its budgets (`handshakes`: valid ones; `failures`: refused ones),
   * logged like the other refusals with the client address, so that behind a load balancer an operator
   * sees who is throttled (and whether the address came from X-Forwarded-For or is the peer itself).
   */
  #rateLimited(client: Socket, budget: 'handshakes' | 'failures', user?: string): void {
    this.#logRefusal('ROUTER_ERR_RATE_LIMITED', 'warn', {
      ...(user === undefined ? {} : { user }),
      ...this.#clientFields(client),
      budget,
    });
    this.#refuse(client, 429, 'ROUTER_ERR_RATE_LIMITED', 'rate_limited', { 'Retry-After': '1' });
  }

  /** A refusal line's client fields: the address, and whether a trusted proxy's header gave it. */
  #clientFields(client: Socket): { client: string; forwarded: boolean } {
    const from = this.#clientOf(client);
    return { client: from.address, forwarded: from.source === 'forwarded' };
  }

  #refuse(
    client: Socket,
    status: number,
    code: ErrorCode,
    result: string,
    headers: Record<string, string> = {},
  ) {
    this.#o.metrics.upgrades.inc({ result });
    this.#answer(client, status, code, headers);
  }

  /**
   * Ends a refused handshake the way its client asked: an HTTP status (the default), or with
   * `?refusal=close` the completed handshake and a `REFUSED_*` close (the early reading stops first, so
   * the client's close frame is read there).
   */
  #answer(client: Socket, status: number, code: ErrorCode, headers: Record<string, string> = {}): void {
    const close = this.#handshake.get(client)?.close;
    if (close) {
      this.#early.get(client)?.();
      this.#early.delete(client);
    }
    refuseUpgrade(client, close?.style ?? HTTP_REFUSAL, status, code, headers, close?.head);
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
    upstream.once('close', this.#upstreamClosed);
    upstream.on('error', ignoreError);
    const id = `${this.#o.routerId}-${(++this.#seq).toString(36)}`;
    const remaining = Math.max(1, handshakeTimeoutMs - (Date.now() - started));
    const p: Pending = {
      id,
      key,
      shard,
      nodeId,
      client,
      upstream,
      onClientClose: () => {
        if (p.upgraded) return;
        if (!p.done) {
          metrics.proxyErrors.inc({ kind: 'client_gone' });
          this.#finish(p, 'client_gone');
        }
        p.proxyReq?.destroy();
        upstream.destroy();
      },
      upgraded: false,
      done: false,
      timer: setTimeout(() => {
        if (p.upgraded || p.done) return;
        metrics.proxyErrors.inc({ kind: 'handshake_timeout' });
        this.#finish(p, 'upstream_timeout');
        p.proxyReq?.destroy();
        upstream.destroy();
        this.#answer(client, 504, 'ROUTER_ERR_UPSTREAM_TIMEOUT');
      }, remaining),
    };
    // The client leaving before the 101: abort the proxied request so the upstream socket goes too.
    client.once('close', p.onClientClose);
    this.#request(req, head, p, url);
  }

  /**
   * Sends the client's handshake to the node over `p.upstream` with the router's headers (the connection
   * id and affinity key replace any a client sent; X-Forwarded-For is the chain from the client the router
   * vouches for, see `TrustedProxies`; X-Forwarded-Port/Proto appended) and follows the
   * answer: a 101 hands both sockets to a `SocketPair`; any other status is relayed to the client with its
   * body (bounded) and `Connection: close`.
   */
  #request(req: IncomingMessage, head: Buffer, p: Pending, url: string): void {
    const { metrics } = this.#o;
    const target = new URL(url);
    const headers: Record<string, string | string[] | undefined> = { ...req.headers };
    delete headers.trailer;
    const append = (name: string, value: string) => {
      const prior = headers[name];
      headers[name] = typeof prior === 'string' && prior !== '' ? `${prior},${value}` : value;
    };
    headers['x-forwarded-for'] = this.#clientOf(p.client).chain.join(', ');
    append('x-forwarded-port', String(req.socket.localPort ?? ''));
    append('x-forwarded-proto', 'ws');
    headers[CONNECTION_ID_HEADER] = p.id;
    headers[AFFINITY_HEADER] = p.key;
    const proxyReq = request({
      host: target.hostname,
      port: Number(target.port || 80),
      method: 'GET',
      path: req.url ?? '/',
      headers,
      // No agent: the request goes over the socket the router opened (an agent would open its own).
      createConnection: () => p.upstream,
    });
    p.proxyReq = proxyReq;
    proxyReq.once('upgrade', (res: IncomingMessage, socket: Socket, upstreamHead: Buffer) => {
      if (p.done || p.client.destroyed) {
        socket.destroy();
        return;
      }
      this.#upgraded(p, res, head, upstreamHead);
    });
    proxyReq.once('response', (res: IncomingMessage) => {
      // The node answered with a status instead of 101 (e.g. 503 draining): relayed as it is.
      this.#finish(p, 'upstream_rejected');
      this.#log.debug({ node: p.nodeId, status: res.statusCode }, 'node refused the upgrade');
      if (this.#handshake.get(p.client)?.close) void this.#relayAsClose(res, p);
      else relayResponse(res, p.client, () => p.upstream.destroy());
    });
    proxyReq.on('error', (err: Error) => {
      if (!p.upgraded && !p.done) {
        metrics.proxyErrors.inc({ kind: 'upstream_error' });
        this.#finish(p, 'upstream_refused');
        this.#answer(p.client, 502, 'ROUTER_ERR_UPSTREAM_FAILED');
      }
      p.upstream.destroy();
      this.#log.debug({ err: err.message, node: p.nodeId }, 'proxy stream error');
    });
    proxyReq.end();
  }

  /** A node's refusal for a client that asked for closes: its status and code as a `REFUSED_*` close. */
  async #relayAsClose(res: IncomingMessage, p: Pending): Promise<void> {
    const refusal = await readNodeRefusal(res);
    p.upstream.destroy();
    if (refusal) this.#answer(p.client, refusal.status, refusal.code, refusal.headers);
    else p.client.destroy();
  }

  /** The client address of a socket in handshake (the peer's when it was never looked at). */
  #clientOf(client: Socket): ClientAddress {
    return this.#handshake.get(client)?.client ?? this.#proxies.resolve(client.remoteAddress, undefined);
  }

  #finish(p: Pending, result: string): void {
    if (p.done) return;
    p.done = true;
    clearTimeout(p.timer);
    this.#o.metrics.upgrades.inc({ result });
  }

  /** The node's 101: the client gets it as the node wrote it, then the pair forwards bytes both ways. */
  #upgraded(p: Pending, res: IncomingMessage, head: Buffer, upstreamHead: Buffer): void {
    p.upgraded = true;
    p.client.off('close', p.onClientClose);
    this.#early.get(p.client)?.();
    this.#early.delete(p.client);
    if (head.length > 0) p.client.unshift(head);
    if (upstreamHead.length > 0) p.upstream.unshift(upstreamHead);
    this.#finish(p, 'ok');
    p.client.write(responseHead(res));
    const { connections, metrics, members } = this.#o;
    new SocketPair(p.id, p.client, p.upstream, this.#pairOptions);
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
    if (members.owners.ownerOf(p.shard) !== p.nodeId) {
      this.#log.info({ node: p.nodeId, shard: p.shard }, 'shard moved during the handshake');
      this.#o.onMisplaced?.(connection);
    }
  }

  /** One proxied connection is over (see `SocketPair`): out of the table, counted. */
  #pairEnded(pair: SocketPair, endedBy: PairEnd): void {
    const { connections, metrics } = this.#o;
    if (!connections.delete(pair.id)) return;
    metrics.proxied.set(connections.size);
    if (endedBy === 'stalled') {
      metrics.connectionsCut.inc({ reason: 'stalled' });
      this.#log.info({ id: pair.id }, 'cut a connection whose side stopped reading');
    }
    metrics.closed.inc({ by: endedBy === 'stalled' ? 'router' : endedBy });
  }

  close(): void {
    // Nothing of its own to close: the sockets belong to the connection table.
  }
}

/** The status line and headers of `res` as the node sent them (names and repeats kept). */
function responseHead(res: IncomingMessage): string {
  let head = `HTTP/1.1 ${res.statusCode ?? 101} ${res.statusMessage || 'Switching Protocols'}\r\n`;
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * Relays a node's refusal (a status other than 101) to the client: its status line, its headers except
 * the framing ones, its body read in full (at most 64 KiB), `Connection: close`; `done` when sent.
 */
function relayResponse(res: IncomingMessage, client: Socket, done: () => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_RELAYED_BODY) chunks.push(chunk);
  });
  res.once('error', () => {
    client.destroy();
    done();
  });
  res.once('end', () => {
    const body = Buffer.concat(chunks);
    let head = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
    const raw = res.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]?.toLowerCase();
      if (name === 'connection' || name === 'transfer-encoding' || name === 'content-length') continue;
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    head += `Connection: close\r\nContent-Length: ${body.length}\r\n\r\n`;
    if (!client.destroyed && client.writable) client.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
    else client.destroy();
    done();
  });
}
