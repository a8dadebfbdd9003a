import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

/** Paths whose values never reach a log line (tokens, credentials). */
export const REDACTED_PATHS = [
  'token',
  '*.token',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers["sec-websocket-protocol"]',
  '*.headers["sec-websocket-protocol"]',
];

export interface LoggerOptions {
  /** Component name, e.g. `node` or `router`; becomes the `name` field of every line. */
  readonly name: string;
  readonly level?: LevelWithSilent;
  /** Where lines go; stdout by default. Tests pass a stream to read lines back. */
  readonly destination?: DestinationStream;
  /** Fields bound to every line (e.g. `{ nodeId }`). */
  readonly base?: Record<string, unknown>;
}

/**
 * The one root logger of a process: JSON lines, ISO timestamps, secrets redacted. Subsystems take a
 * child (`logger.child({ subsystem: 'bus' })`); messages stay short and static, data goes in fields.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      base: { pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** kafkajs log levels (kafkajs `logLevel`), declared here so `shared` need not depend on kafkajs. */
const KAFKAJS_LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  1: 'error',
  2: 'warn',
  4: 'info',
  5: 'debug',
};

interface KafkaLogEntry {
  namespace: string;
  level: number;
  label: string;
  log: { message: string; [key: string]: unknown };
}

/**
 * Broker errors that are expected and retried (by kafkajs or by our start-up retries): a fresh broker
 * loading its group coordinator, a topic created a moment ago without a leader yet, a rebalance, a leader
 * move. The messages are kafkajs's (`src/protocol/error.js`, the error `message` of these codes), which is
 * all its log entries carry. Disk, corruption and authorization errors are not here: those stay errors.
 */
const TRANSIENT_KAFKA_ERRORS = [
  'This server does not host this topic-partition', // UNKNOWN_TOPIC_OR_PARTITION
  'There is no leader for this topic-partition', // LEADER_NOT_AVAILABLE
  'This server is not the leader for that topic-partition', // NOT_LEADER_FOR_PARTITION
  'The replica is not available', // REPLICA_NOT_AVAILABLE
  'The coordinator is loading', // GROUP_LOAD_IN_PROGRESS
  'The group coordinator is not available', // GROUP_COORDINATOR_NOT_AVAILABLE
  'This is not the correct coordinator for this group', // NOT_COORDINATOR_FOR_GROUP
  'This is not the correct controller for this cluster', // NOT_CONTROLLER
  'The group is rebalancing, so a rejoin is needed', // REBALANCE_IN_PROGRESS
  'The coordinator is not aware of this member', // UNKNOWN_MEMBER_ID (consumer re-joins)
  'The fetch session ID was not found', // FETCH_SESSION_ID_NOT_FOUND
  'The fetch session epoch is invalid', // INVALID_FETCH_SESSION_EPOCH
  'The leader epoch in the request is', // FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH
  'The leader high watermark has not caught up', // OFFSET_NOT_AVAILABLE
];

function isTransient(text: string): boolean {
  return TRANSIENT_KAFKA_ERRORS.some((m) => text.includes(m));
}

/**
 * The broker being away (stopped, restarting, frozen, unreachable): what every kafkajs client logs, many
 * times over, until it is back. Each is a kind: at most one line per kind per window is logged (at warn),
 * the rest are counted and reported as `suppressed`. The messages are kafkajs's own (`src/network`,
 * `src/cluster`, `src/errors.js`) and Kafka's for the codes a restarting broker answers with.
 */
const BROKER_AWAY: readonly (readonly [kind: string, RegExp])[] = [
  ['connection refused', /ECONNREFUSED|connection refused/i],
  ['connection reset', /ECONNRESET|EPIPE|socket hang up/i],
  ['connection closed', /Closed connection|KafkaJSConnectionClosedError/],
  ['connection timeout', /Connection timeout|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/],
  ['connection error', /Connection error/],
  ['request timeout', /Request .* timed out|KafkaJSRequestTimeoutError/],
  [
    'broker not available',
    /No broker available|KafkaJSNoBrokerAvailableError|broker is not available|BROKER_NOT_AVAILABLE/i,
  ],
  ['leader not available', /There is no leader for this topic-partition|LEADER_NOT_AVAILABLE/],
  [
    'coordinator not available',
    /coordinator is not available|The coordinator is loading|COORDINATOR_NOT_AVAILABLE/i,
  ],
];

/** The broker-away kind of `text`, if it is one. */
function brokerAwayKind(text: string): string | undefined {
  return BROKER_AWAY.find(([, re]) => re.test(text))?.[0];
}

type Level = 'error' | 'warn' | 'debug';

