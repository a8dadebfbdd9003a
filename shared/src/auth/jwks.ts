import { readFile, stat } from 'node:fs/promises';
import { createLocalJWKSet, errors as joseErrors, type JWTVerifyGetKey } from 'jose';
import { ChatError } from '../errors.js';
import type { Logger } from '../logger.js';

/** Where a key set comes from (the `source` label of the key-error counter). */
export type KeySourceKind = 'file' | 'url';

/** Counts key-set load failures; a prom-client `Counter<'source'>` fits. */
export interface KeyErrorCounter {
  inc(labels: { source: KeySourceKind }): void;
}

export interface KeyHealthOptions {
  readonly source: KeySourceKind;
  /** The file path or the URL (without credentials), named in every line. */
  readonly location: string;
  readonly logger?: Logger | undefined;
  readonly errors?: KeyErrorCounter | undefined;
}

/**
 * The state of one key source as the operator sees it: a failed load is logged at error with the
 * location and the reason and counted, once per change (the same broken file or the same failing URL
 * is not logged again on every token); loading a key set is logged at info (start, rotation, recovery).
 */
export class KeyHealth {
  readonly #o: KeyHealthOptions;
  readonly #log: Logger | undefined;
  #problem: string | undefined;
  /** Why keys could not be loaded, while they cannot (undefined when the last load worked). */
  reason: string | undefined;

  constructor(options: KeyHealthOptions) {
    this.#o = options;
    this.#log = options.logger?.child({ subsystem: 'auth' });
  }

