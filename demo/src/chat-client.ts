// `npm run chat -- <userId> [ws://host:port]`: a small terminal chat client (`--help` for its usage, `/help`
// once running for its commands), built on the client SDK (@chat/client, Node 24's WebSocket): the SDK
// reconnects when that helps (a dropped connection, a draining or moved node, an overloaded router) after
// the server's hint or a growing backoff, keeps sends made meanwhile and sends them once; this file says
// what happens, and exits 1 with the reason when the server refuses it for good (a bad token, a foreign
// origin).
import { createInterface } from 'node:readline';
import { connect, type ChatError } from '@chat/client';
import { mintToken } from '@chat/shared';
import { HELP, USAGE, onState, parseArgs, parseLine } from './chat-input.js';
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
const say = (line: string) => console.log(line);

/**
 * CHAT_TOKEN; else a token minted with CHAT_AUTH_HS256_SECRET (the secret a cluster run by hand shares),
 * else with the demo's development secret; else none (authentication off). Minted tokens live an hour and
 * the SDK refreshes them in-band before they expire.
 */
function tokenSource(): (() => Promise<string>) | undefined {
  const fixed = process.env.CHAT_TOKEN;
  if (fixed) return () => Promise.resolve(fixed);
  const secret = process.env.CHAT_AUTH_HS256_SECRET || devSecret(false);
  if (!secret) return undefined;
  return () =>
    mintToken({
      secret,
      sub: userId,
      ttlSec: 3600,
      ...(process.env.CHAT_AUTH_ISSUER ? { issuer: process.env.CHAT_AUTH_ISSUER } : {}),
      ...(process.env.CHAT_AUTH_AUDIENCE ? { audience: process.env.CHAT_AUTH_AUDIENCE } : {}),
    });
}

const client = connect({ url, userId, token: tokenSource() });
let peer: string | undefined;
/** Reconnect waits since the last open connection, as the user counts them. */
let retry = 0;
let quitting = false;
const rl = createInterface({ input: process.stdin, terminal: false });

client.on('state', (e) => {
  if (quitting) return;
  retry = e.state === 'reconnecting' ? retry + 1 : 0;
  const outcome = onState(e, retry, userId, url);
  if (outcome.kind === 'say') say(outcome.line);
  if (outcome.kind === 'exit') {
    console.error(`(${outcome.why}; exiting)`);
    process.exitCode = outcome.code;
    rl.close();
  }
});
client.on('message', (m) => {
  peer = m.from;
  say(`[${m.from}] ${m.body}`);
});
client.on('error', (e) => say(`(error ${e.code}${e.retryable ? ', try again' : ''}: ${e.message})`));

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
      // Sent at once when connected, else when the SDK is back; answered once either way.
      if (client.state !== 'open') say('(not connected: sent once reconnected)');
      client.send(action.to, action.body).then(
        (ack) => {
          if (ack.status === 'offline') say('(not delivered: nobody is connected as that user)');
        },
        (err: ChatError) => {
          if (err.code !== 'CLIENT_ERR_CLOSED')
            say(`(not sent: ${err.code}${err.retryable ? ', try again' : ''}: ${err.message})`);
        },
      );
  }
});
rl.on('close', () => {
  quitting = true;
  // readline leaves a piped stdin open, which would keep the process alive.
  process.stdin.destroy();
  void client.close();
});
