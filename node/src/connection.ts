import {
  CLOSE_CODES,
  PONG_TEXT,
  TokenBucket,
  closeReason,
  encodeServerFrame,
  type CloseCodeName,
  type Flavor,
  type Logger,
  type ServerFrame,
} from '@chat/shared';
import type { WebSocket } from 'ws';
import type { NodeMetrics } from './metrics.js';
import type { OutboundMessage } from './outbound-message.js';
import type { UserBudget, UserBudgetLimits, UserLimit } from './user-budgets.js';

/** The per-connection limits (from the node's configuration). */
export interface ConnectionLimits extends UserBudgetLimits {
  /** Bytes waiting to be sent above which the reader is cut with 4009. */
  readonly maxBufferedBytes: number;
  /** Frames refused in a row for the rate limit before the connection is closed with 4008. */
  readonly rateCloseAfter: number;
  readonly authClockToleranceSec: number;
  /** A client silent (no frame, no pong) for longer is terminated. */
  readonly idleTimeoutMs: number;
}

export interface ConnectionInit {
  /** Unique per node process. */
  readonly id: number;
  readonly userId: string;
  /** The router's id for the proxied connection (x-chat-connection-id), so it can ask for a migration. */
  readonly connectionId: string | undefined;
  readonly flavor: Flavor;
  /** The shard of the connection's affinity key: where messages to this user go. */
  readonly shard: number;
  /** The token's expiry (seconds since the epoch); undefined: none. */
  readonly exp: number | undefined;
}

export interface ConnectionDeps {
  readonly limits: ConnectionLimits;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** How long a close frame may wait behind a full send buffer before the socket is terminated. */
const CLOSE_WAIT_MS = 1000;

/**
 * The one owner of a client socket. Every byte the node writes to a client goes through `#write`, which
 * checks the socket is open, counts the frame, and cuts a reader that has fallen behind (4009): answers,
 * deliveries, `pong`s and pings alike. The connection also owns the client's rate bucket, its token
 * expiry timer, its liveness, and every close code it is closed with.
 */
export class Connection {
  readonly id: number;
  readonly userId: string;
  readonly connectionId: string | undefined;
  readonly flavor: Flavor;
  readonly shard: number;
  readonly #socket: WebSocket;
  readonly #d: ConnectionDeps;
  readonly #now: () => number;
  readonly #frames: TokenBucket;
  readonly #bytes: TokenBucket;
  #refusedInARow = 0;
  #lastSeen: number;
  #expiryTimer: NodeJS.Timeout | undefined;
  #closing = false;
  /** A close scheduled by `closeAfter` (one at a time: the first one scheduled wins). */
  #scheduledClose: NodeJS.Timeout | undefined;
  readonly #closed: Promise<void>;

