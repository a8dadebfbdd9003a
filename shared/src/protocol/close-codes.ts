/**
 * WebSocket close codes the server uses. Standard codes (1000-1015) keep their RFC 6455 meaning;
 * application codes are 4000-4999. Each says whether the client should reconnect and how soon. The
 * close reason carries `retry_after_ms=N` when the server wants reconnects spread out.
 */
export const CLOSE_CODES = {
  NORMAL: { code: 1000, reconnect: false, summary: 'Normal closure, e.g. the client asked.' },
  GOING_AWAY: { code: 1001, reconnect: true, summary: 'The server is going away; reconnect with backoff.' },
  PROTOCOL_ERROR: { code: 1002, reconnect: false, summary: 'The peer broke the WebSocket protocol.' },
  INVALID_PAYLOAD: { code: 1007, reconnect: false, summary: 'A text frame was not valid UTF-8.' },
  POLICY_VIOLATION: { code: 1008, reconnect: false, summary: 'The connection broke a policy.' },
  MESSAGE_TOO_BIG: {
    code: 1009,
    reconnect: true,
    summary: 'A frame was larger than the node’s limit (CHAT_NODE_MAX_PAYLOAD_BYTES); do not resend it.',
  },
  INTERNAL_ERROR: {
    code: 1011,
    reconnect: true,
    summary: 'Unexpected server error; reconnect with backoff.',
  },
  DRAINING: {
    code: 4001,
    reconnect: true,
    summary:
      'The node is shutting down (SIGTERM, a rolling restart). Reconnect through the router after `retry_after_ms` (in the reason); you will land on another node.',
  },
  MOVED: {
    code: 4002,
    reconnect: true,
    summary:
      'Your affinity key now belongs to another node: a node joined or left the ring, an admin drained yours (`POST /nodes/{id}/drain`), or the router you came through is shutting down. Reconnect through the router after `retry_after_ms` (in the reason).',
  },
  TOKEN_EXPIRED: {
    code: 4003,
    reconnect: true,
    summary:
      'The token expired and was not refreshed in-band (an `auth` frame); reconnect with a fresh token.',
  },
  RATE_LIMITED: {
    code: 4008,
    reconnect: true,
    summary:
      'The connection kept sending faster than its rate limit after being warned; reconnect after `retry_after_ms`.',
  },
  SLOW_CONSUMER: {
    code: 4009,
    reconnect: true,
    summary:
      'The client read too slowly: more than CHAT_NODE_MAX_BUFFERED_BYTES waited to be sent to it. Reconnect; messages in that buffer were not delivered.',
  },
  // Refused upgrades, only for a client that asked with `?refusal=close` (a browser cannot see an HTTP
  // refusal): the handshake completes and this close follows at once, code 4000 + the HTTP status, the
  // reason `<ERROR_CODE>` or `<ERROR_CODE> retry_after_ms=<N>` (see `parseRefusalReason`).
  REFUSED_BAD_REQUEST: {
    code: 4400,
    reconnect: false,
    summary:
      'Refused upgrade (HTTP 400): a bad user id or `affinity` parameter (the reason names the `ROUTER_ERR_*` code). Do not reconnect with the same URL: fix it.',
  },
  REFUSED_UNAUTHORIZED: {
    code: 4401,
    reconnect: true,
    summary:
      'Refused upgrade (HTTP 401): the token is missing, invalid or expired (the reason names the `AUTH_ERR_*` code). Get a new token before reconnecting; the same one is refused again, and if a fresh one is refused too, stop and report it.',
  },
  REFUSED_FORBIDDEN: {
    code: 4403,
    reconnect: false,
    summary:
      'Refused upgrade (HTTP 403): the page’s origin is not allowed (`AUTH_ERR_ORIGIN_FORBIDDEN`) or the token is for another user (`AUTH_ERR_SUBJECT_MISMATCH`). Do not reconnect: a configuration or sign-in problem.',
  },
  REFUSED_NOT_FOUND: {
    code: 4404,
    reconnect: false,
    summary: 'Refused upgrade (HTTP 404): the path is not `/chat/{userId}`. Do not reconnect: fix the URL.',
  },
  REFUSED_RATE_LIMITED: {
    code: 4429,
    reconnect: true,
    summary:
      'Refused upgrade (HTTP 429): too many handshakes from this address (`ROUTER_ERR_RATE_LIMITED`), or the user already has the most sessions a node allows (`NODE_ERR_TOO_MANY_CONNECTIONS`). Reconnect after `retry_after_ms` (in the reason), or with a long backoff when there is none.',
  },
  REFUSED_UPSTREAM: {
    code: 4502,
    reconnect: true,
    summary:
      'Refused upgrade (HTTP 502): the node owning your shard could not be reached or failed the handshake (`ROUTER_ERR_UPSTREAM_*`). Reconnect after `retry_after_ms`, else with jittered backoff.',
  },
  REFUSED_UNAVAILABLE: {
    code: 4503,
    reconnect: true,
    summary:
      'Refused upgrade (HTTP 503): the router is starting, stopping or full, no node is ready, the node is starting, draining or full, or the token keys are unavailable (the reason names the code). Reconnect after `retry_after_ms` (in the reason), with jitter.',
  },
  REFUSED_UPSTREAM_TIMEOUT: {
    code: 4504,
    reconnect: true,
    summary:
      'Refused upgrade (HTTP 504): the node did not answer the handshake in time (`ROUTER_ERR_UPSTREAM_TIMEOUT`). Reconnect with jittered backoff.',
  },
} as const satisfies Record<string, { code: number; reconnect: boolean; summary: string }>;

