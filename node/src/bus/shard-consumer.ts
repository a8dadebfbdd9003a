import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { Restarter, type Logger, type ShardOffset } from '@chat/shared';
import type { NodeMetrics } from '../metrics.js';
import type { KafkaProducer } from './kafka-producer.js';
import { encodeShardOffset } from './records.js';

export interface ShardConsumerOptions {
  readonly kafka: Kafka;
  /** The messages topic: partition p is shard p's log. */
  readonly topic: string;
  readonly offsetsTopic: string;
  readonly nodeId: string;
  readonly epoch: string;
  readonly topicPrefix: string;
  /** The shard count: the partitions of the topic. */
  readonly shards: number;
  readonly producer: KafkaProducer;
  /** The latest shard-offsets record of a shard (replayed and followed by the directory consumer). */
  readonly offsetOf: (shard: number) => ShardOffset | undefined;
  /** Whether a shard's previous owner (node, incarnation) is still alive. */
  readonly isMemberAlive: (nodeId: string, epoch: string) => boolean;
  /** Where a shard nobody ever committed starts (a bounded look-back, read at start). */
  readonly initialOffsetOf: (shard: number) => number;
  /** The end of a shard's log when the bus started (where `all`, the seed design, starts). */
  readonly endOffsetOf: (shard: number) => number;
  /** A record of an owned shard, in partition order (`backfill`: before the position it was taken at). */
  readonly onRecord: (message: KafkaMessage, shard: number, backfill: boolean) => void;
  /**
   * Durable mode: how many records before a taken shard's start position to read too (flagged backfill,
   * never counted in the position written), not below `lowOffsetOf`. 0: none.
   */
  readonly backfill?: () => number;
  /** The first offset still in a shard's log (when the bus started). */
  readonly lowOffsetOf?: (shard: number) => number;
  /** A shard is taken: records from `from` on will be read, those before `start` flagged backfill. */
  readonly onTaken?: (shard: number, from: number, start: number) => void;
  /** The oldest offset of `shard` the node still holds undelivered: positions written never pass it. */
  readonly heldFloorOf: (shard: number) => number | undefined;
  /** This consumer stopped reading `shard` and fixed its final position (see MessageHandlers). */
  readonly onReleased: (shard: number) => void;
  /** The consumer joined its group (true) or crashed (false). */
  readonly onJoinChange: (joined: boolean) => void;
  readonly commitIntervalMs: number;
  /** How long a new owner waits for a live previous owner to release a shard before taking it. */
  readonly handoverTimeoutMs: number;
  readonly fetchMaxWaitMs: number;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
}

/** A shard this node reads: the next offset to read, and what was last written to the offsets topic. */
interface Owned {
  next: number;
  committed: number;
  /** Where the shard was taken: records before it are backfill, and no position written goes below it. */
  start: number;
}

/**
 * Reads exactly the partitions of the shards this node owns. kafkajs has no `assign()`, so the consumer
 * is the only member of a group of its own (per incarnation, never committed to), subscribed to the
 * whole topic, and every partition it does not own is paused: kafkajs fetches only unpaused partitions.
 * Positions are ours: an owned shard is sought to where its previous owner stopped, read from the
 * compacted shard-offsets topic, and this node writes its own position there every commit interval and
 * when it lets a shard go (`released`). Hand-over: the old owner stops delivering the shard at once,
 * writes its final position as released; the new owner starts from it as soon as it sees it, or from
 * the last position written when the old owner is dead (or silent past the hand-over timeout), in which
 * case messages since that position may be delivered twice. A position written (periodic or final) never
 * passes the oldest record the node still holds for the shard (`heldFloorOf`, handoff): the next owner
 * reads such a record again instead of losing it.
 */
