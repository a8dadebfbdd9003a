// The terminal chat client's pure decisions (demo/src/chat-input.ts): arguments, typed lines, and what to
// tell the user (or whether to leave) on each connection change. When and how to reconnect is the SDK's,
// tested with it (test/src/client/close-policy.test.ts, sdk-policy.test.ts); the client itself is run end
// to end in chat-client.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChatError } from '@chat/client';
import { onState, parseArgs, parseLine } from '../../../demo/src/chat-input.js';

const DEFAULT = 'ws://127.0.0.1:8080';

describe('parseArgs', () => {
  test('--help and -h ask for the usage, wherever they are', () => {
    for (const argv of [['--help'], ['-h'], ['alice', '--help'], ['-h', 'alice', 'ws://x:1']]) {
      assert.deepEqual(parseArgs(argv, DEFAULT), { kind: 'help' }, argv.join(' '));
    }
  });

  test('any other option is refused by name, never taken as a user id', () => {
    assert.deepEqual(parseArgs(['--user', 'alice'], DEFAULT), {
      kind: 'error',
      message: 'unknown option --user',
    });
    assert.deepEqual(parseArgs(['-x'], DEFAULT), { kind: 'error', message: 'unknown option -x' });
  });

  test('a user id and an optional server address', () => {
    assert.deepEqual(parseArgs(['alice'], DEFAULT), { kind: 'run', userId: 'alice', url: DEFAULT });
    assert.deepEqual(parseArgs(['bob.b@x_1', 'wss://chat.example.com:443/'], DEFAULT), {
      kind: 'run',
      userId: 'bob.b@x_1',
      url: 'wss://chat.example.com:443',
    });
  });

  test('missing or malformed arguments are errors that say which', () => {
    const kinds = (argv: string[]) => {
      const r = parseArgs(argv, DEFAULT);
      return r.kind === 'error' ? r.message : r.kind;
    };
    assert.equal(kinds([]), 'missing <userId>');
    assert.match(kinds(['al ice']), /^not a user id/);
    assert.match(kinds(['x'.repeat(129)]), /^not a user id/);
    assert.match(kinds(['alice', 'http://127.0.0.1:8080']), /^not a server address/);
    assert.match(kinds(['alice', 'ws://127.0.0.1:8080/chat/alice']), /^not a server address/);
    assert.match(kinds(['alice', DEFAULT, 'extra']), /^unexpected argument "extra"/);
  });
});

describe('parseLine', () => {
  test('commands: /quit, /help, /who; anything else starting with / is an unknown command', () => {
    assert.deepEqual(parseLine('/quit', 'bob'), { kind: 'quit' });
    assert.deepEqual(parseLine('  /help  ', undefined), { kind: 'help' });
    assert.deepEqual(parseLine('/who', 'bob'), { kind: 'who' });
    assert.deepEqual(parseLine('/nick carol', 'bob'), { kind: 'unknown-command', command: '/nick' });
    assert.deepEqual(parseLine('/', 'bob'), { kind: 'unknown-command', command: '/' });
  });

  test('a line starting with // sends the text with one slash', () => {
    assert.deepEqual(parseLine('//shrug', 'bob'), { kind: 'send', to: 'bob', body: '/shrug' });
    assert.deepEqual(parseLine('//shrug', undefined), { kind: 'no-peer' });
  });

  test('@name text sends to name, whoever the current peer is', () => {
    assert.deepEqual(parseLine('@bob hello there', 'carol'), {
      kind: 'send',
      to: 'bob',
      body: 'hello there',
    });
    assert.deepEqual(parseLine('@bob   spaced', undefined), { kind: 'send', to: 'bob', body: 'spaced' });
  });

  test('@name alone sets the peer and sends nothing', () => {
    assert.deepEqual(parseLine('@bob', 'carol'), { kind: 'set-peer', to: 'bob' });
    assert.deepEqual(parseLine('@bob   ', 'carol'), { kind: 'set-peer', to: 'bob' });
  });

  test('@ alone, @ followed by a space, or an impossible name is a usage hint, never chat text', () => {
    for (const line of ['@', '@ hello', '@bo!b hi', `@${'x'.repeat(129)} hi`]) {
      assert.equal(parseLine(line, 'carol').kind, 'usage', line);
    }
  });

  test('plain text goes to the current peer; without one it says so', () => {
    assert.deepEqual(parseLine('hi', 'bob'), { kind: 'send', to: 'bob', body: 'hi' });
    assert.deepEqual(parseLine('hi', undefined), { kind: 'no-peer' });
    assert.deepEqual(parseLine('   ', 'bob'), { kind: 'none' });
  });
});

