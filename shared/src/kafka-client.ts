import { readFileSync } from 'node:fs';
import { ChatError } from './errors.js';

/**
 * How routers and nodes authenticate to Kafka: the one place that turns the CHAT_KAFKA_SASL_* and
 * CHAT_KAFKA_TLS* settings into kafkajs client options (`ssl`, `sasl`), so both services connect alike.
 * Files (CA, client certificate and key, password) are read once, here, at start-up.
 */

/** The settings `kafkaConnectionOptions` reads (common to routers and nodes). */
export interface KafkaAuthConfig {
  readonly kafkaSaslMechanism: 'none' | 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly kafkaSaslUsername: string;
  readonly kafkaSaslPassword: string;
  readonly kafkaSaslPasswordFile: string;
  readonly kafkaTls: boolean;
  readonly kafkaTlsCaFile: string;
  readonly kafkaTlsCertFile: string;
  readonly kafkaTlsKeyFile: string;
}

/** The part of kafkajs's `KafkaConfig` about the connection's security (structurally compatible). */
export interface KafkaConnectionOptions {
  readonly ssl?: {
    readonly rejectUnauthorized: true;
    readonly ca?: string[];
    readonly cert?: string;
    readonly key?: string;
  };
  readonly sasl?: SaslOptions;
}

type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

/** One member per mechanism, as kafkajs declares them. */
type SaslOptions = {
  [M in SaslMechanism]: { readonly mechanism: M; readonly username: string; readonly password: string };
}[SaslMechanism];

/**
 * kafkajs options for `config`; throws one `CONFIG_ERR_INVALID` naming every problem (a missing user name
 * or password, a password given twice, a certificate without its key, a file that cannot be read).
 */
export function kafkaConnectionOptions(
  config: KafkaAuthConfig,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): KafkaConnectionOptions {
  const problems: string[] = [];
  const read = (env: string, path: string): string | undefined => {
    try {
      return readFile(path);
    } catch (err) {
      problems.push(
        `${env}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
      return undefined;
    }
  };
  let sasl: KafkaConnectionOptions['sasl'];
  if (config.kafkaSaslMechanism !== 'none') {
    if (!config.kafkaSaslUsername)
      problems.push('CHAT_KAFKA_SASL_USERNAME is required with CHAT_KAFKA_SASL_MECHANISM');
    let password: string | undefined = config.kafkaSaslPassword;
    if (config.kafkaSaslPassword && config.kafkaSaslPasswordFile)
      problems.push('set CHAT_KAFKA_SASL_PASSWORD or CHAT_KAFKA_SASL_PASSWORD_FILE, not both');
    else if (config.kafkaSaslPasswordFile) {
      // A file written by `echo` or kubectl ends in a newline that is not part of the password.
      password = read('CHAT_KAFKA_SASL_PASSWORD_FILE', config.kafkaSaslPasswordFile)?.replace(/\r?\n$/, '');
    }
    if (password === '')
      problems.push(
        'CHAT_KAFKA_SASL_PASSWORD or CHAT_KAFKA_SASL_PASSWORD_FILE is required with CHAT_KAFKA_SASL_MECHANISM',
      );
    if (password)
      sasl = {
        mechanism: config.kafkaSaslMechanism,
        username: config.kafkaSaslUsername,
        password,
      };
  } else if (config.kafkaSaslUsername || config.kafkaSaslPassword || config.kafkaSaslPasswordFile) {
    problems.push('CHAT_KAFKA_SASL_USERNAME/PASSWORD are set but CHAT_KAFKA_SASL_MECHANISM is none');
  }
  if (Boolean(config.kafkaTlsCertFile) !== Boolean(config.kafkaTlsKeyFile))
    problems.push('CHAT_KAFKA_TLS_CERT_FILE and CHAT_KAFKA_TLS_KEY_FILE go together');
  let ssl: { rejectUnauthorized: true; ca?: string[]; cert?: string; key?: string } | undefined;
  if (config.kafkaTls || config.kafkaTlsCaFile || config.kafkaTlsCertFile || config.kafkaTlsKeyFile) {
    ssl = { rejectUnauthorized: true };
    const ca = config.kafkaTlsCaFile && read('CHAT_KAFKA_TLS_CA_FILE', config.kafkaTlsCaFile);
    if (ca) ssl.ca = [ca];
    const cert = config.kafkaTlsCertFile && read('CHAT_KAFKA_TLS_CERT_FILE', config.kafkaTlsCertFile);
    const key = config.kafkaTlsKeyFile && read('CHAT_KAFKA_TLS_KEY_FILE', config.kafkaTlsKeyFile);
    if (cert && key) Object.assign(ssl, { cert, key });
  }
  if (problems.length > 0)
    throw new ChatError('CONFIG_ERR_INVALID', `invalid Kafka connection settings: ${problems.join('; ')}`, {
      problems,
    });
  return { ...(ssl ? { ssl } : {}), ...(sasl ? { sasl } : {}) };
}

/** kafkajs error types that mean "these credentials are not allowed", not "try again". */
const REFUSED =
  /^(SASL_AUTHENTICATION_FAILED|UNSUPPORTED_SASL_MECHANISM|ILLEGAL_SASL_STATE|[A-Z_]*AUTHORIZATION_FAILED)$/;

/**
 * A `CONFIG_ERR_INVALID` (not retryable: start-up stops at once and the process exits 78) when `err`, or
 * an error it wraps, says Kafka refused this process's credentials or permissions; undefined otherwise.
 */
export function kafkaRefusal(err: unknown): ChatError | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && e instanceof Error; depth++) {
    const { name, type } = e as Error & { type?: unknown };
    if (name === 'KafkaJSSASLAuthenticationError' || (typeof type === 'string' && REFUSED.test(type))) {
      return new ChatError(
        'CONFIG_ERR_INVALID',
        `Kafka refused this client: ${e.message} (check CHAT_KAFKA_SASL_* and the Kafka user's ACLs)`,
        {},
        { cause: err },
      );
    }
    const next = e as Error & { originalError?: unknown };
    e = next.originalError ?? next.cause;
  }
  return undefined;
}

/** Rethrows a refusal of the credentials as `kafkaRefusal`'s error (stops a retry loop), else `err`. */
export function rethrowKafkaRefusal(err: unknown): never {
  throw kafkaRefusal(err) ?? err;
}
