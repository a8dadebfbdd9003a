import { HOST_PORT, bool, cidrList, int, list, oneOf, str } from './fields.js';
import type { ConfigSchema } from './load.js';

/**
 * Every component's configuration schema lives here, so that the docs (docs/configuration.md), the
 * unknown-variable warning and the deploy-file checks share one list of `CHAT_*` names.
 */

/**
 * Bytes a node accepts on top of CHAT_HTTP_MAX_HEADER_BYTES: what the router adds to a handshake it
 * forwards (X-Forwarded-For/Port/Proto, the connection id, the affinity key), so a head the router let
 * through is never refused by the node.
 */
export const ROUTER_HEADER_ALLOWANCE_BYTES = 1024;

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
  kafkaSaslMechanism: oneOf({
    env: 'CHAT_KAFKA_SASL_MECHANISM',
    default: 'none',
    values: ['none', 'plain', 'scram-sha-256', 'scram-sha-512'],
    doc: 'SASL mechanism to authenticate to Kafka with (none: no SASL). PLAIN sends the password as is: use it only with CHAT_KAFKA_TLS.',
  }),
  kafkaSaslUsername: str({
    env: 'CHAT_KAFKA_SASL_USERNAME',
    default: '',
    doc: 'Kafka user name for SASL (required when CHAT_KAFKA_SASL_MECHANISM is not none).',
  }),
  kafkaSaslPassword: str({
    env: 'CHAT_KAFKA_SASL_PASSWORD',
    default: '',
    secret: true,
    doc: 'Kafka password for SASL; prefer CHAT_KAFKA_SASL_PASSWORD_FILE (set one of the two).',
  }),
  kafkaSaslPasswordFile: str({
    env: 'CHAT_KAFKA_SASL_PASSWORD_FILE',
    default: '',
    doc: 'Path of a file holding the Kafka SASL password (a mounted Secret; one trailing newline is ignored); read at start-up.',
  }),
  kafkaTls: bool({
    env: 'CHAT_KAFKA_TLS',
    default: false,
    doc: 'Connect to Kafka over TLS (the broker certificate is checked against the system CAs, or CHAT_KAFKA_TLS_CA_FILE).',
  }),
  kafkaTlsCaFile: str({
    env: 'CHAT_KAFKA_TLS_CA_FILE',
    default: '',
    doc: 'PEM file of the CA(s) that sign the Kafka brokers’ certificates (implies CHAT_KAFKA_TLS).',
  }),
  kafkaTlsCertFile: str({
    env: 'CHAT_KAFKA_TLS_CERT_FILE',
    default: '',
    doc: 'PEM client certificate for mutual TLS with Kafka (with CHAT_KAFKA_TLS_KEY_FILE; implies CHAT_KAFKA_TLS).',
  }),
  kafkaTlsKeyFile: str({
    env: 'CHAT_KAFKA_TLS_KEY_FILE',
    default: '',
    doc: 'PEM private key of CHAT_KAFKA_TLS_CERT_FILE.',
  }),
  clusterSecret: str({
    env: 'CHAT_CLUSTER_SECRET',
    default: '',
    secret: true,
    pattern: /^$|^.{32,}$/,
    patternDoc: 'empty or at least 32 characters',
    doc: 'Secret every router and node of a cluster shares: membership, presence and shard-position records on Kafka are signed with a key derived from it, and records without a valid signature are ignored and counted. Empty: derived from CHAT_INTERNAL_TOKEN; with neither, a process using Kafka refuses to start (see CHAT_CLUSTER_RECORD_AUTH).',
  }),
  clusterSecretAccept: str({
    env: 'CHAT_CLUSTER_SECRET_ACCEPT',
    default: '',
    secret: true,
    pattern: /^$|^.{32,}$/,
    patternDoc: 'empty or at least 32 characters',
    doc: 'A second cluster secret whose signatures are also accepted, never used to sign: the next secret before the switch, the previous one after it (rotation, docs/operations.md).',
  }),
  clusterRecordAuth: oneOf({
    env: 'CHAT_CLUSTER_RECORD_AUTH',
    default: 'required',
    values: ['required', 'permissive'],
    doc: 'required: cluster records on Kafka without a valid signature are ignored; permissive: unsigned ones are accepted (counted, logged), for a rolling upgrade from a version that did not sign, and a process without any secret runs unsigned with a warning (development only). A wrong signature is ignored in both.',
  }),
  clusterShards: int({
    env: 'CHAT_CLUSTER_SHARDS',
    default: 64,
    min: 1,
    max: 4096,
    doc: 'Shards of the cluster, fixed for its life: the unit of placement and the partitions of the message topic (a node refuses a topic with another count). Every router and node must use the same value. It caps the node count (a node owns whole shards), and each fetch costs node and broker CPU per shard a node owns: about 8-16 per node is the sweet spot (docs/benchmarks.md).',
  }),
  authMode: oneOf({
    env: 'CHAT_AUTH_MODE',
    default: 'jwt',
    values: ['jwt', 'off'],
    doc: 'jwt: every connection needs a valid token (router and node both check); off: no authentication, logged as a warning at start-up.',
  }),
  authHs256Secret: str({
    env: 'CHAT_AUTH_HS256_SECRET',
    default: '',
    secret: true,
    pattern: /^$|^.{32,}$/,
    patternDoc: 'empty or at least 32 characters',
    doc: 'Shared secret for HS256 tokens.',
  }),
  authJwksFile: str({
    env: 'CHAT_AUTH_JWKS_FILE',
    default: '',
    doc: 'Path of a JWKS file with the public keys of RS256/ES256 tokens; re-read when it changes (rotation).',
  }),
  authJwksUrl: str({
    env: 'CHAT_AUTH_JWKS_URL',
    default: '',
    pattern: /^$|^https?:\/\/\S+$/,
    patternDoc: 'empty or an http(s) URL',
    doc: 'URL of a JWKS with the public keys of RS256/ES256 tokens; cached, re-fetched for unknown key ids (rotation).',
  }),
  authIssuer: str({
    env: 'CHAT_AUTH_ISSUER',
    default: 'chat',
    doc: 'Required `iss` claim: set it to your identity provider’s issuer (the default is what `npm run token` mints); `*` accepts any issuer (not checked; a warning at start-up).',
  }),
  authAudience: str({
    env: 'CHAT_AUTH_AUDIENCE',
    default: 'chat',
    doc: 'Required `aud` claim (one of the token’s audiences): the name your identity provider gives this service (the default is what `npm run token` mints); `*` accepts any audience (not checked; a warning at start-up).',
  }),
  authQueryToken: bool({
    env: 'CHAT_AUTH_QUERY_TOKEN',
    default: false,
    doc: 'Also accept the token in the `access_token` query parameter (it then appears in URLs and access logs).',
  }),
  authAffinityClaim: str({
    env: 'CHAT_AUTH_AFFINITY_CLAIM',
    default: 'aff',
    pattern: /^[A-Za-z0-9_]{1,64}$/,
    patternDoc: 'a claim name',
    doc: 'Token claim whose value is the affinity key (team, clinic, room); it wins over the query parameter.',
  }),
  authClockToleranceSec: int({
    env: 'CHAT_AUTH_CLOCK_TOLERANCE_SEC',
    default: 5,
    min: 0,
    max: 300,
    doc: 'Clock skew allowed when checking `exp`, `nbf` and a future `iat`.',
  }),
  authMaxLifetimeSec: int({
    env: 'CHAT_AUTH_MAX_LIFETIME_SEC',
    default: 86_400,
    min: 60,
    max: 2_592_000,
    doc: 'Longest token lifetime accepted: `exp` at most this many seconds after `iat` (after now when there is no `iat`); longer-lived tokens are refused with AUTH_ERR_LIFETIME_TOO_LONG. Default 24 hours.',
  }),
  authAllowedOrigins: list({
    env: 'CHAT_AUTH_ALLOWED_ORIGINS',
    default: [],
    item: /^https?:\/\/[^\s/]+$/,
    itemDoc: 'origins like https://chat.example.com',
    doc: 'Browser origins allowed to connect; empty allows any (tokens are not ambient credentials, so this is defence in depth).',
  }),
  maxHeaderBytes: int({
    env: 'CHAT_HTTP_MAX_HEADER_BYTES',
    default: 16_384,
    min: 1024,
    max: 1_048_576,
    doc: 'Largest request head accepted by the router’s public listener (bigger ones get 431 there) and by the node (which allows the headers the router adds on top: ROUTER_HEADER_ALLOWANCE_BYTES). Routers and nodes must use the same value.',
  }),
  internalToken: str({
    env: 'CHAT_INTERNAL_TOKEN',
    default: '',
    secret: true,
    pattern: /^$|^.{16,}$/,
    patternDoc: 'empty or at least 16 characters',
    doc: 'Bearer token routers present to the nodes’ /internal API; empty restricts that API to loopback callers.',
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
    doc: 'Stable identity of this node in the owner table; must be unique in the cluster.',
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
  advertisedUrl: str({
    env: 'CHAT_NODE_ADVERTISED_URL',
    default: '',
    pattern: /^$|^(ws|http)s?:\/\/[^\s]+$/,
    patternDoc: 'a ws://, wss://, http:// or https:// URL',
    doc: 'Base URL routers use to reach this node, announced in heartbeats; empty means http://HOST:PORT.',
  }),
  weight: int({
    env: 'CHAT_NODE_WEIGHT',
    default: 1,
    min: 1,
    max: 1000,
    doc: 'Relative share of the shards this node owns (and so of the affinity keys it takes).',
  }),
  pingIntervalMs: int({
    env: 'CHAT_NODE_PING_INTERVAL_MS',
    default: 15_000,
    min: 50,
    max: 3_600_000,
    doc: 'How often the node sends a WebSocket ping to each client.',
  }),
  idleTimeoutMs: int({
    env: 'CHAT_NODE_IDLE_TIMEOUT_MS',
    default: 45_000,
    min: 100,
    max: 3_600_000,
    doc: 'A client that has sent nothing (not even a pong) for this long is terminated as dead.',
  }),
  heartbeatIntervalMs: int({
    env: 'CHAT_NODE_HEARTBEAT_INTERVAL_MS',
    default: 1000,
    min: 50,
    max: 60_000,
    doc: 'How often the node announces itself (id, URL, weight, state) on the members topic.',
  }),
  heartbeatTimeoutMs: int({
    env: 'CHAT_NODE_HEARTBEAT_TIMEOUT_MS',
    default: 5000,
    min: 100,
    max: 600_000,
    doc: 'A node whose last heartbeat is older than this is dead: its users stop counting as present.',
  }),
  deliveryMode: oneOf({
    env: 'CHAT_NODE_DELIVERY_MODE',
    default: 'local-first',
    values: ['local-first', 'durable', 'seed'],
    doc: "local-first (fast mode): receivers on this node get messages without Kafka; durable: every message, local too, is written to the receiver's shard log before it is acked (`accepted`) and delivered from the log with its position, and a client reconnecting with its last position gets the gap replayed or an explicit `not recovered` (docs/reliability.md); seed: every message goes through Kafka (the old design, for comparison benchmarks).",
  }),
  recoveryMaxPerShard: int({
    env: 'CHAT_NODE_RECOVERY_MAX_PER_SHARD',
    default: 2000,
    min: 0,
    max: 1_000_000,
    doc: 'Durable mode: the owner of a shard keeps its most recent records, at most this many per shard, to replay to clients that resume (read back this many before the committed position when it takes a shard); older positions get `not recovered`. About 400 bytes per record.',
  }),
  recoveryTtlMs: int({
    env: 'CHAT_NODE_RECOVERY_TTL_MS',
    default: 300_000,
    min: 0,
    max: 86_400_000,
    doc: 'Durable mode: records older than this (by their send time) leave the recovery buffer; a client away longer gets `not recovered`.',
  }),
  recoveryWaitMs: int({
    env: 'CHAT_NODE_RECOVERY_WAIT_MS',
    default: 15_000,
    min: 0,
    max: 600_000,
    doc: 'Durable mode: a client that resumes on a node that does not read its shard yet (a takeover in progress) waits this long for it before it is answered `not recovered` (reason not_owner); live messages wait with it.',
  }),
  busBatchMax: int({
    env: 'CHAT_NODE_BUS_BATCH_MAX',
    default: 500,
    min: 1,
    max: 100_000,
    doc: 'Cross-node messages go to Kafka at once; those that arrive while a produce request is in flight go together in the next one, at most this many records per request.',
  }),
  busPublishTimeoutMs: int({
    env: 'CHAT_NODE_BUS_PUBLISH_TIMEOUT_MS',
    default: 5000,
    min: 100,
    max: 120_000,
    doc: 'Every cross-node send is answered within this time: a retryable error when Kafka did not confirm it (NODE_ERR_BUS_UNAVAILABLE: not sent; NODE_ERR_BUS_TIMEOUT: sent, unconfirmed, may be delivered).',
  }),
  busFetchMaxWaitMs: int({
    env: 'CHAT_NODE_BUS_FETCH_MAX_WAIT_MS',
    default: 250,
    min: 1,
    max: 10_000,
    doc: "How long the broker may hold the shard consumer's fetch when there is nothing new (a fetch returns as soon as a record arrives); smaller costs idle CPU on node and broker.",
  }),
  handoffGraceMs: int({
    env: 'CHAT_NODE_HANDOFF_GRACE_MS',
    default: 60_000,
    min: 0,
    max: 600_000,
    doc: 'A record of one of this node\'s shards whose receiver has no session here yet (reconnecting after a move, a drain or a crash) is held this long and delivered when they arrive; what expires is counted (chat_node_handoff_total{result="expired"}).',
  }),
  handoffMaxMessages: int({
    env: 'CHAT_NODE_HANDOFF_MAX_MESSAGES',
    default: 100_000,
    min: 0,
    max: 10_000_000,
    doc: 'At most this many held records per node (the oldest are dropped and counted beyond it); bounds handoff memory.',
  }),
  presenceGraceMs: int({
    env: 'CHAT_NODE_PRESENCE_GRACE_MS',
    default: 60_000,
    min: 0,
    max: 600_000,
    doc: "A user who left, or whose node stopped heartbeating, stays reachable through their last shard this long: sends to them are accepted (and held by the shard's owner), not answered `offline`.",
  }),
  sendDedupWindowMs: int({
    env: 'CHAT_NODE_SEND_DEDUP_WINDOW_MS',
    default: 300_000,
    min: 0,
    max: 3_600_000,
    doc: 'A send repeated with the same `cid`, receiver and body within this window is a retry: it gets the first answer and is not delivered again (0 turns this off).',
  }),
  busStartTimeoutMs: int({
    env: 'CHAT_NODE_BUS_START_TIMEOUT_MS',
    default: 60_000,
    min: 1000,
    max: 600_000,
    doc: 'How long start-up waits for the bus (Kafka) before the process exits with an error.',
  }),
  drainWindowMs: int({
    env: 'CHAT_NODE_DRAIN_WINDOW_MS',
    default: 2000,
    min: 0,
    max: 600_000,
    doc: 'On shutdown (4001) and after an admin drain (4002), the node closes every session itself, spread evenly over this window; routers leave them to it.',
  }),
  ratePerSec: int({
    env: 'CHAT_NODE_RATE_PER_SEC',
    default: 50,
    min: 1,
    max: 100_000,
    doc: 'Messages per second one connection may send (token bucket refill rate); excess frames get NODE_ERR_RATE_LIMITED.',
  }),
  rateBurst: int({
    env: 'CHAT_NODE_RATE_BURST',
    default: 100,
    min: 1,
    max: 1_000_000,
    doc: 'Messages a connection may send at once before the rate applies (token bucket size).',
  }),
  rateBytesPerSec: int({
    env: 'CHAT_NODE_RATE_BYTES_PER_SEC',
    default: 524_288,
    min: 1,
    max: 1_073_741_824,
    doc: 'Bytes per second one connection may send, counted before decoding (token bucket refill rate); excess frames get NODE_ERR_RATE_LIMITED undecoded.',
  }),
  rateBytesBurst: int({
    env: 'CHAT_NODE_RATE_BYTES_BURST',
    default: 1_048_576,
    min: 1,
    max: 1_073_741_824,
    doc: 'Bytes a connection may send at once before the byte rate applies; a frame larger than this passes only when the bucket is full.',
  }),
  userRateConnections: int({
    env: 'CHAT_NODE_USER_RATE_CONNECTIONS',
    default: 2,
    min: 1,
    max: 10_000,
    doc: 'One user’s budget across all their connections on the node, in connections’ worth of the per-connection limits (frames and bytes, rate and burst): with 2, ten connections of one user share what two may send.',
  }),
  rateCloseAfter: int({
    env: 'CHAT_NODE_RATE_CLOSE_AFTER',
    default: 50,
    min: 1,
    max: 1_000_000,
    doc: 'Frames refused in a row for the rate after which the connection is closed with 4008.',
  }),
  maxConnectionsPerUser: int({
    env: 'CHAT_NODE_MAX_CONNECTIONS_PER_USER',
    default: 10,
    min: 1,
    max: 10_000,
    doc: 'Sessions one user may hold on a node (devices, tabs); more get HTTP 429.',
  }),
  maxConnections: int({
    env: 'CHAT_NODE_MAX_CONNECTIONS',
    default: 50_000,
    min: 1,
    max: 10_000_000,
    doc: 'Sessions a node holds at most; more get HTTP 503.',
  }),
  maxBufferedBytes: int({
    env: 'CHAT_NODE_MAX_BUFFERED_BYTES',
    default: 1_048_576,
    min: 1024,
    max: 1_073_741_824,
    doc: 'Bytes that may wait to be sent to one client; a slower reader is cut with close code 4009.',
  }),
  shutdownGraceMs: int({
    env: 'CHAT_NODE_SHUTDOWN_GRACE_MS',
    default: 15_000,
    min: 1000,
    max: 600_000,
    doc: 'Upper bound on a graceful shutdown; what is left after it is terminated and the exit code is 1.',
  }),
} satisfies ConfigSchema;

/** One static member: `id=url` or, with a weight, `id:weight=url`. */
export const STATIC_MEMBER = /^[A-Za-z0-9._-]{1,64}(?::\d{1,4})?=https?:\/\/[^\s,]+$/;

/** The router (router/). */
export const routerConfigSchema = {
  ...commonConfigSchema,
  host: str({
    env: 'CHAT_ROUTER_HOST',
    default: '127.0.0.1',
    doc: 'Address of the public listener (WebSocket upgrades, /healthz, /readyz, /metrics); 0.0.0.0 to expose it.',
  }),
  port: int({
    env: 'CHAT_ROUTER_PORT',
    default: 8080,
    min: 0,
    max: 65535,
    doc: 'Port of the public listener; 0 picks a free port.',
  }),
  adminHost: str({
    env: 'CHAT_ROUTER_ADMIN_HOST',
    default: '127.0.0.1',
    doc: 'Address of the admin API listener; loopback by default so it is not reachable from outside.',
  }),
  adminPort: int({
    env: 'CHAT_ROUTER_ADMIN_PORT',
    default: 8090,
    min: 0,
    max: 65535,
    doc: 'Port of the admin API listener; 0 picks a free port.',
  }),
  nodes: list({
    env: 'CHAT_ROUTER_NODES',
    default: [],
    item: STATIC_MEMBER,
    itemDoc: 'id=http://host:port or id:weight=http://host:port',
    doc: 'Static membership for development; when empty, members come from the Kafka members topic.',
  }),
  affinityQuery: bool({
    env: 'CHAT_ROUTER_AFFINITY_QUERY',
    default: false,
    doc: 'Honour an `affinity` query parameter as the affinity key (else the user id is the key).',
  }),
  probeIntervalMs: int({
    env: 'CHAT_ROUTER_PROBE_INTERVAL_MS',
    default: 500,
    min: 50,
    max: 60_000,
    doc: 'How often the router probes each member’s /readyz.',
  }),
  probeTimeoutMs: int({
    env: 'CHAT_ROUTER_PROBE_TIMEOUT_MS',
    default: 500,
    min: 50,
    max: 60_000,
    doc: 'A probe without an answer within this time counts as failed.',
  }),
  probeFailures: int({
    env: 'CHAT_ROUTER_PROBE_FAILURES',
    default: 2,
    min: 1,
    max: 100,
    doc: 'Consecutive failed probes that take a member out of the owner table (one success brings it back).',
  }),
  memberTimeoutMs: int({
    env: 'CHAT_ROUTER_MEMBER_TIMEOUT_MS',
    default: 5000,
    min: 100,
    max: 600_000,
    doc: 'A member whose last heartbeat on the members topic is older than this leaves the owner table.',
  }),
  handshakeTimeoutMs: int({
    env: 'CHAT_ROUTER_HANDSHAKE_TIMEOUT_MS',
    default: 5000,
    min: 100,
    max: 120_000,
    doc: 'An upgrade the chosen node has not answered within this time gets 504 and is abandoned.',
  }),
  migrationWindowMs: int({
    env: 'CHAT_ROUTER_MIGRATION_WINDOW_MS',
    default: 5000,
    min: 0,
    max: 600_000,
    doc: 'When the owner table changes, connections of shards that moved are closed (4002) spread over this window.',
  }),
  handshakeRatePerSec: int({
    env: 'CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC',
    default: 20,
    min: 1,
    max: 1_000_000,
    doc: 'WebSocket handshakes per second one client address may make (burst: twice this); more get HTTP 429. The address is the TCP peer, or behind CHAT_ROUTER_TRUSTED_PROXIES the client they report.',
  }),
  trustedProxies: cidrList({
    env: 'CHAT_ROUTER_TRUSTED_PROXIES',
    default: [],
    doc: 'Proxies (CIDR blocks or addresses, IPv4 and IPv6) whose X-Forwarded-For the router believes: for a handshake from one of them, the client address (for the per-address handshake limit, the logs, and the X-Forwarded-For passed to the node) is the rightmost X-Forwarded-For entry that is not itself a trusted proxy. Empty (the default): nobody is believed and the client address is the TCP peer. List only your load balancers or ingress controllers: a listed address can claim to be any client. PROXY protocol is not supported.',
  }),
  adminToken: str({
    env: 'CHAT_ROUTER_ADMIN_TOKEN',
    default: '',
    secret: true,
    pattern: /^$|^.{16,}$/,
    patternDoc: 'empty or at least 16 characters',
    doc: 'Bearer token for the admin API and /metrics on the admin listener; required when that listener is not on loopback.',
  }),
  maxConnections: int({
    env: 'CHAT_ROUTER_MAX_CONNECTIONS',
    default: 100_000,
    min: 1,
    max: 10_000_000,
    doc: 'WebSocket connections (proxied and in handshake) one router holds at most; beyond it upgrades get HTTP 503 ROUTER_ERR_FULL with Retry-After. About 8 KiB of router memory each when idle (docs/benchmarks.md), plus two file descriptors.',
  }),
  stallTimeoutMs: int({
    env: 'CHAT_ROUTER_STALL_TIMEOUT_MS',
    default: 30_000,
    min: 100,
    max: 600_000,
    doc: 'A proxied connection whose client (or node) has not taken the bytes queued for it for this long is cut; the router stops reading the other side meanwhile, so what it queues stays within one socket buffer.',
  }),
} satisfies ConfigSchema;

/** All schemas by component, for docs and checks. */
export const CONFIG_SCHEMAS = {
  common: commonConfigSchema,
  node: nodeConfigSchema,
  router: routerConfigSchema,
} as const;

/**
 * `CHAT_*` variables the tools read (not the services): documented here so the services, which warn about
 * unknown `CHAT_*` names, do not warn about an operator's shell that exports them.
 */
export const TOOL_ENV: Readonly<Record<string, { readonly tool: string; readonly doc: string }>> = {
  CHAT_ROUTER_ADMIN_URL: {
    tool: '`chatctl`',
    doc: 'The routers’ admin API URLs, comma-separated, when no `--router` is given (docs/chatctl.md).',
  },
  CHAT_DEMO_PAGE_PORT: {
    tool: '`npm start` (the demo)',
    doc: 'The port of the demo’s browser chat page on 127.0.0.1 (default 8000; 0 picks a free one).',
  },
  CHAT_URL: { tool: '`npm run chat`', doc: 'The router the terminal client connects to.' },
  CHAT_TOKEN: { tool: '`npm run chat`', doc: 'A token for the terminal client (else it mints one).' },
};

/** Every `CHAT_*` variable any component or tool reads. */
export const KNOWN_ENV: ReadonlySet<string> = new Set([
  ...Object.values(CONFIG_SCHEMAS).flatMap((schema) => Object.values(schema).map((f) => f.env)),
  ...Object.keys(TOOL_ENV),
]);
