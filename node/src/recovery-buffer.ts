import type { BusMessage } from '@chat/shared';
import type { MessagePosition } from './bus/types.js';

export interface RecoveryBufferOptions {
  /** At most this many records per shard (CHAT_NODE_RECOVERY_MAX_PER_SHARD); the oldest leave first. */
  readonly maxPerShard: number;
  /** Records older than this by their send time leave (CHAT_NODE_RECOVERY_TTL_MS). */
  readonly ttlMs: number;
  readonly now?: () => number;
}

interface Entry {
  readonly offset: number;
  readonly message: BusMessage;
}

/** One shard's recent records, and the range of offsets they cover without a hole. */
interface ShardRecords {
  /** Every record of the shard from `from` up to `next` (excluded) is in `entries`. */
  from: number;
  next: number;
  entries: Entry[];
  head: number;
}

/** Whether a position can be served: `covered`, `too_old`, or undefined when the shard is not read here. */
export type Coverage = 'covered' | 'too_old' | undefined;

/**
 * Durable mode's recovery buffer: the most recent records of every shard this node reads, in offset
 * order, filled as the shard's log is read (and, on takeover, from a window read back before the
 * committed position), so a client that reconnects naming its last position gets every record to it
 * after that position, or an explicit "not recovered" when the position is older than what is kept.
 * Bounded per shard by count and by age (send time); a shard's records go when the node stops reading it.
 */
export class RecoveryBuffer {
  readonly #o: RecoveryBufferOptions;
  readonly #now: () => number;
  readonly #shards = new Map<number, ShardRecords>();
  #size = 0;

  constructor(options: RecoveryBufferOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Records kept now, over all shards. */
  get size(): number {
    return this.#size;
  }

  /** The node starts reading `shard` at `from` (the first record it will read): what it held goes. */
  open(shard: number, from: number): void {
    this.release(shard);
    this.#shards.set(shard, { from, next: from, entries: [], head: 0 });
  }

  /** Whether `shard` is read here (opened, or a record of it was added). */
  has(shard: number): boolean {
    return this.#shards.has(shard);
  }

  /** The next offset expected for `shard` (what was read so far ends before it), or undefined. */
  nextOf(shard: number): number | undefined {
    return this.#shards.get(shard)?.next;
  }

  /** Keeps a record read at `position` (a record before what was read already is ignored). */
  add(message: BusMessage, position: MessagePosition): void {
    let records = this.#shards.get(position.shard);
    if (!records) {
      records = { from: position.offset, next: position.offset, entries: [], head: 0 };
      this.#shards.set(position.shard, records);
    }
    if (position.offset < records.next) return;
    records.next = position.offset + 1;
    if (this.#o.maxPerShard <= 0) {
      records.from = records.next;
      return;
    }
    records.entries.push({ offset: position.offset, message });
    this.#size++;
    while (records.entries.length - records.head > this.#o.maxPerShard) this.#evict(records);
    this.#expire(records);
  }

  /** Whether every record of `shard` after `offset` up to what was read is kept. */
  covers(shard: number, offset: number): Coverage {
    const records = this.#shards.get(shard);
    if (!records) return undefined;
    this.#expire(records);
    return records.from <= offset + 1 ? 'covered' : 'too_old';
  }

  /** The records of `shard` to `receiver` after `offset`, oldest first, with their offsets. */
  after(shard: number, receiver: string, offset: number): Entry[] {
    const records = this.#shards.get(shard);
    if (!records) return [];
    const out: Entry[] = [];
    for (let i = records.head; i < records.entries.length; i++) {
      const entry = records.entries[i];
      if (entry && entry.offset > offset && entry.message.to === receiver) out.push(entry);
    }
    return out;
  }

  /** The node stopped reading `shard`: its records go. */
  release(shard: number): void {
    const records = this.#shards.get(shard);
    if (!records) return;
    this.#size -= records.entries.length - records.head;
    this.#shards.delete(shard);
  }

  /** Drops what is past the age limit in every shard (call now and then). */
  sweep(): void {
    for (const records of this.#shards.values()) this.#expire(records);
  }

  #expire(records: ShardRecords): void {
    const cutoff = this.#now() - this.#o.ttlMs;
    for (let e = records.entries[records.head]; e && e.message.ts < cutoff; e = records.entries[records.head])
      this.#evict(records);
  }

  #evict(records: ShardRecords): void {
    const oldest = records.entries[records.head];
    if (!oldest) return;
    records.entries[records.head] = undefined as unknown as Entry;
    records.head++;
    this.#size--;
    records.from = oldest.offset + 1;
    if (records.head > 1024 && records.head * 2 > records.entries.length) {
      records.entries = records.entries.slice(records.head);
      records.head = 0;
    }
  }
}
