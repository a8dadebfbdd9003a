import { randomBytes } from 'node:crypto';
import { ChatError, type BusMessage, type MemberHeartbeat } from '@chat/shared';
import {
  decodeHeartbeat,
  decodeMessage,
  decodePresence,
  encodeHeartbeat,
  encodeMessage,
  encodePresence,
  type EncodedRecord,
} from './records.js';
import type { BusHandlers, ChatBus, MessagePosition, PresenceUpdate } from './types.js';

function unavailable(message: string): ChatError {
  return new ChatError('KAFKA_ERR_UNAVAILABLE', message);
}

/** Records kept per shard log (the oldest are dropped beyond this, like retention). */
const SHARD_LOG_LIMIT = 10_000;

/** One shard's log: its records from offset `base` on, and where its last owner stopped. */
interface ShardLog {
  base: number;
  readonly records: EncodedRecord[];
  /** The next offset to read, as the last owner left it (undefined: never owned). */
  released: number | undefined;
}

/**
 * An in-process stand-in for Kafka. Messages go to per-shard logs (a partition each); each shard's
 * messages are handed to the bus that owns it (`assignShards`), which starts where the previous owner
 * released it, so a hand-over loses nothing; a bus assigned `all` sees every message (the seed design).
 * The hub keeps the latest presence and member records like a compacted topic, replayed to a bus when it
 * starts. Records travel encoded and are validated on the way in with the same code as Kafka's
 * (records.ts); delivery is asynchronous, as over a real bus.
 */
export class MemoryBusHub {
  readonly #buses = new Set<MemoryBus>();
  /** Latest presence records by presence key (`presenceKey(nodeId, userId)`), encoded: the compacted topic. */
  readonly presence = new Map<string, string>();
  /** Latest heartbeats by node id, encoded. */
  readonly members = new Map<string, string>();
  #available = true;
  /** The messages log's epoch: one per hub (a new hub is a new log). */
  readonly epoch = `m${randomBytes(6).toString('hex')}`;
  readonly #logs = new Map<number, ShardLog>();
  /** Counts what was published, by kind. */
  readonly published = { message: 0, presence: 0, heartbeat: 0 };
  /** Records a bus skipped because they did not validate (Kafka counts them in a metric). */
  invalidRecords = 0;
  /** Records whose handler threw (counted, then the next record is delivered as usual). */
  handlerErrors = 0;

  /** When false, every publish fails as if Kafka were down and the buses report not ready. */
  get available(): boolean {
    return this.#available;
  }

