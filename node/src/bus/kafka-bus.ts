import { randomBytes } from 'node:crypto';
import { Kafka, type Admin, type Consumer, type EachBatchPayload, type KafkaMessage } from 'kafkajs';
import {
  ChatError,
  kafkaLogCreator,
  retryUntil,
  topicNames,
  type BusMessage,
  type Logger,
  type MemberHeartbeat,
} from '@chat/shared';
import type { NodeMetrics } from '../metrics.js';
import { KafkaProducer, unavailable, withTimeout, type RecordKind } from './kafka-producer.js';
import {
  decodeHeartbeat,
  decodeMessage,
  decodePresence,
  encodeHeartbeat,
  encodeMessage,
  encodePresence,
} from './records.js';
import type { BusHandlers, ChatBus, PresenceUpdate } from './types.js';

export interface KafkaBusOptions {
  readonly brokers: readonly string[];
  readonly topicPrefix: string;
  readonly nodeId: string;
  /** This process's incarnation id (also in heartbeats and presence records). */
  readonly epoch: string;
  /** The cluster's shard count: the message topic has exactly this many partitions. */
  readonly shards: number;
  readonly batchWindowMs: number;
  readonly batchMax: number;
  readonly publishTimeoutMs: number;
  readonly startTimeoutMs: number;
  readonly logger: Logger;
  readonly metrics: NodeMetrics;
}

const CATCH_UP_FALLBACK_MS = 15_000;

/**
 * The Kafka bus. Three topics under the prefix: `messages` (key = receiver; every node reads it in its
 * own consumer group, the seed design), and the compacted `presence` and `members` topics, which every
 * node replays from the beginning into its presence directory. One idempotent producer (acks=all,
 * one request in flight, so per-key order holds); cross-node messages are batched over a short window.
 * When a produce fails, the producer is marked broken: message sends fail fast with a retryable error
 * until a heartbeat gets through on a fresh producer, which is how the node recovers by itself.
 */
