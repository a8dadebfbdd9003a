import { HOST_PORT, int, list, oneOf, str } from './fields.js';
import type { ConfigSchema } from './load.js';

/**
 * Every component's configuration schema lives here, so that the docs (docs/configuration.md), the
 * unknown-variable warning and the deploy-file checks share one list of `CHAT_*` names.
 */

/** Settings every process reads. */
export const commonConfigSchema = {
  logLevel: oneOf({
    env: 'CHAT_LOG_LEVEL',
    default: 'info',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    doc: 'Minimum level of the JSON log lines written to stdout.',
  }),
  kafkaBrokers: list({
    env: 'CHAT_KAFKA_BROKERS',
    default: [],
    item: HOST_PORT,
    itemDoc: 'host:port broker addresses',
    doc: 'Kafka bootstrap brokers; empty means the single-machine in-process bus and static membership.',
  }),
  kafkaTopicPrefix: str({
    env: 'CHAT_KAFKA_TOPIC_PREFIX',
    default: 'chat',
    pattern: /^[A-Za-z0-9._-]{1,100}$/,
    patternDoc: '1-100 characters of A-Z, a-z, 0-9, dot, underscore or dash',
    doc: 'Prefix of every Kafka topic the cluster uses, so several clusters can share one broker.',
  }),
} satisfies ConfigSchema;

/** The chat node (node/). */
export const nodeConfigSchema = {
  ...commonConfigSchema,
  nodeId: str({
    env: 'CHAT_NODE_ID',
    default: 'node-1',
    pattern: /^[A-Za-z0-9._-]{1,64}$/,
    patternDoc: '1-64 characters of A-Z, a-z, 0-9, dot, underscore or dash',
    doc: 'Stable identity of this node on the hash ring; must be unique in the cluster.',
  }),
  host: str({
    env: 'CHAT_NODE_HOST',
    default: '127.0.0.1',
    doc: 'Address the node listens on for WebSocket and HTTP.',
  }),
  port: int({
    env: 'CHAT_NODE_PORT',
    default: 8081,
    min: 0,
    max: 65535,
    doc: 'TCP port the node listens on; 0 picks a free port.',
  }),
  maxPayloadBytes: int({
    env: 'CHAT_NODE_MAX_PAYLOAD_BYTES',
    default: 65536,
    min: 128,
    max: 16 * 1024 * 1024,
    doc: 'Largest inbound WebSocket frame accepted; bigger frames close the connection with 1009.',
  }),
} satisfies ConfigSchema;

/** All schemas by component, for docs and checks. */
export const CONFIG_SCHEMAS = {
  common: commonConfigSchema,
  node: nodeConfigSchema,
} as const;

/** Every `CHAT_*` variable any component reads. */
export const KNOWN_ENV: ReadonlySet<string> = new Set(
  Object.values(CONFIG_SCHEMAS).flatMap((schema) => Object.values(schema).map((f) => f.env)),
);
