/**
 * @chat/client: the chat cluster's client SDK for browsers and Node.js 24 (docs/client.md). It loads
 * nothing but its own modules at run time; the protocol types come from @chat/shared and are erased.
 */
export {
  connect,
  DEFAULT_SEND_RATE_PER_SEC,
  MAX_TOKEN_REFUSALS,
  MIN_ANSWER_TIMEOUT_MS,
  STABLE_OPEN_MS,
} from './chat-client.js';
export type {
  ChatClient,
  ChatClientEvents,
  ConnectOptions,
  ConnectionState,
  SendAck,
  StateEvent,
} from './chat-client.js';
export { ChatError, CLIENT_ERRORS } from './errors.js';
export type { ChatErrorDetails, ClientErrorCode } from './errors.js';
export { closePolicy, reasonCode } from './close-policy.js';
export type { CloseStep, Wait } from './close-policy.js';
export { DEFAULT_BACKOFF, fullJitterMs, hintedMs, retryAfterMsOf } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { refreshInMs, tokenTimes, REFRESH_LEAD_MS } from './jwt.js';
export type { TokenTimes } from './jwt.js';
export { IdWindow } from './id-window.js';
export { TokenBucket } from './token-bucket.js';
export {
  BEARER_PROTOCOL_PREFIX,
  CLOSE,
  REFUSAL_SUBPROTOCOL,
  MAX_BODY_CHARS,
  USER_ID_PATTERN,
  SUBPROTOCOL,
  bodyLength,
  decodeServerFrame,
  formatSince,
} from './protocol.js';
export type { WebSocketConstructor, WebSocketLike } from './websocket.js';
export type { AckStatus, MessageFrame, MessagePos, ResumedFrame, ResumeFailure } from '@chat/shared';