  /** A load failed; `change` identifies this failure (a new one is logged and counted). */
  failed(reason: string, change: string, keptKeys: number): void {
    this.reason = reason;
    if (this.#problem === change) return;
    this.#problem = change;
    this.#o.errors?.inc({ source: this.#o.source });
    this.#log?.error(
      { source: this.#o.source, location: this.#o.location, reason, keptKeys },
      keptKeys > 0
        ? 'JWKS not loaded: keeping the last good key set'
        : 'JWKS not loaded: no keys, valid tokens are refused',
    );
  }

  /** A key set with `keys` keys was loaded. */
  loaded(keys: number): void {
    const recovered = this.#problem !== undefined;
    this.reason = undefined;
    this.#problem = undefined;
    this.#log?.info(
      { source: this.#o.source, location: this.#o.location, keys, ...(recovered ? { recovered } : {}) },
      'JWKS loaded',
    );
  }
}

type LocalSet = ReturnType<typeof createLocalJWKSet>;

/** A key set from parsed JSON, or the reason it is not one (no keys, malformed). */
function keySetOf(json: unknown): { set: LocalSet; keys: number } | { reason: string } {
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return { reason: 'not a JWKS: no "keys" array' };
  if (keys.length === 0) return { reason: 'no keys: the "keys" array is empty' };
  try {
    return { set: createLocalJWKSet(json as Parameters<typeof createLocalJWKSet>[0]), keys: keys.length };
  } catch (err) {
    return { reason: `malformed JWKS: ${(err as Error).message}` };
  }
}

function unavailable(reason: string | undefined): never {
  throw new ChatError('AUTH_ERR_KEYS_UNAVAILABLE', `no usable keys: ${reason ?? 'not loaded yet'}`);
}

/** Looks `header` up in `set`; a set without the key is a token problem (JWKSNoMatchingKey), as before. */
type Lookup = Parameters<JWTVerifyGetKey>;

export interface JwksFileOptions {
  readonly logger?: Logger | undefined;
  readonly errors?: KeyErrorCounter | undefined;
  /** How often the file's modification time is looked at (default 1 s). */
  readonly checkIntervalMs?: number;
  readonly now?: () => number;
}

/**
 * A JWKS file, re-read when its modification time or size changes (key rotation without a restart).
 * A file that cannot be read, is not JSON, or has no keys does not replace the key set in use: the last
 * good set is kept (a rotation that writes a half-finished or mistyped file must not lock every user
 * out; revoking a key means writing a good file without it), and the failure is logged once and
 * counted. With no good set ever loaded, tokens are refused with AUTH_ERR_KEYS_UNAVAILABLE.
 */
export function jwksFile(path: string, options: JwksFileOptions = {}): JWTVerifyGetKey {
  const health = new KeyHealth({
    source: 'file',
    location: path,
    logger: options.logger,
    errors: options.errors,
  });
  const every = options.checkIntervalMs ?? 1000;
  const now = options.now ?? Date.now;
  let current: { set: LocalSet; keys: number } | undefined;
  let seen: string | undefined; // mtime and size of the version last read (good or not)
  let checked = -Infinity;
  let pending: Promise<void> | undefined;

  const refresh = async (): Promise<void> => {
    let version: string;
    try {
      const s = await stat(path);
      version = `${s.mtimeMs}:${s.size}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      health.failed(`cannot read: ${code}`, `stat:${code}`, current?.keys ?? 0);
      seen = undefined;
      return;
    }
    if (version === seen) return;
    seen = version;
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const reason = e.code ? `cannot read: ${e.code}` : `not JSON: ${e.message}`;
      health.failed(reason, `${version}:${reason}`, current?.keys ?? 0);
      return;
    }
    const next = keySetOf(json);
    if ('reason' in next) return health.failed(next.reason, `${version}:${next.reason}`, current?.keys ?? 0);
    current = next;
    health.loaded(next.keys);
  };
  const check = (): Promise<void> => {
    if (now() - checked < every) return pending ?? Promise.resolve();
    checked = now();
    pending = refresh().finally(() => (pending = undefined));
    return pending;
  };
  void check(); // at start-up: a broken file is reported before the first token
  return async (...args: Lookup) => {
    await check();
    if (!current) unavailable(health.reason);
    return current.set(...args);
  };
}

export interface JwksUrlOptions {
  readonly logger?: Logger | undefined;
  readonly errors?: KeyErrorCounter | undefined;
  /** Least time between two fetches: after a failure, or for an unknown key id (default 5 s). */
  readonly cooldownMs?: number;
  /** A fetched set is fetched again after this long (default 10 min). */
  readonly maxAgeMs?: number;
  /** One fetch gives up after this long (default 5 s). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

/**
 * A JWKS URL: fetched on first use, again when the set is older than `maxAgeMs` or a token names an
 * unknown key id, never more often than every `cooldownMs` (a failing URL is not hammered, and a token
 * does not wait for a fetch that failed a moment ago). A failed fetch (unreachable, timeout, a status
 * other than 200, not JSON, no keys) keeps the last good set and is logged once per change and counted;
 * with no good set, tokens are refused with AUTH_ERR_KEYS_UNAVAILABLE.
 */
export function jwksUrl(url: URL, options: JwksUrlOptions = {}): JWTVerifyGetKey {
  const location = `${url.origin}${url.pathname}`; // never credentials or a query (may hold a key)
  const health = new KeyHealth({ source: 'url', location, logger: options.logger, errors: options.errors });
  const cooldown = options.cooldownMs ?? 5000;
  const maxAge = options.maxAgeMs ?? 600_000;
  const timeout = options.timeoutMs ?? 5000;
  const now = options.now ?? Date.now;
  let current: { set: LocalSet; keys: number } | undefined;
  let fetchedAt = -Infinity;
  let attemptedAt = -Infinity;
  let pending: Promise<void> | undefined;

  const load = async (): Promise<void> => {
    let json: unknown;
    try {
      const res = await fetch(url, {
        redirect: 'manual',
        signal: AbortSignal.timeout(timeout),
        headers: { accept: 'application/json, application/jwk-set+json' },
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        return health.failed(`HTTP ${res.status}`, `status:${res.status}`, current?.keys ?? 0);
      }
      json = await res.json();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      const reason =
        e.name === 'TimeoutError'
          ? `timed out after ${timeout} ms`
          : e instanceof SyntaxError
            ? `not JSON: ${e.message}`
            : `fetch failed: ${e.cause?.code ?? e.message}`;
      return health.failed(reason, reason, current?.keys ?? 0);
    }
    const next = keySetOf(json);
    if ('reason' in next) return health.failed(next.reason, next.reason, current?.keys ?? 0);
    const changed = JSON.stringify(json) !== JSON.stringify(current?.set.jwks());
    current = next;
    fetchedAt = now();
    if (changed || health.reason !== undefined) health.loaded(next.keys);
  };
  /** Fetches unless one ran within the cooldown; concurrent callers share one fetch. */
  const reload = (): Promise<void> => {
    if (pending) return pending;
    if (now() - attemptedAt < cooldown) return Promise.resolve();
    attemptedAt = now();
    pending = load().finally(() => (pending = undefined));
    return pending;
  };
  return async (...args: Lookup) => {
    if (!current || now() - fetchedAt >= maxAge) await reload();
    if (!current) unavailable(health.reason);
    try {
      return await current.set(...args);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
      await reload(); // a new key id: perhaps a rotation (within the cooldown: refused as unknown)
      return current.set(...args);
    }
  };
}
