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
 * A kafkajs `logCreator` that routes the client's logs into ours as structured fields. kafkajs INFO is
 * chatty (every group join), so it is logged at debug unless `infoAsInfo` is set.
 */
export function kafkaLogCreator(logger: Logger, infoAsInfo = false) {
  const child = logger.child({ subsystem: 'kafkajs' });
  return () =>
    ({ namespace, level, log }: KafkaLogEntry): void => {
      const { message, timestamp: _ts, logger: _l, ...fields } = log;
      let target = KAFKAJS_LEVELS[level] ?? 'debug';
      if (target === 'info' && !infoAsInfo) target = 'debug';
      child[target]({ namespace, ...fields }, message);
    };
}
