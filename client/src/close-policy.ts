/**
 * What the client does after a connection (or a connection attempt) ends: the close code and reason in,
 * the next step out. Pure, so the whole table is tested on its own (test/src/client/close-policy.test.ts);
 * docs/client.md has the same table for readers.
 */
import { retryAfterMsOf } from './backoff.js';
import { CLOSE } from './protocol.js';

/** How long to wait before the next attempt. */
export type Wait =
  /** Exponential backoff with full jitter; the attempt counts as a failure (the exponent grows). */
  | 'backoff'
  /** `retry_after_ms` from the reason plus jitter, not a failure; `backoff` when the reason has none. */
  | 'hint'
  /** At once (up to the backoff's initial delay of jitter): the server said exactly what to fix. */
  | 'soon';

export type CloseStep =
  | {
      readonly action: 'reconnect';
      readonly wait: Wait;
      /** From the reason (`retry_after_ms=N`), when it has one. */
      readonly retryAfterMs?: number;
      /** The token was refused or expired: the next attempt must use a fresh one (4003, 4401). */
      readonly freshToken: boolean;
      /** A refused token (4401): three in a row without an open connection stop the client. */
      readonly tokenRefused: boolean;
      /** 1009: the largest unanswered send is what the server could not take; fail it, resend the rest. */
      readonly dropLargestSend: boolean;
      /** The error code the reason names (`AUTH_ERR_TOKEN_EXPIRED retry_after_ms=...`), if any. */
      readonly errorCode?: string;
    }
  | {
      readonly action: 'stop';
      /** The error the client closes with: the reason's code for a refusal, else CLIENT_ERR_CONNECTION_CLOSED. */
      readonly errorCode: string;
    };

/** The `<ERROR_CODE>` a refusal's reason starts with (`AUTH_ERR_ORIGIN_FORBIDDEN`), if any. */
export function reasonCode(reason: string): string | undefined {
  const m = /^([A-Z][A-Z0-9]*_ERR_[A-Z0-9_]+)(?:\s|$)/.exec(reason);
  return m?.[1];
}

/** The next step after a close with `code` and `reason` that the client did not ask for. */
export function closePolicy(code: number, reason: string): CloseStep {
  const retryAfterMs = retryAfterMsOf(reason);
  const errorCode = reasonCode(reason);
  const reconnect = (
    wait: Wait,
    extra: { freshToken?: boolean; tokenRefused?: boolean; drop?: boolean } = {},
  ) =>
    ({
      action: 'reconnect',
      wait,
      freshToken: extra.freshToken ?? false,
      tokenRefused: extra.tokenRefused ?? false,
      dropLargestSend: extra.drop ?? false,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...(errorCode === undefined ? {} : { errorCode }),
    }) as const satisfies CloseStep;
  const stop = (): CloseStep => ({ action: 'stop', errorCode: errorCode ?? 'CLIENT_ERR_CONNECTION_CLOSED' });
  // A `retry_after_ms` in any reason is the server's word on when to come back (protocol.md): it wins
  // over the plain backoff (a 4502 carries the Retry-After of the router's 502).
  const backoff: Wait = retryAfterMs === undefined ? 'backoff' : 'hint';

  switch (code) {
    // The node or the router is shutting down / moving the user: the server spread the closes, and says
    // when to come back. Not a failure of this client.
    case CLOSE.DRAINING:
    case CLOSE.MOVED:
    case CLOSE.RATE_LIMITED:
    case CLOSE.REFUSED_RATE_LIMITED:
    case CLOSE.REFUSED_UNAVAILABLE:
      return reconnect('hint');
    case CLOSE.TOKEN_EXPIRED:
      return reconnect('soon', { freshToken: true });
    // The server dropped what it had buffered for us; in durable mode `since` gets it back.
    case CLOSE.SLOW_CONSUMER:
      return reconnect('soon');
    case CLOSE.REFUSED_UNAUTHORIZED:
      return reconnect(backoff, { freshToken: true, tokenRefused: true });
    case CLOSE.MESSAGE_TOO_BIG:
      return reconnect(backoff, { drop: true });
    // A server that says "normal closure" without being asked has a reason we cannot see: come back.
    case CLOSE.NORMAL:
    case CLOSE.GOING_AWAY:
    case CLOSE.NO_STATUS:
    case CLOSE.ABNORMAL:
    case CLOSE.INTERNAL_ERROR:
    case CLOSE.REFUSED_UPSTREAM:
    case CLOSE.REFUSED_UPSTREAM_TIMEOUT:
      return reconnect(backoff);
    // Trying again would be refused the same way: a bug in the client, a foreign origin, a token for
    // another user, a bad path.
    case CLOSE.PROTOCOL_ERROR:
    case CLOSE.INVALID_PAYLOAD:
    case CLOSE.POLICY_VIOLATION:
    case CLOSE.REFUSED_BAD_REQUEST:
    case CLOSE.REFUSED_FORBIDDEN:
    case CLOSE.REFUSED_NOT_FOUND:
      return stop();
    default:
      // Another refusal status (4000 + 4xx): the request itself is wrong; a 5xx: try again later.
      if (code >= 4400 && code <= 4499) return stop();
      return reconnect(backoff);
  }
}