/**
 * How a kafkajs error-level entry is logged: `level`, and `kind` when it is a broker-away error (logged
 * rate-limited). kafkajs logs every failed broker response at error (`Response Metadata(...)` with
 * `error` in the fields) and again when it retries or restarts, although the caller retries and reports
 * for itself. Expected transient errors go down: a failed response to debug (the layer above reports the
 * outcome), the retry or restart of the operation to warn; while the broker is away, one warn line per
 * kind per window. Anything else stays an error: that is what an operator must act on.
 */
function kafkaErrorLevel(message: string, fields: Record<string, unknown>): { level: Level; kind?: string } {
  const text = `${message} ${typeof fields.error === 'string' ? fields.error : ''}`;
  const away = brokerAwayKind(text);
  // Internal retries that ran out: transient only when what they retried is (a real error stays one).
  if (text.includes('KafkaJSNumberOfRetriesExceeded') && !away && !isTransient(text))
    return { level: 'error' };
  if (message.startsWith('Response ') && (away || isTransient(text))) return { level: 'debug' };
  if (away) return { level: 'warn', kind: away };
  if (isTransient(text)) return { level: 'warn' };
  // A consumer restarting after a crash it can recover from (the crash itself was logged just before).
  if (message.startsWith('Restarting the consumer')) return { level: 'warn', kind: 'consumer restart' };
  // Nodes starting together all create the topics; all but one get TOPIC_ALREADY_EXISTS, which kafkajs
  // reports only as this aggregate (and then answers false). A real creation failure fails our start.
  if (message.startsWith('Response CreateTopics') && fields.error === 'Topic creation errors')
    return { level: 'warn' };
  return { level: 'error' };
}

export interface KafkaLogOptions {
  /** Log kafkajs INFO at info (default: at debug; kafkajs INFO is chatty, e.g. every group join). */
  readonly infoAsInfo?: boolean;
  /** At most one broker-away line per kind per this many ms (default 10 s). */
  readonly windowMs?: number;
}

/**
 * A kafkajs `logCreator` that routes the client's logs into ours as structured fields. kafkajs INFO is
 * logged at debug unless `infoAsInfo` is set; its errors that are expected and retried (a fresh broker, a
 * rebalance, a broker that is away) are logged below error (see `kafkaErrorLevel`), and broker-away errors
 * at most once per kind per `windowMs`: the first of a window is logged, the others are counted, and the
 * count is logged when the window ends (`suppressed`, with the kind and the last message).
 */
/**
 * kafkajs warnings about settings we chose on purpose: the node's idempotent producer limits its retries so
 * that every send is answered within the publish timeout (kafkajs warns that this may break exactly-once
 * semantics, which the project does not use). Logged at debug: a warning every start says nothing.
 */
const DELIBERATE_KAFKA_WARNINGS = ['Limiting retries for the idempotent producer'];

export function kafkaLogCreator(logger: Logger, options: boolean | KafkaLogOptions = {}) {
  const { infoAsInfo = false, windowMs = 10_000 } =
    typeof options === 'boolean' ? { infoAsInfo: options } : options;
  const child = logger.child({ subsystem: 'kafkajs' });
  /** Per kind: the window in progress (a line was logged at its start) and what it suppressed since. */
  const windows = new Map<string, { suppressed: number; last: string; namespace: string }>();
  const limited = (kind: string, namespace: string, fields: Record<string, unknown>, message: string) => {
    const open = windows.get(kind);
    if (open) {
      open.suppressed++;
      open.last = message;
      open.namespace = namespace;
      return;
    }
    child.warn({ namespace, kind, ...fields }, message);
    const window = { suppressed: 0, last: message, namespace };
    windows.set(kind, window);
    setTimeout(() => {
      windows.delete(kind);
      if (window.suppressed > 0)
        child.warn(
          { namespace: window.namespace, kind, suppressed: window.suppressed, windowMs, last: window.last },
          'kafkajs: more of the same suppressed',
        );
    }, windowMs).unref();
  };
  return () =>
    ({ namespace, level, log }: KafkaLogEntry): void => {
      const { message, timestamp: _ts, logger: _l, ...fields } = log;
      let target = KAFKAJS_LEVELS[level] ?? 'debug';
      if (target === 'info' && !infoAsInfo) target = 'debug';
      if (target === 'warn' && DELIBERATE_KAFKA_WARNINGS.some((m) => message.includes(m))) target = 'debug';
      if (target === 'error') {
        const { level: mapped, kind } = kafkaErrorLevel(message, fields);
        if (kind) {
          // The stack of an expected error says nothing new and makes every line several KiB.
          const { stack: _stack, ...rest } = fields;
          limited(kind, namespace, rest, message);
          return;
        }
        target = mapped;
      }
      child[target]({ namespace, ...fields }, message);
    };
}
