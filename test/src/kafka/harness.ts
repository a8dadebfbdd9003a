import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin, type ITopicConfig } from 'kafkajs';
import { KafkaBroker, type KafkaBrokerOptions } from './broker.js';

/** Env var through which tools/run-tests.mjs hands one shared broker to every test file. */
export const TEST_BROKERS_ENV = 'CHAT_TEST_KAFKA_BROKERS';

/** Registers cleanup; node:test's TestContext and SuiteContext-like objects both fit. */
export interface Cleanup {
  after(fn: () => unknown): void;
}

/** A reachable real broker plus helpers to make isolated topics on it. */
export interface KafkaFixture {
  /** `host:port` for kafkajs and CHAT_KAFKA_BROKERS. */
  readonly brokers: string;
  /** The broker, when this fixture started its own (so a test may stop and restart it). */
  readonly broker: KafkaBroker | undefined;
  /** A kafkajs client with our test defaults (quiet, fast retries, murmur2 partitioner). */
  client(clientId: string): Kafka;
  /** Creates a topic with a unique name (prefix + random suffix) and waits for its leaders. */
  createTopic(
    prefix: string,
    partitions: number,
    config?: Omit<ITopicConfig, 'topic' | 'numPartitions'>,
  ): Promise<string>;
  /** A unique name for topics, groups and client ids, so tests never see each other's data. */
  uniqueName(prefix: string): string;
}

function makeFixture(brokers: string, broker: KafkaBroker | undefined, cleanup: Cleanup): KafkaFixture {
  const uniqueName = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;
  const client = (clientId: string) =>
    new Kafka({
      clientId,
      brokers: [brokers],
      ...broker?.clientSasl,
      connectionTimeout: 2000,
      retry: { initialRetryTime: 100, retries: 8 },
      logLevel: logLevel.NOTHING,
    });
  let admin: Admin | undefined;
  return {
    brokers,
    broker,
    client,
    uniqueName,
    async createTopic(prefix, partitions, config = {}) {
      if (!admin) {
        const a = client('chat-test-admin').admin();
        await a.connect();
        cleanup.after(() => a.disconnect());
        admin = a;
      }
      const topic = uniqueName(prefix);
      await admin.createTopics({
        topics: [{ replicationFactor: 1, ...config, topic, numPartitions: partitions }],
        waitForLeaders: true,
      });
      return topic;
    },
  };
}

/**
 * The shared test broker when tools/run-tests.mjs started one (CHAT_TEST_KAFKA_BROKERS), else a broker of
 * this file's own, stopped when the test or suite ends. Never skips: a test that asks for Kafka runs
 * against a real broker or fails.
 */
export async function useKafka(cleanup: Cleanup): Promise<KafkaFixture> {
  const shared = process.env[TEST_BROKERS_ENV];
  if (shared) return makeFixture(shared, undefined, cleanup);
  return useOwnKafka(cleanup);
}

/**
 * A broker for this test alone (never the run's shared one): for tests that stop, kill, restart, freeze
 * or thaw it. Disposed (thawed if frozen, stopped, its directory removed) when the test or suite ends.
 */
export async function useOwnKafka(cleanup: Cleanup, options: KafkaBrokerOptions = {}): Promise<KafkaFixture> {
  const broker = await KafkaBroker.start(options);
  cleanup.after(() => broker.dispose());
  return makeFixture(broker.brokers, broker, cleanup);
}

/** How a test takes its broker away: `stop` (SIGTERM, connections refused) or `freeze` (SIGSTOP, silence). */
export type BrokerOutage = 'stop' | 'freeze';

/**
 * Takes `broker` out the `kind` way and resolves once it is out (the JVM has exited, or the kernel reports
 * it stopped), with the function that brings it back: restart() on the same port and data after a stop
 * (resolves once it serves metadata again), thaw() after a freeze (resolves once it runs).
 */
export async function interruptBroker(broker: KafkaBroker, kind: BrokerOutage): Promise<() => Promise<void>> {
  if (kind === 'stop') {
    await broker.stop();
    return () => broker.restart();
  }
  await broker.freeze();
  return () => broker.thaw();
}
