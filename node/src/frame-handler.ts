import { decodeClientFrame, errorFrame, isChatError, type Logger, type TokenVerifier } from '@chat/shared';
import type { RawData } from 'ws';
import type { Connection } from './connection.js';
import type { Delivery, Outgoing } from './delivery.js';
import type { NodeMetrics } from './metrics.js';
import { sendKeyOf, type SendAnswer, type SendDedup } from './send-dedup.js';
import { UserBudgets } from './user-budgets.js';

export interface FrameHandlerDeps {
  readonly delivery: Delivery;
  /** Undefined: authentication is off (an `auth` frame is answered with `auth_ok` and `exp` 0). */
  readonly verifier: TokenVerifier | undefined;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  /** True while the node shuts down: frames are answered with NODE_ERR_DRAINING. */
  readonly draining: () => boolean;
  /** Retries by `cid` within a window (send-dedup.ts); none: every send is new, with a fresh id. */
  readonly sendDedup?: SendDedup;
  /** Every user's rate budget across their connections (a fresh set unless given). */
  readonly userBudgets?: UserBudgets;
  /** Called for each decoded send (before delivery): the node's per-shard message counts. */
  readonly onSend?: (conn: Connection) => void;
}

/** Whitespace only: a seed client's keep-alive, which the seed ignored. */
const BLANK = /^\s*$/;

/** The bytes a frame arrived as (ws gives one Buffer unless `binaryType` was changed). */
function byteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.length, 0);
  return data.byteLength;
}

/**
 * The per-connection protocol: charges each client frame to the rate limits (its connection's and its
 * user's, by count and by bytes) before anything else, decodes what is admitted, and hands it to its
 * handler (send -> the retry window by `cid`, then Delivery; auth -> token refresh; ping -> pong). Every answer is written through the
 * client's `Connection`.
 */
export class FrameHandler {
  readonly #d: FrameHandlerDeps;
  readonly #log: Logger;
  readonly #budgets: UserBudgets;

  constructor(deps: FrameHandlerDeps) {
    this.#d = deps;
    this.#budgets = deps.userBudgets ?? new UserBudgets();
    this.#log = deps.logger.child({ subsystem: 'frames' });
  }

  /** One frame from `conn`'s socket. */
  onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    const { metrics } = this.#d;
    conn.seen();
    // Charged before it is decoded: a refused frame costs its bytes' arrival, not their parsing.
    const admitted = conn.admit(byteLength(data), this.#budgets.of(conn.userId, conn.limits));
    if (admitted !== 'ok') {
      metrics.framesIn.inc({ type: 'rate_limited' });
      // Only the first refusal of a run is answered, so only it is decoded (for its cid).
      if (admitted === 'warn') {
        const cid = isBinary ? undefined : this.#cidOf(conn, data);
        conn.send(errorFrame('NODE_ERR_RATE_LIMITED', 'slow down', cid));
      }
      return;
    }
    if (this.#d.draining()) {
      // Answered with the send's cid, so the client knows which send to retry on its next connection.
      metrics.framesIn.inc({ type: 'draining' });
      const cid = isBinary ? undefined : this.#cidOf(conn, data);
      return conn.send(errorFrame('NODE_ERR_DRAINING', 'node is shutting down; reconnect', cid));
    }
    if (isBinary) {
      metrics.framesIn.inc({ type: 'binary' });
      return conn.send(errorFrame('PROTO_ERR_BINARY_UNSUPPORTED', 'send JSON text frames'));
    }
    this.#onText(conn, textOf(data));
  }

  #cidOf(conn: Connection, data: RawData): string | undefined {
    const inbound = decodeClientFrame(textOf(data), { userId: conn.userId });
    return inbound.kind === 'send' || inbound.kind === 'auth' || inbound.kind === 'legacy'
      ? inbound.frame.cid
      : undefined;
  }

  #onText(conn: Connection, text: string): void {
    const { metrics } = this.#d;
    if (conn.flavor === 'seed' && BLANK.test(text)) {
      metrics.framesIn.inc({ type: 'blank' }); // Counted against the rate like any frame; never answered.
      return;
    }
    const inbound = decodeClientFrame(text, { userId: conn.userId });
    metrics.framesIn.inc({ type: inbound.kind });
    switch (inbound.kind) {
      case 'ping':
        return conn.pong();
      case 'invalid':
        return conn.send(errorFrame(inbound.error.code, inbound.error.message, inbound.error.cid));
      case 'auth':
        return void this.#refreshToken(conn, inbound.frame.token, inbound.frame.cid);
      case 'send':
      case 'legacy':
        this.#d.onSend?.(conn);
        this.#send(conn, inbound).then(
          (reply) => conn.send(reply),
          (err: unknown) => {
            this.#log.error({ err }, 'send failed unexpectedly');
            const cid = sendKeyOf(conn.userId, inbound)?.cid;
            conn.send(errorFrame('NODE_ERR_INTERNAL', 'internal error', cid));
          },
        );
        return;
    }
  }

  /**
   * A send with a `cid` goes through the retry window (a retry gets the first answer, or is sent again
   * with the first attempt's server id); one without, or with the window off, is a new message.
   */
  #send(conn: Connection, out: Outgoing): Promise<SendAnswer> {
    const { delivery, sendDedup } = this.#d;
    const key = sendDedup?.enabled ? sendKeyOf(conn.userId, out) : undefined;
    if (!sendDedup || !key) return delivery.send(conn, out);
    return sendDedup.send(key, (id) => delivery.send(conn, out, id));
  }

  async #refreshToken(conn: Connection, token: string, cid: string | undefined): Promise<void> {
    const { verifier, metrics } = this.#d;
    if (!verifier) return conn.send({ type: 'auth_ok', exp: 0, ...(cid ? { cid } : {}) });
    try {
      const verified = await verifier.verify(token);
      if (verified.sub !== conn.userId) {
        metrics.authFailures.inc({ code: 'AUTH_ERR_SUBJECT_MISMATCH' });
        return conn.send(errorFrame('AUTH_ERR_SUBJECT_MISMATCH', 'token is for another user', cid));
      }
      conn.armExpiry(verified.exp);
      conn.send({ type: 'auth_ok', exp: verified.exp, ...(cid ? { cid } : {}) });
    } catch (err) {
      const code = isChatError(err) ? err.code : 'AUTH_ERR_INVALID_TOKEN';
      metrics.authFailures.inc({ code });
      conn.send(errorFrame(code, 'token refused; the current one stays until it expires', cid));
    }
  }
}

function textOf(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString('utf8');
}
