// Entry point of a chat node process: the only file that reads process.env, handles signals and sets
// the exit code. Exit codes: 0 clean shutdown, 1 unclean or failed start, 78 invalid configuration.
import {
  createLogger,
  describeListenError,
  directoryAuthFromConfig,
  exitOnSignal,
  isChatError,
  kafkaConnectionOptions,
  loadServiceConfig,
  nodeConfigSchema,
  orExitOnConfigError,
} from '@chat/shared';
import { KafkaBus, newEpoch } from './bus/kafka-bus.js';
import { MemoryBusHub } from './bus/memory-bus.js';
import type { ChatBus } from './bus/types.js';
import { createChatNode } from './chat-node.js';
import { NodeMetrics } from './metrics.js';

const config = orExitOnConfigError(() => loadServiceConfig(nodeConfigSchema, process.env));
const logger = createLogger({ name: 'node', level: config.logLevel, base: { nodeId: config.nodeId } });
const epoch = newEpoch();
const metrics = new NodeMetrics();
// Kafka credentials (files read now) and the cluster secret that signs membership: refused here when
// incomplete, and without a secret in Kafka mode (docs/security.md).
const kafka = config.kafkaBrokers.length > 0;
const connection = orExitOnConfigError(() => (kafka ? kafkaConnectionOptions(config) : {}));
const recordAuth = orExitOnConfigError(() => directoryAuthFromConfig(config));
if (recordAuth.warning) logger.warn({ setting: 'CHAT_CLUSTER_RECORD_AUTH' }, recordAuth.warning);
const bus: ChatBus =
  config.kafkaBrokers.length > 0
    ? new KafkaBus({
        brokers: config.kafkaBrokers,
        connection,
        recordAuth,
        topicPrefix: config.kafkaTopicPrefix,
        nodeId: config.nodeId,
        epoch,
        shards: config.clusterShards,
        batchMax: config.busBatchMax,
        publishTimeoutMs: config.busPublishTimeoutMs,
        startTimeoutMs: config.busStartTimeoutMs,
        fetchMaxWaitMs: config.busFetchMaxWaitMs,
        logger,
        metrics,
      })
    : new MemoryBusHub().connect(config.nodeId);
if (bus.kind === 'memory')
  logger.info('CHAT_KAFKA_BROKERS is empty: single-machine mode with the in-process bus');

// Also refused here: jwt mode without key material.
const node = orExitOnConfigError(() => createChatNode(config, { logger, bus, epoch, metrics }));
let address;
try {
  address = await node.start();
} catch (err) {
  // A taken port is a setting to change, not a crash: one line naming the variable, no stack trace.
  const line = describeListenError(err, [{ env: 'CHAT_NODE_PORT', host: config.host, port: config.port }]);
  if (line) {
    logger.fatal({ code: (err as NodeJS.ErrnoException).code }, 'listen failed');
    console.error(`chat node ${config.nodeId}: ${line}`);
  } else logger.fatal({ err, code: isChatError(err) ? err.code : undefined }, 'start failed');
  // A refused Kafka login is a setting to fix, said in one line too.
  if (isChatError(err, 'CONFIG_ERR_INVALID'))
    console.error(`chat node ${config.nodeId}: ${err.code}: ${err.message}`);
  await node.stop();
  // A setting that does not match the cluster (e.g. CHAT_CLUSTER_SHARDS against the topic) is a
  // configuration error like the others (78); anything else failed to start (1).
  process.exit(isChatError(err) && err.code === 'CONFIG_ERR_INVALID' ? 78 : 1);
}
// Handlers before the ready line: whoever reads it may signal at once.
exitOnSignal(async (signal) => {
  logger.info({ signal }, 'shutting down');
  try {
    return (await node.stop()) ? 0 : 1;
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    return 1;
  }
});
console.log(`chat node ${config.nodeId} ready: ws://${address.address}:${address.port}/chat/{userId}`);
// A parent that forked us over IPC (the test harness) learns the port without parsing logs.
process.send?.({ type: 'ready', port: address.port, nodeId: config.nodeId });
