import { readFileSync, statSync } from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { ConfigOf } from '../config/load.js';
import type { commonConfigSchema } from '../config/schemas.js';
import { ChatError, type ErrorCode } from '../errors.js';
import { UserId } from '../protocol/schemas.js';

export type AuthConfig = Pick<
  ConfigOf<typeof commonConfigSchema>,
  | 'authMode'
  | 'authHs256Secret'
  | 'authJwksFile'
  | 'authJwksUrl'
  | 'authIssuer'
  | 'authAudience'
  | 'authAffinityClaim'
  | 'authClockToleranceSec'
>;

/** What a valid token says. */
export interface VerifiedToken {
  readonly sub: string;
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
  /** The affinity claim's value, when present and well-formed. */
  readonly affinity: string | undefined;
}

export interface TokenVerifier {
  /** Resolves with the token's claims or rejects with a ChatError AUTH_ERR_*. */
  verify(token: string): Promise<VerifiedToken>;
}

const ASYMMETRIC = ['RS256', 'ES256'];

function fail(code: ErrorCode, message: string): never {
  throw new ChatError(code, message);
}

/** A JWKS file, re-read when its modification time changes (key rotation without a restart). */
function jwksFile(path: string): JWTVerifyGetKey {
  let mtime = -1;
  let keys: JWTVerifyGetKey | undefined;
  let checked = 0;
  return async (header, token) => {
    const now = Date.now();
    if (!keys || now - checked > 1000) {
      checked = now;
      const m = statSync(path).mtimeMs;
      if (m !== mtime || !keys) {
        keys = createLocalJWKSet(
          JSON.parse(readFileSync(path, 'utf8')) as Parameters<typeof createLocalJWKSet>[0],
        );
        mtime = m;
      }
    }
    return keys(header, token);
  };
}

/**
 * The token verifier for a configuration, or undefined when authentication is off. HS256 tokens are
 * checked with the shared secret; RS256 and ES256 tokens with the JWKS (file or URL). Every other
 * algorithm, `none` included, is refused. `sub` and `exp` are required; issuer and audience are checked
 * when configured. Throws CONFIG_ERR_INVALID when `jwt` mode has no key material.
 */
export function createTokenVerifier(config: AuthConfig): TokenVerifier | undefined {
  if (config.authMode === 'off') return undefined;
  const secret = config.authHs256Secret ? new TextEncoder().encode(config.authHs256Secret) : undefined;
  const jwks = config.authJwksUrl
    ? createRemoteJWKSet(new URL(config.authJwksUrl), { cooldownDuration: 5000, cacheMaxAge: 600_000 })
    : config.authJwksFile
      ? jwksFile(config.authJwksFile)
      : undefined;
  if (!secret && !jwks) {
    throw new ChatError(
      'CONFIG_ERR_INVALID',
      'CHAT_AUTH_MODE=jwt needs CHAT_AUTH_HS256_SECRET, CHAT_AUTH_JWKS_FILE or CHAT_AUTH_JWKS_URL (or CHAT_AUTH_MODE=off to run without authentication)',
    );
  }
  const options = {
    clockTolerance: config.authClockToleranceSec,
    requiredClaims: ['sub', 'exp'],
    ...(config.authIssuer ? { issuer: config.authIssuer } : {}),
    ...(config.authAudience ? { audience: config.authAudience } : {}),
  };

  return {
    async verify(token: string): Promise<VerifiedToken> {
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        fail('AUTH_ERR_INVALID_TOKEN', 'token is not a JWS');
      }
      let payload: JWTPayload;
      try {
        if (alg === 'HS256' && secret) {
          ({ payload } = await jwtVerify(token, secret, { ...options, algorithms: ['HS256'] }));
        } else if (alg !== undefined && ASYMMETRIC.includes(alg) && jwks) {
          ({ payload } = await jwtVerify(token, jwks, { ...options, algorithms: ASYMMETRIC }));
        } else {
          fail('AUTH_ERR_INVALID_TOKEN', `algorithm ${String(alg)} is not accepted`);
        }
      } catch (err) {
        if (err instanceof ChatError) throw err;
        if (err instanceof joseErrors.JWTExpired) fail('AUTH_ERR_TOKEN_EXPIRED', 'token expired');
        if (err instanceof joseErrors.JWTClaimValidationFailed) fail('AUTH_ERR_INVALID_CLAIMS', err.message);
        fail('AUTH_ERR_INVALID_TOKEN', 'token signature or key not accepted');
      }
      if (typeof payload.sub !== 'string' || !UserId.safeParse(payload.sub).success) {
        fail('AUTH_ERR_INVALID_CLAIMS', 'sub must be a valid user id');
      }
      const claim = (payload as Record<string, unknown>)[config.authAffinityClaim];
      const affinity = typeof claim === 'string' && UserId.safeParse(claim).success ? claim : undefined;
      return { sub: payload.sub, exp: payload.exp ?? 0, affinity };
    },
  };
}