export class KafkaBus implements ChatBus {
  readonly kind = 'kafka';
  readonly #o: KafkaBusOptions;
  readonly #log: Logger;
  readonly #kafka: Kafka;
  readonly #topics: ReturnType<typeof topicNames>;
  readonly #producer: KafkaProducer;
  #messages: Consumer | undefined;
  #directory: Consumer | undefined;
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
    this.#kafka = new Kafka({
      clientId: `chat-node-${options.nodeId}`,
      brokers: [...options.brokers],
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
      batchWindowMs: options.batchWindowMs,
      batchMax: options.batchMax,
      metrics: options.metrics,
      logger: options.logger,
      onHealthChange: () => this.#updateReady(),
    });
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    const deadline = Date.now() + this.#o.startTimeoutMs;
    // Every step is retried until the start timeout: on a fresh broker the group coordinator is still
    // loading and a topic created a moment ago (by us or by a node starting at the same time) has no
    // leader in the broker's metadata yet; both answer with retryable errors for a while.
    const step = <T>(what: string, f: () => Promise<T>) =>
      retryUntil(() => withTimeout(f(), this.#o.startTimeoutMs, what), {
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
      const messageEnds = await step('read message offsets', () => this.#uncommittedMessageEnds(admin));
      await step('connect producer', () => this.#producer.connect());
      await step('start directory consumer', () => this.#startDirectory(highWatermarks));
      await step('start message consumer', () => this.#startMessages(messageEnds));
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
    ].filter((t) => !existing.has(t.topic));
    if (wanted.length > 0) {
      // kafkajs answers false (and does not wait for leaders) when another node created them first.
      const created = await admin.createTopics({
        topics: wanted.map((t) => ({ ...t, replicationFactor: -1 })),
        waitForLeaders: true,
      });
      if (created) this.#log.info({ topics: wanted.map((t) => t.topic) }, 'created topics');
    }
    // Whoever created them, go on only once every partition has a leader in the metadata.
    const metadata = await admin.fetchTopicMetadata({ topics: Object.values(this.#topics) });
    for (const topic of metadata.topics) {
      const leaderless = topic.partitions.filter((p) => p.leader < 0).length;
      if (topic.partitions.length === 0 || leaderless > 0)
        throw unavailable(`topic ${topic.name} has no leader yet for ${leaderless} partition(s)`);
    }
  }

  get #messageGroup(): string {
    return `${this.#o.topicPrefix}.node.${this.#o.nodeId}`;
  }

  /**
   * A node's first start: its message group has no committed offsets, and kafkajs would resolve "latest"
   * only at its first fetch, after start() resolved, losing what was published in between. So the end
   * of each such partition is read now and the consumer seeks there (see #startMessages): every message
   * published after start() resolves is delivered. A restarted node resumes from its own commits instead.
   */
  async #uncommittedMessageEnds(admin: Admin): Promise<{ partition: number; offset: string }[]> {
    const topic = this.#topics.messages;
    const [committed] = await admin.fetchOffsets({ groupId: this.#messageGroup, topics: [topic] });
    const unset = new Set(committed?.partitions.filter((p) => Number(p.offset) < 0).map((p) => p.partition));
    if (unset.size === 0) return [];
    return (await admin.fetchTopicOffsets(topic))
      .filter((p) => unset.has(p.partition))
      .map((p) => ({ partition: p.partition, offset: p.high }));
  }

  async #directoryHighWatermarks(admin: Admin): Promise<Map<string, bigint>> {
    const marks = new Map<string, bigint>();
    for (const topic of [this.#topics.presence, this.#topics.members]) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.high) > BigInt(p.low)) marks.set(`${topic}:${p.partition}`, BigInt(p.high));
      }
    }
    return marks;
  }

  async #startDirectory(highWatermarks: Map<string, bigint>): Promise<void> {
    const consumer = this.#kafka.consumer({
      // A fresh group per process: the directory is rebuilt from the start of the compacted topics.
      groupId: `${this.#o.topicPrefix}.directory.${this.#o.nodeId}.${this.#o.epoch}`,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
    });
    this.#directory = consumer;
    this.#caughtUp = highWatermarks.size === 0;
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
        topics: [this.#topics.presence, this.#topics.members],
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
    const kind: RecordKind = topic === this.#topics.members ? 'heartbeat' : 'presence';
    this.#o.metrics.busConsumed.inc({ kind });
    const value = message.value?.toString('utf8') ?? null;
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

  async #startMessages(ends: readonly { partition: number; offset: string }[]): Promise<void> {
    const consumer = this.#kafka.consumer({
      groupId: this.#messageGroup,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
    });
    this.#messages = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      this.#joined = true;
      this.#updateReady();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.#joined = false;
      this.#o.metrics.busConsumeErrors.inc({ reason: 'consumer_crash' });
      this.#log.warn(
        { err: event.payload.error.message, restart: event.payload.restart },
        'message consumer crashed',
      );
      this.#updateReady();
    });
    const lag = new Map<number, number>();
    await this.#startConsumer(consumer, async () => {
      await consumer.subscribe({ topic: this.#topics.messages, fromBeginning: false });
      await consumer.run({
        eachBatch: async (payload: EachBatchPayload) => {
          const { batch } = payload;
          for (const message of batch.messages) {
            if (!payload.isRunning() || payload.isStale()) break;
            this.#o.metrics.busConsumed.inc({ kind: 'message' });
            let parsed: BusMessage | undefined;
            try {
              parsed = decodeMessage(message.value?.toString('utf8') ?? null);
            } catch (err) {
              this.#invalidRecord(this.#topics.messages, message, err);
            }
            const handlers = this.#handlers;
            if (parsed && handlers) {
              const decoded = parsed;
              this.#dispatch(this.#topics.messages, message, () => handlers.onMessage(decoded));
            }
            payload.resolveOffset(message.offset);
          }
          const last = batch.messages.at(-1);
          if (last) {
            lag.set(batch.partition, Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
            let total = 0;
            for (const v of lag.values()) total += v;
            this.#o.metrics.consumerLag.set(total);
          }
          await payload.heartbeat();
        },
      });
      // Applied before the first fetch of each partition (the group is this node's alone).
      for (const { partition, offset } of ends)
        consumer.seek({ topic: this.#topics.messages, partition, offset });
    });
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

  publishMessage(message: BusMessage): Promise<void> {
    if (this.#stopping) return Promise.reject(unavailable('Kafka bus stopped'));
    return this.#producer.publish(encodeMessage(message));
  }

  publishPresence(updates: readonly PresenceUpdate[]): Promise<void> {
    if (this.#stopping) return Promise.reject(unavailable('Kafka bus stopped'));
    const messages = updates.map(({ userId, record }) => encodePresence(this.#o.nodeId, userId, record));
    return this.#producer.send(this.#topics.presence, messages, 'presence');
  }

  async publishHeartbeat(heartbeat: MemberHeartbeat | null): Promise<void> {
    if (this.#stopping) throw unavailable('Kafka bus stopped');
    // The heartbeat is the probe that brings a broken producer back.
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
    this.#whenReady?.(unavailable('Kafka bus stopped while starting'));
    clearTimeout(this.#catchUpFallback);
    this.#updateReady();
    await this.#producer.stop();
    const disconnect = (client: { disconnect(): Promise<void> } | undefined) =>
      client
        ?.disconnect()
        .catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'disconnect failed'));
    // Consumer disconnect commits the offsets of what was processed; each waits for its fetch in flight,
    // so both at once.
    await Promise.all([disconnect(this.#messages), disconnect(this.#directory)]);
    this.#handlers = undefined;
  }
}

/** A random incarnation id. */
export function newEpoch(): string {
  return randomBytes(8).toString('hex');
}
