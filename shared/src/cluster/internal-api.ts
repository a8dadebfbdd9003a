import { z } from 'zod';
import { UserId } from '../protocol/schemas.js';
import { NodeId } from './records.js';

/**
 * The HTTP contract between routers (and operators) and chat nodes: the header that names a proxied
 * connection, the node's endpoints, and the request and response bodies, as schemas both sides use.
 * The node answers with these types and validates requests with them; the router builds requests from
 * them and validates answers with them (`callNode`). Renaming a field on one side fails the type check
 * on the other.
 */

/** Header through which a router names the connection it proxies, so it can ask for a migration. */
export const CONNECTION_ID_HEADER = 'x-chat-connection-id';

/**
 * Header through which a router tells the node the affinity key it placed the connection by (token claim,
 * query parameter where allowed, or the user id), so the node files the session under the same shard. A
 * client that connects to a node directly and sets it only chooses where messages to itself are routed.
 */
export const AFFINITY_HEADER = 'x-chat-affinity-key';

/** A router's connection id: `${routerId}:${seq}` and the like. */
export const ConnectionId = z.string().regex(/^[A-Za-z0-9._:-]{1,100}$/);

/** `/readyz`: 200 when `ready`, else 503, with the same body. Routers place on `accepting`. */
export const ReadyzBody = z.object({
  /** Accepting and the bus works. */
  ready: z.boolean(),
  /** Takes new connections (started, not draining): a node whose bus is down still serves its users. */
  accepting: z.boolean(),
  /** Shutting down or drained by an admin. */
  draining: z.boolean(),
  /** The bus (Kafka) is usable. */
  bus: z.boolean(),
  nodeId: NodeId,
  /** The owner table this node reads its shards by (the routers' must match). */
  ownerTableVersion: z.string().optional(),
  /** How many shards this node owns and reads. */
  shardsOwned: z.number().int().nonnegative().optional(),
});

/** `/healthz`: the process is alive. */
export const HealthzBody = z.object({ status: z.literal('ok'), nodeId: NodeId });

/**
 * `POST /internal/sessions/close`: close these connections with 4002, spread over `windowMs`. Unknown
 * fields are ignored, so a newer router can add some without older nodes refusing the request.
 */
export const CloseSessionsRequest = z.object({
  connections: z.array(ConnectionId).max(100_000),
  windowMs: z.number().int().min(0).max(600_000).default(0),
});
export const CloseSessionsResponse = z.object({ closing: z.number().int().nonnegative() });

/** `POST /internal/drain` and `/internal/undrain`: leave or rejoin the ring; no body. */
export const DrainResponse = z.object({ nodeId: NodeId, draining: z.boolean() });

/** `GET /internal/presence?user=ID`: where this node believes the user is connected. */
export const PresenceResponse = z.object({
  user: UserId,
  localSessions: z.number().int().nonnegative(),
  remoteNodes: z.array(NodeId),
});

/**
 * `GET /internal/shard-stats`: the messages this node handled per shard since it started (sends from its
 * sessions on the shard, and records it read from the shard's log), cumulative: a reader takes a rate from
 * two samples. `messages[s]` is shard `s`; the array has one entry per shard.
 */
export const ShardStatsResponse = z.object({
  nodeId: NodeId,
  messages: z.array(z.number().int().nonnegative()).max(65_536),
});

/** Every non-2xx answer of a node's HTTP endpoints. */
export const NodeErrorBody = z.object({ error: z.string() });

/** The node's HTTP endpoints: method, path and the schemas of their bodies. */
export const NODE_API = {
  healthz: { method: 'GET', path: '/healthz', response: HealthzBody },
  readyz: { method: 'GET', path: '/readyz', response: ReadyzBody },
  metrics: { method: 'GET', path: '/metrics' },
  presence: { method: 'GET', path: '/internal/presence', response: PresenceResponse },
  shardStats: { method: 'GET', path: '/internal/shard-stats', response: ShardStatsResponse },
  drain: { method: 'POST', path: '/internal/drain', response: DrainResponse },
  undrain: { method: 'POST', path: '/internal/undrain', response: DrainResponse },
  closeSessions: {
    method: 'POST',
    path: '/internal/sessions/close',
    request: CloseSessionsRequest,
    response: CloseSessionsResponse,
  },
} as const;

