/**
 * Reads a JWT's `exp` and `iat` without verifying it (the server verifies; the client only needs to know
 * when to refresh), and when to refresh it. Browser-safe: `atob`, no Buffer.
 */

export interface TokenTimes {
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
  /** Issue time, seconds since the epoch, when the token has one. */
  readonly iat?: number;
}

/** `exp` (and `iat`) from a JWT's payload, or undefined when it is not a JWT with a numeric `exp`. */
export function tokenTimes(jwt: string): TokenTimes | undefined {
  const part = jwt.split('.')[1];
  if (!part || !/^[A-Za-z0-9_-]+$/.test(part)) return undefined;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    const payload: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof payload !== 'object' || payload === null) return undefined;
    const { exp, iat } = payload as { exp?: unknown; iat?: unknown };
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return undefined;
    return typeof iat === 'number' && Number.isFinite(iat) ? { exp, iat } : { exp };
  } catch {
    return undefined;
  }
}

/** Refresh this long before expiry, unless the token lives shorter than five times that. */
export const REFRESH_LEAD_MS = 60_000;

/**
 * Milliseconds from `nowMs` until the token should be refreshed: 60 s before `exp`, or at 80% of its
 * lifetime when 20% of it is shorter than 60 s (a 5-minute token is refreshed after 4). The lifetime runs
 * from `iat`, else from now. Never negative.
 */
export function refreshInMs(times: TokenTimes, nowMs: number): number {
  const expMs = times.exp * 1000;
  const startMs = times.iat === undefined ? nowMs : Math.min(times.iat * 1000, nowMs);
  const lead = Math.min(REFRESH_LEAD_MS, 0.2 * (expMs - startMs));
  return Math.max(0, Math.round(expMs - lead - nowMs));
}
