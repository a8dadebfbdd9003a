import { Partitioners, type Admin, type Kafka, type Message, type Producer } from 'kafkajs';
import { ChatError, type Logger } from '@chat/shared';
import type { NodeMetrics } from '../metrics.js';
import { Coalescer } from './batcher.js';

/** What a record is, for metrics: a cross-node message, presence, a heartbeat, a shard's read position. */
export type RecordKind = 'message' | 'presence' | 'heartbeat' | 'offset';

export interface KafkaProducerOptions {
  readonly kafka: Kafka;
  /** Where cross-node messages go. */
  readonly messagesTopic: string;
  /**
   * Each record is answered within this time from its publish: resolved once Kafka confirmed it, else
   * rejected (`KAFKA_ERR_UNAVAILABLE` when it was never handed to Kafka, `KAFKA_ERR_TIMEOUT` when it was).
   */
  readonly publishTimeoutMs: number;
  /** Ignored: records are sent at once, not after a window. Accepted until kafka-bus.ts stops passing it. */
  readonly batchWindowMs?: number;
  /** At most this many records in one produce request; more wait for the next. */
  readonly batchMax: number;
  /** At most about this many bytes (keys and values) in one produce request (default 512 KiB). */
  readonly maxRequestBytes?: number;
  /** How often the broker is probed (default 400 ms). */
  readonly probeIntervalMs?: number;
  /** A probe unanswered after this long marks the producer unhealthy (default 1000 ms). */
  readonly probeTimeoutMs?: number;
  /**
   * Adds the cluster's signature headers to each record queued with `send` (the directory records:
   * heartbeats, presence, shard positions; see RecordMac). Message records (`publish`) are not signed.
   */
  readonly sign?: (topic: string, message: Message) => Message;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  /** The producer became usable, or stopped being usable (a probe or a produce failed). */
  readonly onHealthChange: (healthy: boolean) => void;
}

/** Definitely not written: never handed to Kafka (the producer is known broken, or stopped). */
export function unavailable(message: string, cause?: unknown): ChatError {
  return new ChatError('KAFKA_ERR_UNAVAILABLE', message, {}, cause === undefined ? undefined : { cause });
}

