import { createHash, randomBytes } from 'node:crypto';
import { Kafka, type Admin, type Consumer, type EachBatchPayload, type KafkaMessage } from 'kafkajs';
import {
  ChatError,
  RecordGate,
  Restarter,
  kafkaLogCreator,
  nodeConfigSchema,
  rethrowKafkaRefusal,
  retryUntil,
  topicNames,
  type BusMessage,
  type KafkaConnectionOptions,
  type RecordAuthMode,
  type RecordMac,
  type Logger,
  type MemberHeartbeat,
  type ShardOffset,
} from '@chat/shared';
import type { NodeMetrics } from '../metrics.js';
import { KafkaProducer, unavailable, withTimeout, type RecordKind } from './kafka-producer.js';
import {
  decodeHeartbeat,
  decodeMessage,
  decodePresence,
  decodeShardOffset,
  LOG_EPOCH_KEY,
  decodeLogEpoch,
  encodeLogEpoch,
  encodeHeartbeat,
  encodeMessage,
  encodePresence,
} from './records.js';
import { ShardConsumer } from './shard-consumer.js';
import type { BusHandlers, ChatBus, PresenceUpdate } from './types.js';

export interface KafkaBusOptions {
  readonly brokers: readonly string[];
  /** TLS and SASL for the Kafka client (kafkaConnectionOptions); none by default. */
  readonly connection?: KafkaConnectionOptions;
  /**
   * How directory records are signed and checked (directoryAuthFromConfig). Without a MAC they are
   * neither (the in-process tests, or CHAT_CLUSTER_RECORD_AUTH=permissive without a secret).
   */
  readonly recordAuth?: { readonly mac: RecordMac | undefined; readonly mode: RecordAuthMode };
  readonly topicPrefix: string;
  readonly nodeId: string;
  /** This process's incarnation id (also in heartbeats and presence records). */
  readonly epoch: string;
  /** The cluster's shard count: the message topic has exactly this many partitions. */
  readonly shards: number;
  readonly batchMax: number;
  readonly publishTimeoutMs: number;
  readonly startTimeoutMs: number;
  /** How often an owner writes its shards' positions (default 1000 ms). */
  readonly commitIntervalMs?: number;
  /** How long a new owner waits for a live previous owner to release a shard (default 10,000 ms). */
  readonly handoverTimeoutMs?: number;
  /** The longest a fetch waits at the broker for new records (default 20 ms): latency versus idle CPU. */
  readonly fetchMaxWaitMs?: number;
  readonly logger: Logger;
  readonly metrics: NodeMetrics;
}

const CATCH_UP_FALLBACK_MS = 15_000;
/** A shard nobody ever read starts this far back in its log (what was published while it had no owner). */
const INITIAL_LOOKBACK_MS = 60_000;

/**
 * The Kafka bus. Four topics under the prefix: `messages` (S partitions, partition p = shard p's log,
 * key = receiver; each node reads only the partitions of the shards it owns, see ShardConsumer), and the
 * compacted `presence`, `members` and `shard-offsets` topics, which every node replays from the
 * beginning and follows. One idempotent producer (KafkaProducer). When a produce fails, the producer is
 * marked unhealthy: message sends fail fast with a retryable error until its own probe sees the broker
 * again (on a fresh producer after a failed produce), which is how the node recovers by itself.
 */
export class KafkaBus implements ChatBus {
  readonly kind = 'kafka';
  readonly #o: KafkaBusOptions;
  readonly #log: Logger;
  readonly #kafka: Kafka;
  readonly #topics: ReturnType<typeof topicNames>;
  readonly #producer: KafkaProducer;
  /** Admits only signed, fresh directory records (members, presence, shard-offsets). */
  readonly #gate: RecordGate;
  #messages: ShardConsumer | undefined;
  #directory: Consumer | undefined;
  /** Where each shard's owner got to (the shard-offsets topic, latest wins). */
  readonly #shardOffsets = new Map<number, ShardOffset>();
  /** Where a never-read shard starts, and where each shard's log ended, when the bus started. */
  readonly #initialOffsets = new Map<number, number>();
  readonly #endOffsets = new Map<number, number>();
  /** The first offset of each shard's log when the bus started (durable mode reads back no further). */
  readonly #lowOffsets = new Map<number, number>();
  /** The messages log's epoch (the shard-offsets topic's `log-epoch` record; see logEpoch()). */
  #logEpoch: string | undefined;
  /** This node created the messages topic: it writes a new log epoch. */
  #createdLog = false;
  #assigned: ReadonlySet<number> | 'all' = new Set();
  #handlers: BusHandlers | undefined;
  #joined = false;
  #caughtUp = false;
  #ready = false;
  #stopping = false;
  /** Aborted by stop(): ends start-up retries. */
  readonly #stopped = new AbortController();
  #catchUpFallback: NodeJS.Timeout | undefined;
  /** Set while start() waits for readiness. */
  #whenReady: ((err?: ChatError) => void) | undefined;

