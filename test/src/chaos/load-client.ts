// The chaos suite's load client: N users in G affinity groups, connected through the router the way a real
// app is, sending at a fixed rate, and keeping a record of every message (see accounting.ts for what is
// counted from it). What it does like an app:
//   - every send has a unique `cid`; a send answered with a retryable error, or not answered before its
//     socket closed (or within the answer timeout), is sent again with the same cid, receiver and body,
//     on the next open socket, after a backoff (bounded attempts);
//   - a message written while its sender is disconnected waits in the sender's outbox and goes out on
//     the next open socket;
//   - reconnects honour `retry_after_ms` (close reason), the HTTP `Retry-After` of a refused upgrade, else
//     back off exponentially from 100 ms (with jitter), capped.
import WebSocket from 'ws';

/** One try at a send: when it left and what came back (nothing yet, an ack, an error, or its socket closed). */
export interface Attempt {
  readonly at: number;
  answerAt?: number;
  answer?:
    | { readonly type: 'ack'; readonly status: string; readonly id: string }
    | { readonly type: 'error'; readonly code: string; readonly retryable: boolean }
    | { readonly type: 'closed' }
    | { readonly type: 'timeout' };
}

/** Everything known about one message, from the sender's and the receiver's side. */
export interface MessageRecord {
  readonly cid: string;
  readonly from: string;
  readonly to: string;
  /** Across affinity groups (so usually across nodes). */
  readonly cross: boolean;
  /** When the app wrote it (it may wait in the outbox before the first attempt). */
  readonly createdAt: number;
  readonly attempts: Attempt[];
  /** `acked` (some attempt got an ack), `failed` (a final error or out of attempts), or still `pending`. */
  state: 'pending' | 'acked' | 'failed';
  /** Every copy the receiver got: when, and under which server message id. */
  readonly receptions: { readonly at: number; readonly id: string }[];
}

/** A server- or network-initiated end of one connection attempt or session. */
export interface CloseEvent {
  readonly user: string;
  readonly at: number;
  readonly code: number;
  readonly reason: string;
  /** The session had opened (a close of an open session) or not (a failed connect). */
  readonly wasOpen: boolean;
  /** The HTTP status of a refused upgrade, if that is how it ended. */
  readonly status?: number;
  /** The app itself closed it (churn: a network switch, the app going to the background and back). */
  readonly byClient?: boolean;
}

/** A user's sessions: [open, close) intervals (close undefined while open). */
export interface SessionSpan {
  readonly openAt: number;
  closeAt?: number;
}

export interface LoadClientOptions {
  /** The URL for `user` in `group` (read at every connect, so a restarted router on a new port is found). */
  readonly url: (user: string, group: number) => string;
  readonly users: number;
  readonly groups: number;
  /** Messages per second over all users. */
  readonly ratePerSec: number;
  /** Share of messages sent to a user of another group (0..1). */
  readonly crossShare: number;
  /** Prefix of user ids and cids (unique per run, so records of different runs never mix). */
  readonly tag: string;
  /** Attempts per message before the app gives up (default 10). */
  readonly maxAttempts?: number;
  /** An attempt with no answer for this long is retried (default 8 s: above the node's publish timeout). */
  readonly answerTimeoutMs?: number;
  /** Reconnect backoff cap (default 5 s). */
  readonly maxBackoffMs?: number;
  /** Seed of the message plan (senders, receivers). */
  readonly seed?: number;
  /**
   * Users per second whose app closes its socket and reconnects at once (default 0), as apps do on a
   * network switch: presence and handoff see reconnects during every phase, faults included.
   */
  readonly churnPerSec?: number;
  /**
   * Durable mode: each user keeps the position (`pos`) of the last message it received and reconnects
   * with `since=<shard>:<offset>:<epoch>` (default false).
   */
  readonly resume?: boolean;
}

