import type { BusMessage, Logger } from '@chat/shared';
import type { MessagePosition } from './bus/types.js';
import type { NodeMetrics } from './metrics.js';

export interface HandoffOptions {
  /** How long a record is held (CHAT_NODE_HANDOFF_GRACE_MS); 0: nothing is held (counted as expired). */
  readonly graceMs: number;
  /** At most this many held in all (CHAT_NODE_HANDOFF_MAX_MESSAGES); beyond it the oldest are dropped. */
  readonly maxMessages: number;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

/** What `hold` did with a record. */
export type HoldResult = 'held' | 'duplicate' | 'dropped';

interface Held {
  readonly message: BusMessage;
  readonly shard: number;
  readonly offset: number;
  readonly heldAt: number;
  /** Delivered, expired, dropped or released: left in the queues, skipped when reached. */
  done: boolean;
}

/** A first-in first-out queue with lazy removal (entries marked done are skipped at the head). */
class Fifo<T extends { done: boolean }> {
  #items: T[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest entry not done, or undefined; drops the done ones it passes. */
  peek(): T | undefined {
    while (this.#head < this.#items.length && this.#items[this.#head]?.done) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return this.#items[this.#head];
  }

  /** Every entry not done, oldest first. */
  live(): T[] {
    return this.#items.slice(this.#head).filter((item) => !item.done);
  }
}

/**
 * Handoff: records of shards this node reads whose receiver has no session here yet (reconnecting after
 * a move, a drain, a crash) are held per receiver, in arrival order, for the grace period, and handed
 * over when the receiver's first session registers (`take`). Every record leaves the hold counted
 * (chat_node_handoff_total): `delivered`, `expired` (grace over), `overflow` (over the bound, oldest
 * first) or `released` (this node stopped reading its shard: the next owner reads it again). While
 * records are held, `floorOf(shard)` is the oldest held offset of the shard: the position this node
 * commits for the shard never passes it, so a held record is never lost to a hand-over or a stop. One
 * sweep timer (unref'd) runs while anything is held.
 */
export class Handoff {
  readonly #o: HandoffOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  /** Every held record, in arrival order (for expiry and overflow: the oldest first). */
  readonly #all = new Fifo<Held>();
  /** Per shard, in offset order (for the floor). */
  readonly #byShard = new Map<number, Fifo<Held>>();
  /** Per receiver: arrival order (done entries skipped, compacted now and then), held ids, live count. */
  readonly #byReceiver = new Map<string, { list: Held[]; ids: Set<string>; live: number }>();
  #size = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: HandoffOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'handoff' });
    this.#now = options.now ?? Date.now;
  }

