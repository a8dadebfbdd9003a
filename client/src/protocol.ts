/**
 * The few protocol facts the SDK needs at run time, kept here so a browser bundle never loads
 * `@chat/shared`'s runtime (zod, pino, jose). Types come from `@chat/shared` (erased at build), and a test
 * checks every constant here against the shared source (test/src/client/protocol.test.ts), so the two cannot
 * drift.
 */
import type {
  AckFrame,
  AuthOkFrame,
  ErrorFrame,
  MessageFrame,
  MessagePos,
  ResumedFrame,
  ServerFrame,
} from '@chat/shared';

/** The subprotocol of protocol v1. */
export const SUBPROTOCOL = 'chat.v1';
/**
 * Offered next to `chat.v1`: a router selects it only for a refused upgrade it completes to carry a
 * `REFUSED_*` close, so an `open` with it is not a connection.
 */
export const REFUSAL_SUBPROTOCOL = 'chat.refusal';
/** A browser cannot set headers: the token rides as this subprotocol prefix (`bearer.<jwt>`). */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';
/** User ids as the server accepts them in `/chat/{userId}` and `to`. */
export const USER_ID_PATTERN = /^[A-Za-z0-9._@-]{1,128}$/;
/** The longest body the protocol allows, in characters (Unicode code points, as the server counts). */
export const MAX_BODY_CHARS = 16_384;

/** A body's length as the server counts it: code points (an emoji is one, though two UTF-16 units). */
export function bodyLength(body: string): number {
  // Code points never outnumber code units: only a long body needs counting.
  if (body.length <= MAX_BODY_CHARS) return body.length;
  let n = 0;
  for (const _ of body) n++;
  return n;
}

/** Close codes the server uses (shared/src/protocol/close-codes.ts), and `4000 + HTTP status` refusals. */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  DRAINING: 4001,
  MOVED: 4002,
  TOKEN_EXPIRED: 4003,
  RATE_LIMITED: 4008,
  SLOW_CONSUMER: 4009,
  /** A refused upgrade, seen as a close when the URL asks for it (`refusal=close`): 4000 + the HTTP status. */
  REFUSED_BAD_REQUEST: 4400,
  REFUSED_UNAUTHORIZED: 4401,
  REFUSED_FORBIDDEN: 4403,
  REFUSED_NOT_FOUND: 4404,
  REFUSED_RATE_LIMITED: 4429,
  REFUSED_UPSTREAM: 4502,
  REFUSED_UNAVAILABLE: 4503,
  REFUSED_UPSTREAM_TIMEOUT: 4504,
} as const;

/** The `since` value for a position (`<shard>:<offset>:<epoch>`), as shared's `formatSince` writes it. */
export function formatSince(pos: MessagePos): string {
  return `${pos.shard}:${pos.offset}:${pos.epoch}`;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isOptString = (v: unknown): boolean => v === undefined || typeof v === 'string';
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/** A `{shard, offset, epoch}` position as the server writes one (shared's `MessagePos`). */
export function isPos(v: unknown): v is MessagePos {
  return (
    isObject(v) &&
    isInt(v.shard) &&
    v.shard >= 0 &&
    v.shard <= 65_535 &&
    isInt(v.offset) &&
    v.offset >= 0 &&
    isString(v.epoch) &&
    /^[A-Za-z0-9-]{1,64}$/.test(v.epoch)
  );
}

/**
 * Reads a server text frame: the frame, or undefined when it is not JSON or not a v1 server frame with the
 * fields the SDK relies on. A light structural check (the server is trusted to send valid frames; this
 * only keeps a broken one from reaching the app as something it is not).
 */
export function decodeServerFrame(text: string): ServerFrame | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'message':
      return isString(v.id) &&
        isString(v.from) &&
        isString(v.to) &&
        isString(v.body) &&
        isInt(v.ts) &&
        (v.pos === undefined || isPos(v.pos))
        ? (v as MessageFrame)
        : undefined;
    case 'ack':
      return isString(v.id) &&
        isOptString(v.cid) &&
        (v.status === 'delivered' || v.status === 'accepted' || v.status === 'offline')
        ? (v as AckFrame)
        : undefined;
    case 'error':
      return isString(v.code) && typeof v.retryable === 'boolean' && isString(v.message) && isOptString(v.cid)
        ? (v as ErrorFrame)
        : undefined;
    case 'auth_ok':
      return isInt(v.exp) && isOptString(v.cid) ? (v as AuthOkFrame) : undefined;
    case 'resumed':
      return typeof v.recovered === 'boolean' && isInt(v.replayed) ? (v as ResumedFrame) : undefined;
    default:
      return undefined;
  }
}
