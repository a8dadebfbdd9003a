// The terminal chat client's decisions, kept pure so a unit test can pin them down: what its command-line
// arguments mean, what a typed line means, and what to do when the server refuses or closes the socket.
import { CLOSE_CODES } from '@chat/shared';

/** User ids the server accepts (shared/src/protocol/schemas.ts `UserId`). */
const USER_ID = /^[A-Za-z0-9._@-]{1,128}$/;

export const USAGE = `usage: npm run chat <userId> [ws://host:port]
       npm run chat -- --help

A terminal chat client. Connects to ws://host:port/chat/<userId> (default: $CHAT_URL, else
ws://127.0.0.1:8080). User ids: A-Z a-z 0-9 . _ @ -, at most 128.

Token: $CHAT_TOKEN if set; else one minted with $CHAT_AUTH_HS256_SECRET (and $CHAT_AUTH_ISSUER,
$CHAT_AUTH_AUDIENCE) if set; else with the demo's development secret (.cache/dev-secret); else none.

Options:
  -h, --help   print this help and exit

Type /help once connected for the commands.`;

export const HELP = `commands:
  @bob hello    send "hello" to bob; bob becomes who you are talking to
  @bob          talk to bob from now on (send nothing yet)
  hello         send "hello" to whoever you are talking to (the last you wrote to or heard from)
  //hello       send "/hello" (a line starting with / is otherwise a command)
  /who          say who you are talking to
  /help         this help
  /quit         leave (Ctrl-D too)`;

export type Args =
  | { readonly kind: 'help' }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'run'; readonly userId: string; readonly url: string };

/** What the command-line arguments (after the script's name) ask for. */
export function parseArgs(argv: readonly string[], defaultUrl: string): Args {
  if (argv.includes('-h') || argv.includes('--help')) return { kind: 'help' };
  const option = argv.find((a) => a.startsWith('-'));
  if (option !== undefined) return { kind: 'error', message: `unknown option ${option}` };
  const [userId, url = defaultUrl, ...extra] = argv;
  if (userId === undefined) return { kind: 'error', message: 'missing <userId>' };
  if (!USER_ID.test(userId)) {
    return { kind: 'error', message: `not a user id: ${JSON.stringify(userId)} (A-Z a-z 0-9 . _ @ -)` };
  }
  if (!/^wss?:\/\/[^/\s]+\/?$/.test(url)) {
    return { kind: 'error', message: `not a server address: ${JSON.stringify(url)} (ws://host:port)` };
  }
  if (extra.length > 0) return { kind: 'error', message: `unexpected argument ${JSON.stringify(extra[0])}` };
  return { kind: 'run', userId, url: url.replace(/\/$/, '') };
}

export type LineAction =
  | { readonly kind: 'none' }
  | { readonly kind: 'quit' }
  | { readonly kind: 'help' }
  | { readonly kind: 'who' }
  | { readonly kind: 'unknown-command'; readonly command: string }
  /** `@` with no name, or a name the server would refuse. */
  | { readonly kind: 'usage'; readonly message: string }
  /** `@bob` alone: talk to bob from now on. */
  | { readonly kind: 'set-peer'; readonly to: string }
  /** Text without `@` and nobody to send it to yet. */
  | { readonly kind: 'no-peer' }
  | { readonly kind: 'send'; readonly to: string; readonly body: string };

