import { ChatError } from '../errors.js';
import { LogThrottle } from '../log-throttle.js';
import type { Logger } from '../logger.js';
import { RecordMac, type RecordHeaders } from './record-mac.js';

/**
 * What a process does with directory records (members, presence, shard-offsets) that are not signed by
 * the cluster: `required` ignores them; `permissive` accepts them (counted, logged), for a rolling upgrade
 * from a version that did not sign (docs/operations.md). Records with a wrong MAC are ignored in both.
 */
export type RecordAuthMode = 'required' | 'permissive';

/** Why a record was ignored: no MAC, a MAC that does not verify, or older than one already read for its key. */
export type IgnoredReason = 'unsigned' | 'bad_signature' | 'stale';

export interface RecordGateOptions {
  /** Undefined: records are neither signed nor checked (no secret, permissive mode, or a test). */
  readonly mac: RecordMac | undefined;
  readonly mode: RecordAuthMode;
  readonly logger: Logger;
  /** A record was ignored (count it). */
  readonly onIgnored: (topic: string, reason: IgnoredReason) => void;
  /** An unsigned record was accepted (permissive mode; count it). */
  readonly onUnsignedAccepted?: (topic: string) => void;
  /** How long the signing time of a removed key (tombstone) is remembered (default 1 hour). */
  readonly forgetAfterMs?: number;
  readonly now?: () => number;
}

const SWEEP_EVERY = 1024;

/**
 * The door of the directory topics: `admit` says whether a record read from Kafka may be applied. A record
 * needs a valid MAC (record-mac.ts) and a signing time not older than the newest one already admitted for
 * its topic and key: so replaying a record the cluster really wrote (an old heartbeat, an old shard
 * position, a tombstone of a previous life) is ignored as stale, and only the latest signed record of a
 * key ever counts. Stale records also come from a consumer that replays its topics again after a
 * restart; they are counted apart from forgeries. Log lines are rate-limited per reason.
 */
export class RecordGate {
  readonly #o: RecordGateOptions;
  readonly #log: Logger;
  readonly #throttle: LogThrottle;
  /**
   * Per topic, key -> the newest signing time admitted, negated when that record was a tombstone (one
   * number per key: a node keeps one per user of the cluster on the presence topic).
   */
  readonly #latest = new Map<string, Map<string, number>>();
  #sinceSweep = 0;

  constructor(options: RecordGateOptions) {
    this.#o = options;
    this.#log = options.logger.child({ subsystem: 'record-gate' });
    this.#throttle = new LogThrottle({ intervalMs: 10_000, ...(options.now ? { now: options.now } : {}) });
  }

  /** True when directory records are checked (a MAC key is configured). */
  get checking(): boolean {
    return this.#o.mac !== undefined;
  }

  /** The headers to send with a record this process writes (none when not signing). */
  sign(topic: string, key: string, value: string | null): Record<string, string> | undefined {
    return this.#o.mac?.sign(topic, key, value);
  }

  /** Whether a record read from `topic` may be applied; counts and logs (rate-limited) when not. */
  admit(topic: string, key: string, value: Buffer | null, headers: RecordHeaders | undefined): boolean {
    const mac = this.#o.mac;
    if (!mac) return true;
    const check = mac.verify(topic, key, value, headers);
    if (!check.ok) {
      if (check.reason === 'unsigned' && this.#o.mode === 'permissive') {
        this.#o.onUnsignedAccepted?.(topic);
        this.#note(
          'info',
          'unsigned_accepted',
          topic,
          key,
          'accepted an unsigned directory record (permissive)',
        );
        return true;
      }
      return this.#ignore(check.reason, topic, key);
    }
    let keys = this.#latest.get(topic);
    if (!keys) {
      keys = new Map();
      this.#latest.set(topic, keys);
    }
    const latest = keys.get(key);
    if (latest !== undefined && check.ts < Math.abs(latest)) return this.#ignore('stale', topic, key);
    keys.set(key, value === null ? -check.ts : check.ts);
    if (value === null && ++this.#sinceSweep >= SWEEP_EVERY) this.#sweep();
    return true;
  }

