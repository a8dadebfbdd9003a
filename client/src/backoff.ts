/** Reconnect and retry delays: capped exponential backoff with full jitter, and server hints. */

export interface BackoffOptions {
  /** The first delay's ceiling (default 500 ms). */
  readonly initialMs: number;
  /** The largest ceiling (default 30,000 ms). */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

/**
 * The delay before try `n + 1` after `n` consecutive failures (0-based): uniform in
 * [0, min(maxMs, initialMs * 2^n)] ("full jitter"), so clients that failed together do not come back
 * together.
 */
export function fullJitterMs(n: number, o: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(o.maxMs, o.initialMs * 2 ** Math.min(Math.max(n, 0), 30));
  return Math.round(ceiling * random());
}

/**
 * The delay after a server hint (`retry_after_ms=N`): at least N, plus up to `initialMs` of jitter, since
 * the server spread its closes already and only needs its spread kept.
 */
export function hintedMs(retryAfterMs: number, o: BackoffOptions, random: () => number): number {
  return Math.round(retryAfterMs + o.initialMs * random());
}

/** `retry_after_ms=N` in a close reason or an error message, else undefined. */
export function retryAfterMsOf(text: string): number | undefined {
  const m = /(?:^|\s)retry_after_ms=(\d{1,9})(?:\s|$)/.exec(text);
  return m ? Number(m[1]) : undefined;
}
