import type { Body } from './admin-types.js';
import { CliError, EXIT } from './exit-codes.js';

/** Where and how to reach the routers' admin APIs. */
export interface ConnectOptions {
  /** Admin API base URLs (`http://127.0.0.1:8090`); the first one answers the single-router questions. */
  readonly routers: readonly string[];
  /** The admin bearer token (`CHAT_ROUTER_ADMIN_TOKEN` on the routers); empty: none sent. */
  readonly token?: string;
  /** The whole command gives up after this many milliseconds (each request gets what is left). */
  readonly timeoutMs?: number;
}

/**
 * A non-2xx answer other than 401/403, for the command to interpret (404 `ROUTER_ERR_UNKNOWN_NODE`, 400
 * ...). One the command does not expect means the URL is not a router's admin API (the public port, a
 * node, another service): `notAdminApi()` is the error for that (exit 3).
 */
export class HttpError extends Error {
  readonly url: string;
  readonly path: string;
  readonly status: number;
  readonly body: Record<string, unknown>;

  constructor(url: string, path: string, status: number, body: Record<string, unknown>) {
    super(`router ${url} answered HTTP ${status}${typeof body.error === 'string' ? ` ${body.error}` : ''}`);
    this.name = 'HttpError';
    this.url = url;
    this.path = path;
    this.status = status;
    this.body = body;
  }

  /** True when the answer is the admin API's error `code` with this status. */
  is(status: number, code: string): boolean {
    return this.status === status && this.body.error === code;
  }

  notAdminApi(): CliError {
    const code = typeof this.body.error === 'string' ? ` ${this.body.error.slice(0, 80)}` : '';
    return notAdminApi(this.url, `${this.path.split('?')[0] ?? ''} answered HTTP ${this.status}${code}`);
  }
}

/** `URL is not a router admin API (why): check --router`, exit 3. */
function notAdminApi(url: string, why: string): CliError {
  return new CliError(EXIT.unreachable, `${url} is not a router admin API (${why}): check --router`);
}

/** Default bound on a command, unless `--timeout` says otherwise (drain and undrain wait longer). */
export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * One router's admin API, with the bearer token and a deadline shared by every request of the command.
 * Failures that end the command become a `CliError` with its exit code and one line naming the router:
 * unreachable or too slow (3), the token refused (4); other non-2xx answers become an `HttpError`.
 */
export class AdminClient {
  readonly url: string;
  readonly #token: string;
  readonly #deadline: number;

  constructor(url: string, token: string | undefined, deadline: number) {
    this.url = url.replace(/\/+$/, '');
    this.#token = token ?? '';
    this.#deadline = deadline;
  }

  /**
   * GET `path`; a 2xx answer must pass `shape` (the fields the command reads, see `SHAPES`), else the URL
   * is not an admin API (exit 3).
   */
  get<T>(path: string, shape?: (body: Body) => boolean): Promise<T> {
    return this.#request<T>('GET', path, shape);
  }

  post<T>(path: string, shape?: (body: Body) => boolean): Promise<T> {
    return this.#request<T>('POST', path, shape);
  }

  async #request<T>(method: string, path: string, shape?: (body: Body) => boolean): Promise<T> {
    const left = this.#deadline - Date.now();
    if (left <= 0) throw new CliError(EXIT.unreachable, `router ${this.url}: out of time before ${path}`);
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: this.#token ? { authorization: `Bearer ${this.#token}` } : {},
        signal: AbortSignal.timeout(left),
      });
    } catch (err) {
      throw new CliError(EXIT.unreachable, `router ${this.url} unreachable (${reasonOf(err, left)})`);
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new CliError(
        EXIT.auth,
        `router ${this.url} refused the token (HTTP ${res.status}): give --token, --token-file or CHAT_ROUTER_ADMIN_TOKEN`,
      );
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch (err) {
      if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError')
        throw new CliError(EXIT.unreachable, `router ${this.url} unreachable (${reasonOf(err, left)})`);
      throw notAdminApi(this.url, `HTTP ${res.status}, not JSON`);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw notAdminApi(this.url, `HTTP ${res.status}, not a JSON object`);
    }
    if (!res.ok) throw new HttpError(this.url, path, res.status, body as Body);
    if (shape && !shape(body as Body)) {
      throw notAdminApi(
        this.url,
        `${path.split('?')[0] ?? ''} answered HTTP ${res.status} without the admin API's fields`,
      );
    }
    return body as T;
  }
}

/** Why a request got no answer, in a few words: the socket error code, or the timeout. */
function reasonOf(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

/** One client per router, sharing the command's deadline. */
export function clientsFor(o: ConnectOptions, defaultTimeoutMs = DEFAULT_TIMEOUT_MS): AdminClient[] {
  if (o.routers.length === 0) throw new CliError(EXIT.usage, 'no router: give --router URL');
  const deadline = Date.now() + (o.timeoutMs ?? defaultTimeoutMs);
  return o.routers.map((url) => new AdminClient(url, o.token, deadline));
}