  #ignore(reason: IgnoredReason, topic: string, key: string): false {
    this.#o.onIgnored(topic, reason);
    if (reason === 'stale') this.#note('info', reason, topic, key, 'ignored a stale directory record');
    else this.#note('warn', reason, topic, key, 'ignored a directory record without a valid signature');
    return false;
  }

  #note(level: 'info' | 'warn', reason: string, topic: string, key: string, msg: string): void {
    const decision = this.#throttle.hit(reason);
    if (!decision.log) return;
    this.#log[level]({ reason, topic, key: key.slice(0, 100), suppressed: decision.suppressed }, msg);
  }

  /**
   * Forgets removed keys an hour after their tombstone, so memory stays bounded by the live keys. A record
   * from before such a tombstone, saved and replayed later, is admitted: a heartbeat that old is dead by
   * the liveness rules and a presence entry of a previous incarnation never counts, but a presence entry
   * of a node's current incarnation would show the user there again until that node writes the user next
   * (docs/security.md, what an attacker with Kafka write access can still do).
   */
  #sweep(): void {
    this.#sinceSweep = 0;
    const before = (this.#o.now ?? Date.now)() - (this.#o.forgetAfterMs ?? 3_600_000);
    for (const keys of this.#latest.values())
      for (const [key, ts] of keys) if (ts < 0 && -ts < before) keys.delete(key);
  }

  /** Keys remembered, over all topics (for tests). */
  get size(): number {
    let n = 0;
    for (const keys of this.#latest.values()) n += keys.size;
    return n;
  }
}

/** The settings `directoryAuthFromConfig` reads (common to routers and nodes). */
export interface DirectoryAuthConfig {
  readonly kafkaBrokers: readonly string[];
  readonly clusterSecret: string;
  readonly clusterSecretAccept: string;
  readonly clusterRecordAuth: RecordAuthMode;
  readonly internalToken: string;
}

/**
 * How a process signs and checks directory records, from its configuration. The key comes from
 * CHAT_CLUSTER_SECRET, else from CHAT_INTERNAL_TOKEN (every router and node has it already); with
 * neither, a Kafka process refuses to start unless CHAT_CLUSTER_RECORD_AUTH=permissive, where it runs
 * unsigned and says so (`warning`). Without Kafka (the in-process bus) there is nothing to sign.
 */
export function directoryAuthFromConfig(config: DirectoryAuthConfig): {
  mac: RecordMac | undefined;
  mode: RecordAuthMode;
  warning?: string;
} {
  const mode = config.clusterRecordAuth;
  if (config.kafkaBrokers.length === 0) return { mac: undefined, mode };
  const secret = config.clusterSecret || (config.internalToken && `internal-token:${config.internalToken}`);
  if (!secret) {
    if (mode === 'permissive')
      return {
        mac: undefined,
        mode,
        warning:
          'no CHAT_CLUSTER_SECRET nor CHAT_INTERNAL_TOKEN: directory records are not signed and anyone who can write to Kafka can add a member to every ring (development only)',
      };
    throw new ChatError(
      'CONFIG_ERR_INVALID',
      'CHAT_CLUSTER_SECRET (or CHAT_INTERNAL_TOKEN) is required with CHAT_KAFKA_BROKERS: membership records are signed with it (CHAT_CLUSTER_RECORD_AUTH=permissive runs unsigned, for development only)',
    );
  }
  const accepted = config.clusterSecretAccept ? [config.clusterSecretAccept] : [];
  return {
    mac: new RecordMac({ secret, accepted }),
    mode,
    ...(mode === 'permissive'
      ? {
          warning:
            'CHAT_CLUSTER_RECORD_AUTH=permissive: unsigned directory records are accepted (rolling upgrade only)',
        }
      : {}),
  };
}
