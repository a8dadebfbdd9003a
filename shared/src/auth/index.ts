export * from './token.js';
export { BEARER_PROTOCOL_PREFIX, bearerMatches, checkHandshake, extractToken } from './handshake.js';
export type { HandshakeCheck, HandshakeResult, TokenSource } from './handshake.js';
export * from './mint.js';
