import { randomBytes } from 'node:crypto';
import { Kafka, type Consumer } from 'kafkajs';
import { HeartbeatClock, MemberHeartbeat, kafkaLogCreator, topicNames, type Logger } from '@chat/shared';
import type { MemberInfo, MembershipSource } from './types.js';

export interface KafkaMembershipOptions {
  readonly brokers: readonly string[];
  readonly topicPrefix: string;
  /** A member whose last heartbeat is older than this is dropped. */
  readonly timeoutMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

/**
 * Members from the nodes' heartbeats on the compacted members topic, replayed from the beginning by a
 * consumer group of this process's own. A member leaves on its tombstone or when its heartbeats stop for
 * `timeoutMs`. Records that do not match the schema are skipped and logged.
 */
export class KafkaMembership implements MembershipSource {
  readonly kind = 'kafka';
  readonly #o: KafkaMembershipOptions;
  readonly #log: Logger;
  readonly #members = new Map<string, { info: MemberInfo; lastSeen: number }>();
  #consumer: Consumer | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #onChange: (members: readonly MemberInfo[]) => void = () => {};
  #lastEmitted = '';
  readonly #clock: HeartbeatClock;

  constructor(options: KafkaMembershipOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'kafka-membership' });
    this.#clock = new HeartbeatClock(options.timeoutMs, options.now);
  }

  async start(onChange: (members: readonly MemberInfo[]) => void): Promise<void> {
    this.#onChange = onChange;
    const kafka = new Kafka({
      clientId: 'chat-router',
      brokers: [...this.#o.brokers],
      logCreator: kafkaLogCreator(this.#o.logger),
      connectionTimeout: 3000,
      retry: {
        initialRetryTime: 200,
        maxRetryTime: 2000,
        retries: 8,
        restartOnFailure: () => Promise.resolve(true),
      },
    });
    const consumer = kafka.consumer({
      groupId: `${this.#o.topicPrefix}.router.${randomBytes(6).toString('hex')}`,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      allowAutoTopicCreation: false,
    });
    this.#consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topic: topicNames(this.#o.topicPrefix).members, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ message }) => {
        const id = message.key?.toString('utf8');
        if (id === undefined) return Promise.resolve();
        if (message.value === null) {
          this.#members.delete(id);
        } else {
          try {
            const hb = MemberHeartbeat.parse(JSON.parse(message.value.toString('utf8')));
            this.#members.set(id, {
              info: { id: hb.id, url: hb.url.replace(/\/+$/, ''), weight: hb.weight, state: hb.state },
              lastSeen: this.#clock.saw(hb.ts),
            });
          } catch (err) {
            this.#log.warn(
              { code: 'BUS_ERR_INVALID_RECORD', id, err: (err as Error).message },
              'skipped invalid heartbeat',
            );
          }
        }
        this.#emit();
        return Promise.resolve();
      },
    });
    this.#sweep = setInterval(() => this.#emit(), Math.max(50, Math.floor(this.#o.timeoutMs / 10)));
    this.#sweep.unref();
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
    clearInterval(this.#sweep);
    await this.#consumer?.disconnect();
  }
}
