import { hash } from 'node:crypto';
import type { AckFrame, ErrorFrame } from '@chat/shared';
import type { Outgoing } from './delivery.js';
import type { NodeMetrics } from './metrics.js';

/** What identifies one message a sender means: a retry repeats all four. */
export interface SendKey {
  readonly userId: string;
  readonly cid: string;
  /** The receiver. */
  readonly to: string;
  /** The message text (a seed frame: the whole frame as the sender wrote it). */
  readonly body: string;
}

/** The answer to a send: what `Delivery.send` resolves with. */
export type SendAnswer = AckFrame | ErrorFrame;

/** How a retry was answered (chat_node_send_retries_total{result}). */
export type RetryResult = 'replayed' | 'joined' | 'resent';

/**
 * Prefix of the server ids derived from a `cid`. A node's own ids are `<nodeId>-<epoch>-<seq>` and node ids
 * are letters, digits, dot, underscore and dash, so an id with a colon is never one of those.
 */
export const SEND_ID_PREFIX = 'c:';

/**
 * The server message id of a send with a `cid`: the same on every node, so a retry that lands elsewhere
 * after a reconnect carries the id of the first attempt (receivers and the SDK drop repeated ids).
 * 22 base64url characters of a SHA-256 (132 bits) over sender, cid, receiver and body.
 */
export function sendIdOf(key: SendKey): string {
  const digest = hash(
    'sha256',
    JSON.stringify(['chat-send-v1', key.userId, key.cid, key.to, key.body]),
    'base64url',
  );
  return SEND_ID_PREFIX + digest.slice(0, 22);
}

/**
 * The key of a decoded send from `userId`, or undefined when it carries no `cid` (a seed frame without a
 * non-empty string `cid`): such sends are never deduplicated and keep fresh ids.
 */
export function sendKeyOf(userId: string, out: Outgoing): SendKey | undefined {
  if (out.kind === 'send') return { userId, cid: out.frame.cid, to: out.frame.to, body: out.frame.body };
  const { cid } = out.frame;
  if (typeof cid !== 'string' || cid.length === 0) return undefined;
  // Every field of a seed frame reaches the receiver: all of them are the message.
  return { userId, cid, to: out.frame.receiver_id, body: JSON.stringify(out.frame) };
}

export interface SendDedupOptions {
  /** How long an answered send is remembered (CHAT_NODE_SEND_DEDUP_WINDOW_MS); 0 turns dedup off. */
  readonly windowMs: number;
  /** Entries kept per sender; beyond it their oldest is dropped (default 1,000). */
  readonly maxPerUser?: number;
  /** Entries kept in all; beyond it the oldest is dropped (default 100,000). */
  readonly maxEntries?: number;
  readonly metrics: Pick<NodeMetrics, 'sendRetries' | 'sendDedupEvictions'>;
  /** A monotonic clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
}

export const DEFAULT_MAX_PER_USER = 1000;
export const DEFAULT_MAX_ENTRIES = 100_000;

interface Entry {
  /** The server id, also the entry's key. */
  readonly id: string;
  readonly userId: string;
  expiresAt: number;
  /** Its place in the expiry queue (a re-inserted entry gets a new one; the old slot goes stale). */
  seq: number;
  /** Set while an attempt (the first or a resend) has no answer yet: a retry waits for it. */
  pending: Promise<SendAnswer> | undefined;
  /**
   * The final ack, replayed to retries. Neither this nor `pending`: the last attempt ended in
   * NODE_ERR_BUS_TIMEOUT (it may arrive) and a retry sends again with the same id.
   */
  answer: AckFrame | undefined;
}

