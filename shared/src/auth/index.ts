export * from './token.js';
export { BEARER_PROTOCOL_PREFIX, bearerMatches, checkHandshake, extractToken } from './handshake.js';
export type { HandshakeCheck, HandshakeResult, TokenSource } from './handshake.js';
export * from './mint.js';
export { AuthFailureLog } from './failure-log.js';
export type { AuthFailureLogOptions } from './failure-log.js';
export { jwksFile, jwksUrl, KeyHealth } from './jwks.js';
export type { KeyErrorCounter, KeySourceKind } from './jwks.js';
