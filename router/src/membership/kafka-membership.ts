import { randomBytes } from 'node:crypto';
import { Kafka, type Admin, type Consumer, type EachBatchPayload, type KafkaMessage } from 'kafkajs';
import {
  ChatError,
  HeartbeatClock,
  RecordGate,
  Restarter,
  MemberHeartbeat,
  kafkaLogCreator,
  rethrowKafkaRefusal,
  retryUntil,
  topicNames,
  type IgnoredReason,
  type KafkaConnectionOptions,
  type Logger,
  type RecordAuthMode,
  type RecordMac,
} from '@chat/shared';
import type { MemberInfo, MembershipSource } from './types.js';

export interface KafkaMembershipOptions {
  readonly brokers: readonly string[];
  /** TLS and SASL for the Kafka client (kafkaConnectionOptions); none by default. */
  readonly connection?: KafkaConnectionOptions;
  /** How heartbeats are checked (directoryAuthFromConfig); without a MAC they are not (tests). */
  readonly recordAuth?: { readonly mac: RecordMac | undefined; readonly mode: RecordAuthMode };
  /** A heartbeat was ignored: unsigned, a wrong signature, or older than one already read (count it). */
  readonly onIgnored?: (reason: IgnoredReason) => void;
  /** An unsigned heartbeat was accepted (CHAT_CLUSTER_RECORD_AUTH=permissive; count it). */
  readonly onUnsignedAccepted?: () => void;
  readonly topicPrefix: string;
  /** A member whose last heartbeat is older than this is dropped. */
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
  /** How long start() retries reaching Kafka before it fails (default 60 s, like the node's). */
  readonly startTimeoutMs?: number;
}

const DEFAULT_START_TIMEOUT_MS = 60_000;
/**
 * A compacted partition whose newest record was a tombstone that compaction removed never reaches the end
 * offset read at start: after this long, the replay counts as done with what was read (and says so).
 */
const REPLAY_FALLBACK_MS = 15_000;

/**
 * Members from the nodes' heartbeats on the compacted members topic, replayed from the beginning by a
 * consumer group of this process's own. A member leaves on its tombstone or when its heartbeats stop for
 * `timeoutMs`. Records that do not match the schema are skipped and logged.
 *
 * Start-up: reaching Kafka is retried (capped, jittered backoff) until the start timeout, then start()
 * fails. The members topic is created by the first node; a router started before any node does not fail
 * but starts with no members (so not ready) and keeps looking for the topic in the background, following
 * it as soon as it exists.
 *
 * `replayed` turns true once the consumer has read up to the end offsets the topic had when the router
 * started (or the topic was empty): only then is the member list the cluster's, not a prefix of it.
 *
 * Only heartbeats signed by the cluster count (RecordGate): a record without a valid MAC, or older than
 * one already read for the same node (a replay), is ignored, counted and logged (rate-limited), so a
 * writer without the cluster secret cannot put a member in the ring nor take one out.
 */
export class KafkaMembership implements MembershipSource {
  readonly kind = 'kafka';
  readonly #o: KafkaMembershipOptions;
  readonly #log: Logger;
  readonly #members = new Map<string, { info: MemberInfo; lastSeen: number }>();
  #consumer: Consumer | undefined;
  #admin: Admin | undefined;
  /** The background wait for the members topic (router started before any node). */
  #waiting: Promise<void> | undefined;
  readonly #stopped = new AbortController();
  #sweep: NodeJS.Timeout | undefined;
  #onChange: (members: readonly MemberInfo[]) => void = () => {};
  #lastEmitted = '';
  readonly #clock: HeartbeatClock;
  readonly #gate: RecordGate;
  /** Partition -> the end offset to reach before the replay counts as done. */
  readonly #ends = new Map<number, bigint>();
  #replayed = false;
  #replayFallback: NodeJS.Timeout | undefined;