interface UserState {
  readonly id: string;
  readonly group: number;
  ws: WebSocket | undefined;
  open: boolean;
  /** Messages waiting for an open socket (first attempts and retries), oldest first. */
  readonly outbox: MessageRecord[];
  /** Sent on the current socket and not answered yet. */
  readonly inflight: Map<string, MessageRecord>;
  /** Consecutive failed connects (the backoff exponent). */
  failures: number;
  /** When the current session ended (for the reconnect time), undefined while open or never opened. */
  lostAt: number | undefined;
  reconnectTimer: NodeJS.Timeout | undefined;
  readonly spans: SessionSpan[];
  /** The position of the last message received (`resume`), as `since` names it. */
  lastPos?: string;
  /** The app is closing this socket itself (churn). */
  churning: boolean;
}

/** A small seeded PRNG (mulberry32), so a run's message plan can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `retry_after_ms=N` in a close reason or error message, else undefined. */
export function retryAfterMsOf(text: string): number | undefined {
  const m = /retry_after_ms=(\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** An HTTP `Retry-After` header (seconds, or an HTTP date) in milliseconds, else undefined. */
export function retryAfterHeaderMs(
  value: string | string[] | undefined,
  now = Date.now(),
): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Exponential backoff from 100 ms for the `n`th consecutive failure (0-based), capped, with +-20% jitter. */
export function backoffMs(n: number, capMs: number, random: () => number = Math.random): number {
  const base = Math.min(capMs, 100 * 2 ** Math.min(n, 20));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/**
 * The load client. `connect()` opens every user's socket; `start()` begins sending; `stop()` stops
 * writing new messages (retries and outboxes go on); `settle()` waits for what is in flight; `close()`
 * closes every socket. The records stay readable throughout.
 */
export class LoadClient {
  readonly records = new Map<string, MessageRecord>();
  readonly closes: CloseEvent[] = [];
  /** `resumed` answers by outcome (`recovered`, or the reason it was not), and messages they replayed. */
  readonly resumes = { byResult: new Map<string, number>(), replayed: 0 };
  /** Milliseconds from the end of a session to the next open one, per reconnect. */
  readonly reconnectMs: number[] = [];
  /** Frames the client could not relate to a message (no cid, unknown body). */
  readonly uncorrelated = { errors: new Map<string, number>(), messages: 0, misdelivered: 0 };
  readonly #o: Required<LoadClientOptions>;
  readonly #users: UserState[];
  readonly #byGroup: UserState[][];
  readonly #random: () => number;
  #ticker: NodeJS.Timeout | undefined;
  #sendStart = 0;
  #planned = 0;
  #churned = 0;
  #closing = false;
  #timers = new Set<NodeJS.Timeout>();
  #lastReceptionAt = 0;

  constructor(options: LoadClientOptions) {
    this.#o = {
      maxAttempts: 10,
      answerTimeoutMs: 8000,
      maxBackoffMs: 5000,
      seed: 1,
      churnPerSec: 0,
      resume: false,
      ...options,
    };
    this.#random = prng(this.#o.seed);
    this.#users = Array.from({ length: options.users }, (_, i) => ({
      id: `${options.tag}-u${i}`,
      group: i % options.groups,
      ws: undefined,
      open: false,
      outbox: [],
      inflight: new Map(),
      failures: 0,
      lostAt: undefined,
      reconnectTimer: undefined,
      spans: [],
      churning: false,
    }));
    this.#byGroup = Array.from({ length: options.groups }, (_, g) =>
      this.#users.filter((u) => u.group === g),
    );
  }

  /** User ids with their groups. */
  get users(): readonly { readonly id: string; readonly group: number }[] {
    return this.#users;
  }

  /** How many users have an open socket now. */
  get openCount(): number {
    return this.#users.reduce((n, u) => n + (u.open ? 1 : 0), 0);
  }

  /** When the last message frame arrived at any user. */
  get lastReceptionAt(): number {
    return this.#lastReceptionAt;
  }

  /** Each user's sessions (for the `offline` accounting). */
  spansOf(user: string): readonly SessionSpan[] {
    return this.#users.find((u) => u.id === user)?.spans ?? [];
  }

  /** Messages written and not yet answered for good (or given up). */
  get pending(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.state === 'pending') n++;
    return n;
  }

  /** Opens every user's socket (reconnecting on failure) and resolves once all are open or `timeoutMs` passed. */
  async connect(timeoutMs: number): Promise<void> {
    for (const u of this.#users) this.#open(u);
    const deadline = Date.now() + timeoutMs;
    while (this.openCount < this.#users.length) {
      if (Date.now() > deadline)
        throw new Error(`only ${this.openCount} of ${this.#users.length} users connected in ${timeoutMs} ms`);
      await this.#wait(50);
    }
  }

  /** Starts writing messages at the configured rate. */
  start(): void {
    this.#sendStart = Date.now();
    this.#ticker = setInterval(() => this.#tick(), 10);
  }

  /**
   * Resolves once `more` messages beyond those written so far have been written (a load phase measured in
   * messages, not a sleep); throws after `timeoutMs`.
   */
  async written(more: number, timeoutMs: number): Promise<void> {
    const target = this.records.size + more;
    const deadline = Date.now() + timeoutMs;
    while (this.records.size < target) {
      if (Date.now() > deadline)
        throw new Error(`${this.records.size} of ${target} messages written in ${timeoutMs} ms`);
      await this.#wait(20);
    }
  }

  /** Stops writing new messages; retries and outboxes go on. */
  stop(): void {
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /**
   * Waits, at most `deadlineMs`, until every user is connected, every message is answered for good or
   * given up, and every message acked `accepted` has reached its receiver; then until no new
   * message has arrived for `quietMs` (late copies show up here). Resolves with whether the first part
   * was reached in time.
   */
  async settle(deadlineMs: number, quietMs: number): Promise<boolean> {
    const deadline = Date.now() + deadlineMs;
    let reached = false;
    while (Date.now() < deadline) {
      if (this.openCount === this.#users.length && this.#allSettled()) {
        reached = true;
        break;
      }
      await this.#wait(50);
    }
    const quietDeadline = Date.now() + quietMs * 5;
    while (Date.now() - this.#lastReceptionAt < quietMs && Date.now() < quietDeadline) await this.#wait(50);
    return reached;
  }

  /** Closes every socket (client-initiated closes are not recorded) and cancels every timer. */
  async close(): Promise<void> {
    this.stop();
    this.#closing = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const closed: Promise<void>[] = [];
    for (const u of this.#users) {
      if (u.reconnectTimer) clearTimeout(u.reconnectTimer);
      const ws = u.ws;
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        closed.push(new Promise((resolve) => ws.once('close', () => resolve())));
        ws.terminate();
      }
    }
    await Promise.all(closed);
  }

  #allSettled(): boolean {
    for (const r of this.records.values()) {
      if (r.state === 'pending') return false;
      if (r.state === 'acked' && r.receptions.length === 0) {
        const ack = r.attempts.find((a) => a.answer?.type === 'ack');
        // `delivered` was written to the receiver's socket: in flight, it arrives within the quiet time;
        // one that does not is lost (a killed node's buffers), and waiting longer would not bring it.
        if (ack?.answer?.type === 'ack' && ack.answer.status === 'accepted') return false;
      }
    }
    return true;
  }

  /** A poll step (short; not cancelled by close(), so a wait in progress always ends). */
  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  #later(ms: number, fn: () => void): void {
    if (this.#closing) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closing) fn();
    }, ms);
    this.#timers.add(t);
  }

  #tick(): void {
    const due = Math.floor(((Date.now() - this.#sendStart) * this.#o.ratePerSec) / 1000);
    while (this.#planned < due) {
      this.#planned++;
      this.#write(this.#planned);
    }
    const churnDue = Math.floor(((Date.now() - this.#sendStart) * this.#o.churnPerSec) / 1000);
    while (this.#churned < churnDue) {
      this.#churned++;
      const user = this.#users[Math.floor(this.#random() * this.#users.length)];
      if (user?.open && user.ws) {
        user.churning = true;
        user.ws.close(1000, 'app reconnects');
      }
    }
  }

  /** The app writes message `n`: a random sender, a receiver in its group or (crossShare) in another. */
  #write(n: number): void {
    const users = this.#users;
    const from = users[Math.floor(this.#random() * users.length)];
    if (!from) return;
    const cross = this.#o.groups > 1 && this.#random() < this.#o.crossShare;
    let pool: UserState[];
    if (cross) {
      const other = (from.group + 1 + Math.floor(this.#random() * (this.#o.groups - 1))) % this.#o.groups;
      pool = this.#byGroup[other] ?? [];
    } else pool = (this.#byGroup[from.group] ?? []).filter((u) => u !== from);
    const to = pool[Math.floor(this.#random() * pool.length)];
    if (!to) return;
    const cid = `${this.#o.tag}-m${n}`;
    const record: MessageRecord = {
      cid,
      from: from.id,
      to: to.id,
      cross,
      createdAt: Date.now(),
      attempts: [],
      state: 'pending',
      receptions: [],
    };
    this.records.set(cid, record);
    this.#submit(from, record);
  }

  /** Sends `record` now if `user` has an open socket, else queues it for the next one. */
  #submit(user: UserState, record: MessageRecord): void {
    if (record.state !== 'pending') return;
    if (!user.open || !user.ws) {
      if (!user.outbox.includes(record)) user.outbox.push(record);
      return;
    }
    const attempt: Attempt = { at: Date.now() };
    record.attempts.push(attempt);
    user.inflight.set(record.cid, record);
    const ws = user.ws;
    // The body is the cid: the receiver relates what it gets to the record by it.
    ws.send(JSON.stringify({ type: 'send', cid: record.cid, to: record.to, body: record.cid }));
    this.#later(this.#o.answerTimeoutMs, () => {
      if (attempt.answer || record.state !== 'pending' || user.ws !== ws) return;
      attempt.answer = { type: 'timeout' };
      attempt.answerAt = Date.now();
      user.inflight.delete(record.cid);
      this.#retry(user, record, undefined);
    });
  }

  /** Another attempt after a backoff (or `retryAfterMs`), unless out of attempts. */
  #retry(user: UserState, record: MessageRecord, retryAfterMs: number | undefined): void {
    if (record.attempts.length >= this.#o.maxAttempts) {
      record.state = 'failed';
      return;
    }
    const delay = retryAfterMs ?? backoffMs(record.attempts.length - 1, 2000, this.#random);
    this.#later(delay, () => this.#submit(user, record));
  }

  #open(user: UserState): void {
    if (this.#closing) return;
    user.reconnectTimer = undefined;
    let status: number | undefined;
    let retryAfter: number | undefined;
    let url = this.#o.url(user.id, user.group);
    if (this.#o.resume && user.lastPos) url += `${url.includes('?') ? '&' : '?'}since=${user.lastPos}`;
    const ws = new WebSocket(url, ['chat.v1'], {
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    user.ws = ws;
    ws.on('error', () => undefined); // the close that follows says what happened
    ws.on('unexpected-response', (_req, res) => {
      status = res.statusCode;
      retryAfter = retryAfterHeaderMs(res.headers['retry-after']);
      res.resume();
      ws.terminate();
    });
    let span: SessionSpan | undefined;
    ws.on('open', () => {
      if (user.ws !== ws) return;
      const at = Date.now();
      user.open = true;
      user.failures = 0;
      if (user.lostAt !== undefined) this.reconnectMs.push(at - user.lostAt);
      user.lostAt = undefined;
      span = { openAt: at };
      user.spans.push(span);
      for (const r of user.outbox.splice(0)) this.#submit(user, r);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.#onFrame(user, data.toString('utf8'));
    });
    ws.on('close', (code: number, reasonBuf: Buffer) => {
      if (user.ws !== ws) return;
      const at = Date.now();
      const reason = reasonBuf.toString('utf8');
      const wasOpen = span !== undefined;
      const byClient = user.churning;
      user.churning = false;
      user.open = false;
      user.ws = undefined;
      if (span) span.closeAt = at;
      if (this.#closing) return;
      this.closes.push({
        user: user.id,
        at,
        code,
        reason,
        wasOpen,
        ...(status ? { status } : {}),
        ...(byClient ? { byClient } : {}),
      });
      // The reconnect time is the server's doing only when the server (or the network) ended the session.
      if (wasOpen && !byClient) user.lostAt = at;
      // What was in flight on this socket goes out again on the next one.
      for (const r of user.inflight.values()) {
        const last = r.attempts.at(-1);
        if (last && !last.answer) {
          last.answer = { type: 'closed' };
          last.answerAt = at;
        }
        if (r.attempts.length >= this.#o.maxAttempts) r.state = 'failed';
        else if (r.state === 'pending') user.outbox.push(r);
      }
      user.inflight.clear();
      const hinted = byClient ? 0 : (retryAfterMsOf(reason) ?? retryAfter);
      const delay = hinted ?? backoffMs(user.failures, this.#o.maxBackoffMs, this.#random);
      if (!wasOpen || hinted === undefined) user.failures++;
      user.reconnectTimer = setTimeout(() => this.#open(user), delay);
    });
  }

  #onFrame(user: UserState, text: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    const at = Date.now();
    if (frame.type === 'resumed') {
      const result = frame.recovered === true ? 'recovered' : String(frame.reason);
      this.resumes.byResult.set(result, (this.resumes.byResult.get(result) ?? 0) + 1);
      this.resumes.replayed += typeof frame.replayed === 'number' ? frame.replayed : 0;
      return;
    }
    if (frame.type === 'message') {
      this.#lastReceptionAt = at;
      const pos = frame.pos as { shard?: unknown; offset?: unknown; epoch?: unknown } | undefined;
      if (this.#o.resume && pos && typeof pos.offset === 'number')
        user.lastPos = `${String(pos.shard)}:${pos.offset}:${String(pos.epoch)}`;
      const record = this.records.get(String(frame.body));
      if (!record) {
        this.uncorrelated.messages++;
        return;
      }
      if (record.to !== user.id) this.uncorrelated.misdelivered++;
      else record.receptions.push({ at, id: String(frame.id) });
      return;
    }
    if (frame.type !== 'ack' && frame.type !== 'error') return;
    const cid = typeof frame.cid === 'string' ? frame.cid : undefined;
    const record = cid === undefined ? undefined : user.inflight.get(cid);
    if (!record) {
      if (frame.type === 'error') {
        const code = String(frame.code);
        this.uncorrelated.errors.set(code, (this.uncorrelated.errors.get(code) ?? 0) + 1);
      }
      return;
    }
    user.inflight.delete(record.cid);
    const attempt = record.attempts.at(-1);
    if (!attempt || attempt.answer) return;
    attempt.answerAt = at;
    if (frame.type === 'ack') {
      attempt.answer = { type: 'ack', status: String(frame.status), id: String(frame.id) };
      record.state = 'acked';
      return;
    }
    const retryable = frame.retryable === true;
    attempt.answer = { type: 'error', code: String(frame.code), retryable };
    if (!retryable) {
      record.state = 'failed';
      return;
    }
    const hinted =
      typeof frame.retry_after_ms === 'number'
        ? frame.retry_after_ms
        : retryAfterMsOf(typeof frame.message === 'string' ? frame.message : '');
    this.#retry(user, record, hinted);
  }
}
