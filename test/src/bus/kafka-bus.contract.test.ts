// The ChatBus contract on the real Kafka bus, against a real broker (CHAT_TEST_KAFKA_BROKERS from
// tools/run-tests.mjs, or a broker of this file's own). Every test gets a fresh topic prefix, so it never
// sees records another test left behind.
import { createLogger } from '@chat/shared';
import { KafkaBus, NodeMetrics, newEpoch } from '@chat/node';
import { useKafka } from '../kafka/harness.js';
import { busContractSuite } from './contract.js';

const logger = createLogger({ name: 'bus-contract', level: 'silent' });

busContractSuite('Kafka bus', {
  async createBackend(t) {
    const kafka = await useKafka(t);
    const topicPrefix = kafka.uniqueName('bus-contract');
    return {
      connect(nodeId) {
        const bus = new KafkaBus({
          brokers: [kafka.brokers],
          topicPrefix,
          nodeId,
          epoch: newEpoch(),
          shards: 2,
          batchMax: 100,
          publishTimeoutMs: 5000,
          startTimeoutMs: 30_000,
          logger,
          metrics: new NodeMetrics(),
        });
        t.after(() => bus.stop());
        return bus;
      },
    };
  },
  unavailableSkip:
    'making a broker unavailable honestly means stopping it (a JVM restart, ~10 s on these machines, per ' +
    'test); test/src/node/kafka-outage.test.ts covers a real outage and recovery end to end, and the ' +
    '"stop" and "never started" cases cover the rejection itself',
  deliveryTimeoutMs: 20_000,
});
