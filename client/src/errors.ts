/**
 * The SDK's own error codes (`CLIENT_ERR_*`), next to the server's (`NODE_ERR_*`, `PROTO_ERR_*`,
 * `AUTH_ERR_*`, `ROUTER_ERR_*`, docs/errors.md), which a `ChatError` carries unchanged. Each says whether
 * trying again later can succeed; docs/client.md lists them (a test fails when one is missing there).
 */
export const CLIENT_ERRORS = {
  CLIENT_ERR_BAD_OPTIONS: {
    retryable: false,
    summary:
      '`connect()` was given an unusable option: a URL that is not ws:// or wss://, no WebSocket implementation, a timeout, backoff or rate below its minimum, a malformed `since`.',
  },
  CLIENT_ERR_BAD_USER_ID: {
    retryable: false,
    summary:
      'The user id (`connect`’s `userId`, or `send`’s `to`) is not 1-128 characters of A-Z a-z 0-9 . _ @ -; nothing was sent.',
  },
  CLIENT_ERR_BAD_BODY: {
    retryable: false,
    summary: 'The body is not a string; nothing was sent.',
  },
  CLIENT_ERR_BODY_TOO_LONG: {
    retryable: false,
    summary:
      'The body is longer than the protocol allows (16,384 characters, counted as Unicode code points like the server does); nothing was sent.',
  },
  CLIENT_ERR_TIMEOUT: {
    retryable: true,
    summary:
      'The send was not answered within `sendTimeoutMs` (across reconnects and retries). It may still arrive: the SDK stopped waiting, not the server.',
  },
  CLIENT_ERR_CLOSED: {
    retryable: false,
    summary:
      '`close()` was called (or had been) before the send was answered. After the server stopped the client, sends reject with the stop’s error instead.',
  },
  CLIENT_ERR_TOO_BIG: {
    retryable: false,
    summary:
      'The server closed the connection with 1009 (a frame over its CHAT_NODE_MAX_PAYLOAD_BYTES) while this, the largest unanswered send, was in flight; it is not sent again.',
  },
  CLIENT_ERR_CONNECTION_CLOSED: {
    retryable: false,
    summary:
      'The server closed the connection with a code that says not to reconnect (1002, 1007, 1008, or a refusal without a code in its reason); the client is `closed`.',
  },
  CLIENT_ERR_TOKEN: {
    retryable: true,
    summary:
      'The `token` function rejected, returned something that is not a string, or did not settle within `tokenTimeoutMs`; the attempt counts as failed and is retried with backoff (at refresh time, the refresh is tried again).',
  },
  CLIENT_ERR_TOKEN_REFUSED: {
    retryable: false,
    summary:
      'The server refused three fresh tokens in a row (4401) without a successful connection; the client is `closed`.',
  },
  CLIENT_ERR_UNEXPECTED_FRAME: {
    retryable: false,
    summary:
      'The server sent a frame the SDK cannot read (not JSON, not a v1 frame, binary); it was ignored.',
  },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ClientErrorCode = keyof typeof CLIENT_ERRORS;

/** Where an error came from, beyond its code. */
export interface ChatErrorDetails {
  /** The send it answers (absent for errors not tied to a send). */
  readonly cid?: string;
  /** The close code that led to it (a stop, a refusal). */
  readonly closeCode?: number;
}

/**
 * Every failure the SDK reports: a server error answer (its `code`, `retryable` and `message` as sent), or
 * one of the SDK's own `CLIENT_ERR_*`. `retryable` says whether the same thing later can succeed.
 */
export class ChatError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly cid: string | undefined;
  readonly closeCode: number | undefined;

  constructor(code: string, retryable: boolean, message: string, details: ChatErrorDetails = {}) {
    super(message);
    this.name = 'ChatError';
    this.code = code;
    this.retryable = retryable;
    this.cid = details.cid;
    this.closeCode = details.closeCode;
  }

  /** One of the SDK's own errors, with its documented `retryable`. */
  static client(code: ClientErrorCode, message: string, details: ChatErrorDetails = {}): ChatError {
    return new ChatError(code, CLIENT_ERRORS[code].retryable, message, details);
  }

  /** The same error for another send (one stop rejects every pending send with its own cid). */
  withCid(cid: string): ChatError {
    return new ChatError(this.code, this.retryable, this.message, {
      cid,
      ...(this.closeCode === undefined ? {} : { closeCode: this.closeCode }),
    });
  }
}