/** Handed to Kafka and not confirmed (no answer in time, or a failed request): it may still be written. */
export function unconfirmed(message: string, cause?: unknown): ChatError {
  return new ChatError('KAFKA_ERR_TIMEOUT', message, {}, cause === undefined ? undefined : { cause });
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable(`${what}: no answer from Kafka within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Outgoing {
  readonly topic: string;
  readonly message: Message;
  readonly kind: RecordKind;
}

function size(v: Buffer | string | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? v.length : v.byteLength;
}

/**
 * The node's one idempotent producer (acks=all, one request in flight, so per-partition order holds).
 *
 * No batch window: a record goes to Kafka at once when no request is in flight; what arrives while one
 * is in flight goes out together in the next request (`Coalescer`). Every kind of record (messages,
 * presence, heartbeats) shares that one queue, so the producer never has two requests of its own in
 * flight. Each record has its own deadline (the publish timeout from its publish), kept whatever is in
 * flight, and its error says whether it may have been written:
 * - `KAFKA_ERR_UNAVAILABLE`: never handed to Kafka (the producer was unhealthy, or the record was still
 *   queued at its deadline or when the producer became unhealthy). Not written, ever.
 * - `KAFKA_ERR_TIMEOUT`: handed to Kafka, which did not confirm it (no answer by the deadline, or the
 *   request failed). It may have been written and may still be delivered.
 *
 * Health: a metadata probe on a connection of its own (an admin client) every `probeIntervalMs`, one at a
 * time. A probe not answered within `probeTimeoutMs` (unless the broker answered a produce meanwhile), a
 * failing probe, or a produce failing or timing out marks the producer unhealthy: sends then fail fast
 * and queued records are rejected. An unanswered or failed probe's client is replaced (kafkajs can keep a
 * connect to a vanished broker pending for seconds). The next successful probe makes it healthy again
 * (checking first that every partition of the messages topic has a leader), after replacing the producer
 * when a produce had failed (a fresh producer id: no sequence number of a produce with an unknown outcome
 * is reused).
 */
export class KafkaProducer {
  readonly #o: KafkaProducerOptions;
  readonly #log: Logger;
  readonly #queue: Coalescer<Outgoing>;
  readonly #probeIntervalMs: number;
  readonly #probeTimeoutMs: number;
  #producer: Producer | undefined;
  #admin: Admin | undefined;
  #healthy = false;
  /** A produce failed or timed out on the current producer: replace it before sending again. */
  #stale = false;
  #closing = false;
  #stopped = false;
  #probeTimer: NodeJS.Timeout | undefined;
  #probing: Promise<void> | undefined;
  /** performance.now() of the last answer from the broker (a produce or a probe). */
  #lastAnswer = 0;
  /** When the oldest probe not answered yet was sent (undefined: every probe was answered). */
  #probeSince: number | undefined;

  constructor(options: KafkaProducerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'kafka-producer' });
    this.#probeIntervalMs = options.probeIntervalMs ?? 400;
    this.#probeTimeoutMs = options.probeTimeoutMs ?? 1000;
    this.#queue = new Coalescer<Outgoing>({
      timeoutMs: options.publishTimeoutMs,
      maxItems: options.batchMax,
      maxWeight: options.maxRequestBytes ?? 512 * 1024,
      weight: (o) => size(o.message.key) + size(o.message.value),
      flush: (items) => this.#flush(items),
      expiredWaiting: () =>
        unavailable(`not sent: still queued after ${options.publishTimeoutMs} ms (Kafka is slow or down)`),
      expiredInFlight: () =>
        unconfirmed(`Kafka did not confirm the produce within ${options.publishTimeoutMs} ms`),
      onAbandoned: () => this.#fail('produce timed out', undefined, true),
    });
  }

  /** Whether produces are expected to work (the last probe or produce got an answer). */
  get healthy(): boolean {
    return this.#healthy;
  }

  /**
   * Connects a fresh producer (replacing the current one) and the probe's admin client, and starts the
   * probe loop; healthy once it resolves.
   */
  async connect(): Promise<void> {
    if (this.#stopped) throw unavailable('Kafka producer stopped');
    await this.#replaceProducer();
    await this.#connectAdmin();
    this.#lastAnswer = performance.now();
    this.#startProbing();
    this.#setHealthy(true);
  }

  /**
   * Queues one cross-node message record (its `partition`, when set, is kept); fails fast while the
   * producer is unhealthy.
   */
  publish(record: Message): Promise<void> {
    return this.#enqueue([{ topic: this.#o.messagesTopic, message: record, kind: 'message' }], 'message');
  }

  /** Queues `messages` for `topic` as one entry (one outcome), like `publish`. */
  send(topic: string, messages: Message[], kind: RecordKind): Promise<void> {
    const sign = this.#o.sign;
    return this.#enqueue(
      messages.map((message) => ({ topic, message: sign ? sign(topic, message) : message, kind })),
      kind,
    );
  }

  /**
   * Probes the broker now unless the producer is healthy (the heartbeat calls it before each beat);
   * rejects with `KAFKA_ERR_UNAVAILABLE` while it stays unhealthy. The producer probes by itself too.
   */
  async probe(): Promise<void> {
    if (this.#healthy || this.#stopped) return;
    await this.#probeNow();
    if (!this.#healthy) throw unavailable('Kafka is unavailable');
  }

  /** Answers what is queued (sent, or rejected at its deadline), then disconnects; later sends reject. */
  async stop(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    await this.#queue.drain();
    this.#stopped = true;
    this.#setHealthy(false);
    const disconnect = (client: { disconnect(): Promise<void> } | undefined) =>
      client &&
      withTimeout(client.disconnect(), this.#o.publishTimeoutMs, 'disconnect').catch((err: unknown) =>
        this.#log.warn({ err: (err as Error).message }, 'disconnect failed'),
      );
    await Promise.all([disconnect(this.#producer), disconnect(this.#admin)]);
  }

  #enqueue(items: Outgoing[], kind: RecordKind): Promise<void> {
    if (this.#closing) return this.#rejected(kind, items.length, unavailable('Kafka producer stopped'));
    if (!this.#healthy) return this.#rejected(kind, items.length, unavailable('Kafka is unavailable'));
    if (items.length === 0) return Promise.resolve();
    return this.#queue.add(items).catch((err: unknown) => {
      this.#o.metrics.busProduceErrors.inc({ kind }, items.length);
      throw err;
    });
  }

  #rejected(kind: RecordKind, count: number, err: ChatError): Promise<never> {
    this.#o.metrics.busProduceErrors.inc({ kind }, count);
    return Promise.reject(err);
  }

  /** One produce request with everything the queue handed over, grouped by topic, in order. */
  async #flush(items: Outgoing[]): Promise<void> {
    const producer = this.#producer;
    if (!producer || this.#stale || !this.#healthy) throw unavailable('Kafka is unavailable');
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of items) {
      const messages = byTopic.get(topic);
      if (messages) messages.push(message);
      else byTopic.set(topic, [message]);
    }
    const started = performance.now();
    try {
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    } catch (err) {
      // Only the current producer's failures count (an abandoned request may fail much later).
      if (producer === this.#producer) this.#fail('produce failed', err, true);
      throw err instanceof ChatError ? err : unconfirmed('Kafka did not confirm the produce', err);
    }
    this.#lastAnswer = performance.now();
    this.#o.metrics.busProduceSeconds.observe((this.#lastAnswer - started) / 1000);
    const counts = new Map<RecordKind, number>();
    for (const { kind } of items) counts.set(kind, (counts.get(kind) ?? 0) + 1);
    for (const [kind, n] of counts) this.#o.metrics.busProduced.inc({ kind }, n);
  }

  /**
   * Kafka is not usable: unhealthy, and every queued record is rejected (never handed to Kafka). `stale`:
   * a produce's outcome is unknown, so the producer is replaced before the next send.
   */
  #fail(reason: string, err: unknown, stale: boolean): void {
    if (this.#stopped) return;
    if (stale) this.#stale = true;
    if (this.#healthy)
      this.#log.warn({ reason, err: err instanceof Error ? err.message : undefined }, 'Kafka unavailable');
    this.#setHealthy(false);
    this.#queue.failWaiting(unavailable(`not sent: Kafka became unavailable (${reason})`));
  }

  #startProbing(): void {
    if (this.#probeTimer) return;
    // Also under traffic: skipping probes while produces are answered would delay noticing a freeze that
    // begins just after an answer by up to an interval (a metadata request costs next to nothing).
    this.#probeTimer = setInterval(() => {
      // The watchdog: a probe has been waiting, and nothing at all came from the broker (no probe, no
      // produce answer) for the probe timeout. Checked on every tick, so a freeze that begins just after
      // an answer is seen within the timeout plus one interval, whatever the probe in flight.
      const since = this.#probeSince;
      if (this.#healthy && since !== undefined) {
        const silent = performance.now() - Math.max(this.#lastAnswer, since);
        if (silent >= this.#probeTimeoutMs)
          this.#fail(`no answer from the broker for ${Math.round(silent)} ms`, undefined, false);
      }
      void this.#probeNow();
    }, this.#probeIntervalMs);
    this.#probeTimer.unref();
  }

  /**
   * One probe, or the one still pending (a frozen broker answers it when it thaws, which is the fastest
   * way to see it back; a new probe meanwhile would only queue behind it).
   */
  #probeNow(): Promise<void> {
    this.#probing ??= this.#probe().finally(() => (this.#probing = undefined));
    return this.#probing;
  }

  async #probe(): Promise<void> {
    if (this.#closing) return;
    const started = performance.now();
    this.#probeSince ??= started;
    const admin = (this.#admin ??= this.#o.kafka.admin({ retry: { retries: 0 } }));
    const check = this.#checkMetadata(admin);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.#probeTimeoutMs);
    });
    let outcome: unknown;
    try {
      outcome = await Promise.race([check.then(() => 'ok' as const), late]);
    } catch (err) {
      outcome = err;
    } finally {
      clearTimeout(timer);
    }
    if (outcome !== 'ok') {
      // A new client for the next probe: a connect or request to a broker that went away can stay
      // pending for kafkajs's own timeouts (seconds), and the next probe must not wait behind it.
      check.catch(() => undefined);
      if (this.#admin === admin) this.#admin = undefined;
      void admin.disconnect().catch(() => undefined);
      if (outcome !== 'late') this.#fail('metadata request failed', outcome, false);
      // Late: a failure unless the broker answered a produce meanwhile.
      else if (performance.now() - Math.max(this.#lastAnswer, started) >= this.#probeTimeoutMs)
        this.#fail(`no answer from the broker within ${this.#probeTimeoutMs} ms`, undefined, false);
      return;
    }
    this.#lastAnswer = performance.now();
    this.#probeSince = undefined;
    if (this.#healthy || this.#closing) return;
    try {
      if (this.#stale) await this.#replaceProducer();
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'producer reconnect failed');
      return;
    }
    if (this.#closing) {
      if (this.#stopped) void this.#producer?.disconnect().catch(() => undefined);
      return;
    }
    this.#log.info('Kafka available again');
    this.#setHealthy(true);
  }

  /**
   * The broker answers a metadata request: while healthy, one for no topic (brokers and controller
   * only: a few hundred bytes); before becoming healthy again, one for the messages topic, every
   * partition of which must have a leader (a restarted broker serves metadata before it leads them).
   */
  async #checkMetadata(admin: Admin): Promise<void> {
    // A no-op while connected; connects again after the broker closed the connection.
    await admin.connect();
    if (this.#healthy) {
      await admin.describeCluster();
      return;
    }
    const { topics } = await admin.fetchTopicMetadata({ topics: [this.#o.messagesTopic] });
    const partitions = topics[0]?.partitions ?? [];
    const leaderless = partitions.filter((p) => p.leader < 0).length;
    if (partitions.length === 0 || leaderless > 0)
      throw unavailable(`${leaderless} partition(s) of ${this.#o.messagesTopic} without a leader`);
  }

  /** The probe's admin client (retries off: the probe itself is the retry), connected. */
  async #connectAdmin(): Promise<void> {
    this.#admin ??= this.#o.kafka.admin({ retry: { retries: 0 } });
    await withTimeout(this.#admin.connect(), this.#o.publishTimeoutMs, 'admin connect');
  }

  async #replaceProducer(): Promise<void> {
    const old = this.#producer;
    this.#producer = undefined;
    // Not awaited: with a frozen broker it would wait for the abandoned request.
    if (old) void old.disconnect().catch(() => undefined);
    const producer = this.#o.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 },
    });
    try {
      await withTimeout(producer.connect(), this.#o.publishTimeoutMs, 'producer connect');
    } catch (err) {
      void producer.disconnect().catch(() => undefined);
      throw err;
    }
    this.#producer = producer;
    this.#stale = false;
  }

  #setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    this.#o.onHealthChange(healthy);
  }
}