  set available(value: boolean) {
    this.#available = value;
    for (const bus of this.#buses) bus.updateReady();
  }

  connect(nodeId: string): MemoryBus {
    return new MemoryBus(this, nodeId);
  }

  /** @internal */
  attach(bus: MemoryBus): void {
    this.#buses.add(bus);
  }

  /** @internal */
  detach(bus: MemoryBus): void {
    this.#buses.delete(bus);
  }

  /** @internal Queues `record` for every attached bus, in order. */
  broadcast(kind: 'presence' | 'heartbeat', record: EncodedRecord): void {
    for (const bus of this.#buses) queueMicrotask(() => bus.receive(kind, record));
  }

  /** @internal Appends a message to `shard`'s log and hands it to the buses that read the shard. */
  append(shard: number, record: EncodedRecord): void {
    const log = this.#log(shard);
    log.records.push(record);
    if (log.records.length > SHARD_LOG_LIMIT) {
      log.records.shift();
      log.base++;
    }
    const offset = log.base + log.records.length - 1;
    for (const bus of this.#buses) bus.offer(shard, offset, record);
  }

  /** @internal The records of `shard` from `from` on (from the oldest kept when older), and the end. */
  read(shard: number, from: number | undefined): { start: number; records: EncodedRecord[]; end: number } {
    const log = this.#log(shard);
    const start = Math.max(from ?? log.released ?? log.base, log.base);
    return { start, records: log.records.slice(start - log.base), end: log.base + log.records.length };
  }

  /** @internal The records of `shard` from `from` on (from the oldest kept when older). */
  readFrom(shard: number, from: number): { start: number; records: EncodedRecord[] } {
    const log = this.#log(shard);
    const start = Math.max(from, log.base);
    return { start, records: log.records.slice(start - log.base) };
  }

  /** @internal Where `shard`'s next owner starts. */
  release(shard: number, next: number): void {
    this.#log(shard).released = next;
  }

  #log(shard: number): ShardLog {
    let log = this.#logs.get(shard);
    if (!log) {
      log = { base: 0, records: [], released: undefined };
      this.#logs.set(shard, log);
    }
    return log;
  }
}

export class MemoryBus implements ChatBus {
  readonly kind = 'memory';
  readonly #hub: MemoryBusHub;
  readonly #nodeId: string;
  #handlers: BusHandlers | undefined;
  #ready = false;
  /**
   * Shard -> the next offset to queue and the next one not yet handed to the node (what a release
   * gives the next owner); `all`: every shard, from what is published after now.
   */
  #owned: Map<number, { next: number; delivered: number }> | 'all' = new Map();

  constructor(hub: MemoryBusHub, nodeId: string) {
    this.#hub = hub;
    this.#nodeId = nodeId;
  }

  start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    for (const [key, value] of this.#hub.members) this.receive('heartbeat', { key, value });
    for (const [key, value] of this.#hub.presence) this.receive('presence', { key, value });
    this.#hub.attach(this);
    this.updateReady();
    return Promise.resolve();
  }

  /**
   * @internal One record arrives from the hub: validated like Kafka's, then handed to the node. A record
   * that does not decode is skipped and counted; a handler that throws is counted apart (a bug in the
   * node, not a bad record) and the next record is still delivered.
   */
  receive(
    kind: 'message' | 'presence' | 'heartbeat',
    { key, value }: EncodedRecord,
    position: MessagePosition = { shard: 0, offset: 0 },
  ): void {
    const handlers = this.#handlers;
    if (!handlers) return;
    let deliver: () => void;
    try {
      if (kind === 'message') {
        const message = decodeMessage(value);
        deliver = () => handlers.onMessage(message, position);
      } else if (kind === 'heartbeat') {
        const { id, heartbeat } = decodeHeartbeat(key, value);
        deliver = () => handlers.onMember(id, heartbeat);
      } else {
        const { nodeId, userId, record } = decodePresence(key, value);
        deliver = () => handlers.onPresence(nodeId, userId, record);
      }
    } catch {
      this.#hub.invalidRecords++;
      return;
    }
    try {
      deliver();
    } catch {
      this.#hub.handlerErrors++;
    }
  }

  /** @internal Reports a change of readiness (started, stopped, hub availability). */
  updateReady(): void {
    const ready = this.#handlers !== undefined && this.#hub.available;
    if (ready === this.#ready) return;
    this.#ready = ready;
    this.#handlers?.onReadyChange(ready);
  }

  publishMessage(message: BusMessage, shard: number): Promise<void> {
    return this.#publish(() => {
      this.#hub.published.message++;
      this.#hub.append(shard, encodeMessage(message));
    });
  }

  assignShards(shards: ReadonlySet<number> | 'all'): void {
    const before = this.#owned;
    if (shards === 'all') {
      this.#releaseAll();
      this.#owned = 'all';
      return;
    }
    const owned = new Map<number, { next: number; delivered: number }>();
    if (before !== 'all') {
      for (const [shard, position] of before) {
        if (shards.has(shard)) owned.set(shard, position);
        else this.#release(shard, position.delivered);
      }
    }
    this.#owned = owned;
    for (const shard of shards) {
      if (owned.has(shard)) continue;
      // Start where the previous owner stopped, and catch up with what was published since; in durable
      // mode read back a window before it first (flagged backfill).
      const { start, end } = this.#hub.read(shard, undefined);
      const window = this.#handlers?.backfill ?? 0;
      const { start: from, records } = this.#hub.readFrom(shard, Math.max(0, start - window));
      owned.set(shard, { next: end, delivered: start });
      try {
        this.#handlers?.onShardTaken?.(shard, from, start);
      } catch {
        this.#hub.handlerErrors++;
      }
      records.forEach((record, i) => this.#queue(shard, from + i, record, from + i < start));
    }
  }

  #releaseAll(): void {
    if (this.#owned === 'all') return;
    const owned = this.#owned;
    this.#owned = new Map();
    for (const [shard, position] of owned) this.#release(shard, position.delivered);
  }

  /**
   * Lets `shard` go: its next owner starts at `delivered`, or at the oldest record the node still holds
   * (like Kafka's positions), and the node is told to drop what it holds of it.
   */
  #release(shard: number, delivered: number): void {
    const floor = this.#handlers?.heldFloorOf?.(shard);
    this.#hub.release(shard, floor === undefined ? delivered : Math.min(delivered, floor));
    try {
      this.#handlers?.onShardReleased?.(shard);
    } catch {
      this.#hub.handlerErrors++;
    }
  }

  /** @internal A message was appended to `shard`'s log at `offset`: queue it if this bus reads the shard. */
  offer(shard: number, offset: number, record: EncodedRecord): void {
    if (this.#owned === 'all') return this.#queue(shard, offset, record);
    const position = this.#owned.get(shard);
    if (position === undefined || offset < position.next) return;
    position.next = offset + 1;
    this.#queue(shard, offset, record);
  }

  #queue(shard: number, offset: number, record: EncodedRecord, backfill = false): void {
    queueMicrotask(() => {
      if (this.#owned !== 'all') {
        // Released meanwhile: the next owner reads it from the log.
        const position = this.#owned.get(shard);
        if (!position) return;
        if (!backfill) position.delivered = offset + 1;
      }
      this.receive('message', record, backfill ? { shard, offset, backfill } : { shard, offset });
    });
  }

  logEpoch(): string {
    return this.#hub.epoch;
  }

  publishPresence(updates: readonly PresenceUpdate[]): Promise<void> {
    return this.#publish(() => {
      for (const { userId, record } of updates) {
        const encoded = encodePresence(this.#nodeId, userId, record);
        if (encoded.value === null) this.#hub.presence.delete(encoded.key);
        else this.#hub.presence.set(encoded.key, encoded.value);
        this.#hub.published.presence++;
        this.#hub.broadcast('presence', encoded);
      }
    });
  }

  publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void> {
    return this.#publish(() => {
      const encoded = encodeHeartbeat(this.#nodeId, heartbeat);
      if (encoded.value === null) this.#hub.members.delete(encoded.key);
      else this.#hub.members.set(encoded.key, encoded.value);
      this.#hub.published.heartbeat++;
      this.#hub.broadcast('heartbeat', encoded);
    });
  }

  async #publish(action: () => void): Promise<void> {
    // Taken or refused when called, like Kafka's batcher: a publish in flight when stop() begins is
    // still carried out.
    const started = this.#handlers !== undefined;
    await Promise.resolve();
    if (!started) throw unavailable('in-process bus not started or stopped');
    if (!this.#hub.available) {
      this.updateReady();
      throw unavailable('in-process bus marked unavailable');
    }
    action();
  }

  isReady(): boolean {
    return this.#ready;
  }

  stop(): Promise<void> {
    this.#releaseAll();
    this.#hub.detach(this);
    const handlers = this.#handlers;
    this.#handlers = undefined;
    if (this.#ready) {
      this.#ready = false;
      handlers?.onReadyChange(false);
    }
    return Promise.resolve();
  }
}