/**
 * Idempotent retries by `cid` (issue 12). A send is remembered per sender for the window, keyed by
 * (sender, cid, receiver, body digest), under its derived server id (`sendIdOf`):
 * - a retry while the first attempt is in flight waits for the same answer (`joined`);
 * - a retry after an ack (`delivered`, `accepted`, `offline`) gets that ack again, same id, and nothing is
 *   delivered again (`replayed`);
 * - after NODE_ERR_BUS_TIMEOUT (sent, unconfirmed) a retry sends again with the same id, so wherever the
 *   first copy arrived the second is recognised as a duplicate (`resent`);
 * - after any other error (NODE_ERR_BUS_UNAVAILABLE: not sent) the entry is dropped and a retry is a
 *   new send.
 * The same cid with another receiver or body is another message: a cid must be unique per sender (a UUID),
 * or a client that numbers cids per connection would see a later message taken for a retry of an earlier
 * identical one. Memory is bounded per sender and in all (oldest out, counted); one unref'd timer sweeps
 * expired entries.
 */
export class SendDedup {
  readonly #windowMs: number;
  readonly #maxPerUser: number;
  readonly #maxEntries: number;
  readonly #metrics: SendDedupOptions['metrics'];
  readonly #now: () => number;
  /** Every entry by id. */
  readonly #entries = new Map<string, Entry>();
  /**
   * Entries in expiry order (a FIFO: every window has the same length), with the seq each was queued
   * under; slots of removed or re-queued entries are stale and skipped. Not the Map's own order: evicting
   * from the front of a Map leaves holes that every later iteration from the front walks again, which
   * made each insert at the bound cost O(holes) (12% of a node's CPU at 12,000 msgs/s in `pnpm bench`).
   */
  #queue: Entry[] = [];
  #queueSeqs: number[] = [];
  #head = 0;
  #seq = 0;
  /** Each sender's entry ids, oldest first. */
  readonly #byUser = new Map<string, Set<string>>();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(options: SendDedupOptions) {
    this.#windowMs = options.windowMs;
    this.#maxPerUser = Math.max(1, options.maxPerUser ?? DEFAULT_MAX_PER_USER);
    this.#maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.#metrics = options.metrics;
    this.#now = options.now ?? (() => performance.now());
    if (this.enabled) {
      // Lookups check expiry themselves; the sweep only gives memory back.
      const every = Math.min(Math.max(this.#windowMs / 10, 1000), 30_000);
      this.#timer = setInterval(() => this.sweep(), every);
      this.#timer.unref();
    }
  }

  /** False when the window is 0: sends go straight through with fresh ids. */
  get enabled(): boolean {
    return this.#windowMs > 0;
  }

  /** Entries held now (expired ones count until swept or looked up). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Answers the send `key`: calls `send(id)` (synchronously, so messages keep their order) with the
   * derived server id when this is a new send or a retry after NODE_ERR_BUS_TIMEOUT, else answers from
   * the window. A rejection of `send` drops the entry and is passed on.
   */
  send(key: SendKey, send: (id: string) => Promise<SendAnswer>): Promise<SendAnswer> {
    const id = sendIdOf(key);
    if (!this.enabled) return send(id);
    const entry = this.#live(id);
    if (entry?.pending) {
      this.#metrics.sendRetries.inc({ result: 'joined' });
      return entry.pending;
    }
    if (entry?.answer) {
      this.#metrics.sendRetries.inc({ result: 'replayed' });
      return Promise.resolve(entry.answer);
    }
    if (entry) {
      this.#metrics.sendRetries.inc({ result: 'resent' });
      return this.#attempt(entry, send);
    }
    const created: Entry = {
      id,
      userId: key.userId,
      expiresAt: this.#now() + this.#windowMs,
      seq: 0,
      pending: undefined,
      answer: undefined,
    };
    this.#insert(created);
    return this.#attempt(created, send);
  }

  /** Drops expired entries; returns how many. */
  sweep(): number {
    const now = this.#now();
    let dropped = 0;
    for (let entry = this.#oldest(); entry && entry.expiresAt <= now; entry = this.#oldest()) {
      this.#remove(entry);
      dropped++;
    }
    return dropped;
  }

  /** Stops the sweep timer and forgets every entry (node stop). */
  close(): void {
    clearInterval(this.#timer);
    this.#entries.clear();
    this.#byUser.clear();
    this.#queue = [];
    this.#queueSeqs = [];
    this.#head = 0;
  }

  #attempt(entry: Entry, send: (id: string) => Promise<SendAnswer>): Promise<SendAnswer> {
    entry.answer = undefined;
    let attempt: Promise<SendAnswer>;
    try {
      attempt = send(entry.id);
    } catch (err) {
      attempt = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const pending = attempt.then(
      (answer) => {
        this.#settle(entry, pending, answer);
        return answer;
      },
      (err: unknown) => {
        if (this.#current(entry, pending)) this.#remove(entry);
        throw err;
      },
    );
    entry.pending = pending;
    return pending;
  }

  /** True while `entry` is still held and `pending` is its latest attempt (not expired or evicted since). */
  #current(entry: Entry, pending: Promise<SendAnswer>): boolean {
    return this.#entries.get(entry.id) === entry && entry.pending === pending;
  }

  #settle(entry: Entry, pending: Promise<SendAnswer>, answer: SendAnswer): void {
    if (!this.#current(entry, pending)) return;
    entry.pending = undefined;
    if (answer.type === 'ack') {
      entry.answer = answer;
    } else if (answer.code !== 'NODE_ERR_BUS_TIMEOUT') {
      // Not sent (NODE_ERR_BUS_UNAVAILABLE and anything else): a retry must send.
      this.#remove(entry);
      return;
    }
    // The window runs from the latest answer: move the entry to the young end.
    this.#remove(entry);
    entry.expiresAt = this.#now() + this.#windowMs;
    this.#insert(entry);
  }

  #live(id: string): Entry | undefined {
    const entry = this.#entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt > this.#now()) return entry;
    this.#remove(entry);
    return undefined;
  }

  #insert(entry: Entry): void {
    let mine = this.#byUser.get(entry.userId);
    if (!mine) {
      mine = new Set();
      this.#byUser.set(entry.userId, mine);
    }
    if (mine.size >= this.#maxPerUser) {
      for (const id of mine) {
        if (mine.size < this.#maxPerUser) break;
        this.#evict(id, mine);
      }
    }
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#oldest();
      if (!oldest) break;
      this.#evict(oldest.id, undefined);
    }
    mine.add(entry.id);
    // The sender's set may have been emptied and dropped by a global eviction above.
    this.#byUser.set(entry.userId, mine);
    this.#entries.set(entry.id, entry);
    entry.seq = ++this.#seq;
    this.#queue.push(entry);
    this.#queueSeqs.push(entry.seq);
  }

