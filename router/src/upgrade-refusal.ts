import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import {
  ERROR_CODES,
  REFUSAL_CLOSE,
  REFUSAL_PARAM,
  SUBPROTOCOL,
  REFUSAL_SUBPROTOCOL,
  refusalReason,
  refusedCloseCode,
  rejectUpgrade,
  type ErrorCode,
} from '@chat/shared';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 section 4.1), as the node's `ws` checks it. */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** After its close frame, how long the router waits for the client's before it drops the socket. */
export const CLOSE_WAIT_MS = 1000;
/** What a refused client may send before its close frame, at most (it should send nothing else). */
const MAX_CLOSING_BYTES = 16 * 1024;
/** Body of a node's refusal read, at most, to find its error code. */
const MAX_NODE_BODY = 64 * 1024;

/**
 * How a refused upgrade is answered. `http`: a status line and a JSON body (the default, and the only
 * answer to a request that is not a valid WebSocket upgrade). `close`: the client asked with
 * `?refusal=close`, so the handshake is completed and a `REFUSED_*` close follows at once: a browser
 * cannot read an HTTP refusal (it sees 1006) but can read a close code and reason.
 */
export type RefusalStyle =
  | { readonly kind: 'http' }
  | { readonly kind: 'close'; readonly accept: string; readonly protocol: string | undefined };

export const HTTP_REFUSAL: RefusalStyle = Object.freeze({ kind: 'http' });

/** The style `req` asked for: `close` only with `?refusal=close` on a valid version-13 upgrade. */
export function refusalStyleOf(req: IncomingMessage): RefusalStyle {
  let asked: boolean;
  try {
    asked = new URL(req.url ?? '/', 'http://router').searchParams.get(REFUSAL_PARAM) === REFUSAL_CLOSE;
  } catch {
    asked = false;
  }
  if (!asked) return HTTP_REFUSAL;
  const key = req.headers['sec-websocket-key'];
  const valid =
    req.method === 'GET' &&
    req.headers.upgrade?.toLowerCase() === 'websocket' &&
    req.headers['sec-websocket-version'] === '13' &&
    typeof key === 'string' &&
    WS_KEY.test(key);
  // No handshake to complete: the HTTP answer is all there is.
  if (!valid) return HTTP_REFUSAL;
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  return {
    kind: 'close',
    accept: createHash('sha1').update(`${key}${WS_GUID}`).digest('base64'),
    // `chat.refusal` when offered: the client knows at `open` that this is a refusal, not a connection.
    protocol: offered.includes(REFUSAL_SUBPROTOCOL)
      ? REFUSAL_SUBPROTOCOL
      : offered.includes(SUBPROTOCOL)
        ? SUBPROTOCOL
        : undefined,
  };
}

/** `Retry-After` (whole seconds) in milliseconds; undefined when absent or not a number of seconds. */
export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\s*\d{1,6}\s*$/.test(text)) return undefined;
  return Number(text) * 1000;
}

/**
 * Refuses an upgrade with `status` and `code`, in `style`: an HTTP answer (`headers` included), or the
 * completed handshake and the close `4000 + status` with the reason `CODE[ retry_after_ms=N]` (N from a
 * `Retry-After` header). `head`: bytes that came after the request head (read as the client's frames).
 */
export function refuseUpgrade(
  socket: Socket,
  style: RefusalStyle,
  status: number,
  code: ErrorCode,
  headers: Record<string, string> = {},
  head?: Buffer,
): void {
  const closeCode = refusedCloseCode(status);
  if (style.kind === 'http' || closeCode === undefined) {
    rejectUpgrade(socket, status, code, headers);
    return;
  }
  closeAfterHandshake(
    socket,
    style,
    closeCode,
    refusalReason(code, retryAfterMs(headers['Retry-After'])),
    head,
  );
}

/** A server close frame (unmasked): `code` and `reason`. */
export function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason, 'utf8');
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88; // FIN + close
  frame[1] = 2 + text.length; // at most 125: the reason is at most 123 bytes
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}

/**
 * Writes the 101 (with `chat.v1` when offered) and the close frame, then reads the client's frames until
 * its close arrives and ends the socket; whatever happens, the socket is destroyed after
 * `CLOSE_WAIT_MS`, so a client that never answers holds it no longer.
 */
function closeAfterHandshake(
  socket: Socket,
  style: Extract<RefusalStyle, { kind: 'close' }>,
  code: number,
  reason: string,
  head: Buffer | undefined,
): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const protocol = style.protocol ? `Sec-WebSocket-Protocol: ${style.protocol}\r\n` : '';
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${style.accept}\r\n${protocol}\r\n`,
  );
  socket.write(closeFrame(code, reason.slice(0, 123)));
  const timer = setTimeout(() => socket.destroy(), CLOSE_WAIT_MS);
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
  let pending = head && head.length > 0 ? head : Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const seen = findClose(pending);
    if (seen === 'close') {
      socket.off('data', onData);
      socket.end();
    } else if (pending.length > MAX_CLOSING_BYTES) socket.destroy();
  };
  socket.on('data', onData);
  if (pending.length > 0) onData(Buffer.alloc(0));
  socket.resume();
}

/**
 * Walks the client's frames in `data`: `close` once a close frame has fully arrived, `more` while the
 * frames so far are incomplete or not a close.
 */
export function findClose(data: Buffer): 'close' | 'more' {
  let at = 0;
  while (data.length - at >= 2) {
    const opcode = (data[at] ?? 0) & 0x0f;
    const second = data[at + 1] ?? 0;
    let length = second & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      if (data.length < offset + 2) return 'more';
      length = data.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (data.length < offset + 8) return 'more';
      length = Number(data.readBigUInt64BE(offset));
      offset += 8;
    }
    if (second & 0x80) offset += 4;
    if (data.length < offset + length) return 'more';
    if (opcode === 0x8) return 'close';
    at = offset + length;
  }
  return 'more';
}

/** A node's refusal as the router answers it in the close style: the status and code to close with. */
export interface NodeRefusal {
  readonly status: number;
  readonly code: ErrorCode;
  readonly headers: Record<string, string>;
}

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/**
 * Reads a node's refusal (a status other than 101; body at most 64 KiB) for a client that asked for
 * closes: the node's status and `{"error": CODE}` with its `Retry-After`, or, for an answer outside that
 * contract (a status without a `REFUSED_*` code, no known code in the body), 502
 * `ROUTER_ERR_UPSTREAM_FAILED`. `undefined` when the answer broke off.
 */
export function readNodeRefusal(res: IncomingMessage): Promise<NodeRefusal | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_NODE_BODY) chunks.push(chunk);
    });
    res.once('error', () => resolve(undefined));
    // After 'end' this changes nothing; without it, the answer broke off.
    res.once('close', () => resolve(undefined));
    res.once('end', () => {
      let error: unknown;
      try {
        error = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: unknown } | null)?.error;
      } catch {
        error = undefined;
      }
      const status = res.statusCode ?? 502;
      if (!isErrorCode(error) || refusedCloseCode(status) === undefined) {
        resolve({ status: 502, code: 'ROUTER_ERR_UPSTREAM_FAILED', headers: {} });
        return;
      }
      const retry = res.headers['retry-after'];
      resolve({ status, code: error, headers: retry === undefined ? {} : { 'Retry-After': retry } });
    });
  });
}