  constructor(socket: WebSocket, init: ConnectionInit, deps: ConnectionDeps) {
    this.id = init.id;
    this.userId = init.userId;
    this.connectionId = init.connectionId;
    this.flavor = init.flavor;
    this.shard = init.shard;
    this.#socket = socket;
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#frames = new TokenBucket(deps.limits.ratePerSec, deps.limits.rateBurst, this.#now);
    this.#bytes = new TokenBucket(deps.limits.rateBytesPerSec, deps.limits.rateBytesBurst, this.#now);
    this.#lastSeen = this.#now();
    this.armExpiry(init.exp);
    socket.on('pong', () => this.seen());
    this.#closed = new Promise((resolve) =>
      socket.once('close', () => {
        clearTimeout(this.#expiryTimer);
        clearTimeout(this.#scheduledClose);
        resolve();
      }),
    );
  }

  /** The limits this connection was opened with (its user's shared budget is a multiple of them). */
  get limits(): ConnectionLimits {
    return this.#d.limits;
  }

  get isOpen(): boolean {
    return this.#socket.readyState === this.#socket.OPEN;
  }

  /** Sends a server frame (an answer, an error, `auth_ok`). A seed client gets an ack only for a `cid`. */
  send(frame: ServerFrame): void {
    if (this.flavor === 'seed' && frame.type === 'ack' && frame.cid === undefined) return;
    if (this.#write(encodeServerFrame(frame), frame.type) && frame.type === 'error') {
      this.#d.metrics.errorsSent.inc({ code: frame.code });
    }
  }

  /** Writes a message to its receiver, encoded for this client's flavor (once per flavor per message). */
  deliver(message: OutboundMessage, path: 'local' | 'bus'): void {
    if (this.#write(message.encoded(this.flavor), message.frameType(this.flavor))) {
      this.#d.metrics.deliveries.inc({ path });
    }
  }

  /** Answers the seed keep-alive. */
  pong(): void {
    this.#write(PONG_TEXT, 'pong');
  }

  /** Something arrived from the client: it is alive. */
  seen(): void {
    this.#lastSeen = this.#now();
  }

  /** The ping loop's step: terminates a client silent for longer than the idle timeout, else pings it. */
  heartbeat(): void {
    if (this.#now() - this.#lastSeen > this.#d.limits.idleTimeoutMs) {
      this.#d.metrics.deadPeers.inc();
      this.#socket.terminate();
    } else if (this.isOpen) {
      this.#socket.ping();
      this.#afterWrite('ping');
    }
  }

  /**
   * The rate limit, charged before a frame is decoded: one frame of `bytes` against this connection's
   * frames and bytes per second, then against its user's budget shared by all their connections here.
   * `ok` when the frame may be processed; `refused` when it is over any of them, `warn` for the first
   * refusal of a run (the only one answered, so a flood cannot make us write a flood). Too many refusals
   * in a row close the connection with 4008.
   */
  admit(bytes: number, user?: UserBudget): 'ok' | 'warn' | 'refused' {
    const over: 'rate' | 'rate_bytes' | UserLimit | undefined = !this.#frames.take()
      ? 'rate'
      : !this.#bytes.take(bytes)
        ? 'rate_bytes'
        : user?.take(bytes);
    if (over === undefined) {
      this.#refusedInARow = 0;
      return 'ok';
    }
    this.#refusedInARow++;
    this.#d.metrics.limitHits.inc({ limit: over });
    if (this.#refusedInARow >= this.#d.limits.rateCloseAfter && this.isOpen) {
      this.#d.metrics.limitHits.inc({ limit: 'rate_close' });
      this.close('RATE_LIMITED', 1000 + Math.random() * 4000);
    }
    return this.#refusedInARow === 1 ? 'warn' : 'refused';
  }

  /** Closes the connection with 4003 when `exp` passes (plus the clock tolerance); replaces the timer. */
  armExpiry(exp: number | undefined): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    // A refresh that finished after the socket closed arms nothing.
    if (exp === undefined || this.#closing || !this.isOpen) return;
    const ms = (exp + this.#d.limits.authClockToleranceSec) * 1000 - this.#now();
    this.#expiryTimer = setTimeout(
      () => {
        this.#d.metrics.authFailures.inc({ code: 'AUTH_ERR_TOKEN_EXPIRED' });
        this.close('TOKEN_EXPIRED');
      },
      Math.max(0, Math.min(ms, 2_147_483_647)),
    );
    this.#expiryTimer.unref();
  }

  /** Closes with a documented code; `retryAfterMs` goes in the reason as the reconnect hint. */
  close(name: CloseCodeName, retryAfterMs?: number): void {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#expiryTimer);
    this.#socket.close(CLOSE_CODES[name].code, closeReason(name, retryAfterMs));
  }

  /**
   * Closes with `name` after `delayMs`; resolves when the socket has closed (whoever closed it). Only one
   * close is scheduled at a time: asking again while one is pending changes nothing.
   */
  closeAfter(delayMs: number, name: CloseCodeName, retryAfterMs?: number): Promise<void> {
    if (this.#scheduledClose === undefined && !this.#closing) {
      this.#scheduledClose = setTimeout(() => this.close(name, retryAfterMs), delayMs);
      this.#scheduledClose.unref();
    }
    return this.#closed;
  }

  /** Resolves once the socket has closed. */
  whenClosed(): Promise<void> {
    return this.#closed;
  }

  /** Drops the socket without a close handshake (dead peers, the end of the shutdown grace). */
  terminate(): void {
    clearTimeout(this.#expiryTimer);
    this.#socket.terminate();
  }

  /** The only write to the socket. Returns false when the socket was not open. */
  #write(text: string, type: string): boolean {
    if (!this.isOpen) return false;
    this.#socket.send(text);
    this.#afterWrite(type);
    return true;
  }

  /** Counts what was written and cuts the reader if its buffer went over the limit. */
  #afterWrite(type: string): void {
    this.#d.metrics.framesOut.inc({ type });
    if (this.#socket.bufferedAmount > this.#d.limits.maxBufferedBytes) this.#cutSlowReader();
  }

  /** A reader slower than what it is sent is cut (4009), so memory stays bounded. */
  #cutSlowReader(): void {
    if (this.#closing) return;
    this.#d.metrics.limitHits.inc({ limit: 'slow_consumer' });
    this.#d.logger.debug({ session: this.id, buffered: this.#socket.bufferedAmount }, 'slow consumer cut');
    this.close('SLOW_CONSUMER', 1000);
    // The close frame waits behind the full buffer; do not wait for it long.
    setTimeout(() => this.#socket.terminate(), CLOSE_WAIT_MS).unref();
  }
}
