/**
 * The client: one connection at a time to `/chat/{userId}` through the router, kept up the way the
 * cluster's close codes say (close-policy.ts), with every send answered once (queued while not open,
 * resent with the same cid after a reconnect or a retryable error), the token refreshed in-band before it
 * expires, and in durable mode a resume from the last position seen. Platform APIs only (WebSocket,
 * timers, crypto, atob): the same code runs in browsers and Node.js 24.
 */
import type {
  AckStatus,
  AuthOkFrame,
  ErrorFrame,
  MessageFrame,
  MessagePos,
  ResumedFrame,
} from '@chat/shared';
import { DEFAULT_BACKOFF, fullJitterMs, hintedMs, retryAfterMsOf, type BackoffOptions } from './backoff.js';
import { closePolicy, type CloseStep } from './close-policy.js';
import { Emitter } from './emitter.js';
import { ChatError } from './errors.js';
import { IdWindow } from './id-window.js';
import { refreshInMs, tokenTimes } from './jwt.js';
import {
  BEARER_PROTOCOL_PREFIX,
  CLOSE,
  MAX_BODY_CHARS,
  REFUSAL_SUBPROTOCOL,
  SUBPROTOCOL,
  USER_ID_PATTERN,
  bodyLength,
  decodeServerFrame,
  formatSince,
  isPos,
} from './protocol.js';
import { TokenBucket } from './token-bucket.js';
import { CONNECTING, OPEN, type WebSocketConstructor, type WebSocketLike } from './websocket.js';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A change of `client.state`, with why and what comes next. */
export interface StateEvent {
  readonly state: ConnectionState;
  /**
   * Connection attempts since the last open connection: on `open`, the attempt that succeeded (1 for the
   * first); on `reconnecting`, the attempt about to be made.
   */
  readonly attempt: number;
  /** `reconnecting`: milliseconds until the next attempt. */
  readonly retryInMs?: number;
  /** The close code that ended the connection or the attempt (4000 + HTTP status for a refused upgrade). */
  readonly code?: number;
  readonly reason?: string;
  /** What went wrong, when it is known: a refusal's code, a token function that failed, why it stopped. */
  readonly error?: ChatError;
}

/** The answer to a send. */
export interface SendAck {
  readonly status: AckStatus;
  /** The server's message id (the same on every retry of the send). */
  readonly id: string;
  readonly cid: string;
}

export interface ChatClientEvents {
  state: StateEvent;
  /** Each server message id at most once (within the last `dedupeWindow` ids). */
  message: MessageFrame;
  /** Durable mode: the answer to a reconnect with `since`, after the replayed messages. */
  resumed: ResumedFrame;
  /** Errors not tied to a send: a frame the SDK cannot read, an error answer without a known cid, a refresh. */
  error: ChatError;
}

export interface ConnectOptions {
  /** The router's URL, `ws://` or `wss://`, with an optional path prefix and no query. */
  readonly url: string;
  readonly userId: string;
  /**
   * Gives a token (a JWT whose `sub` is `userId`). Called before every connection attempt, and before the
   * current one expires (the new one is sent in-band). May reject, or not settle within `tokenTimeoutMs`:
   * the attempt then counts as failed. Leave it out when the cluster runs without authentication.
   */
  readonly token?: (() => Promise<string> | string) | undefined;
  /**
   * A token function that has not settled after this many milliseconds fails the attempt (or the refresh)
   * with CLIENT_ERR_TOKEN, as a rejection does (10,000): a hung sign-in service must not leave the client
   * `connecting` forever without an event.
   */
  readonly tokenTimeoutMs?: number | undefined;
  /** The WebSocket implementation (default `globalThis.WebSocket`). */
  readonly WebSocket?: WebSocketConstructor | undefined;
  /** Reconnect and retry backoff: full jitter from `initialMs` (500) doubling up to `maxMs` (30,000). */
  readonly backoff?:
    { readonly initialMs?: number | undefined; readonly maxMs?: number | undefined } | undefined;
  /** A send not answered within this many milliseconds, across reconnects and retries, fails (30,000). */
  readonly sendTimeoutMs?: number | undefined;
  /**
   * A send in flight on an open connection and not answered within this many milliseconds is written
   * again with the same cid (10,000; the node answers every send within its publish timeout, 5 s by
   * default, so this only fires when a frame was lost, e.g. dropped by a rate limit).
   */
  readonly answerTimeoutMs?: number | undefined;
  /** How many recent message ids are remembered to drop duplicates (10,000). */
  readonly dedupeWindow?: number | undefined;
  /**
   * Sends written per second at most, with bursts of as many (40): under the node's per-connection limit
   * (CHAT_NODE_RATE_PER_SEC 50, burst 100), so a backlog flushed after a reconnect is not rate limited.
   * Raise it only for a cluster configured with a higher limit.
   */
  readonly sendRatePerSec?: number | undefined;
  /**
   * Durable mode: resume from this position (a `client.position` saved earlier, e.g. across a page
   * reload): the first connection asks for every message after it. Later ones use the last received.
   */
  readonly since?: MessagePos | undefined;
}

