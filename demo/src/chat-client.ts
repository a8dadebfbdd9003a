// `npm run chat <userId> [ws://host:port]`: a small terminal chat client. Type `@bob hello` to send, a
// line without `@` goes to the last person you wrote to or heard from, `/quit` to leave. Reconnects by
// itself when the server asks (close codes 4001 and 4002, after the retry hint in the reason).
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { BEARER_PROTOCOL_PREFIX, mintToken } from '@chat/shared';
import { devSecret } from './dev-secret.js';

const [userId, base = process.env.CHAT_URL ?? 'ws://127.0.0.1:8080'] = process.argv.slice(2);
if (!userId || !/^[A-Za-z0-9._@-]{1,128}$/.test(userId)) {
  console.error('usage: npm run chat <userId> [ws://host:port]   (user ids: A-Z a-z 0-9 . _ @ -)');
  process.exit(64);
}

let socket: WebSocket | undefined;
let peer: string | undefined;
let seq = 0;
let quitting = false;
const rl = createInterface({ input: process.stdin, terminal: false });
const say = (line: string) => console.log(line);

/** CHAT_TOKEN, else a token minted with the demo's development secret, else none (auth off). */
async function token(): Promise<string | undefined> {
  if (process.env.CHAT_TOKEN) return process.env.CHAT_TOKEN;
  const secret = devSecret(false);
  return secret && userId ? mintToken({ secret, sub: userId, ttlSec: 3600 }) : undefined;
}

async function connect(): Promise<void> {
  const jwt = await token();
  // Like a browser: the token rides in the subprotocol list, next to chat.v1.
  const protocols = jwt ? ['chat.v1', `${BEARER_PROTOCOL_PREFIX}${jwt}`] : ['chat.v1'];
  const ws = new WebSocket(`${base.replace(/\/$/, '')}/chat/${userId}`, protocols);
  socket = ws;
  ws.on('open', () => say(`connected as ${userId}; type "@someone message", /quit to leave`));
  ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as Record<string, unknown>;
    if (frame.type === 'message') {
      peer = String(frame.from);
      say(`[${String(frame.from)}] ${String(frame.body)}`);
    } else if (frame.type === 'ack' && frame.status === 'offline') {
      say(`(not delivered: nobody is connected as that user)`);
    } else if (frame.type === 'error') {
      say(`(error ${String(frame.code)}${frame.retryable ? ', try again' : ''}: ${String(frame.message)})`);
    }
  });
  ws.on('error', (err) => say(`(connection error: ${err.message})`));
  ws.on('unexpected-response', (_req, res) => {
    say(`(refused: HTTP ${res.statusCode}; a token? set CHAT_TOKEN, see npm run token)`);
  });
  ws.on('close', (code, reason) => {
    if (quitting) return;
    const hint = /retry_after_ms=(\d+)/.exec(reason.toString());
    const delay = code === 4001 || code === 4002 ? Number(hint?.[1] ?? 500) : 2000;
    say(
      `(disconnected: ${code}${reason.length ? ` ${reason.toString()}` : ''}; reconnecting in ${delay} ms)`,
    );
    setTimeout(() => void connect(), delay);
  });
}

rl.on('line', (line) => {
  const text = line.trim();
  if (text === '') return;
  if (text === '/quit') return void rl.close();
  const m = /^@([A-Za-z0-9._@-]+)\s+(.*)$/.exec(text);
  const to = m?.[1] ?? peer;
  const body = m?.[2] ?? text;
  if (!to) return say('(who to? start with @someone)');
  peer = to;
  if (socket?.readyState !== WebSocket.OPEN) return say('(not connected yet)');
  socket.send(JSON.stringify({ type: 'send', cid: String(++seq), to, body }));
});
rl.on('close', () => {
  quitting = true;
  socket?.close(1000);
});

void connect();