  /** Records held now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Holds `message`, read at `position`, until its receiver arrives or the grace period ends. A record
   * whose id is already held for the same receiver (read twice) is not held again (`duplicate`).
   */
  hold(message: BusMessage, position: MessagePosition): HoldResult {
    if (this.#o.graceMs <= 0) {
      this.#count('expired');
      return 'dropped';
    }
    let mine = this.#byReceiver.get(message.to);
    if (mine?.ids.has(message.id)) return 'duplicate';
    const held: Held = { message, ...position, heldAt: this.#now(), done: false };
    if (!mine) {
      mine = { list: [], ids: new Set(), live: 0 };
      this.#byReceiver.set(message.to, mine);
    }
    mine.list.push(held);
    mine.ids.add(message.id);
    mine.live++;
    this.#all.push(held);
    let shard = this.#byShard.get(position.shard);
    if (!shard) {
      shard = new Fifo();
      this.#byShard.set(position.shard, shard);
    }
    shard.push(held);
    this.#size++;
    let overflow = 0;
    while (this.#size > this.#o.maxMessages) {
      const oldest = this.#all.peek();
      if (!oldest) break;
      this.#remove(oldest);
      overflow++;
    }
    if (overflow > 0) {
      this.#count('overflow', overflow);
      this.#log.warn({ dropped: overflow, max: this.#o.maxMessages }, 'handoff full: oldest held dropped');
    }
    this.#gauge();
    this.#arm();
    return held.done ? 'dropped' : 'held';
  }

  /** Takes every record held for `receiver`, oldest first (counted delivered: the caller writes them). */
  take(receiver: string): BusMessage[] {
    return this.takeHeld(receiver).map((held) => held.message);
  }

  /** Like `take`, with the position each record was read at. */
  takeHeld(receiver: string): { message: BusMessage; position: MessagePosition }[] {
    const mine = this.#byReceiver.get(receiver);
    if (!mine) return [];
    this.#byReceiver.delete(receiver);
    const live = mine.list.filter((held) => !held.done);
    for (const held of live) held.done = true;
    this.#size -= live.length;
    this.#count('delivered', live.length);
    this.#gauge();
    return live.map(({ message, shard, offset }) => ({ message, position: { shard, offset } }));
  }

  /** The offset of the oldest record held for `shard`, or undefined when none is. */
  floorOf(shard: number): number | undefined {
    const queue = this.#byShard.get(shard);
    const oldest = queue?.peek();
    if (queue && !oldest) this.#byShard.delete(shard);
    return oldest?.offset;
  }

  /** This node no longer reads `shard`: its held records go (counted released; the next owner re-reads them). */
  release(shard: number): void {
    const queue = this.#byShard.get(shard);
    if (!queue) return;
    this.#byShard.delete(shard);
    const gone = queue.live();
    for (const held of gone) this.#remove(held);
    if (gone.length > 0) {
      this.#count('released', gone.length);
      this.#log.info({ shard, released: gone.length }, 'held records released with their shard');
    }
    this.#gauge();
  }

  /** Drops records held past the grace period (counted expired). Called by the sweep timer. */
  sweep(): void {
    const cutoff = this.#now() - this.#o.graceMs;
    let expired = 0;
    for (let oldest = this.#all.peek(); oldest && oldest.heldAt <= cutoff; oldest = this.#all.peek()) {
      this.#remove(oldest);
      expired++;
    }
    if (expired > 0) {
      this.#count('expired', expired);
      this.#log.info({ expired, graceMs: this.#o.graceMs }, 'held records expired: receiver did not arrive');
    }
    this.#gauge();
    if (this.#size === 0) this.#disarm();
  }

  /**
   * Stops the sweep timer for good. Records are still held after it (the node is stopping, its bus still
   * reads until it stops; their floor keeps them for the next owner) until the bus releases their shards.
   */
  stop(): void {
    this.#stopped = true;
    this.#disarm();
  }

  /** Marks `held` done and takes it out of its receiver's entry. */
  #remove(held: Held): void {
    held.done = true;
    this.#size--;
    const mine = this.#byReceiver.get(held.message.to);
    if (!mine) return;
    mine.ids.delete(held.message.id);
    if (--mine.live === 0) return void this.#byReceiver.delete(held.message.to);
    // Done entries are skipped; compacted once they are most of the list (amortised O(1) per removal).
    if (mine.list.length > 32 && mine.live * 2 < mine.list.length)
      mine.list = mine.list.filter((h) => !h.done);
  }

  #count(result: 'delivered' | 'expired' | 'overflow' | 'released', n = 1): void {
    if (n > 0) this.#o.metrics.handoff.inc({ result }, n);
  }

  #gauge(): void {
    this.#o.metrics.handoffHeld.set(this.#size);
  }

  #arm(): void {
    if (this.#timer || this.#stopped) return;
    // A tenth of the grace period, between 50 ms and 1 s: expiry is late by at most that.
    const every = Math.min(1000, Math.max(50, Math.floor(this.#o.graceMs / 10)));
    this.#timer = setInterval(() => this.sweep(), every);
    this.#timer.unref();
  }

  #disarm(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
