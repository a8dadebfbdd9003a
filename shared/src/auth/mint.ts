import { SignJWT } from 'jose';

export interface MintOptions {
  readonly secret: string;
  readonly sub: string;
  /** Lifetime in seconds (default 12 hours). */
  readonly ttlSec?: number;
  readonly affinity?: string;
  readonly affinityClaim?: string;
  readonly issuer?: string;
  readonly audience?: string;
}

/** Mints an HS256 token: development (`npm run token`), the demo client and tests. */
export async function mintToken(o: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (o.affinity) claims[o.affinityClaim ?? 'aff'] = o.affinity;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (o.ttlSec ?? 12 * 3600));
  if (o.issuer) jwt = jwt.setIssuer(o.issuer);
  if (o.audience) jwt = jwt.setAudience(o.audience);
  return jwt.sign(new TextEncoder().encode(o.secret));
}
