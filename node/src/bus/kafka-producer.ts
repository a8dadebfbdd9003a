import { Partitioners, type Kafka, type Message, type Producer } from 'kafkajs';
import { ChatError, type Logger } from '@chat/shared';
import type { NodeMetrics } from '../metrics.js';
import { Batcher } from './batcher.js';

export type RecordKind = 'message' | 'presence' | 'heartbeat';

export interface KafkaProducerOptions {
  readonly kafka: Kafka;
  /** Where cross-node messages go. */
  readonly messagesTopic: string;
  readonly publishTimeoutMs: number;
  readonly batchWindowMs: number;
  readonly batchMax: number;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  /** The producer started or stopped working (a produce failed, or one got through again). */
  readonly onHealthChange: (healthy: boolean) => void;
}

export function unavailable(message: string, cause?: unknown): ChatError {
  return new ChatError('KAFKA_ERR_UNAVAILABLE', message, {}, cause === undefined ? undefined : { cause });
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

/**
 * The node's one idempotent producer (acks=all, one request in flight, so per-partition order holds).
 * Cross-node messages are batched (`Batcher`); presence and heartbeats are sent as they come. When a
 * produce fails, the producer is marked broken: message sends fail fast with a retryable error until
 * `probe()` (the heartbeat loop) gets a record through on a fresh producer.
 */
export class KafkaProducer {
  readonly #o: KafkaProducerOptions;
  readonly #log: Logger;
  readonly #batcher: Batcher<Message>;
  #producer: Producer | undefined;
  #healthy = false;
  #broken = false;
  #stopped = false;

  constructor(options: KafkaProducerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'kafka-producer' });
    this.#batcher = new Batcher<Message>({
      windowMs: options.batchWindowMs,
      max: options.batchMax,
      flush: (messages) => this.send(options.messagesTopic, messages, 'message'),
    });
  }

  /** Whether produces are expected to work (the last produce succeeded). */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Connects a fresh producer (replacing a broken one). */
  async connect(): Promise<void> {
    const old = this.#producer;
    this.#producer = undefined;
    if (old) await old.disconnect().catch(() => undefined);
    const producer = this.#o.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 3 },
    });
    await withTimeout(producer.connect(), this.#o.publishTimeoutMs, 'producer connect');
    this.#producer = producer;
    this.#broken = false;
    this.#setHealthy(true);
  }

  /** Queues one cross-node message record; fails fast while the producer is known to be broken. */
  publish(record: Message): Promise<void> {
    if (!this.#healthy || this.#stopped) {
      this.#o.metrics.busProduceErrors.inc({ kind: 'message' });
      return Promise.reject(unavailable('Kafka is unavailable'));
    }
    return this.#batcher.add(record);
  }

  /** Sends `messages` to `topic` in one request, within the publish timeout. */
  async send(topic: string, messages: Message[], kind: RecordKind): Promise<void> {
    const producer = this.#producer;
    if (!producer || this.#stopped) throw unavailable('Kafka producer not connected');
    const started = process.hrtime.bigint();
    try {
      await withTimeout(producer.send({ topic, acks: -1, messages }), this.#o.publishTimeoutMs, 'produce');
    } catch (err) {
      this.#o.metrics.busProduceErrors.inc({ kind }, messages.length);
      if (this.#healthy) this.#log.warn({ kind, err: (err as Error).message }, 'produce failed');
      this.#broken = true;
      this.#setHealthy(false);
      throw err instanceof ChatError ? err : unavailable('produce failed', err);
    }
    this.#o.metrics.busProduceSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.#o.metrics.busProduced.inc({ kind }, messages.length);
    if (!this.#healthy) this.#log.info({ kind }, 'produce works again');
    this.#setHealthy(true);
  }

  /** Replaces a broken producer before a probe record (the heartbeat) is sent. */
  async probe(): Promise<void> {
    if (!this.#broken || this.#stopped) return;
    await this.connect().catch((err: unknown) =>
      Promise.reject(unavailable('producer reconnect failed', err)),
    );
  }

  /** Sends what is queued, then disconnects; later sends reject. */
  async stop(): Promise<void> {
    await this.#batcher.drain().catch(() => undefined);
    this.#stopped = true;
    this.#setHealthy(false);
    await this.#producer
      ?.disconnect()
      .catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'disconnect failed'));
  }

  #setHealthy(healthy: boolean): void {
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    this.#o.onHealthChange(healthy);
  }
}
