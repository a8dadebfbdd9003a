// The terminal chat client's pure decisions (demo/src/chat-input.ts): arguments, typed lines, and what to
// do after a refused upgrade or a close. The client itself is run end to end in chat-client.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  afterClose,
  afterRefusal,
  backoffMs,
  parseArgs,
  parseLine,
  retryAfterHeaderMs,
  retryHintMs,
} from '../../../demo/src/chat-input.js';

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

describe('afterRefusal', () => {
  test('401, 403, 400 and 404 exit 1 with the status and code; 401 says how to get a token', () => {
    const r401 = afterRefusal(401, 'AUTH_ERR_INVALID_TOKEN', undefined, 0);
    assert.equal(r401.kind, 'exit');
    assert.equal(r401.kind === 'exit' && r401.code, 1);
    assert.match(r401.why, /HTTP 401 AUTH_ERR_INVALID_TOKEN.*CHAT_TOKEN/);
    for (const status of [400, 403, 404]) {
      const r = afterRefusal(status, 'X', '5', 0);
      assert.equal(r.kind, 'exit', String(status));
      assert.match(r.why, new RegExp(`HTTP ${status} X`));
    }
    assert.equal(afterRefusal(403, undefined, undefined, 0).why.startsWith('refused: HTTP 403'), true);
  });

  test('429, 502, 503 and 504 retry after Retry-After, else after a growing backoff', () => {
    assert.deepEqual(afterRefusal(503, 'ROUTER_ERR_NO_NODE', '2', 0), {
      kind: 'retry',
      delayMs: 2000,
      why: 'refused: HTTP 503 ROUTER_ERR_NO_NODE',
    });
    assert.equal((afterRefusal(429, 'ROUTER_ERR_RATE_LIMITED', '1', 5) as { delayMs: number }).delayMs, 1000);
    const max = () => 1;
    assert.equal((afterRefusal(502, undefined, undefined, 0, max) as { delayMs: number }).delayMs, 500);
    assert.equal((afterRefusal(504, undefined, 'soon', 3, max) as { delayMs: number }).delayMs, 4000);
  });
});

describe('afterClose', () => {
  test('4001, 4002 and 4008 reconnect after the reason’s retry_after_ms hint', () => {
    for (const code of [4001, 4002, 4008]) {
      assert.deepEqual(afterClose(code, 'moved retry_after_ms=750', 9), {
        kind: 'retry',
        delayMs: 750,
        why: `disconnected: ${code} moved retry_after_ms=750`,
      });
    }
  });

  test('1006 (dropped or never opened), 4009, 1001, 1011 and 4003 reconnect with backoff', () => {
    const max = () => 1;
    for (const code of [1006, 4009, 1001, 1011, 4003, 1005]) {
      assert.deepEqual(afterClose(code, '', 1, max), {
        kind: 'retry',
        delayMs: 1000,
        why: `disconnected: ${code}`,
      });
    }
  });

  test('a normal close exits 0; policy, protocol and unknown codes exit 1', () => {
    assert.deepEqual(afterClose(1000, '', 0), { kind: 'exit', code: 0, why: 'closed by the server: 1000' });
    for (const code of [1002, 1008, 4999])
      assert.equal((afterClose(code, '', 0) as { code: number }).code, 1);
  });
});

describe('backoffMs', () => {
  test('doubles from 500 ms, jittered within [base/2, base], capped at 30 s', () => {
    assert.deepEqual(
      [0, 1, 2, 3].map((a) => backoffMs(a, () => 1)),
      [500, 1000, 2000, 4000],
    );
    assert.deepEqual(
      [0, 1, 2, 3].map((a) => backoffMs(a, () => 0)),
      [250, 500, 1000, 2000],
    );
    assert.equal(
      backoffMs(20, () => 1),
      30_000,
    );
    assert.equal(
      backoffMs(1000, () => 0),
      15_000,
    );
  });
});

describe('retryAfterHeaderMs and retryHintMs', () => {
  test('read the hints, and nothing else', () => {
    assert.equal(retryAfterHeaderMs('3'), 3000);
    assert.equal(retryAfterHeaderMs(' 1 '), 1000);
    assert.equal(retryAfterHeaderMs('Wed, 21 Oct 2015 07:28:00 GMT'), undefined);
    assert.equal(retryAfterHeaderMs(undefined), undefined);
    assert.equal(retryHintMs('draining retry_after_ms=1200'), 1200);
    assert.equal(retryHintMs('moved'), undefined);
  });
});
