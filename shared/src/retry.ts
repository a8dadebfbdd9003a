import { setTimeout as delay } from 'node:timers/promises';
import { isChatError } from './errors.js';

/** How `retryUntil` spaces its attempts. */
export interface RetryOptions {
  /** Absolute time (ms since the epoch) after which the last error is rethrown instead of retried. */
  readonly deadline: number;
  /** Wait before the second attempt, in ms (default 100); doubles after each failure. */
  readonly initialMs?: number;
  /** Cap on the wait between attempts, in ms (default 2000). */
  readonly maxMs?: number;
  /** Stops retrying (rethrows the last error) once aborted, e.g. when the caller is stopping. */
  readonly signal?: AbortSignal;
  /** Called after each failed attempt that will be retried, with the wait before the next one. */
  readonly onRetry?: (err: unknown, attempt: number, waitMs: number) => void;
  /** Source of randomness for the jitter (default Math.random); tests pass a fixed one. */
  readonly random?: () => number;
}

/**
 * The wait before retry number `attempt` (0-based): `initialMs * 2^attempt` capped at `maxMs`, with
 * "equal jitter" (a uniformly random value in [half, all] of it), so processes that failed together do
 * not retry in lockstep.
 */
export function backoffMs(attempt: number, initialMs = 100, maxMs = 2000, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Calls `attempt` until it resolves, waiting a capped, jittered, growing delay after each failure. Rethrows
 * the last error when the next attempt would start after `deadline` or `signal` is aborted, and at once
 * for a ChatError that is not retryable (a configuration mismatch does not go away by waiting). The one retry
 * helper of the project: the node's Kafka bus and the router's membership use it for every start step.
 */
export async function retryUntil<T>(attempt: (n: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { deadline, initialMs = 100, maxMs = 2000, signal, onRetry, random = Math.random } = options;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (isChatError(err) && !err.retryable) throw err;
      const wait = backoffMs(n, initialMs, maxMs, random);
      if (signal?.aborted || Date.now() + wait > deadline) throw err;
      onRetry?.(err, n + 1, wait);
      try {
        await delay(wait, undefined, { signal });
      } catch {
        throw err; // aborted while waiting
      }
    }
  }
}

/**
 * Starts something again after a failure: `schedule(start)` runs `start` after a capped, jittered backoff,
 * and again with a longer one each time it rejects, until it resolves. One run is pending at a time (a
 * second `schedule` meanwhile is ignored) and nothing runs after `stop()`. Used to restart the Kafka
 * consumers that kafkajs gives up on.
 */
export class Restarter {
  readonly #onError: (err: unknown, attempt: number) => void;
  readonly #initialMs: number;
  readonly #maxMs: number;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: {
    onError: (err: unknown, attempt: number) => void;
    initialMs?: number;
    maxMs?: number;
  }) {
    this.#onError = options.onError;
    this.#initialMs = options.initialMs ?? 200;
    this.#maxMs = options.maxMs ?? 2000;
  }

  /** Whether a run is waiting for its turn. */
  get pending(): boolean {
    return this.#timer !== undefined;
  }

  schedule(start: () => Promise<void>, attempt = 0): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#stopped) return;
        start().catch((err: unknown) => {
          this.#onError(err, attempt);
          this.schedule(start, attempt + 1);
        });
      },
      backoffMs(attempt, this.#initialMs, this.#maxMs),
    );
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