  constructor(options: KafkaMembershipOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'kafka-membership' });
    this.#clock = new HeartbeatClock(options.timeoutMs, options.now);
    this.#gate = new RecordGate({
      mac: options.recordAuth?.mac,
      mode: options.recordAuth?.mode ?? 'required',
      logger: options.logger,
      onIgnored: (_topic, reason) => options.onIgnored?.(reason),
      onUnsignedAccepted: () => options.onUnsignedAccepted?.(),
    });
  }

  get replayed(): boolean {
    return this.#replayed;
  }

  async start(onChange: (members: readonly MemberInfo[]) => void): Promise<void> {
    this.#onChange = onChange;
    const deadline = Date.now() + (this.#o.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
    const kafka = new Kafka({
      clientId: 'chat-router',
      brokers: [...this.#o.brokers],
      ...this.#o.connection,
      logCreator: kafkaLogCreator(this.#o.logger),
      connectionTimeout: 3000,
      retry: {
        initialRetryTime: 200,
        maxRetryTime: 2000,
        retries: 8,
        restartOnFailure: () => Promise.resolve(true),
      },
    });
    // Credentials Kafka refuses are a setting to fix, not a wait: they end start-up at once.
    const retry = (what: string, f: () => Promise<void>, until = deadline) =>
      retryUntil(() => f().catch(rethrowKafkaRefusal), {
        deadline: until,
        initialMs: 100,
        maxMs: 2000,
        signal: this.#stopped.signal,
        onRetry: (err, attempt, waitMs) =>
          this.#log.info({ step: what, attempt, waitMs, err: (err as Error).message }, 'start step retried'),
      });
    const admin = kafka.admin();
    this.#admin = admin;
    try {
      await retry('connect', () => admin.connect());
      // A topic a node created a moment ago may have no leader yet, and listTopics can fail for a moment.
      let exists = false;
      await retry('check the members topic', async () => {
        exists = await this.#topicReady(admin);
      });
      if (exists) {
        await retry('read the members topic end', () => this.#readEnds(admin));
        await retry('subscribe', () => this.#follow(kafka));
        await admin.disconnect();
      } else {
        this.#log.info(
          { topic: this.#topic },
          'members topic does not exist yet: waiting for the first node',
        );
        this.#waiting = retry(
          'wait for the members topic',
          async () => {
            if (!(await this.#topicReady(admin))) throw new Error('members topic does not exist yet');
            await this.#readEnds(admin);
            await this.#follow(kafka);
            this.#log.info({ topic: this.#topic }, 'members topic found');
          },
          Number.POSITIVE_INFINITY,
        )
          .catch((err: unknown) => {
            if (!this.#stopped.signal.aborted)
              this.#log.error({ err: (err as Error).message }, 'gave up waiting for the members topic');
          })
          .finally(() => admin.disconnect());
      }
    } catch (err) {
      await this.stop();
      throw err instanceof ChatError
        ? err
        : new ChatError('KAFKA_ERR_UNAVAILABLE', 'could not start Kafka membership', {}, { cause: err });
    }
    this.#sweep = setInterval(() => this.#emit(), Math.max(50, Math.floor(this.#o.timeoutMs / 10)));
    this.#sweep.unref();
  }

  get #topic(): string {
    return topicNames(this.#o.topicPrefix).members;
  }

  /** False while the members topic does not exist; throws while it exists without a leader. */
  async #topicReady(admin: Admin): Promise<boolean> {
    if (!(await admin.listTopics()).includes(this.#topic)) return false;
    const [topic] = (await admin.fetchTopicMetadata({ topics: [this.#topic] })).topics;
    if (!topic || topic.partitions.length === 0 || topic.partitions.some((p) => p.leader < 0))
      throw new Error('members topic has no leader yet');
    return true;
  }

  /** Reads where the topic ends now: the replay is done once the consumer got there. */
  async #readEnds(admin: Admin): Promise<void> {
    this.#ends.clear();
    for (const p of await admin.fetchTopicOffsets(this.#topic)) {
      if (BigInt(p.high) > BigInt(p.low)) this.#ends.set(p.partition, BigInt(p.high));
    }
    if (this.#ends.size === 0) this.#markReplayed('empty');
    else {
      clearTimeout(this.#replayFallback);
      this.#replayFallback = setTimeout(() => {
        if (this.#replayed || this.#stopped.signal.aborted) return;
        this.#log.warn(
          { partitions: [...this.#ends.keys()] },
          'members topic not replayed in time; going on',
        );
        this.#markReplayed('fallback');
      }, REPLAY_FALLBACK_MS);
      this.#replayFallback.unref();
    }
  }

  #markReplayed(how: 'empty' | 'end' | 'fallback'): void {
    if (this.#replayed) return;
    this.#replayed = true;
    clearTimeout(this.#replayFallback);
    this.#log.info({ how, members: this.#members.size }, 'members topic replayed');
  }

  /** Replays and follows the members topic with a consumer group of this process's own. */
  async #follow(kafka: Kafka): Promise<void> {
    const consumer = kafka.consumer({
      groupId: `${this.#o.topicPrefix}.router.${randomBytes(6).toString('hex')}`,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.#log.warn(
        { err: event.payload.error.message, restart: event.payload.restart },
        'members consumer crashed',
      );
      // kafkajs gives up on errors it deems not retryable (no group coordinator right after a broker
      // restart): follow the topic again with a new consumer (it replays the members, latest wins).
      if (!event.payload.restart) this.#refollow(kafka, consumer);
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: this.#topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: ({ batch }: EachBatchPayload) => {
          for (const message of batch.messages) this.#onRecord(message);
          const end = this.#ends.get(batch.partition);
          const last = batch.messages.at(-1);
          if (end !== undefined && last && BigInt(last.offset) + 1n >= end) {
            this.#ends.delete(batch.partition);
            if (this.#ends.size === 0) this.#markReplayed('end');
          }
          return Promise.resolve();
        },
      });
    } catch (err) {
      await consumer.disconnect().catch(() => undefined);
      throw err;
    }
    if (this.#stopped.signal.aborted) {
      await consumer.disconnect();
      return;
    }
    this.#consumer = consumer;
  }

  readonly #restarter = new Restarter({
    onError: (err, attempt) =>
      this.#log.warn({ err: (err as Error).message, attempt }, 'members consumer restart failed'),
  });

  /** Follows the topic again with a new consumer after kafkajs gave up on `dead`. */
  #refollow(kafka: Kafka, dead: Consumer): void {
    this.#restarter.schedule(async () => {
      await dead.disconnect().catch(() => undefined);
      await this.#follow(kafka);
      this.#log.info('members consumer started again');
    });
  }

  #onRecord(message: KafkaMessage): void {
    const id = message.key?.toString('utf8');
    if (id === undefined) return;
    if (!this.#gate.admit(this.#topic, id, message.value, message.headers)) return;
    if (message.value === null) {
      this.#members.delete(id);
    } else {
      try {
        const hb = MemberHeartbeat.parse(JSON.parse(message.value.toString('utf8')));
        // The key is what the signature and the tombstone name: a value for another node is not this one.
        if (hb.id !== id) throw new Error(`heartbeat of ${hb.id} under the key ${id}`);
        this.#members.set(id, {
          info: { id: hb.id, url: hb.url.replace(/\/+$/, ''), weight: hb.weight, state: hb.state },
          lastSeen: Math.max(this.#clock.saw(hb.ts), this.#members.get(id)?.lastSeen ?? -Infinity),
        });
      } catch (err) {
        this.#log.warn(
          { code: 'BUS_ERR_INVALID_RECORD', id, err: (err as Error).message },
          'skipped invalid heartbeat',
        );
      }
    }
    this.#emit();
  }

  #emit(): void {
    // Kafka down: heartbeats stop for everyone, and the members are kept (probes still catch dead ones).
    const live = [...this.#members.values()]
      .filter((m) => this.#clock.alive(m.lastSeen))
      .map((m) => m.info)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const digest = JSON.stringify(live);
    if (digest === this.#lastEmitted) return;
    this.#lastEmitted = digest;
    this.#onChange(live);
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    this.#restarter.stop();
    clearInterval(this.#sweep);
    clearTimeout(this.#replayFallback);
    await this.#waiting;
    await this.#admin?.disconnect().catch(() => undefined);
    await this.#consumer?.disconnect();
  }
}
