// `npm run chat -- <userId> [ws://host:port]`: a small terminal chat client (`--help` for its usage, `/help`
// once running for its commands). Reconnects when that helps (a dropped connection, a draining or moved
// node, an overloaded router), after the server's hint or a growing backoff, and says so; exits 1 with the
// reason when the server refuses it for good (a bad token, a foreign origin).
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { BEARER_PROTOCOL_PREFIX, mintToken } from '@chat/shared';
import { HELP, USAGE, afterClose, afterRefusal, parseArgs, parseLine, type Next } from './chat-input.js';
import { devSecret } from './dev-secret.js';

const args = parseArgs(process.argv.slice(2), process.env.CHAT_URL ?? 'ws://127.0.0.1:8080');
if (args.kind === 'help') {
  console.log(USAGE);
  process.exit(0);
}
if (args.kind === 'error') {
  console.error(`chat: ${args.message}\n${USAGE}`);
  process.exit(64);
}
const { userId, url } = args;

let socket: WebSocket | undefined;
let peer: string | undefined;
let seq = 0;
/** cids are unique per sender across runs: a node takes a repeated (cid, receiver, body) for a retry. */
const cidPrefix = randomUUID().slice(0, 8);
/** Failed attempts since the last successful connection (drives the backoff). */
let attempt = 0;
let retryTimer: NodeJS.Timeout | undefined;
let quitting = false;
const rl = createInterface({ input: process.stdin, terminal: false });
const say = (line: string) => console.log(line);

/**
 * CHAT_TOKEN; else a token minted with CHAT_AUTH_HS256_SECRET (the secret a cluster run by hand shares),
 * else with the demo's development secret; else none (authentication off).
 */
async function token(): Promise<string | undefined> {
  if (process.env.CHAT_TOKEN) return process.env.CHAT_TOKEN;
  const secret = process.env.CHAT_AUTH_HS256_SECRET || devSecret(false);
  if (!secret) return undefined;
  return mintToken({
    secret,
    sub: userId,
    ttlSec: 3600,
    ...(process.env.CHAT_AUTH_ISSUER ? { issuer: process.env.CHAT_AUTH_ISSUER } : {}),
    ...(process.env.CHAT_AUTH_AUDIENCE ? { audience: process.env.CHAT_AUTH_AUDIENCE } : {}),
  });
}

/** Acts on how an attempt ended: reconnect later, or leave with an exit status. */
function then(next: Next): void {
  if (quitting) return;
  if (next.kind === 'exit') {
    (next.code === 0 ? console.log : console.error)(`(${next.why}; exiting)`);
    quitting = true;
    rl.close();
    process.exitCode = next.code;
    return;
  }
  attempt++;
  say(`(${next.why}; reconnecting in ${(next.delayMs / 1000).toFixed(1)} s, attempt ${attempt})`);
  retryTimer = setTimeout(() => void connect(), next.delayMs);
}

async function connect(): Promise<void> {
  retryTimer = undefined;
  if (quitting) return;
  const jwt = await token();
  // Like a browser: the token rides in the subprotocol list, next to chat.v1.
  const protocols = jwt ? ['chat.v1', `${BEARER_PROTOCOL_PREFIX}${jwt}`] : ['chat.v1'];
  const ws = new WebSocket(`${url}/chat/${userId}`, protocols);
  socket = ws;
  /** Set when this attempt's outcome is decided, so the close that follows a refusal is not acted on. */
  let settled = false;
  ws.on('open', () => {
    attempt = 0;
    say(`connected as ${userId} to ${url}; type "@someone message", /help for commands, /quit to leave`);
  });
  ws.on('message', (data: Buffer) => {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(data.toString()) as Record<string, unknown>;
    } catch {
      return;
    }
    if (frame.type === 'message') {
      peer = String(frame.from);
      say(`[${String(frame.from)}] ${String(frame.body)}`);
    } else if (frame.type === 'ack' && frame.status === 'offline') {
      say(`(not delivered: nobody is connected as that user)`);
    } else if (frame.type === 'error') {
      say(`(error ${String(frame.code)}${frame.retryable ? ', try again' : ''}: ${String(frame.message)})`);
    }
  });
  // Connection errors (refused, reset) end in a 1006 close, handled there.
  ws.on('error', () => undefined);
  // The upgrade was answered with a status instead of 101: read the body's code, then decide.
  ws.on('unexpected-response', (req, res) => {
    settled = true;
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (body.length < 4096) body += chunk;
    });
    res.on('end', () => {
      let code: string | undefined;
      try {
        code = (JSON.parse(body) as { error?: unknown }).error?.toString();
      } catch {
        code = undefined;
      }
      const retryAfter = res.headers['retry-after'];
      req.destroy();
      then(afterRefusal(res.statusCode ?? 0, code, retryAfter, attempt));
    });
    res.on('error', () => undefined);
  });
  ws.on('close', (code, reason) => {
    if (settled) return;
    settled = true;
    then(afterClose(code, reason.toString(), attempt));
  });
}

rl.on('line', (line) => {
  const action = parseLine(line, peer);
  switch (action.kind) {
    case 'none':
      return;
    case 'quit':
      return void rl.close();
    case 'help':
      return say(HELP);
    case 'who':
      return say(peer ? `(talking to ${peer})` : '(talking to nobody yet: @someone message)');
    case 'unknown-command':
      return say(`(unknown command ${action.command}; /help lists them, //text sends /text)`);
    case 'usage':
      return say(`(${action.message})`);
    case 'no-peer':
      return say('(who to? start with @someone)');
    case 'set-peer':
      peer = action.to;
      return say(`(talking to ${peer}; lines without @ go to ${peer})`);
    case 'send':
      peer = action.to;
      if (socket?.readyState !== WebSocket.OPEN) return say('(not connected yet: not sent)');
      socket.send(
        JSON.stringify({ type: 'send', cid: `${cidPrefix}-${++seq}`, to: action.to, body: action.body }),
      );
  }
});
rl.on('close', () => {
  quitting = true;
  clearTimeout(retryTimer);
  // readline leaves a piped stdin open, which would keep the process alive.
  process.stdin.destroy();
  if (socket && socket.readyState !== WebSocket.CLOSED) socket.close(1000);
});

void connect();