export type CloseCodeName = keyof typeof CLOSE_CODES;

/** The close reason for a code with a reconnect hint (fits the 123-byte limit). */
export function closeReason(name: CloseCodeName, retryAfterMs?: number): string {
  const base = name.toLowerCase();
  return retryAfterMs === undefined ? base : `${base} retry_after_ms=${Math.round(retryAfterMs)}`;
}

/**
 * The upgrade query parameter (`?refusal=close`) that asks the router to answer a refusal with a completed
 * handshake and a `REFUSED_*` close instead of an HTTP status, which a browser cannot read.
 */
export const REFUSAL_PARAM = 'refusal';
export const REFUSAL_CLOSE = 'close';
/**
 * A subprotocol a client may offer next to `chat.v1` with `?refusal=close`: the router selects it for a
 * refusal's handshake (a node never does), so the client knows at `open` that a `REFUSED_*` close follows
 * and does not take the attempt for a connection.
 */
export const REFUSAL_SUBPROTOCOL = 'chat.refusal';

/** The close reason's limit (RFC 6455: a control frame's payload is at most 125 bytes, 2 are the code). */
export const MAX_CLOSE_REASON_BYTES = 123;

/** The `REFUSED_*` close code for a refused upgrade's HTTP status; undefined for a status without one. */
export function refusedCloseCode(status: number): number | undefined {
  const code = 4000 + status;
  for (const [name, spec] of Object.entries(CLOSE_CODES))
    if (name.startsWith('REFUSED_') && spec.code === code) return code;
  return undefined;
}

/** A refusal's close reason: `<ERROR_CODE>` or `<ERROR_CODE> retry_after_ms=<N>`, at most 123 bytes. */
export function refusalReason(errorCode: string, retryAfterMs?: number): string {
  const reason =
    retryAfterMs === undefined ? errorCode : `${errorCode} retry_after_ms=${Math.round(retryAfterMs)}`;
  // Error codes are ASCII, so characters are bytes.
  return reason.slice(0, MAX_CLOSE_REASON_BYTES);
}

/** Reads a `REFUSED_*` close reason back: the error code and, when the server gave one, the wait. */
export function parseRefusalReason(reason: string): { error: string; retryAfterMs?: number } {
  const match = /^([A-Z][A-Z0-9_]*)(?: retry_after_ms=(\d+))?$/.exec(reason);
  if (!match) return { error: reason };
  const [, error = '', wait] = match;
  return wait === undefined ? { error } : { error, retryAfterMs: Number(wait) };
}