  /** The held entry whose window ends first (stale queue slots are dropped on the way). */
  #oldest(): Entry | undefined {
    while (this.#head < this.#queue.length) {
      const entry = this.#queue[this.#head] as Entry;
      if (this.#entries.get(entry.id) === entry && entry.seq === this.#queueSeqs[this.#head]) return entry;
      this.#head++;
    }
    // Everything queued is stale: start over (also keeps the arrays from growing without bound).
    this.#queue = [];
    this.#queueSeqs = [];
    this.#head = 0;
    return undefined;
  }

  /** Drops the entry `id` before its window ended (a bound was reached) and counts it. */
  #evict(id: string, mine: Set<string> | undefined): void {
    const victim = this.#entries.get(id);
    if (victim) this.#remove(victim);
    mine?.delete(id);
    this.#metrics.sendDedupEvictions.inc();
  }

  #remove(entry: Entry): void {
    this.#entries.delete(entry.id);
    // Give back the stale front of the queue now and then (amortised O(1)).
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#queueSeqs = this.#queueSeqs.slice(this.#head);
      this.#head = 0;
    }
    const mine = this.#byUser.get(entry.userId);
    if (!mine) return;
    mine.delete(entry.id);
    if (mine.size === 0) this.#byUser.delete(entry.userId);
  }
}