export interface ChatClient {
  readonly state: ConnectionState;
  readonly userId: string;
  /** Durable mode: the position of the last message received (save it to resume after a restart). */
  readonly position: MessagePos | undefined;
  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ChatClientEvents>(event: K, listener: (e: ChatClientEvents[K]) => void): () => void;
  /**
   * Sends `body` to `to`; resolves with the server's answer. Rejects with a `ChatError`: at once for a bad
   * `to` or body (nothing sent), for a non-retryable error answer, after `sendTimeoutMs`, or on close.
   */
  send(to: string, body: string): Promise<SendAck>;
  /** Closes with 1000, fails every unanswered send (CLIENT_ERR_CLOSED) and leaves no timer behind. */
  close(): Promise<void>;
}

/** A connection open this long resets the backoff: the next failure starts from `initialMs` again. */
export const STABLE_OPEN_MS = 5_000;
/** Consecutive token refusals (4401) without an open connection before the client gives up. */
export const MAX_TOKEN_REFUSALS = 3;
/** The least `answerTimeoutMs`: a node answers a send in a few milliseconds at best, more under load. */
export const MIN_ANSWER_TIMEOUT_MS = 100;
/** `sendRatePerSec` by default: a fifth under the node's default CHAT_NODE_RATE_PER_SEC (50). */
export const DEFAULT_SEND_RATE_PER_SEC = 40;
/** How long `close()` waits for the server's side of the closing handshake. */
const CLOSE_WAIT_MS = 3_000;
/** setTimeout's largest delay; longer ones are clamped (a longer one would fire at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Timer = ReturnType<typeof setTimeout>;

interface PendingSend {
  readonly cid: string;
  readonly frame: string;
  readonly resolve: (ack: SendAck) => void;
  readonly reject: (err: ChatError) => void;
  readonly deadline: Timer;
  /** queued: waits for an open connection; inflight: written, unanswered; retrying: waits for its backoff. */
  phase: 'queued' | 'inflight' | 'retrying';
  /** Retryable error answers so far (the send's own backoff exponent). */
  retries: number;
  /** The answer timeout (inflight) or the backoff (retrying). */
  timer: Timer | undefined;
}

