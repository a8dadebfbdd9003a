import { ERROR_CODES, type ErrorCode } from '../errors.js';
import {
  ClientFrame,
  type AuthFrame,
  type SendFrame,
  CLIENT_FRAME_TYPES,
  LegacyDirectMessage,
  type ErrorFrame,
  type MessageFrame,
  type ServerFrame,
} from './schemas.js';
import { frameTooComplex } from './frame-shape.js';

/** The text frame a seed client sends as a keep-alive, and the answer. */
export const PING_TEXT = 'ping';
export const PONG_TEXT = 'pong';

/** What a client frame decodes to. */
export type Inbound =
  | { readonly kind: 'ping' }
  | { readonly kind: 'send'; readonly frame: SendFrame }
  | { readonly kind: 'auth'; readonly frame: AuthFrame }
  | { readonly kind: 'legacy'; readonly frame: LegacyDirectMessage }
  | { readonly kind: 'invalid'; readonly error: DecodeError };

export interface DecodeError {
  readonly code: ErrorCode;
  readonly message: string;
  /** The client message id, when the frame got far enough to have one. */
  readonly cid?: string;
}

/** Who sent the frame: the connection's authenticated user, the only source of identity. */
export interface DecodeContext {
  readonly userId: string;
}

function invalid(code: ErrorCode, message: string, cid?: string): Inbound {
  return { kind: 'invalid', error: cid === undefined ? { code, message } : { code, message, cid } };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Decodes one client text frame. Never throws: anything that is not a valid frame becomes
 * `{ kind: 'invalid' }` with a stable code. A frame holding more values, or nesting deeper, than any valid
 * frame is refused before it is parsed (PROTO_ERR_TOO_COMPLEX, frame-shape.ts). A legacy frame whose
 * `sender_id` is not the connection's user is refused (PROTO_ERR_FORBIDDEN_SENDER): the sender is always
 * the connection's identity. A legacy frame keeps only its known fields (the schema strips the rest).
 */
export function decodeClientFrame(text: string, ctx: DecodeContext): Inbound {
  if (text === PING_TEXT) return { kind: 'ping' };
  // Before parsing: what a frame costs to parse grows with its values, not its bytes.
  const tooComplex = frameTooComplex(text);
  if (tooComplex !== undefined) return invalid('PROTO_ERR_TOO_COMPLEX', tooComplex);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid('PROTO_ERR_MALFORMED', 'frame is not valid JSON');
  }
  if (!isRecord(value)) return invalid('PROTO_ERR_INVALID_FRAME', 'frame must be a JSON object');

  const cid = typeof value.cid === 'string' && value.cid.length <= 64 ? value.cid : undefined;
  if (!('type' in value)) {
    const legacy = LegacyDirectMessage.safeParse(value);
    if (!legacy.success) return invalid('PROTO_ERR_INVALID_FRAME', summarise(legacy.error.issues), cid);
    if (legacy.data.sender_id !== ctx.userId) {
      return invalid('PROTO_ERR_FORBIDDEN_SENDER', 'sender_id must be the connection’s own user id', cid);
    }
    return { kind: 'legacy', frame: legacy.data };
  }
  if (typeof value.type !== 'string' || !CLIENT_FRAME_TYPES.has(value.type)) {
    return invalid('PROTO_ERR_UNKNOWN_TYPE', 'unknown frame type', cid);
  }
  const parsed = ClientFrame.safeParse(value);
  if (!parsed.success) return invalid('PROTO_ERR_INVALID_FRAME', summarise(parsed.error.issues), cid);
  return parsed.data.type === 'auth'
    ? { kind: 'auth', frame: parsed.data }
    : { kind: 'send', frame: parsed.data };
}

function summarise(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 3)
    .map((i) => (i.path.length > 0 ? `${i.path.map(String).join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/** Serialises a server frame. Frames are built from typed values, so this is plain JSON. */
export function encodeServerFrame(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * What a client speaks: `v1` negotiated the `chat.v1` subprotocol; `seed` offered none and is spoken to in
 * the seed's shapes (see `encodeDelivered`; acks only when its frame carried a `cid`).
 */
export type Flavor = 'v1' | 'seed';

/**
 * Serialises what a receiver gets. A v1 `message` goes to v1 clients as it is, and to seed clients in the
 * seed's shape: `{sender_id, receiver_id, body, id, ts}`. A seed message goes to everyone with its known
 * fields only (decoded by `LegacyDirectMessage`, `sender_id` verified). Called once per message and flavor, whatever the number of
 * receiving sessions.
 */
export function encodeDelivered(frame: MessageFrame | LegacyDirectMessage, flavor: Flavor): string {
  if (flavor === 'seed' && isMessageFrame(frame)) {
    const { from, to, body, id, ts } = frame;
    return JSON.stringify({ sender_id: from, receiver_id: to, body, id, ts });
  }
  return JSON.stringify(frame);
}

/** The `frames_out` type of a delivered frame as a client of `flavor` sees it. */
export function deliveredType(
  frame: MessageFrame | LegacyDirectMessage,
  flavor: Flavor,
): 'message' | 'legacy' {
  return flavor === 'v1' && isMessageFrame(frame) ? 'message' : 'legacy';
}

function isMessageFrame(frame: MessageFrame | LegacyDirectMessage): frame is MessageFrame {
  return 'type' in frame && frame.type === 'message';
}

/** The error frame for a code, with its documented retryability. */
export function errorFrame(code: ErrorCode, message: string, cid?: string): ErrorFrame {
  const frame: ErrorFrame = { type: 'error', code, retryable: ERROR_CODES[code].retryable, message };
  if (cid !== undefined) frame.cid = cid;
  return frame;
}
