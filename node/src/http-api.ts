import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CloseSessionsRequest,
  INTERNAL_PATH_PREFIX,
  NODE_API,
  UserId,
  bearerMatches,
  readJsonBody,
  type CloseSessionsResponse,
  type DrainResponse,
  type HealthzBody,
  type NodeErrorBody,
  type PresenceResponse,
  type ReadyzBody,
  type ShardStatsResponse,
  type Logger,
} from '@chat/shared';
import type { NodeMetrics } from './metrics.js';

export interface HttpApiDeps {
  readonly nodeId: string;
  readonly logger: Logger;
  /** The internal API's bearer token; empty: loopback callers only. */
  readonly internalToken: string;
  readonly metrics: NodeMetrics;
  readonly status: () => ReadyzBody;
  readonly presence: (userId: string) => Omit<PresenceResponse, 'user'>;
  /** Messages handled per shard since start, cumulative (`ShardStats#snapshot`); absent: all zero. */
  readonly shardMessages?: () => number[];
  readonly drain: () => Promise<void>;
  readonly undrain: () => Promise<void>;
  /**
   * Closes these router connections with 4002 spread over `windowMs`; returns how many were found. A
   * draining node only counts them (it is closing every session itself), so a router that asks it is
   * answered with success, never with an error.
   */
  readonly closeSessions: (connectionIds: ReadonlySet<string>, windowMs: number) => number;
}

/** Largest `/internal/sessions/close` body (100,000 connection ids fit). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

type Answer =
  | HealthzBody
  | ReadyzBody
  | PresenceResponse
  | ShardStatsResponse
  | DrainResponse
  | CloseSessionsResponse
  | NodeErrorBody;

/** True for 127.0.0.0/8 and ::1 (also IPv4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a.startsWith('127.');
}

/**
 * The node's HTTP endpoints (the contract is `NODE_API` in shared/): health, readiness, metrics, and the
 * internal API for routers and operators (presence look-up, messages per shard, drain, undrain, session
 * migration), which
 * needs the internal token, or a loopback caller when none is configured.
 */
export function createHttpApi(deps: HttpApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const json = (res: ServerResponse, status: number, body: Answer): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  };

  const internalAllowed = (req: IncomingMessage) =>
    deps.internalToken
      ? bearerMatches(req.headers.authorization, deps.internalToken)
      : isLoopback(req.socket.remoteAddress);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://node');
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    if (url.pathname.startsWith(INTERNAL_PATH_PREFIX) && !internalAllowed(req)) {
      deps.metrics.authFailures.inc({ code: 'AUTH_ERR_UNAUTHORIZED' });
      return json(res, 401, { error: 'AUTH_ERR_UNAUTHORIZED' });
    }
    switch (route) {
      case `GET ${NODE_API.healthz.path}`:
        return json(res, 200, { status: 'ok', nodeId: deps.nodeId });
      case `GET ${NODE_API.readyz.path}`: {
        const status = deps.status();
        return json(res, status.ready ? 200 : 503, status);
      }
      case `GET ${NODE_API.metrics.path}`: {
        const text = await deps.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text);
        return;
      }
      case `GET ${NODE_API.presence.path}`: {
        const user = url.searchParams.get('user') ?? '';
        if (!UserId.safeParse(user).success) return json(res, 400, { error: 'NODE_ERR_BAD_PATH' });
        return json(res, 200, { user, ...deps.presence(user) });
      }
      case `GET ${NODE_API.shardStats.path}`:
        return json(res, 200, { nodeId: deps.nodeId, messages: deps.shardMessages?.() ?? [] });
      case `POST ${NODE_API.drain.path}`:
        await deps.drain();
        return json(res, 200, { nodeId: deps.nodeId, draining: true });
      case `POST ${NODE_API.undrain.path}`:
        await deps.undrain();
        return json(res, 200, { nodeId: deps.nodeId, draining: false });
      case `POST ${NODE_API.closeSessions.path}`: {
        const body = CloseSessionsRequest.safeParse(
          await readJsonBody(req, MAX_BODY_BYTES).catch(() => null),
        );
        if (!body.success) return json(res, 400, { error: 'NODE_ERR_BAD_REQUEST' });
        const closing = deps.closeSessions(new Set(body.data.connections), body.data.windowMs);
        return json(res, 200, { closing });
      }
      default:
        return json(res, 404, { error: 'NODE_ERR_NOT_FOUND' });
    }
  }

  return (req, res) =>
    void handle(req, res).catch((err: unknown) => {
      deps.logger.error({ err, path: req.url }, 'HTTP handler failed');
      if (!res.headersSent) json(res, 500, { error: 'NODE_ERR_INTERNAL' });
      else res.destroy();
    });
}
