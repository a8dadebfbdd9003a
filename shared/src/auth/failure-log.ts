import type { ErrorCode } from '../errors.js';
import { LogThrottle } from '../log-throttle.js';
import type { Logger } from '../logger.js';

export interface AuthFailureLogOptions {
  /** Where lines go (a child `{ subsystem: 'auth' }` is taken); none: nothing is logged. */
  readonly logger?: Logger | undefined;
  /** At most one line per error code per this many milliseconds (default 10 s). */
  readonly intervalMs?: number;
  /** The clock (default `Date.now`); tests pass their own. */
  readonly now?: () => number;
}

/** Longest value of an untrusted field (a claim or header of a refused token) written to a line. */
const MAX_FIELD = 120;

/**
 * The log of refused credentials (a bad, expired or too long-lived token, a missing one, another user's):
 * one `info` line per refusal with its code and reason, `warn` when the server is at fault (no usable
 * keys), at most one line per code per interval so that a flood cannot fill the disk; the line says how
 * many of that code were suppressed since the previous one. The token itself is never passed here, only
 * what was decided about it and a few of its unverified header fields and claims, truncated.
 */
export class AuthFailureLog {
  readonly #log: Logger | undefined;
  readonly #throttle: LogThrottle;

  constructor(options: AuthFailureLogOptions = {}) {
    this.#log = options.logger?.child({ subsystem: 'auth' });
    this.#throttle = new LogThrottle({
      intervalMs: options.intervalMs ?? 10_000,
      ...(options.now ? { now: options.now } : {}),
    });
  }

  /** Records one refusal with `code`, why (`reason`) and context fields (no token, no secret). */
  refused(code: ErrorCode, reason: string, fields: Record<string, unknown> = {}): void {
    if (!this.#log) return;
    const decision = this.#throttle.hit(code);
    if (!decision.log) return;
    const safe: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      safe[k] = typeof v === 'string' ? v.slice(0, MAX_FIELD) : v;
    }
    const level = code === 'AUTH_ERR_KEYS_UNAVAILABLE' ? 'warn' : 'info';
    this.#log[level](
      { code, reason: reason.slice(0, 300), ...safe, suppressed: decision.suppressed },
      'authentication refused',
    );
  }
}