/** What a typed line means, given who the user is talking to now (`peer`). */
export function parseLine(line: string, peer: string | undefined): LineAction {
  const text = line.trim();
  if (text === '') return { kind: 'none' };
  if (text.startsWith('//'))
    return peer ? { kind: 'send', to: peer, body: text.slice(1) } : { kind: 'no-peer' };
  if (text.startsWith('/')) {
    const command = text.split(/\s+/)[0] ?? text;
    switch (command) {
      case '/quit':
        return { kind: 'quit' };
      case '/help':
        return { kind: 'help' };
      case '/who':
        return { kind: 'who' };
      default:
        return { kind: 'unknown-command', command };
    }
  }
  if (text.startsWith('@')) {
    const m = /^@(\S*)\s*(.*)$/s.exec(text);
    const to = m?.[1] ?? '';
    const body = m?.[2] ?? '';
    if (to === '') return { kind: 'usage', message: 'who to? write @name message (e.g. @bob hello)' };
    if (!USER_ID.test(to)) {
      return { kind: 'usage', message: `not a user id: ${JSON.stringify(to)} (A-Z a-z 0-9 . _ @ -)` };
    }
    if (body === '') return { kind: 'set-peer', to };
    return { kind: 'send', to, body };
  }
  return peer ? { kind: 'send', to: peer, body: text } : { kind: 'no-peer' };
}

/** What to do after a connection attempt ended. */
export type Next =
  | { readonly kind: 'retry'; readonly delayMs: number; readonly why: string }
  | { readonly kind: 'exit'; readonly code: number; readonly why: string };

/** HTTP statuses of a refused upgrade worth trying again (overloaded, rate limited, a gateway hiccup). */
const RETRY_STATUSES = new Set([429, 502, 503, 504]);
const MAX_BACKOFF_MS = 30_000;

/** Exponential backoff with full jitter: a random delay in [base/2, base], base = 500 ms * 2^attempt. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempt, 16));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** The server's `Retry-After` header in milliseconds (seconds form only), if any. */
export function retryAfterHeaderMs(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

/** The `retry_after_ms=N` hint of a close reason, if any. */
export function retryHintMs(reason: string): number | undefined {
  const m = /retry_after_ms=(\d+)/.exec(reason);
  return m ? Number(m[1]) : undefined;
}

/**
 * After a refused upgrade (HTTP `status`, the body's error `code`, the `Retry-After` header): 401, 403,
 * 400 and 404 will not change by retrying (exit 1 with why); 429, 502, 503, 504 are retried after the
 * server's hint or a growing backoff.
 */
export function afterRefusal(
  status: number,
  code: string | undefined,
  retryAfter: string | undefined,
  attempt: number,
  random: () => number = Math.random,
): Next {
  const what = `HTTP ${status}${code ? ` ${code}` : ''}`;
  if (!RETRY_STATUSES.has(status)) {
    const hint =
      status === 401
        ? ': the server wants a valid token (set CHAT_TOKEN, see npm run token)'
        : status === 403
          ? ': the token is for another user, or this origin is not allowed'
          : '';
    return { kind: 'exit', code: 1, why: `refused: ${what}${hint}` };
  }
  const delayMs = retryAfterHeaderMs(retryAfter) ?? backoffMs(attempt, random);
  return { kind: 'retry', delayMs, why: `refused: ${what}` };
}

/** Close codes after which reconnecting helps (shared/src/protocol/close-codes.ts), plus 1005 and 1006. */
const RECONNECT_CODES = new Set<number>([
  1005, // no status: the peer went away without a close frame's code
  1006, // abnormal: the connection dropped (or never opened: router down)
  ...Object.values(CLOSE_CODES)
    .filter((c) => c.reconnect)
    .map((c) => c.code),
]);

/**
 * After the connection closed with `code` and `reason` (1006 also when it never opened): reconnect after
 * the reason's `retry_after_ms` hint (4001, 4002, 4008) or a growing backoff when the code says it helps;
 * otherwise exit 1 (1008 policy, 1002 protocol, unknown codes) or 0 (1000, a normal close by the server).
 */
export function afterClose(
  code: number,
  reason: string,
  attempt: number,
  random: () => number = Math.random,
): Next {
  const what = `${code}${reason ? ` ${reason}` : ''}`;
  if (RECONNECT_CODES.has(code)) {
    const delayMs = retryHintMs(reason) ?? backoffMs(attempt, random);
    return { kind: 'retry', delayMs, why: `disconnected: ${what}` };
  }
  return { kind: 'exit', code: code === 1000 ? 0 : 1, why: `closed by the server: ${what}` };
}
