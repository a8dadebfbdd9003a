import type { IncomingMessage } from 'node:http';
import { isChatError, type ErrorCode } from '../errors.js';
import type { TokenVerifier, VerifiedToken } from './token.js';

/** Prefix of the Sec-WebSocket-Protocol entry that carries a token (`bearer.<jwt>`). */
export const BEARER_PROTOCOL_PREFIX = 'bearer.';

/** Where a token was found; the docs (security.md) weigh the trade-offs. */
export type TokenSource = 'header' | 'protocol' | 'query';

/** The token of an upgrade request: Authorization header, then subprotocol list, then (if allowed) query. */
export function extractToken(
  req: IncomingMessage,
  allowQuery: boolean,
): { token: string; source: TokenSource } | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return { token: auth.slice(7).trim(), source: 'header' };
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols) {
    for (const p of protocols.split(',')) {
      const entry = p.trim();
      if (entry.startsWith(BEARER_PROTOCOL_PREFIX))
        return { token: entry.slice(BEARER_PROTOCOL_PREFIX.length), source: 'protocol' };
    }
  }
  if (allowQuery) {
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('access_token');
    if (token) return { token, source: 'query' };
  }
  return undefined;
}

export interface HandshakeCheck {
  readonly verifier: TokenVerifier | undefined;
  readonly allowQueryToken: boolean;
  readonly allowedOrigins: readonly string[];
}

export type HandshakeResult =
  | { readonly ok: true; readonly token: VerifiedToken | undefined }
  | { readonly ok: false; readonly status: 401 | 403 | 503; readonly code: ErrorCode };

/**
 * The checks every WebSocket upgrade passes, at the router and again at the node: the browser origin
 * against the allowlist, then the token (present, valid, `sub` = the path's user id). Each refusal is
 * logged through the verifier (rate-limited, never the token). No usable keys is the server's fault:
 * 503 (AUTH_ERR_KEYS_UNAVAILABLE, retryable), not 401.
 */
export async function checkHandshake(
  req: IncomingMessage,
  userId: string,
  check: HandshakeCheck,
): Promise<HandshakeResult> {
  const origin = req.headers.origin;
  if (origin !== undefined && check.allowedOrigins.length > 0 && !check.allowedOrigins.includes(origin)) {
    check.verifier?.refused?.('AUTH_ERR_ORIGIN_FORBIDDEN', 'origin not allowed', {
      user: userId,
      origin: origin.slice(0, 200),
    });
    return { ok: false, status: 403, code: 'AUTH_ERR_ORIGIN_FORBIDDEN' };
  }
  const verifier = check.verifier;
  if (!verifier) return { ok: true, token: undefined };
  const found = extractToken(req, check.allowQueryToken);
  if (!found) {
    verifier.refused?.('AUTH_ERR_MISSING_TOKEN', 'no token in the request', { user: userId });
    return { ok: false, status: 401, code: 'AUTH_ERR_MISSING_TOKEN' };
  }
  try {
    const token = await verifier.verify(found.token, { user: userId });
    if (token.sub !== userId) {
      verifier.refused?.('AUTH_ERR_SUBJECT_MISMATCH', 'the token is for another user', { user: userId });
      return { ok: false, status: 403, code: 'AUTH_ERR_SUBJECT_MISMATCH' };
    }
    return { ok: true, token };
  } catch (err) {
    if (isChatError(err, 'AUTH_ERR_KEYS_UNAVAILABLE')) return { ok: false, status: 503, code: err.code };
    if (isChatError(err)) return { ok: false, status: 401, code: err.code };
    throw err;
  }
}

/** True when `header` is `Bearer <expected>` (constant-time compare). */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  const want = Buffer.from(expected);
  if (given.length !== want.length) return false;
  let diff = 0;
  for (let i = 0; i < given.length; i++) diff |= (given[i] ?? 0) ^ (want[i] ?? 0);
  return diff === 0;
}
