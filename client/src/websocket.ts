/**
 * The little of a WebSocket the SDK uses, as a structural type: the browser's and Node 24's platform
 * `WebSocket` fit it, and so does any implementation with the standard event API (the `ws` package's, a
 * test double). Kept structural so the SDK's types do not depend on the DOM or Node typings of the app.
 */
export interface WebSocketCloseLike {
  readonly code: number;
  readonly reason: string;
}

export interface WebSocketMessageLike {
  readonly data: unknown;
}

export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server selected (standard; an implementation without it never sees refusals early). */
  readonly protocol?: string;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: WebSocketMessageLike) => void): void;
  addEventListener(type: 'close', listener: (event: WebSocketCloseLike) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `readyState` values (the constants are on the class, which a structural type cannot name). */
export const CONNECTING = 0;
export const OPEN = 1;
