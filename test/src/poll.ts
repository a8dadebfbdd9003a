import { setTimeout as delay } from 'node:timers/promises';

export interface PollOptions {
  /** Give up after this many milliseconds (default 10 s). */
  readonly timeoutMs?: number;
  /** Time between attempts (default 50 ms). */
  readonly intervalMs?: number;
  /** Named in the timeout error. */
  readonly what?: string;
}

/**
 * Calls `check` until it returns a value other than undefined/false, or throws once the deadline passes.
 * The way tests wait for a condition: never a fixed sleep.
 */
export async function pollUntil<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: PollOptions = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out waiting for ${options.what ?? 'condition'}${reason}`, { cause: lastError });
    }
    await delay(options.intervalMs ?? 50);
  }
}
