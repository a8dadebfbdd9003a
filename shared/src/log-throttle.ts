/** What `LogThrottle.hit` decided: write a line now (and how many were held back since the last), or not. */
export type ThrottleDecision =
  | { readonly log: true; readonly suppressed: number }
  | { readonly log: false; readonly suppressed?: undefined };

export interface LogThrottleOptions {
  /** At most one line per key per this many milliseconds. */
  readonly intervalMs: number;
  /** Keys remembered at most (default 100); new keys beyond it share one limit. */
  readonly maxKeys?: number;
  /** The clock (default `Date.now`); tests pass their own. */
  readonly now?: () => number;
}

const OVERFLOW = '\u0000overflow';

/**
 * Rate-limits a log line per key (e.g. an error code), so that a flood of one event cannot fill the
 * logs: the first event of a key is logged, then at most one per `intervalMs`, and each logged line
 * says how many of that key were suppressed since the previous one. Counting every event is the
 * metrics' job; this only bounds the lines.
 */
export class LogThrottle {
  readonly #intervalMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #keys = new Map<string, { last: number; suppressed: number }>();

  constructor(options: LogThrottleOptions) {
    this.#intervalMs = options.intervalMs;
    this.#maxKeys = options.maxKeys ?? 100;
    this.#now = options.now ?? Date.now;
  }

  /** Records one event of `key` and says whether to log it. */
  hit(key: string): ThrottleDecision {
    const now = this.#now();
    const k = this.#keys.has(key) || this.#keys.size < this.#maxKeys ? key : OVERFLOW;
    const entry = this.#keys.get(k);
    if (!entry) {
      this.#keys.set(k, { last: now, suppressed: 0 });
      return { log: true, suppressed: 0 };
    }
    if (now - entry.last < this.#intervalMs) {
      entry.suppressed++;
      return { log: false };
    }
    const suppressed = entry.suppressed;
    entry.last = now;
    entry.suppressed = 0;
    return { log: true, suppressed };
  }
}