/** Paths under this prefix need the internal token (or loopback when none is configured). */
export const INTERNAL_PATH_PREFIX = '/internal/';

export type ReadyzBody = z.infer<typeof ReadyzBody>;
export type HealthzBody = z.infer<typeof HealthzBody>;
export type CloseSessionsRequest = z.input<typeof CloseSessionsRequest>;
export type CloseSessionsResponse = z.infer<typeof CloseSessionsResponse>;
export type DrainResponse = z.infer<typeof DrainResponse>;
export type PresenceResponse = z.infer<typeof PresenceResponse>;
export type ShardStatsResponse = z.infer<typeof ShardStatsResponse>;
export type NodeErrorBody = z.infer<typeof NodeErrorBody>;

type Endpoints = typeof NODE_API;
type WithResponse = {
  [K in keyof Endpoints]: Endpoints[K] extends { response: z.ZodType } ? K : never;
}[keyof Endpoints];
type RequestOf<K extends WithResponse> = Endpoints[K] extends { request: z.ZodType }
  ? z.input<Endpoints[K]['request']>
  : undefined;
type ResponseOf<K extends WithResponse> = Endpoints[K] extends { response: z.ZodType }
  ? z.infer<Endpoints[K]['response']>
  : never;

export interface CallNodeOptions {
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
  /** Query string parameters (GET endpoints). */
  readonly query?: Record<string, string>;
}

/** A node's answer: `ok` with the validated body, or the HTTP status (0: no answer) and why. */
export type NodeAnswer<T> =
  | { readonly ok: true; readonly status: number; readonly body: T }
  | { readonly ok: false; readonly status: number; readonly error: string };

/**
 * Calls one of a node's endpoints at `baseUrl` and validates the answer against the contract. Never
 * throws: a refused connection, a timeout, a non-2xx status or a body that breaks the contract come back
 * as `{ ok: false }` with the reason. `/readyz` answers 503 with a valid body while not ready; that is
 * `ok: true` with `status: 503`.
 */
export async function callNode<K extends WithResponse>(
  baseUrl: string,
  endpoint: K,
  request: RequestOf<K>,
  options: CallNodeOptions = {},
): Promise<NodeAnswer<ResponseOf<K>>> {
  const spec: { method: string; path: string; response: z.ZodType } = NODE_API[endpoint];
  // Joined, not resolved: a node behind a path-routed ingress (http://host/nodes/n1) keeps its path.
  const url = new URL(`${baseUrl.replace(/\/+$/, '')}${spec.path}`);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await fetch(url, {
      method: spec.method,
      headers: {
        ...(request === undefined ? {} : { 'content-type': 'application/json' }),
        ...options.headers,
      },
      ...(request === undefined ? {} : { body: JSON.stringify(request) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 2000),
    });
  } catch (err) {
    return { ok: false, status: 0, error: (err as Error).message };
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    return { ok: false, status: res.status, error: 'answer is not JSON' };
  }
  const accepted = res.ok || (endpoint === 'readyz' && res.status === 503);
  if (!accepted) {
    const parsed = NodeErrorBody.safeParse(json);
    return {
      ok: false,
      status: res.status,
      error: parsed.success ? parsed.data.error : `HTTP ${res.status}`,
    };
  }
  const body = spec.response.safeParse(json);
  if (!body.success) return { ok: false, status: res.status, error: 'answer breaks the internal contract' };
  return { ok: true, status: res.status, body: body.data as ResponseOf<K> };
}