export class ShardConsumer {
  readonly #o: ShardConsumerOptions;
  readonly #log: Logger;
  #consumer: Consumer | undefined;
  /** What the owner table gives this node (`all`: the seed design, every partition from now on). */
  #assigned: ReadonlySet<number> | 'all' = new Set();
  /** Shards being read now. */
  readonly #owned = new Map<number, Owned>();
  /** Shards assigned but waiting for their previous owner's release, since when. */
  readonly #waiting = new Map<number, number>();
  /** Released shards whose final position still has to be written (retried every commit interval). */
  readonly #releases = new Map<number, number>();
  #joined = false;
  #wasAll = false;
  /** In `all` mode: the next offset to read per partition. */
  readonly #allNext = new Map<number, number>();
  #commitTimer: NodeJS.Timeout | undefined;
  #committing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ShardConsumerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'shard-consumer' });
  }

  /** Shards being read now. */
  get owned(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    this.#consumer = await this.#create();
    this.#commitTimer = setInterval(() => void this.commit(), this.#o.commitIntervalMs);
    this.#commitTimer.unref();
  }

  /** Consumers created so far: each new one gets a group of its own (no old member to wait out). */
  #generation = 0;
  readonly #restarter = new Restarter({
    onError: (err, attempt) =>
      this.#log.warn({ err: (err as Error).message, attempt }, 'message consumer restart failed'),
  });

  async #create(): Promise<Consumer> {
    const generation = this.#generation++;
    const consumer = this.#o.kafka.consumer({
      // A group of its own per incarnation (and per re-creation): nothing is committed to it, so it
      // disappears when the node stops, and a new one never waits for an old member's session.
      groupId: `${this.#o.topicPrefix}.node.${this.#o.nodeId}.${this.#o.epoch}${generation > 0 ? `.${generation}` : ''}`,
      // The broker's minimum: after a broker restart the group waits out the old member's session before
      // the consumer (restarted by kafkajs) reads again, and records accepted meanwhile wait that long.
      sessionTimeout: 6000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: this.#o.fetchMaxWaitMs,
    });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      // After every (re)join kafkajs starts from scratch: pause what is not ours, seek what is.
      this.#applyToConsumer(consumer);
      this.#joined = true;
      this.#o.onJoinChange(true);
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.#joined = false;
      this.#o.metrics.busConsumeErrors.inc({ reason: 'consumer_crash' });
      this.#log.warn(
        { err: event.payload.error.message, restart: event.payload.restart },
        'message consumer crashed',
      );
      this.#o.onJoinChange(false);
      // kafkajs gives up on errors it deems not retryable (e.g. no group coordinator right after a broker
      // restart): then we start a new consumer ourselves, which reads on from our positions.
      if (!event.payload.restart) this.#restartSoon(consumer);
    });
    try {
      await consumer.connect();
      // Durable mode reads back before its start positions: a seek below what retention left is then
      // reset to the earliest record (a re-read), never to the latest (a loss).
      const fromBeginning = (this.#o.backfill?.() ?? 0) > 0;
      await consumer.subscribe({ topic: this.#o.topic, fromBeginning });
      await consumer.run({ autoCommit: false, eachBatch: (payload) => this.#onBatch(payload) });
    } catch (err) {
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
    return consumer;
  }

  /** Replaces a consumer kafkajs gave up on; `dead` is disconnected first. */
  #restartSoon(dead: Consumer): void {
    this.#restarter.schedule(async () => {
      await dead.disconnect().catch(() => undefined);
      const consumer = await this.#create();
      if (this.#stopped) return void consumer.disconnect().catch(() => undefined);
      this.#consumer = consumer;
      this.#log.info({ generation: this.#generation - 1 }, 'message consumer started again');
    });
  }

  /** The owner table changed: release what is no longer ours, take what is new (see the class doc). */
  assign(shards: ReadonlySet<number> | 'all'): void {
    this.#wasAll = this.#assigned === 'all';
    this.#assigned = shards === 'all' ? 'all' : new Set(shards);
    const lost = [...this.#owned.keys()].filter((s) => !this.#isAssigned(s));
    for (const shard of lost) {
      const owned = this.#owned.get(shard);
      this.#owned.delete(shard);
      if (owned) this.#releases.set(shard, this.#position(shard, owned));
      this.#o.onReleased(shard);
    }
    for (const shard of this.#waiting.keys()) if (!this.#isAssigned(shard)) this.#waiting.delete(shard);
    if (lost.length > 0) {
      this.#consumer?.pause([{ topic: this.#o.topic, partitions: lost }]);
      this.#log.info({ shards: lost }, 'released shards');
      void this.commit();
    }
    if (shards === 'all') return void this.#resumeAll();
    if (this.#wasAll && this.#consumer && this.#joined) this.#applyToConsumer(this.#consumer);
    this.#wasAll = false;
    const now = Date.now();
    for (const shard of shards) {
      if (!this.#owned.has(shard) && !this.#waiting.has(shard)) this.#waiting.set(shard, now);
    }
    this.poll();
    this.#handoverGauge();
  }

  /** Re-checks the shards waiting for a release (on every shard-offsets record, and on a timer). */
  poll(): void {
    if (this.#stopped) return;
    const now = Date.now();
    const taken: number[] = [];
    for (const [shard, since] of this.#waiting) {
      const start = this.#startOffset(shard, now - since >= this.#o.handoverTimeoutMs);
      if (start === undefined) continue;
      this.#waiting.delete(shard);
      this.#releases.delete(shard);
      const window = this.#o.backfill?.() ?? 0;
      const from =
        window > 0 ? Math.min(start, Math.max(this.#o.lowOffsetOf?.(shard) ?? 0, start - window)) : start;
      this.#owned.set(shard, { next: from, committed: start, start });
      this.#o.onTaken?.(shard, from, start);
      taken.push(shard);
    }
    this.#handoverGauge();
    if (taken.length === 0) return;
    this.#log.info({ shards: taken }, 'took shards');
    const consumer = this.#consumer;
    if (!consumer || !this.#joined) return; // GROUP_JOIN applies them
    for (const shard of taken) {
      consumer.seek({ topic: this.#o.topic, partition: shard, offset: String(this.#owned.get(shard)?.next) });
    }
    consumer.resume([{ topic: this.#o.topic, partitions: taken }]);
  }

  /**
   * Where to start reading `shard`, or undefined while its previous owner is alive and has not released
   * it (unless `force`: the hand-over timeout passed).
   */
  #startOffset(shard: number, force: boolean): number | undefined {
    const last = this.#o.offsetOf(shard);
    if (!last) return this.#o.initialOffsetOf(shard);
    const mine = last.node === this.#o.nodeId && last.epoch === this.#o.epoch;
    if (last.released || mine || !this.#o.isMemberAlive(last.node, last.epoch)) return last.offset;
    if (force) {
      this.#o.metrics.busConsumeErrors.inc({ reason: 'handover_timeout' });
      this.#log.warn(
        { shard, owner: last.node },
        'previous owner did not release the shard in time; taking it',
      );
      return last.offset;
    }
    return undefined;
  }

  #isAssigned(shard: number): boolean {
    return this.#assigned === 'all' || this.#assigned.has(shard);
  }

  #resumeAll(): void {
    const consumer = this.#consumer;
    if (consumer && this.#joined) this.#applyToConsumer(consumer);
  }

  /**
   * Pauses every partition that is not read now and seeks the owned ones to their positions. Always with
   * explicit partition lists: kafkajs forgets a topic-wide pause as soon as one partition is paused.
   */
  #applyToConsumer(consumer: Consumer): void {
    if (this.#assigned === 'all') {
      // The seed design: every partition, from where this bus got to, or from the end of the log when
      // the bus started (kafkajs would pick "latest" only at its first fetch, after start() resolved, and
      // again after every rejoin, missing what came in between).
      for (let p = 0; p < this.#o.shards; p++) {
        const next = this.#allNext.get(p) ?? this.#o.endOffsetOf(p);
        consumer.seek({ topic: this.#o.topic, partition: p, offset: String(next) });
      }
      consumer.resume([{ topic: this.#o.topic }]);
      return;
    }
    const others = Array.from({ length: this.#o.shards }, (_, p) => p).filter((p) => !this.#owned.has(p));
    if (others.length > 0) consumer.pause([{ topic: this.#o.topic, partitions: others }]);
    for (const [shard, { next }] of this.#owned) {
      consumer.seek({ topic: this.#o.topic, partition: shard, offset: String(next) });
    }
    const owned = [...this.#owned.keys()];
    if (owned.length > 0) consumer.resume([{ topic: this.#o.topic, partitions: owned }]);
  }

  readonly #lag = new Map<number, number>();

  async #onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const shard = batch.partition;
    for (const message of batch.messages) {
      if (!payload.isRunning() || payload.isStale()) break;
      const owned = this.#owned.get(shard);
      if (this.#assigned !== 'all') {
        // Released meanwhile, or a record before the position we sought (a fetch already in flight).
        if (!owned || Number(message.offset) < owned.next) continue;
        owned.next = Number(message.offset) + 1;
      } else {
        if (Number(message.offset) < (this.#allNext.get(shard) ?? 0)) continue;
        this.#allNext.set(shard, Number(message.offset) + 1);
      }
      this.#o.metrics.busConsumed.inc({ kind: 'message' });
      this.#o.onRecord(message, shard, owned !== undefined && Number(message.offset) < owned.start);
    }
    const last = batch.messages.at(-1);
    if (last) this.#lag.set(shard, Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
    let total = 0;
    for (const [s, v] of this.#lag) if (this.#assigned === 'all' || this.#owned.has(s)) total += v;
    this.#o.metrics.consumerLag.set(total);
    await payload.heartbeat();
  }

  /** The position to write for `shard` read up to `next`: never past its oldest held record. */
  #position(shard: number, { next, start }: Owned): number {
    const floor = this.#o.heldFloorOf(shard);
    const read = Math.max(next, start); // a backfill in progress never moves the position back
    return floor === undefined ? read : Math.min(read, floor);
  }

  /** Writes the position of every owned shard that moved, and the final position of released ones. */
  commit(): Promise<void> {
    this.#committing ??= this.#commit().finally(() => (this.#committing = undefined));
    return this.#committing;
  }

  async #commit(): Promise<void> {
    if (this.#waiting.size > 0) this.poll();
    const ts = Date.now();
    const base = { v: 1 as const, node: this.#o.nodeId, epoch: this.#o.epoch, ts };
    const records: { shard: number; offset: number; released: boolean }[] = [];
    for (const [shard, offset] of this.#releases) records.push({ shard, offset, released: true });
    for (const [shard, owned] of this.#owned) {
      const offset = this.#position(shard, owned);
      if (offset !== owned.committed) records.push({ shard, offset, released: false });
    }
    if (records.length === 0) return;
    try {
      await this.#o.producer.send(
        this.#o.offsetsTopic,
        records.map((r) => encodeShardOffset({ ...base, ...r })),
        'offset',
      );
    } catch (err) {
      this.#log.warn(
        { err: (err as Error).message, shards: records.length },
        'could not write shard positions',
      );
      return;
    }
    for (const r of records) {
      if (r.released) {
        if (this.#releases.get(r.shard) === r.offset) this.#releases.delete(r.shard);
      } else {
        const owned = this.#owned.get(r.shard);
        if (owned) owned.committed = r.offset;
      }
    }
    this.#handoverGauge();
  }

  /** chat_node_shard_handovers: shards waiting for their previous owner, and releases not yet written. */
  #handoverGauge(): void {
    this.#o.metrics.shardHandovers.set({ side: 'taking' }, this.#waiting.size);
    this.#o.metrics.shardHandovers.set({ side: 'releasing' }, this.#releases.size);
  }

  /** Releases every shard (writing its final position) and disconnects. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#commitTimer);
    this.#restarter.stop();
    const owned = [...this.#owned];
    for (const [shard, o] of owned) this.#releases.set(shard, this.#position(shard, o));
    this.#owned.clear();
    for (const [shard] of owned) this.#o.onReleased(shard);
    this.#waiting.clear();
    await this.#committing;
    await this.commit();
    await this.#consumer?.disconnect();
  }
}
