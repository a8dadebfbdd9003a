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
} as const satisfies Record<string, { code: number; reconnect: boolean; summary: string }>;

export type CloseCodeName = keyof typeof CLOSE_CODES;

/** The close reason for a code with a reconnect hint (fits the 123-byte limit). */
export function closeReason(name: CloseCodeName, retryAfterMs?: number): string {
  const base = name.toLowerCase();
  return retryAfterMs === undefined ? base : `${base} retry_after_ms=${Math.round(retryAfterMs)}`;
}
