import {
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { ConfigOf } from '../config/load.js';
import type { commonConfigSchema } from '../config/schemas.js';
import { ChatError, type ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';
import { UserId } from '../protocol/schemas.js';
import { AuthFailureLog } from './failure-log.js';
import { jwksFile, jwksUrl, type KeyErrorCounter } from './jwks.js';

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
  | 'authMaxLifetimeSec'
>;

/** The CHAT_AUTH_ISSUER / CHAT_AUTH_AUDIENCE value that turns the check off. */
export const ANY_CLAIM = '*';

/** What a valid token says. */
export interface VerifiedToken {
  readonly sub: string;
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
  /** The affinity claim's value, when present and well-formed. */
  readonly affinity: string | undefined;
}

/** Where a token was checked, for the refusal log line (never the token). */
export interface VerifyContext {
  /** The user id the connection claims (the upgrade path, the session's user). */
  readonly user?: string;
  /** The browser Origin, when it is why the request was refused. */
  readonly origin?: string;
}

export interface TokenVerifier {
  /** Resolves with the token's claims or rejects with a ChatError AUTH_ERR_* (and logs the refusal). */
  verify(token: string, context?: VerifyContext): Promise<VerifiedToken>;
  /** Logs a refusal decided outside `verify` (no token, another user's token, a foreign origin). */
  refused?(code: ErrorCode, reason: string, context?: VerifyContext): void;
}

export interface TokenVerifierOptions {
  /** The process's logger: refusals (rate-limited), key-set problems, unchecked claims at start-up. */
  readonly logger?: Logger | undefined;
  /** Counts failed JWKS loads by source (e.g. `chat_node_auth_key_errors_total`). */
  readonly keyErrors?: KeyErrorCounter | undefined;
  /** At most one refusal line per code per this many ms (default 10 s). */
  readonly refusalLogIntervalMs?: number;
  /** The clock in ms (default `Date.now`); tests pass their own. */
  readonly now?: () => number;
}

const ASYMMETRIC = ['RS256', 'ES256'];

function fail(code: ErrorCode, message: string): never {
  throw new ChatError(code, message);
}

/** Unverified facts of a refused token worth a log line: its key id and who issued it for whom. */
function describe(token: string): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  try {
    const h = decodeProtectedHeader(token);
    fields.alg = h.alg;
    fields.kid = h.kid;
    const p = decodeJwt(token);
    fields.iss = typeof p.iss === 'string' ? p.iss : undefined;
    fields.aud = typeof p.aud === 'string' ? p.aud : Array.isArray(p.aud) ? p.aud.join(',') : undefined;
  } catch {
    // Not a JWT: the code says so.
  }
  return fields;
}

/**
 * The token verifier for a configuration, or undefined when authentication is off. HS256 tokens are
 * checked with the shared secret; RS256 and ES256 tokens with the JWKS (file or URL). Every other
 * algorithm, `none` included, is refused. `sub` and `exp` are required; issuer and audience are checked
 * unless configured as `*` (logged as a warning here); `exp` may be at most CHAT_AUTH_MAX_LIFETIME_SEC
 * after `iat` (or after now) and `iat` may not lie in the future beyond the clock tolerance. Every
 * refusal is logged (rate-limited, never the token). Throws CONFIG_ERR_INVALID when `jwt` mode has no
 * key material.
 */
export function createTokenVerifier(
  config: AuthConfig,
  opts: TokenVerifierOptions = {},
): TokenVerifier | undefined {
  if (config.authMode === 'off') return undefined;
  const now = opts.now ?? Date.now;
  const log = opts.logger?.child({ subsystem: 'auth' });
  const keys = { logger: opts.logger, errors: opts.keyErrors, now };
  const secret = config.authHs256Secret ? new TextEncoder().encode(config.authHs256Secret) : undefined;
  let jwks: JWTVerifyGetKey | undefined;
  if (config.authJwksUrl) jwks = jwksUrl(new URL(config.authJwksUrl), keys);
  else if (config.authJwksFile) jwks = jwksFile(config.authJwksFile, keys);
  if (!secret && !jwks) {
    throw new ChatError(
      'CONFIG_ERR_INVALID',
      'CHAT_AUTH_MODE=jwt needs CHAT_AUTH_HS256_SECRET, CHAT_AUTH_JWKS_FILE or CHAT_AUTH_JWKS_URL (or CHAT_AUTH_MODE=off to run without authentication)',
    );
  }
  const checkIssuer = config.authIssuer !== ANY_CLAIM;
  const checkAudience = config.authAudience !== ANY_CLAIM;
  if (!checkIssuer || !checkAudience) {
    log?.warn(
      { issuer: config.authIssuer, audience: config.authAudience },
      'token issuer or audience not checked (CHAT_AUTH_ISSUER or CHAT_AUTH_AUDIENCE is *): tokens minted for other services with the same keys are accepted',
    );
  }
  const tolerance = config.authClockToleranceSec;
  const maxLifetime = config.authMaxLifetimeSec;
  const options = {
    clockTolerance: tolerance,
    requiredClaims: ['sub', 'exp'],
    ...(checkIssuer ? { issuer: config.authIssuer } : {}),
    ...(checkAudience ? { audience: config.authAudience } : {}),
  };
  const failures = new AuthFailureLog({
    logger: opts.logger,
    ...(opts.refusalLogIntervalMs !== undefined ? { intervalMs: opts.refusalLogIntervalMs } : {}),
    now,
  });

  async function check(token: string): Promise<VerifiedToken> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      fail('AUTH_ERR_INVALID_TOKEN', 'token is not a JWS');
    }
    let payload: JWTPayload;
    const currentDate = new Date(now());
    try {
      if (alg === 'HS256' && secret) {
        ({ payload } = await jwtVerify(token, secret, { ...options, currentDate, algorithms: ['HS256'] }));
      } else if (alg !== undefined && ASYMMETRIC.includes(alg) && jwks) {
        ({ payload } = await jwtVerify(token, jwks, { ...options, currentDate, algorithms: ASYMMETRIC }));
      } else {
        fail('AUTH_ERR_INVALID_TOKEN', `algorithm ${String(alg)} is not accepted`);
      }
    } catch (err) {
      if (err instanceof ChatError) throw err;
      if (err instanceof joseErrors.JWTExpired) fail('AUTH_ERR_TOKEN_EXPIRED', 'token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) fail('AUTH_ERR_INVALID_CLAIMS', err.message);
      const why = err instanceof joseErrors.JOSEError ? err.code : 'ERR_UNKNOWN';
      fail('AUTH_ERR_INVALID_TOKEN', `token signature or key not accepted (${why})`);
    }
    if (typeof payload.sub !== 'string' || !UserId.safeParse(payload.sub).success) {
      fail('AUTH_ERR_INVALID_CLAIMS', 'sub must be a valid user id');
    }
    const nowSec = Math.floor(currentDate.getTime() / 1000);
    const exp = payload.exp ?? 0;
    if (payload.iat !== undefined && payload.iat > nowSec + tolerance) {
      fail('AUTH_ERR_ISSUED_IN_FUTURE', `iat is ${Math.round(payload.iat - nowSec)} s in the future`);
    }
    const from = payload.iat ?? nowSec;
    if (exp - from > maxLifetime + (payload.iat === undefined ? tolerance : 0)) {
      fail(
        'AUTH_ERR_LIFETIME_TOO_LONG',
        `exp is ${Math.round(exp - from)} s after ${payload.iat === undefined ? 'now' : 'iat'}; at most ${maxLifetime} s accepted`,
      );
    }
    const claim = (payload as Record<string, unknown>)[config.authAffinityClaim];
    const affinity = typeof claim === 'string' && UserId.safeParse(claim).success ? claim : undefined;
    return { sub: payload.sub, exp, affinity };
  }

  return {
    async verify(token: string, context: VerifyContext = {}): Promise<VerifiedToken> {
      try {
        return await check(token);
      } catch (err) {
        const code: ErrorCode = err instanceof ChatError ? err.code : 'AUTH_ERR_INVALID_TOKEN';
        failures.refused(code, (err as Error).message, { ...context, ...describe(token) });
        throw err instanceof ChatError ? err : new ChatError(code, 'token not accepted');
      }
    },
    refused(code: ErrorCode, reason: string, context: VerifyContext = {}): void {
      failures.refused(code, reason, { ...context });
    },
  };
}