  constructor(options: KafkaBusOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'kafka-bus' });
    this.#topics = topicNames(options.topicPrefix);
    this.#gate = new RecordGate({
      mac: options.recordAuth?.mac,
      mode: options.recordAuth?.mode ?? 'required',
      logger: options.logger,
      onIgnored: (topic, reason) =>
        options.metrics.busRecordsIgnored.inc({ kind: this.#kindOf(topic), reason }),
      onUnsignedAccepted: (topic) =>
        options.metrics.busRecordsUnsignedAccepted.inc({ kind: this.#kindOf(topic) }),
    });
    this.#kafka = new Kafka({
      clientId: `chat-node-${options.nodeId}`,
      brokers: [...options.brokers],
      ...options.connection,
      logCreator: kafkaLogCreator(options.logger),
      connectionTimeout: 3000,
      requestTimeout: 10_000,
      retry: {
        initialRetryTime: 200,
        maxRetryTime: 2000,
        retries: 5,
        restartOnFailure: () => Promise.resolve(true),
      },
    });
    this.#producer = new KafkaProducer({
      kafka: this.#kafka,
      messagesTopic: this.#topics.messages,
      publishTimeoutMs: options.publishTimeoutMs,
      batchMax: options.batchMax,
      metrics: options.metrics,
      logger: options.logger,
      onHealthChange: () => this.#updateReady(),
      sign: (topic, message) => {
        const value = message.value === null ? null : String(message.value);
        const headers = this.#gate.sign(topic, String(message.key), value);
        return headers ? { ...message, headers: { ...message.headers, ...headers } } : message;
      },
    });
  }

  /** The kind of directory record a topic holds, for metrics. */
  #kindOf(topic: string): 'heartbeat' | 'presence' | 'offset' {
    if (topic === this.#topics.members) return 'heartbeat';
    return topic === this.#topics.presence ? 'presence' : 'offset';
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    const deadline = Date.now() + this.#o.startTimeoutMs;
    // Every step is retried until the start timeout: on a fresh broker the group coordinator is still
    // loading and a topic created a moment ago (by us or by a node starting at the same time) has no
    // leader in the broker's metadata yet; both answer with retryable errors for a while.
    const step = <T>(what: string, f: () => Promise<T>) =>
      // Credentials Kafka refuses are a setting to fix, not a wait: they end start-up at once.
      retryUntil(() => withTimeout(f(), this.#o.startTimeoutMs, what).catch(rethrowKafkaRefusal), {
        deadline,
        initialMs: 100,
        maxMs: 2000,
        signal: this.#stopped.signal,
        onRetry: (err, attempt, waitMs) =>
          this.#log.info({ step: what, attempt, waitMs, err: (err as Error).message }, 'start step retried'),
      });
    const admin = this.#kafka.admin();
    try {
      await step('connect', () => admin.connect());
      await step('create topics', () => this.#ensureTopics(admin));
      const highWatermarks = await step('read directory offsets', () => this.#directoryHighWatermarks(admin));
      await step('read message offsets', () => this.#readInitialOffsets(admin));
      await step('connect producer', () => this.#producer.connect());
      if (this.#createdLog) await step('write log epoch', () => this.#writeLogEpoch());
      await step('start directory consumer', () => this.#startDirectory(highWatermarks));
      await step('start message consumer', () => this.#startMessages());
      await this.#readyBy(deadline);
    } catch (err) {
      await this.stop();
      throw err instanceof ChatError ? err : unavailable('could not start the Kafka bus', err);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Resolves once ready; rejects when `deadline` passes or the bus is stopped first. */
  #readyBy(deadline: number): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (err?: ChatError) => {
        clearTimeout(timer);
        this.#whenReady = undefined;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => done(unavailable(`Kafka bus not ready within ${this.#o.startTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      this.#whenReady = done;
    });
  }

  async #ensureTopics(admin: Admin): Promise<void> {
    const existing = new Set(await admin.listTopics());
    const compacted = [
      { name: 'cleanup.policy', value: 'compact' },
      { name: 'min.cleanable.dirty.ratio', value: '0.1' },
      { name: 'segment.ms', value: '3600000' },
      { name: 'delete.retention.ms', value: '3600000' },
    ];
    const wanted = [
      { topic: this.#topics.messages, numPartitions: this.#o.shards, configEntries: [] },
      { topic: this.#topics.presence, numPartitions: 6, configEntries: compacted },
      { topic: this.#topics.members, numPartitions: 1, configEntries: compacted },
      { topic: this.#topics.shardOffsets, numPartitions: 1, configEntries: compacted },
    ].filter((t) => !existing.has(t.topic));
    if (wanted.length > 0) {
      // kafkajs answers false (and does not wait for leaders) when another node created them first.
      const created = await admin.createTopics({
        topics: wanted.map((t) => ({ ...t, replicationFactor: -1 })),
        waitForLeaders: true,
      });
      if (created) this.#log.info({ topics: wanted.map((t) => t.topic) }, 'created topics');
      if (created && wanted.some((t) => t.topic === this.#topics.messages)) this.#createdLog = true;
    }
    // Whoever created them, go on only once every partition has a leader in the metadata.
    const metadata = await admin.fetchTopicMetadata({ topics: Object.values(this.#topics) });
    for (const topic of metadata.topics) {
      if (topic.name === this.#topics.messages && topic.partitions.length !== this.#o.shards) {
        // Not retryable: partition p is shard p's log, so the counts must match.
        throw new ChatError(
          'CONFIG_ERR_INVALID',
          `topic ${topic.name} has ${topic.partitions.length} partitions but CHAT_CLUSTER_SHARDS=${this.#o.shards}: every node and router of a cluster must use the topic's count (or use a new CHAT_KAFKA_TOPIC_PREFIX)`,
        );
      }
      const leaderless = topic.partitions.filter((p) => p.leader < 0).length;
      if (topic.partitions.length === 0 || leaderless > 0)
        throw unavailable(`topic ${topic.name} has no leader yet for ${leaderless} partition(s)`);
    }
  }

  /** Where each shard starts if nobody ever read it: the first record of the last minute, or the end. */
  async #readInitialOffsets(admin: Admin): Promise<void> {
    const topic = this.#topics.messages;
    const ends = this.#endOffsets;
    for (const p of await admin.fetchTopicOffsets(topic)) {
      ends.set(p.partition, Number(p.high));
      this.#lowOffsets.set(p.partition, Number(p.low));
    }
    for (const p of await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() - INITIAL_LOOKBACK_MS)) {
      const offset = Number(p.offset);
      this.#initialOffsets.set(p.partition, offset >= 0 ? offset : (ends.get(p.partition) ?? 0));
    }
  }

  async #directoryHighWatermarks(admin: Admin): Promise<Map<string, bigint>> {
    const marks = new Map<string, bigint>();
    for (const topic of [this.#topics.presence, this.#topics.members, this.#topics.shardOffsets]) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.high) > BigInt(p.low)) marks.set(`${topic}:${p.partition}`, BigInt(p.high));
      }
    }
    return marks;
  }

  async #startDirectory(highWatermarks: Map<string, bigint>): Promise<void> {
    const generation = this.#directoryGeneration++;
    const consumer = this.#kafka.consumer({
      // A fresh group per process (and per re-creation): the directory is rebuilt from the start of the
      // compacted topics.
      groupId: `${this.#o.topicPrefix}.directory.${this.#o.nodeId}.${this.#o.epoch}${generation > 0 ? `.${generation}` : ''}`,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.#o.metrics.busConsumeErrors.inc({ reason: 'consumer_crash' });
      this.#log.warn(
        { err: event.payload.error.message, restart: event.payload.restart },
        'directory consumer crashed',
      );
      // kafkajs gives up on errors it deems not retryable (no group coordinator right after a broker
      // restart): start a new one, which replays the compacted topics (latest wins) and follows them.
      if (!event.payload.restart) this.#restartDirectory(consumer);
    });
    this.#directory = consumer;
    this.#caughtUp ||= highWatermarks.size === 0;
    clearTimeout(this.#catchUpFallback);
    const pending = new Map(highWatermarks);
    // A compacted partition whose newest record was a tombstone that compaction removed never reaches
    // its high watermark: after a bounded wait, go on with what was read (and say so).
    const fallback = setTimeout(() => {
      if (this.#caughtUp || this.#stopping) return;
      this.#log.warn(
        { partitions: [...pending.keys()] },
        'presence directory not caught up in time; going on',
      );
      this.#caughtUp = true;
      this.#updateReady();
    }, CATCH_UP_FALLBACK_MS);
    fallback.unref();
    this.#catchUpFallback = fallback;
    await this.#startConsumer(consumer, async () => {
      await consumer.subscribe({
        topics: [this.#topics.presence, this.#topics.members, this.#topics.shardOffsets],
        fromBeginning: true,
      });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }: EachBatchPayload) => {
          for (const message of batch.messages) this.#onDirectoryRecord(batch.topic, message);
          const key = `${batch.topic}:${batch.partition}`;
          const mark = pending.get(key);
          const last = batch.messages.at(-1);
          if (mark !== undefined && last && BigInt(last.offset) + 1n >= mark) {
            pending.delete(key);
            if (pending.size === 0 && !this.#caughtUp) {
              this.#caughtUp = true;
              this.#log.info('presence directory caught up');
              this.#updateReady();
            }
          }
          return Promise.resolve();
        },
      });
    });
  }

  #directoryGeneration = 0;
  readonly #directoryRestarter = new Restarter({
    onError: (err, attempt) =>
      this.#log.warn({ err: (err as Error).message, attempt }, 'directory consumer restart failed'),
  });

  /** Replaces a directory consumer kafkajs gave up on; `dead` is disconnected first. */
  #restartDirectory(dead: Consumer): void {
    this.#directoryRestarter.schedule(async () => {
      await dead.disconnect().catch(() => undefined);
      await this.#startDirectory(new Map());
      this.#log.info('directory consumer started again');
    });
  }

  /**
   * Connects `consumer` and runs `subscribeAndRun`; on failure disconnects it, so a retried step starts
   * from a clean client.
   */
  async #startConsumer(consumer: Consumer, subscribeAndRun: () => Promise<void>): Promise<void> {
    try {
      await consumer.connect();
      await subscribeAndRun();
    } catch (err) {
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
  }

  #onDirectoryRecord(topic: string, message: KafkaMessage): void {
    const handlers = this.#handlers;
    const key = message.key?.toString('utf8');
    if (!handlers || key === undefined) return;
    // Unsigned, forged and replayed records go no further (counted and logged by the gate).
    if (!this.#gate.admit(topic, key, message.value, message.headers)) return;
    const value = message.value?.toString('utf8') ?? null;
    if (topic === this.#topics.shardOffsets) {
      this.#o.metrics.busConsumed.inc({ kind: 'offset' });
      if (key === LOG_EPOCH_KEY) {
        try {
          this.#logEpoch = decodeLogEpoch(value);
        } catch (err) {
          this.#invalidRecord(topic, message, err);
        }
        return;
      }
      try {
        const offset = decodeShardOffset(key, value);
        this.#shardOffsets.set(offset.shard, offset);
      } catch (err) {
        return this.#invalidRecord(topic, message, err);
      }
      this.#messages?.poll();
      return;
    }
    const kind: RecordKind = topic === this.#topics.members ? 'heartbeat' : 'presence';
    this.#o.metrics.busConsumed.inc({ kind });
    let deliver: () => void;
    try {
      if (kind === 'heartbeat') {
        const { id, heartbeat } = decodeHeartbeat(key, value);
        deliver = () => handlers.onMember(id, heartbeat);
      } else {
        const { nodeId, userId, record } = decodePresence(key, value);
        deliver = () => handlers.onPresence(nodeId, userId, record);
      }
    } catch (err) {
      this.#invalidRecord(topic, message, err);
      return;
    }
    this.#dispatch(topic, message, deliver);
  }

  /** Calls a handler; one that throws is a bug in the node: logged and counted, and reading goes on. */
  #dispatch(topic: string, message: KafkaMessage, deliver: () => void): void {
    try {
      deliver();
    } catch (err) {
      this.#o.metrics.busConsumeErrors.inc({ reason: 'handler_error' });
      this.#log.error({ err, topic, offset: message.offset }, 'bus record handler failed');
    }
  }

  #invalidRecord(topic: string, message: KafkaMessage, err: unknown): void {
    this.#o.metrics.busConsumeErrors.inc({ reason: 'invalid_record' });
    this.#log.warn(
      { code: 'BUS_ERR_INVALID_RECORD', topic, offset: message.offset, err: (err as Error).message },
      'skipped invalid bus record',
    );
  }

  async #startMessages(): Promise<void> {
    const consumer = new ShardConsumer({
      kafka: this.#kafka,
      topic: this.#topics.messages,
      offsetsTopic: this.#topics.shardOffsets,
      nodeId: this.#o.nodeId,
      epoch: this.#o.epoch,
      topicPrefix: this.#o.topicPrefix,
      shards: this.#o.shards,
      producer: this.#producer,
      offsetOf: (shard) => this.#shardOffsets.get(shard),
      isMemberAlive: (nodeId, epoch) => this.#handlers?.isMemberAlive(nodeId, epoch) ?? false,
      initialOffsetOf: (shard) => this.#initialOffsets.get(shard) ?? 0,
      endOffsetOf: (shard) => this.#endOffsets.get(shard) ?? 0,
      onRecord: (message, shard, backfill) => this.#onMessageRecord(message, shard, backfill),
      backfill: () => this.#handlers?.backfill ?? 0,
      lowOffsetOf: (shard) => this.#lowOffsets.get(shard) ?? 0,
      onTaken: (shard, from, start) => this.#dispatchTaken(shard, from, start),
      heldFloorOf: (shard) => this.#handlers?.heldFloorOf?.(shard),
      onReleased: (shard) => this.#dispatchRelease(shard),
      // Ready once the consumer first joined. A consumer that crashes later (the broker went away)
      // rejoins by itself and reads on from its position, while sends keep working meanwhile: it does
      // not make the node unready (the consumer lag and the logs show it).
      onJoinChange: (joined) => {
        if (!joined || this.#joined) return;
        this.#joined = true;
        this.#updateReady();
      },
      commitIntervalMs: this.#o.commitIntervalMs ?? 1000,
      handoverTimeoutMs: this.#o.handoverTimeoutMs ?? 10_000,
      fetchMaxWaitMs: this.#o.fetchMaxWaitMs ?? nodeConfigSchema.busFetchMaxWaitMs.default,
      metrics: this.#o.metrics,
      logger: this.#o.logger,
    });
    await consumer.start();
    this.#messages = consumer;
    consumer.assign(this.#assigned);
  }

  #onMessageRecord(message: KafkaMessage, shard: number, backfill = false): void {
    let parsed: BusMessage;
    try {
      parsed = decodeMessage(message.value?.toString('utf8') ?? null);
    } catch (err) {
      return this.#invalidRecord(this.#topics.messages, message, err);
    }
    const handlers = this.#handlers;
    const offset = Number(message.offset);
    const position = backfill ? { shard, offset, backfill } : { shard, offset };
    if (handlers) this.#dispatch(this.#topics.messages, message, () => handlers.onMessage(parsed, position));
  }

  /** Tells the node a shard is taken; a handler that throws is a bug: logged and counted. */
  #dispatchTaken(shard: number, from: number, start: number): void {
    try {
      this.#handlers?.onShardTaken?.(shard, from, start);
    } catch (err) {
      this.#o.metrics.busConsumeErrors.inc({ reason: 'handler_error' });
      this.#log.error({ err, shard }, 'shard taken handler failed');
    }
  }

  /** A new log epoch, written by the node that created the messages topic (before it reads or writes it). */
  async #writeLogEpoch(): Promise<void> {
    const epoch = `k${randomBytes(6).toString('hex')}`;
    await this.#producer.send(this.#topics.shardOffsets, [encodeLogEpoch(epoch)], 'offset');
    this.#logEpoch = epoch;
    this.#log.info({ logEpoch: epoch }, 'wrote a new log epoch');
  }

  /**
   * The messages log's epoch: the `log-epoch` record of the shard-offsets topic, written by the node that
   * created the messages topic; a topic created otherwise (by hand, by an older version) has a fixed one
   * derived from its name. Recreating the messages topic by hand means deleting the shard-offsets topic
   * too (its positions would be wrong anyway): the next node to start then writes a new epoch.
   */
  logEpoch(): string {
    return (
      this.#logEpoch ?? `t${createHash('sha256').update(this.#topics.messages).digest('hex').slice(0, 12)}`
    );
  }

  /** Tells the node a shard was released; a handler that throws is a bug: logged and counted. */
  #dispatchRelease(shard: number): void {
    try {
      this.#handlers?.onShardReleased?.(shard);
    } catch (err) {
      this.#o.metrics.busConsumeErrors.inc({ reason: 'handler_error' });
      this.#log.error({ err, shard }, 'shard release handler failed');
    }
  }

  assignShards(shards: ReadonlySet<number> | 'all'): void {
    this.#assigned = shards === 'all' ? 'all' : new Set(shards);
    this.#messages?.assign(this.#assigned);
  }

  /** The shards this node reads now (for tests and the status endpoint). */
  get ownedShards(): number[] {
    return this.#messages?.owned ?? [];
  }

  #updateReady(): void {
    const ready = !this.#stopping && this.#joined && this.#caughtUp && this.#producer.healthy;
    if (ready === this.#ready) return;
    this.#ready = ready;
    this.#log.info(
      { ready, joined: this.#joined, caughtUp: this.#caughtUp, producer: this.#producer.healthy },
      'bus readiness changed',
    );
    this.#handlers?.onReadyChange(ready);
    if (ready) this.#whenReady?.();
  }

  publishMessage(message: BusMessage, shard: number): Promise<void> {
    if (this.#stopping) return Promise.reject(unavailable('Kafka bus stopped'));
    return this.#producer.publish({ ...encodeMessage(message), partition: shard });
  }

  publishPresence(updates: readonly PresenceUpdate[]): Promise<void> {
    if (this.#stopping) return Promise.reject(unavailable('Kafka bus stopped'));
    const messages = updates.map(({ userId, record }) => encodePresence(this.#o.nodeId, userId, record));
    return this.#producer.send(this.#topics.presence, messages, 'presence');
  }

  async publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void> {
    if (this.#stopping) throw unavailable('Kafka bus stopped');
    // While the producer is unhealthy this asks for an immediate check (and fails if it stays unhealthy).
    await this.#producer.probe();
    await this.#producer.send(
      this.#topics.members,
      [encodeHeartbeat(this.#o.nodeId, heartbeat)],
      'heartbeat',
    );
  }

  isReady(): boolean {
    return this.#ready;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#stopped.abort();
    this.#directoryRestarter.stop();
    this.#whenReady?.(unavailable('Kafka bus stopped while starting'));
    clearTimeout(this.#catchUpFallback);
    this.#updateReady();
    const warn = (err: unknown) => this.#log.warn({ err: (err as Error).message }, 'disconnect failed');
    // The shards' final positions (released, for their next owners) are written before the producer
    // stops; it sends what is pending, then disconnects. Each consumer waits for its fetch in flight, so
    // both at once.
    await Promise.all([this.#messages?.stop().catch(warn), this.#directory?.disconnect().catch(warn)]);
    await this.#producer.stop();
    this.#handlers = undefined;
  }
}

/** A random incarnation id. */
export function newEpoch(): string {
  return randomBytes(8).toString('hex');
}
