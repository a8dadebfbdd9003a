// The terminal chat client's decisions, kept pure so a unit test can pin them down: what its command-line
// arguments mean, what a typed line means, and what to tell the user (or whether to leave) when the
// connection changes. Reconnecting itself (when, after which hint, with which cid) is the SDK's
// (@chat/client, tested in test/src/client).
import { USER_ID_PATTERN as USER_ID, type StateEvent } from '@chat/client';

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

/** What the terminal does about a connection change: print a line, leave with a status, or nothing. */
export type Outcome =
  | { readonly kind: 'none' }
  | { readonly kind: 'say'; readonly line: string }
  | { readonly kind: 'exit'; readonly code: number; readonly why: string };

/** A refused upgrade the SDK saw as a close (`refusal=close`): 4000 + the HTTP status. */
const refusedStatus = (code: number | undefined) =>
  code !== undefined && code >= 4400 && code <= 4599 ? code - 4000 : undefined;

/** Why the connection ended, as the user reads it: the refusal's status and code, or the close. */
function why(e: StateEvent): string {
  const status = refusedStatus(e.code);
  if (status !== undefined) {
    const code = e.error?.code.startsWith('CLIENT_ERR_') ? undefined : e.error?.code;
    return `refused: HTTP ${status}${code ? ` ${code}` : ''}`;
  }
  if (e.code === undefined && e.error) return `no token: ${e.error.message}`;
  return `disconnected: ${e.code ?? '?'}${e.reason ? ` ${e.reason}` : ''}`;
}

/** What a refusal for good means for this user. */
function refusalHint(status: number | undefined): string {
  if (status === 401) return ': the server wants a valid token (set CHAT_TOKEN, see npm run token)';
  if (status === 403) return ': the token is for another user, or this origin is not allowed';
  return '';
}

/**
 * What to tell the user after a `state` event of the SDK. `retry` counts reconnect waits since the last
 * open connection (1 for the first). A refused token (4401) ends the terminal at once: its token comes
 * from CHAT_TOKEN or a fixed secret, so a fresh one would be refused the same way (a browser's token
 * function may do better: the SDK itself tries three). Every other refusal or close the SDK stops on
 * ends it with status 1; a close the user asked for says nothing.
 */
export function onState(e: StateEvent, retry: number, userId: string, url: string): Outcome {
  switch (e.state) {
    case 'connecting':
      return { kind: 'none' };
    case 'open':
      return {
        kind: 'say',
        line: `connected as ${userId} to ${url}; type "@someone message", /help for commands, /quit to leave`,
      };
    case 'reconnecting':
      if (e.code === 4401) return { kind: 'exit', code: 1, why: `${why(e)}${refusalHint(401)}` };
      return {
        kind: 'say',
        line: `(${why(e)}; reconnecting in ${((e.retryInMs ?? 0) / 1000).toFixed(1)} s, attempt ${retry})`,
      };
    case 'closed': {
      if (!e.error) return { kind: 'none' };
      const status = refusedStatus(e.code);
      if (status !== undefined) return { kind: 'exit', code: 1, why: `${why(e)}${refusalHint(status)}` };
      return {
        kind: 'exit',
        code: 1,
        why: `closed by the server: ${e.code ?? '?'}${e.reason ? ` ${e.reason}` : ''} (${e.error.code})`,
      };
    }
  }
}
