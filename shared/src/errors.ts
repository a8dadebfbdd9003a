/**
 * Stable error codes shared by every component. A code never changes meaning once released; each one is
 * documented in docs/errors.md (a test fails when the two disagree). `retryable` tells a client or caller
 * whether sending the same thing again later can succeed.
 */
export const ERROR_CODES = {
  CONFIG_ERR_INVALID: {
    retryable: false,
    summary: 'One or more configuration values are invalid; the process refuses to start.',
  },
  PROTO_ERR_MALFORMED: {
    retryable: false,
    summary: 'The frame is not valid JSON (or not a known text command).',
  },
  PROTO_ERR_INVALID_FRAME: {
    retryable: false,
    summary: 'The frame is JSON but does not match any frame schema (missing or mistyped fields).',
  },
  PROTO_ERR_TOO_COMPLEX: {
    retryable: false,
    summary:
      'The frame holds more values (object members and array elements) or nests deeper than any valid frame may (docs/protocol.md, Frame shape); it was refused before being parsed.',
  },
  PROTO_ERR_UNKNOWN_TYPE: {
    retryable: false,
    summary: 'The frame has a `type` this protocol version does not know.',
  },
  PROTO_ERR_BINARY_UNSUPPORTED: {
    retryable: false,
    summary: 'Binary frames are not part of the protocol; send JSON text frames.',
  },
  PROTO_ERR_FORBIDDEN_SENDER: {
    retryable: false,
    summary: 'The frame names a sender other than the connection’s own user.',
  },
  NODE_ERR_BUS_UNAVAILABLE: {
    retryable: true,
    summary:
      'The receiver is connected to another node (or was recently) and Kafka is unavailable, or this node cannot tell where the receiver is because its bus is not ready (presence unknown): the message was not handed to Kafka and will not be delivered to other nodes (sessions of the receiver on this node got it). Retry later.',
  },
  NODE_ERR_BUS_TIMEOUT: {
    retryable: true,
    summary:
      'The receiver is connected to another node and Kafka took the message but did not confirm it within CHAT_NODE_BUS_PUBLISH_TIMEOUT_MS: it may have been delivered (possibly late). Retry with the same cid; sessions of the receiver on this node already got it.',
  },
  NODE_ERR_DRAINING: {
    retryable: true,
    summary:
      'The node is shutting down and did not process the frame; reconnect (through the router) and send again.',
  },
  NODE_ERR_INTERNAL: {
    retryable: true,
    summary: 'An unexpected error on the node; the frame may not have been processed.',
  },
  NODE_ERR_BAD_PATH: {
    retryable: false,
    summary: 'The upgrade path is not `/chat/{userId}` with a valid user id (HTTP 400 or 404).',
  },
  NODE_ERR_NOT_READY: {
    retryable: true,
    summary: 'The node is starting or draining and accepts no new connections (HTTP 503 with Retry-After).',
  },
  NODE_ERR_BAD_REQUEST: {
    retryable: false,
    summary: 'A request to the node’s internal API had a missing or malformed body (HTTP 400).',
  },
  NODE_ERR_NOT_FOUND: {
    retryable: false,
    summary: 'No such endpoint on the node’s HTTP listener, or the wrong method for it (HTTP 404).',
  },
  ROUTER_ERR_NOT_FOUND: {
    retryable: false,
    summary: 'The router serves WebSockets only at `/chat/{userId}` (HTTP 404).',
  },
  ROUTER_ERR_BAD_USER_ID: {
    retryable: false,
    summary:
      'The user id in the path is empty, too long or has characters outside `A-Z a-z 0-9 . _ @ -` (HTTP 400).',
  },
  ROUTER_ERR_BAD_UPGRADE: {
    retryable: false,
    summary: 'Not a WebSocket upgrade: the method is not GET or `Upgrade` is not `websocket` (HTTP 400).',
  },
  ROUTER_ERR_BAD_AFFINITY: {
    retryable: false,
    summary: 'The `affinity` key has characters outside `A-Z a-z 0-9 . _ @ -` or is too long (HTTP 400).',
  },
  ROUTER_ERR_NO_NODE: {
    retryable: true,
    summary:
      'No healthy node is on the ring, or the router has just started and its view has not settled yet (HTTP 503 with Retry-After).',
  },
  ROUTER_ERR_UPSTREAM_REFUSED: {
    retryable: true,
    summary:
      'The node that owns the connection’s shard refused or could not be reached (HTTP 502 with Retry-After); retry: the router’s table follows within a probe interval.',
  },
  ROUTER_ERR_UPSTREAM_FAILED: {
    retryable: true,
    summary: 'The node closed or reset the connection before answering the upgrade (HTTP 502).',
  },
  ROUTER_ERR_UPSTREAM_TIMEOUT: {
    retryable: true,
    summary: 'The node did not answer the upgrade within CHAT_ROUTER_HANDSHAKE_TIMEOUT_MS (HTTP 504).',
  },
  ROUTER_ERR_UNKNOWN_NODE: {
    retryable: false,
    summary: 'The admin API was asked about a node id that is not a member (HTTP 404).',
  },
  ROUTER_ERR_BAD_REQUEST: {
    retryable: false,
    summary: 'An admin API request had a missing or malformed body (HTTP 400).',
  },
  AUTH_ERR_MISSING_TOKEN: {
    retryable: false,
    summary:
      'No token in the Authorization header, the Sec-WebSocket-Protocol list or (where allowed) the query (HTTP 401).',
  },
  AUTH_ERR_INVALID_TOKEN: {
    retryable: false,
    summary:
      'The token is malformed, its signature or algorithm is not accepted (`alg: none` never is), or its key is unknown (HTTP 401).',
  },
  AUTH_ERR_TOKEN_EXPIRED: {
    retryable: false,
    summary: 'The token’s `exp` has passed (HTTP 401, or close 4003 for a live session); get a fresh token.',
  },
  AUTH_ERR_INVALID_CLAIMS: {
    retryable: false,
    summary:
      'A required claim is missing or wrong: `sub`, `exp`, issuer (CHAT_AUTH_ISSUER) or audience (CHAT_AUTH_AUDIENCE) (HTTP 401).',
  },
  AUTH_ERR_ISSUED_IN_FUTURE: {
    retryable: false,
    summary:
      'The token’s `iat` is later than now plus CHAT_AUTH_CLOCK_TOLERANCE_SEC: the issuer’s clock is wrong or the token is forged in advance (HTTP 401).',
  },
  AUTH_ERR_LIFETIME_TOO_LONG: {
    retryable: false,
    summary:
      'The token’s `exp` is more than CHAT_AUTH_MAX_LIFETIME_SEC after its `iat` (or after now, without `iat`); mint shorter-lived tokens (HTTP 401).',
  },
  AUTH_ERR_KEYS_UNAVAILABLE: {
    retryable: true,
    summary:
      'The server has no usable verification keys: the JWKS file or URL is missing, unreadable, malformed or empty and no earlier good key set is held (HTTP 503, or an error frame for an in-band refresh). The token was not judged; retry later.',
  },
  AUTH_ERR_SUBJECT_MISMATCH: {
    retryable: false,
    summary:
      'The token’s `sub` is not the user id in the path, or a refresh token names another user (HTTP 403 or error frame).',
  },
  AUTH_ERR_ORIGIN_FORBIDDEN: {
    retryable: false,
    summary: 'The browser’s Origin is not in CHAT_AUTH_ALLOWED_ORIGINS (HTTP 403).',
  },
  AUTH_ERR_UNAUTHORIZED: {
    retryable: false,
    summary: 'An admin, metrics or internal API request lacks the right bearer token (HTTP 401).',
  },
  NODE_ERR_RATE_LIMITED: {
    retryable: true,
    summary:
      'The connection, or its user across all their connections on the node, sent more frames or bytes per second than allowed (CHAT_NODE_RATE_PER_SEC, CHAT_NODE_RATE_BYTES_PER_SEC, and CHAT_NODE_USER_RATE_CONNECTIONS times both for the user); the frame was dropped undecoded. Sustained excess closes with 4008.',
  },
  NODE_ERR_TOO_MANY_CONNECTIONS: {
    retryable: true,
    summary: 'The user already has CHAT_NODE_MAX_CONNECTIONS_PER_USER sessions (HTTP 429).',
  },
  NODE_ERR_FULL: {
    retryable: true,
    summary: 'The node holds CHAT_NODE_MAX_CONNECTIONS sessions (HTTP 503 with Retry-After).',
  },
  ROUTER_ERR_FULL: {
    retryable: true,
    summary: 'The router holds CHAT_ROUTER_MAX_CONNECTIONS connections (HTTP 503 with Retry-After).',
  },
  ROUTER_ERR_RATE_LIMITED: {
    retryable: true,
    summary:
      'Too many handshakes per second from this address (CHAT_ROUTER_HANDSHAKE_RATE_PER_SEC, for valid and for refused handshakes apart; HTTP 429 with Retry-After).',
  },
  BUS_ERR_INVALID_RECORD: {
    retryable: false,
    summary:
      'A record read from the bus did not match its schema (another version producing?); it was skipped and counted.',
  },
  KAFKA_ERR_UNAVAILABLE: {
    retryable: true,
    summary: 'The Kafka broker could not be reached or did not answer in time.',
  },
  KAFKA_ERR_TIMEOUT: {
    retryable: true,
    summary:
      'A record was handed to Kafka and not confirmed within the publish timeout (no answer, or the request failed): it may still be written.',
  },
  KAFKA_ERR_START_FAILED: {
    retryable: false,
    summary: 'The local Kafka broker launcher could not resolve, format or start the broker.',
  },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable code; `details` carries structured data for logs and error frames. */
export class ChatError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ChatError';
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
    this.details = Object.freeze({ ...details });
  }
}

/** True when `err` is a ChatError, optionally with the given code. */
export function isChatError(err: unknown, code?: ErrorCode): err is ChatError {
  return err instanceof ChatError && (code === undefined || err.code === code);
}