/** A cid unique across runs: a UUID (randomUUID needs a secure context; getRandomValues does not). */
function newCid(): string {
  if (typeof crypto.randomUUID === 'function') {
    try {
      return crypto.randomUUID();
    } catch {
      // An insecure browser context: fall through.
    }
  }
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A refused upgrade seen as a close (`refusal=close`): 4000 + an HTTP 4xx or 5xx status. */
const isRefusal = (code: number) => code >= 4400 && code <= 4599;

/** The position to resume from after `next`: never back within one log (a replayed copy is older). */
function laterPos(current: MessagePos | undefined, next: MessagePos): MessagePos {
  if (current && current.shard === next.shard && current.epoch === next.epoch && current.offset > next.offset)
    return current;
  return next;
}

/**
 * The numeric options with their least usable value and why: a smaller one would not fail at once but
 * misbehave later (every send written twice, reconnects in a tight loop), so connect() refuses it.
 */
function numericOptions(o: ConnectOptions) {
  return [
    ['sendTimeoutMs', o.sendTimeoutMs, 1, 'a send needs time to be answered'],
    [
      'answerTimeoutMs',
      o.answerTimeoutMs,
      MIN_ANSWER_TIMEOUT_MS,
      'a shorter one writes sends again while the node is still answering them',
    ],
    ['tokenTimeoutMs', o.tokenTimeoutMs, 1, 'the token function needs time to answer'],
    ['backoff.initialMs', o.backoff?.initialMs, 1, 'a zero backoff reconnects in a tight loop'],
    ['backoff.maxMs', o.backoff?.maxMs, 1, 'a zero backoff reconnects in a tight loop'],
    ['dedupeWindow', o.dedupeWindow, 1, 'at least the last message id is remembered'],
    ['sendRatePerSec', o.sendRatePerSec, 1, 'sends must be written at some rate'],
  ] as const;
}

/** Validates the options; throws a ChatError (CLIENT_ERR_BAD_OPTIONS / _BAD_USER_ID) naming the problem. */
function checkOptions(o: ConnectOptions): { base: string; WS: WebSocketConstructor } {
  const bad = (what: string) => ChatError.client('CLIENT_ERR_BAD_OPTIONS', what);
  if (typeof o.userId !== 'string' || !USER_ID_PATTERN.test(o.userId))
    throw ChatError.client(
      'CLIENT_ERR_BAD_USER_ID',
      'userId must be 1-128 characters of A-Z a-z 0-9 . _ @ -',
    );
  let parsed: URL;
  try {
    parsed = new URL(o.url);
  } catch {
    throw bad(`url is not a URL: ${String(o.url)}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:')
    throw bad('url must start with ws:// or wss://');
  if (parsed.search !== '' || parsed.hash !== '') throw bad('url must have no query or fragment');
  const WS = o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof WS !== 'function') throw bad('no WebSocket implementation: pass options.WebSocket');
  for (const [name, value, min, why] of numericOptions(o)) {
    if (value !== undefined && !(typeof value === 'number' && value >= min && Number.isFinite(value)))
      throw bad(`${name} must be a finite number of at least ${min}, not ${String(value)}: ${why}`);
  }
  const initialMs = o.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = o.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs;
  if (maxMs < initialMs)
    throw bad(`backoff.maxMs (${maxMs}) must not be below backoff.initialMs (${initialMs})`);
  if (o.token !== undefined && typeof o.token !== 'function') throw bad('token must be a function');
  if (o.since !== undefined && !isPos(o.since)) throw bad('since must be a {shard, offset, epoch} position');
  return { base: o.url.replace(/\/+$/, ''), WS };
}

/** Opens a client; it connects at once and keeps connecting until `close()` or a close code that says stop. */
export function connect(options: ConnectOptions): ChatClient {
  return new Client(options);
}

class Client implements ChatClient {
  readonly userId: string;
  readonly #base: string;
  readonly #WS: WebSocketConstructor;
  readonly #token: (() => Promise<string> | string) | undefined;
  readonly #backoff: BackoffOptions;
  readonly #sendTimeoutMs: number;
  readonly #answerTimeoutMs: number;
  readonly #tokenTimeoutMs: number;
  /** Paces writes of sends under the node's rate limit. */
  readonly #bucket: TokenBucket;
  readonly #events = new Emitter<ChatClientEvents>();
  readonly #ids: IdWindow;
  readonly #pending = new Map<string, PendingSend>();

  #state: ConnectionState = 'connecting';
  #ws: WebSocketLike | undefined;
  /** Bumped by every attempt and by close(): an async step of an older one sees it and gives up. */
  #generation = 0;
  /** Attempts since the last open connection. */
  #attempt = 0;
  /** The backoff exponent: failed attempts since the last stable connection. */
  #failures = 0;
  /** Token refusals (4401) since the last open connection. */
  #tokenRefusals = 0;
  #openedAt: number | undefined;
  /** The attempt count when the current connection opened (a refusal after it continues the count). */
  #attemptAtOpen = 0;
  #reconnectTimer: Timer | undefined;
  #refreshTimer: Timer | undefined;
  /** Waiting for the bucket to allow the next queued send. */
  #flushTimer: Timer | undefined;
  /** The timeouts of token functions still running (cleared by close()). */
  readonly #tokenTimers = new Set<Timer>();
  /** The in-band refresh waiting for its answer. */
  #auth: { readonly cid: string; readonly token: string } | undefined;
  #lastPos: MessagePos | undefined;
  /** Why the client stopped for good, when the server made it stop (sends made after get this error). */
  #stopError: ChatError | undefined;
  #closing: Promise<void> | undefined;

  constructor(o: ConnectOptions) {
    const { base, WS } = checkOptions(o);
    this.userId = o.userId;
    this.#base = base;
    this.#WS = WS;
    this.#token = o.token;
    this.#backoff = {
      initialMs: o.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs,
      maxMs: o.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs,
    };
    this.#sendTimeoutMs = Math.min(MAX_TIMER_MS, o.sendTimeoutMs ?? 30_000);
    this.#answerTimeoutMs = Math.min(MAX_TIMER_MS, o.answerTimeoutMs ?? 10_000);
    this.#tokenTimeoutMs = Math.min(MAX_TIMER_MS, o.tokenTimeoutMs ?? 10_000);
    this.#bucket = new TokenBucket(o.sendRatePerSec ?? DEFAULT_SEND_RATE_PER_SEC);
    this.#ids = new IdWindow(o.dedupeWindow ?? 10_000);
    this.#lastPos = o.since;
    void this.#attemptConnection();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get position(): MessagePos | undefined {
    return this.#lastPos;
  }

  on<K extends keyof ChatClientEvents>(event: K, listener: (e: ChatClientEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  send(to: string, body: string): Promise<SendAck> {
    if (typeof to !== 'string' || !USER_ID_PATTERN.test(to))
      return Promise.reject(
        ChatError.client('CLIENT_ERR_BAD_USER_ID', '`to` must be 1-128 characters of A-Z a-z 0-9 . _ @ -'),
      );
    if (typeof body !== 'string')
      return Promise.reject(ChatError.client('CLIENT_ERR_BAD_BODY', 'the body must be a string'));
    const length = bodyLength(body);
    if (length > MAX_BODY_CHARS)
      return Promise.reject(
        ChatError.client(
          'CLIENT_ERR_BODY_TOO_LONG',
          `the body has ${length} characters; at most ${MAX_BODY_CHARS} are allowed`,
        ),
      );
    if (this.#state === 'closed')
      return Promise.reject(this.#stopError ?? ChatError.client('CLIENT_ERR_CLOSED', 'the client is closed'));
    const cid = newCid();
    return new Promise<SendAck>((resolve, reject) => {
      const p: PendingSend = {
        cid,
        frame: JSON.stringify({ type: 'send', cid, to, body }),
        resolve,
        reject,
        deadline: setTimeout(
          () =>
            this.#fail(
              p,
              ChatError.client('CLIENT_ERR_TIMEOUT', `no answer within ${this.#sendTimeoutMs} ms`, { cid }),
            ),
          this.#sendTimeoutMs,
        ),
        phase: 'queued',
        retries: 0,
        timer: undefined,
      };
      this.#pending.set(cid, p);
      this.#transmit(p);
    });
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#generation++;
    this.#clearTimers();
    const ws = this.#ws;
    this.#ws = undefined;
    // Set before anything is emitted: a listener calling close() again gets this same promise.
    const closing =
      ws && (ws.readyState === OPEN || ws.readyState === CONNECTING)
        ? new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              resolve();
            };
            const timer = setTimeout(done, CLOSE_WAIT_MS);
            ws.addEventListener('close', done);
            ws.close(CLOSE.NORMAL);
          })
        : Promise.resolve();
    this.#closing = closing;
    this.#failAll(ChatError.client('CLIENT_ERR_CLOSED', 'the client was closed'));
    if (this.#state !== 'closed')
      this.#setState({ state: 'closed', attempt: this.#attempt, code: CLOSE.NORMAL });
    return closing;
  }

  /**
   * True once close() was called or the server stopped the client: every async continuation (a timer, a
   * token function settling, a listener returning) checks it before doing anything more.
   */
  #over(): boolean {
    return this.#closing !== undefined || this.#state === 'closed';
  }

  // Connections

  async #attemptConnection(): Promise<void> {
    this.#reconnectTimer = undefined;
    if (this.#over()) return;
    const gen = ++this.#generation;
    this.#attempt++;
    let jwt: string | undefined;
    if (this.#token) {
      try {
        jwt = await this.#callToken(this.#token);
      } catch (err) {
        if (gen !== this.#generation || this.#over()) return;
        const message = err instanceof Error ? err.message : String(err);
        this.#afterFailedAttempt({
          error: ChatError.client('CLIENT_ERR_TOKEN', `the token function failed: ${message}`),
        });
        return;
      }
      if (gen !== this.#generation || this.#over()) return;
    }
    const query = [`refusal=close`, ...(this.#lastPos ? [`since=${formatSince(this.#lastPos)}`] : [])];
    // The user id is checked against the protocol's pattern, whose characters need no escaping in a path;
    // the server takes the path literally (no percent-decoding), so `@` must stay `@`.
    const url = `${this.#base}/chat/${this.userId}?${query.join('&')}`;
    const protocols = [
      SUBPROTOCOL,
      REFUSAL_SUBPROTOCOL,
      ...(jwt === undefined ? [] : [`${BEARER_PROTOCOL_PREFIX}${jwt}`]),
    ];
    let ws: WebSocketLike;
    try {
      ws = new this.#WS(url, protocols);
    } catch (err) {
      // The URL was checked; what is left is a token the platform will not put in a subprotocol.
      const message = err instanceof Error ? err.message : String(err);
      this.#afterFailedAttempt({
        error: ChatError.client('CLIENT_ERR_TOKEN', `the token cannot be sent as a subprotocol: ${message}`),
      });
      return;
    }
    this.#ws = ws;
    this.#openedAt = undefined;
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('error', () => undefined); // the close that follows says what happened
    ws.addEventListener('open', () => {
      // A refusal completed only to carry its close code: not a connection, the close follows.
      if (this.#ws === ws && ws.protocol !== REFUSAL_SUBPROTOCOL) this.#onOpen(ws, jwt);
    });
    ws.addEventListener('message', (e) => {
      if (this.#ws === ws) this.#onData(e.data);
    });
    ws.addEventListener('close', (e) => {
      if (this.#ws === ws) this.#onClose(e.code, e.reason);
    });
  }

  #onOpen(ws: WebSocketLike, jwt: string | undefined): void {
    this.#openedAt = Date.now();
    const attempt = this.#attempt;
    // Kept until the connection proves not to be a refusal (a REFUSED_* close right after the handshake).
    this.#attemptAtOpen = attempt;
    this.#attempt = 0;
    this.#setState({ state: 'open', attempt });
    // A listener may have closed the client: no refresh timer, no writes for a connection that is gone.
    if (this.#ws !== ws || this.#over()) return;
    if (jwt !== undefined) this.#scheduleRefresh(jwt);
    this.#flush();
  }

  /**
   * Calls the token function, failing when it does not settle within `tokenTimeoutMs`; close() clears the
   * wait's timer (the call is then left to settle unheard).
   */
  async #callToken(token: () => Promise<string> | string): Promise<string> {
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TypeError(`the token function did not settle within ${this.#tokenTimeoutMs} ms`)),
        this.#tokenTimeoutMs,
      );
      this.#tokenTimers.add(timer);
    });
    try {
      // Called now, as before every attempt (an async wrapper turns a throw into a rejection).
      const t = await Promise.race([(async () => token())(), timeout]);
      if (typeof t !== 'string' || t === '') throw new TypeError('the token function gave no string');
      return t;
    } finally {
      clearTimeout(timer);
      if (timer !== undefined) this.#tokenTimers.delete(timer);
    }
  }

  #onClose(code: number, reason: string): void {
    this.#lost(code, reason, closePolicy(code, reason));
  }

  /** The current connection is gone (closed by the server or the network, or by us for a fresh token). */
  #lost(code: number, reason: string, step: CloseStep, cause?: ChatError): void {
    this.#ws = undefined;
    this.#auth = undefined;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (isRefusal(code)) {
      // A refused upgrade, completed only to carry its code (`refusal=close`): a failed attempt, not a
      // connection, whatever `open` said a moment ago.
      if (this.#openedAt !== undefined) this.#attempt = this.#attemptAtOpen;
    } else if (this.#openedAt !== undefined) {
      this.#tokenRefusals = 0;
      if (Date.now() - this.#openedAt >= STABLE_OPEN_MS) this.#failures = 0;
    }
    this.#openedAt = undefined;
    if (step.action === 'stop') {
      const message = `the server closed the connection with ${code}${reason ? ` (${reason})` : ''}; not reconnecting`;
      this.#stop(code, reason, new ChatError(step.errorCode, false, message, { closeCode: code }));
      return;
    }
    const inflight = [...this.#pending.values()].filter((p) => p.phase === 'inflight');
    if (step.dropLargestSend && inflight.length > 0) {
      const largest = inflight.reduce((a, b) => (b.frame.length > a.frame.length ? b : a));
      this.#fail(
        largest,
        ChatError.client('CLIENT_ERR_TOO_BIG', 'the server closed with 1009 (frame too big) on this send', {
          cid: largest.cid,
          closeCode: code,
        }),
      );
    }
    // What was written and not answered goes out again, with its cid, on the next connection.
    for (const p of inflight) {
      if (!this.#pending.has(p.cid)) continue;
      clearTimeout(p.timer);
      p.timer = undefined;
      p.phase = 'queued';
    }
    if (step.tokenRefused && ++this.#tokenRefusals >= MAX_TOKEN_REFUSALS) {
      this.#stop(
        code,
        reason,
        ChatError.client(
          'CLIENT_ERR_TOKEN_REFUSED',
          `${MAX_TOKEN_REFUSALS} fresh tokens in a row were refused (last: ${reason || code})`,
          { closeCode: code },
        ),
      );
      return;
    }
    const error =
      cause ??
      (step.errorCode === undefined
        ? undefined
        : new ChatError(step.errorCode, true, reason, { closeCode: code }));
    this.#scheduleReconnect(step, { code, reason, ...(error ? { error } : {}) });
  }

  /** An attempt that never got a connection (the token function failed). */
  #afterFailedAttempt(detail: { error: ChatError }): void {
    this.#scheduleReconnect(
      { action: 'reconnect', wait: 'backoff', freshToken: true, tokenRefused: false, dropLargestSend: false },
      detail,
    );
  }

  #scheduleReconnect(
    step: Extract<CloseStep, { action: 'reconnect' }>,
    detail: { code?: number; reason?: string; error?: ChatError },
  ): void {
    const random = Math.random;
    let delay: number;
    if (step.wait === 'hint' && step.retryAfterMs !== undefined)
      delay = hintedMs(step.retryAfterMs, this.#backoff, random);
    else if (step.wait === 'soon') delay = Math.round(Math.min(this.#backoff.initialMs, 250) * random());
    else delay = fullJitterMs(this.#failures++, this.#backoff, random);
    // Armed before the event: a listener that calls close() must find the timer to clear.
    this.#reconnectTimer = setTimeout(() => void this.#attemptConnection(), delay);
    this.#setState({ state: 'reconnecting', attempt: this.#attempt + 1, retryInMs: delay, ...detail });
  }

  /** Stops for good: the server said not to come back. */
  #stop(code: number, reason: string, error: ChatError): void {
    this.#generation++;
    this.#clearTimers();
    this.#stopError = error;
    this.#failAll(error);
    this.#setState({ state: 'closed', attempt: this.#attempt, code, reason, error });
  }

  #setState(e: StateEvent): void {
    this.#state = e.state;
    this.#events.emit('state', e);
  }

  #clearTimers(): void {
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#flushTimer);
    for (const timer of this.#tokenTimers) clearTimeout(timer);
    this.#tokenTimers.clear();
    this.#reconnectTimer = undefined;
    this.#refreshTimer = undefined;
    this.#flushTimer = undefined;
    this.#auth = undefined;
  }

  // Sends

  /** Queues `p` (new, retried or unanswered) and writes what the rate allows if a connection is open. */
  #transmit(p: PendingSend): void {
    p.timer = undefined;
    p.phase = 'queued';
    this.#flush();
  }

  /**
   * Writes the queued sends, oldest first, as fast as the bucket allows (`sendRatePerSec`); the rest wait
   * for its refill on a timer. Without an open connection they stay queued for the next one.
   */
  #flush(): void {
    if (this.#flushTimer !== undefined) return; // already waiting for the bucket: it flushes in order
    const ws = this.#ws;
    if (this.#state !== 'open' || !ws || ws.readyState !== OPEN) return;
    for (const p of this.#pending.values()) {
      if (p.phase !== 'queued') continue;
      if (!this.#bucket.take()) {
        this.#flushTimer = setTimeout(() => {
          this.#flushTimer = undefined;
          this.#flush();
        }, this.#bucket.msUntilNext());
        return;
      }
      try {
        ws.send(p.frame);
      } catch {
        return; // the platform refused the write: the close follows, and they go out on the next connection
      }
      p.phase = 'inflight';
      p.timer = setTimeout(() => {
        if (p.phase === 'inflight' && this.#ws === ws) this.#transmit(p);
      }, this.#answerTimeoutMs);
    }
  }

  /** Settles `p` (answered, failed, timed out): it leaves the pending table and its timers stop. */
  #settle(p: PendingSend): boolean {
    if (!this.#pending.delete(p.cid)) return false;
    clearTimeout(p.deadline);
    clearTimeout(p.timer);
    p.timer = undefined;
    return true;
  }

  #fail(p: PendingSend, err: ChatError): void {
    if (this.#settle(p)) p.reject(err);
  }

  #failAll(err: ChatError): void {
    for (const p of [...this.#pending.values()]) this.#fail(p, err.withCid(p.cid));
  }

  // Frames

  #onData(data: unknown): void {
    if (typeof data !== 'string') {
      this.#unexpected('a binary frame');
      return;
    }
    const frame = decodeServerFrame(data);
    if (!frame) {
      this.#unexpected(`an unreadable frame: ${data.slice(0, 100)}`);
      return;
    }
    switch (frame.type) {
      case 'message':
        if (!this.#ids.add(frame.id)) return;
        if (frame.pos) this.#lastPos = laterPos(this.#lastPos, frame.pos);
        this.#events.emit('message', frame);
        return;
      case 'ack': {
        const p = frame.cid === undefined ? undefined : this.#pending.get(frame.cid);
        // No pending send: the answer to a resend of one already answered (each send resolves once).
        if (p && this.#settle(p)) p.resolve({ status: frame.status, id: frame.id, cid: p.cid });
        return;
      }
      case 'error':
        this.#onErrorFrame(frame);
        return;
      case 'auth_ok':
        this.#onAuthOk(frame);
        return;
      case 'resumed':
        // A position the node cannot serve is no use next time either (except when its owner was late).
        if (!frame.recovered && frame.reason !== 'not_owner') this.#lastPos = undefined;
        this.#events.emit('resumed', frame);
        return;
    }
  }

  #onErrorFrame(f: ErrorFrame): void {
    if (f.cid !== undefined && this.#auth?.cid === f.cid) {
      // The in-band refresh was refused: a new connection with a fresh token instead.
      const error = new ChatError(f.code, f.retryable, f.message, { cid: f.cid });
      const ws = this.#ws;
      this.#events.emit('error', error);
      // Unless a listener closed the client (or the connection) meanwhile.
      if (this.#ws === ws && !this.#over()) this.#reconnectForToken(error);
      return;
    }
    const p = f.cid === undefined ? undefined : this.#pending.get(f.cid);
    if (!p) {
      this.#events.emit(
        'error',
        new ChatError(f.code, f.retryable, f.message, f.cid === undefined ? {} : { cid: f.cid }),
      );
      return;
    }
    // A second answer to a send already being retried (it was written twice) changes nothing.
    if (p.phase !== 'inflight') return;
    if (!f.retryable) {
      this.#fail(p, new ChatError(f.code, false, f.message, { cid: p.cid }));
      return;
    }
    clearTimeout(p.timer);
    p.phase = 'retrying';
    const hinted = retryAfterMsOf(f.message);
    const delay =
      hinted === undefined
        ? fullJitterMs(p.retries, this.#backoff, Math.random)
        : hintedMs(hinted, this.#backoff, Math.random);
    p.retries++;
    p.timer = setTimeout(() => this.#transmit(p), delay);
  }

  #unexpected(what: string): void {
    this.#events.emit('error', ChatError.client('CLIENT_ERR_UNEXPECTED_FRAME', `the server sent ${what}`));
  }

  // Token refresh

  #scheduleRefresh(jwt: string, fallbackExp?: number): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (!this.#token) return;
    const times = tokenTimes(jwt) ?? (fallbackExp === undefined ? undefined : { exp: fallbackExp });
    if (!times) return;
    const ms = Math.min(MAX_TIMER_MS, refreshInMs(times, Date.now()));
    this.#refreshTimer = setTimeout(() => void this.#refresh(times.exp * 1000), ms);
  }

  async #refresh(expMs: number): Promise<void> {
    this.#refreshTimer = undefined;
    const ws = this.#ws;
    const token = this.#token;
    if (!ws || !token || this.#state !== 'open') return;
    let fresh: string;
    try {
      const t = await this.#callToken(token);
      // The same token again (a fixed token, a cache) would be "refreshed" in a loop: wait for a newer one.
      const times = tokenTimes(t);
      if (times && times.exp * 1000 <= expMs)
        throw new TypeError('the token function gave no token expiring later than the current one');
      fresh = t;
    } catch (err) {
      if (this.#ws !== ws) return;
      const message = err instanceof Error ? err.message : String(err);
      this.#events.emit(
        'error',
        ChatError.client('CLIENT_ERR_TOKEN', `the token refresh failed: ${message}`),
      );
      // A listener may have closed the client or the connection: then no retry timer.
      if (this.#ws !== ws || this.#over()) return;
      // Try again halfway to the expiry; past it, the server closes with 4003 and a reconnect asks again.
      const left = expMs - Date.now();
      if (left > 500) this.#refreshTimer = setTimeout(() => void this.#refresh(expMs), Math.round(left / 2));
      return;
    }
    if (this.#ws !== ws || ws.readyState !== OPEN) return;
    const cid = `auth-${newCid()}`;
    this.#auth = { cid, token: fresh };
    ws.send(JSON.stringify({ type: 'auth', cid, token: fresh }));
  }

  #onAuthOk(f: AuthOkFrame): void {
    const auth = this.#auth;
    if (!auth || (f.cid !== undefined && f.cid !== auth.cid)) return;
    this.#auth = undefined;
    this.#scheduleRefresh(auth.token, f.exp);
  }

  /** Ends the connection ourselves and opens a new one with a fresh token (a refused in-band refresh). */
  #reconnectForToken(error: ChatError): void {
    const ws = this.#ws;
    if (!ws) return;
    const reason = 'the in-band token refresh was refused';
    ws.close(CLOSE.NORMAL, 'refreshing the token');
    this.#lost(
      CLOSE.NORMAL,
      reason,
      { action: 'reconnect', wait: 'soon', freshToken: true, tokenRefused: false, dropLargestSend: false },
      error,
    );
  }
}