describe('onState', () => {
  const on = (e: Parameters<typeof onState>[0], retry = 1) => onState(e, retry, 'alice', 'ws://h:1');
  const refusal = (code: string) => new ChatError(code, false, code, { closeCode: 4403 });

  test('open: says who is connected where, and how to chat', () => {
    assert.deepEqual(on({ state: 'open', attempt: 2 }), {
      kind: 'say',
      line: 'connected as alice to ws://h:1; type "@someone message", /help for commands, /quit to leave',
    });
    assert.deepEqual(on({ state: 'connecting', attempt: 0 }), { kind: 'none' });
  });

  test('reconnecting: the close (or the refusal as an HTTP status and code), the wait and the retry number', () => {
    assert.deepEqual(
      on(
        {
          state: 'reconnecting',
          attempt: 1,
          retryInMs: 1234,
          code: 4002,
          reason: 'moved retry_after_ms=1200',
        },
        3,
      ),
      {
        kind: 'say',
        line: '(disconnected: 4002 moved retry_after_ms=1200; reconnecting in 1.2 s, attempt 3)',
      },
    );
    assert.deepEqual(on({ state: 'reconnecting', attempt: 2, retryInMs: 260, code: 1006, reason: '' }), {
      kind: 'say',
      line: '(disconnected: 1006; reconnecting in 0.3 s, attempt 1)',
    });
    const noNode = new ChatError('ROUTER_ERR_NO_NODE', true, 'ROUTER_ERR_NO_NODE retry_after_ms=1000');
    assert.deepEqual(
      on({
        state: 'reconnecting',
        attempt: 2,
        retryInMs: 1490,
        code: 4503,
        reason: noNode.message,
        error: noNode,
      }),
      { kind: 'say', line: '(refused: HTTP 503 ROUTER_ERR_NO_NODE; reconnecting in 1.5 s, attempt 1)' },
    );
    const token = ChatError.client('CLIENT_ERR_TOKEN', 'the token function failed: no secret');
    assert.deepEqual(on({ state: 'reconnecting', attempt: 2, retryInMs: 100, error: token }), {
      kind: 'say',
      line: '(no token: the token function failed: no secret; reconnecting in 0.1 s, attempt 1)',
    });
  });

  test('a refused token (4401) leaves at once with status 1 and says how to get a token', () => {
    const r = on({
      state: 'reconnecting',
      attempt: 2,
      retryInMs: 100,
      code: 4401,
      reason: 'AUTH_ERR_INVALID_TOKEN',
      error: refusal('AUTH_ERR_INVALID_TOKEN'),
    });
    assert.equal(r.kind, 'exit');
    assert.equal(r.kind === 'exit' && r.code, 1);
    assert.match(r.kind === 'exit' ? r.why : '', /^refused: HTTP 401 AUTH_ERR_INVALID_TOKEN: .*CHAT_TOKEN/);
  });

  test('closed by the server for good: status 1 with the refusal or the close; closed by the user: nothing', () => {
    assert.deepEqual(
      on({
        state: 'closed',
        attempt: 1,
        code: 4403,
        reason: 'AUTH_ERR_SUBJECT_MISMATCH',
        error: refusal('AUTH_ERR_SUBJECT_MISMATCH'),
      }),
      {
        kind: 'exit',
        code: 1,
        why: 'refused: HTTP 403 AUTH_ERR_SUBJECT_MISMATCH: the token is for another user, or this origin is not allowed',
      },
    );
    assert.deepEqual(
      on({
        state: 'closed',
        attempt: 1,
        code: 4404,
        reason: '',
        error: ChatError.client('CLIENT_ERR_CONNECTION_CLOSED', 'x'),
      }),
      { kind: 'exit', code: 1, why: 'refused: HTTP 404' },
    );
    assert.deepEqual(
      on({
        state: 'closed',
        attempt: 0,
        code: 1008,
        reason: 'policy',
        error: ChatError.client('CLIENT_ERR_CONNECTION_CLOSED', 'x'),
      }),
      { kind: 'exit', code: 1, why: 'closed by the server: 1008 policy (CLIENT_ERR_CONNECTION_CLOSED)' },
    );
    assert.deepEqual(on({ state: 'closed', attempt: 0, code: 1000 }), { kind: 'none' });
  });
});
