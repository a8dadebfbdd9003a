import { SignJWT } from 'jose';
import { commonConfigSchema } from '../config/schemas.js';
import { ANY_CLAIM } from './token.js';

export interface MintOptions {
  readonly secret: string;
  readonly sub: string;
  /** Lifetime in seconds (default 12 hours; servers refuse more than CHAT_AUTH_MAX_LIFETIME_SEC). */
  readonly ttlSec?: number;
  readonly affinity?: string;
  readonly affinityClaim?: string;
  /** `iss` (default: CHAT_AUTH_ISSUER's default, `chat`); `*` or empty: no `iss` claim. */
  readonly issuer?: string;
  /** `aud` (default: CHAT_AUTH_AUDIENCE's default, `chat`); `*` or empty: no `aud` claim. */
  readonly audience?: string;
}

/**
 * Mints an HS256 token: development (`npm run token`), the demo client and tests. It carries `iat`,
 * and by default the issuer and audience a server with default settings requires.
 */
export async function mintToken(o: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (o.affinity) claims[o.affinityClaim ?? 'aff'] = o.affinity;
  const issuer = o.issuer ?? commonConfigSchema.authIssuer.default;
  const audience = o.audience ?? commonConfigSchema.authAudience.default;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (o.ttlSec ?? 12 * 3600));
  if (issuer && issuer !== ANY_CLAIM) jwt = jwt.setIssuer(issuer);
  if (audience && audience !== ANY_CLAIM) jwt = jwt.setAudience(audience);
  return jwt.sign(new TextEncoder().encode(o.secret));
}
