// The pieces of a refusal answered as a close (?refusal=close): which requests get one, the close code
// and reason, the frame, and reading the client's frames up to its close. End to end in ws-proxy.test.ts.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import {
  CLOSE_CODES,
  MAX_CLOSE_REASON_BYTES,
  parseRefusalReason,
  refusalReason,
  refusedCloseCode,
} from '@chat/shared';
import { closeFrame, findClose, refusalStyleOf, retryAfterMs } from './upgrade-refusal.js';

function request(url: string, headers: Record<string, string> = {}, method = 'GET'): IncomingMessage {
  return {
    url,
    method,
    headers: {
      upgrade: 'websocket',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
      ...headers,
    },
  } as unknown as IncomingMessage;
}

/** A client frame: masked, with `opcode` and `length` payload bytes (126/127 extended lengths). */
function frame(opcode: number, length: number): Buffer {
  const head =
    length < 126
      ? Buffer.from([0x80 | opcode, 0x80 | length])
      : length < 65536
        ? Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), bigLength(length)]);
  return Buffer.concat([head, Buffer.from([1, 2, 3, 4]), Buffer.alloc(length, 0x55)]);
}

function bigLength(length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(length));
  return b;
}

describe('refusalStyleOf', () => {
  test('close only with refusal=close on a valid version-13 upgrade; the accept value per RFC 6455', () => {
    const style = refusalStyleOf(request('/chat/a?x=1&refusal=close'));
    assert.deepEqual(style, { kind: 'close', accept: 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', protocol: undefined });
    for (const url of ['/chat/a', '/chat/a?refusal=CLOSE', '/chat/a?refusal=', '/chat/a?refusals=close'])
      assert.equal(refusalStyleOf(request(url)).kind, 'http', url);
  });

  test('chat.v1 is chosen only when offered', () => {
    const offered = refusalStyleOf(
      request('/chat/a?refusal=close', { 'sec-websocket-protocol': 'bearer.x , chat.v1' }),
    );
    assert.equal(offered.kind === 'close' && offered.protocol, 'chat.v1');
    const marked = refusalStyleOf(
      request('/chat/a?refusal=close', { 'sec-websocket-protocol': 'chat.v1, chat.refusal, bearer.x' }),
    );
    assert.equal(marked.kind === 'close' && marked.protocol, 'chat.refusal', 'the refusal marker first');
    const other = refusalStyleOf(request('/chat/a?refusal=close', { 'sec-websocket-protocol': 'chat.v2' }));
    assert.equal(other.kind === 'close' && other.protocol, undefined);
  });

  test('not a valid upgrade: http (no key, a bad key, another version, not GET, not websocket)', () => {
    const url = '/chat/a?refusal=close';
    const bad: IncomingMessage[] = [
      request(url, { 'sec-websocket-key': '' }),
      request(url, { 'sec-websocket-key': 'c2hvcnQ=' }),
      request(url, { 'sec-websocket-version': '8' }),
      request(url, {}, 'POST'),
      request(url, { upgrade: 'h2c' }),
    ];
    for (const req of bad) assert.equal(refusalStyleOf(req).kind, 'http');
  });
});

describe('refusedCloseCode / refusalReason / parseRefusalReason', () => {
  test('4000 + status for each refusal status, undefined for others', () => {
    assert.deepEqual(
      [400, 401, 403, 404, 429, 502, 503, 504].map(refusedCloseCode),
      [4400, 4401, 4403, 4404, 4429, 4502, 4503, 4504],
    );
    assert.deepEqual([200, 500, 431, 1, -3000].map(refusedCloseCode), [
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
    for (const [name, spec] of Object.entries(CLOSE_CODES))
      if (name.startsWith('REFUSED_')) assert.equal(refusedCloseCode(spec.code - 4000), spec.code);
  });

  test('the reason: the code, with the wait when there is one; at most 123 bytes; read back', () => {
    assert.equal(refusalReason('ROUTER_ERR_NO_NODE'), 'ROUTER_ERR_NO_NODE');
    assert.equal(refusalReason('ROUTER_ERR_NO_NODE', 1000), 'ROUTER_ERR_NO_NODE retry_after_ms=1000');
    assert.equal(refusalReason('X'.repeat(200), 5000).length, MAX_CLOSE_REASON_BYTES);
    assert.deepEqual(parseRefusalReason('NODE_ERR_FULL retry_after_ms=5000'), {
      error: 'NODE_ERR_FULL',
      retryAfterMs: 5000,
    });
    assert.deepEqual(parseRefusalReason('AUTH_ERR_TOKEN_EXPIRED'), { error: 'AUTH_ERR_TOKEN_EXPIRED' });
    assert.deepEqual(parseRefusalReason('draining retry_after_ms=x'), { error: 'draining retry_after_ms=x' });
  });
});

describe('retryAfterMs', () => {
  test('whole seconds in milliseconds; anything else is no hint', () => {
    assert.equal(retryAfterMs('1'), 1000);
    assert.equal(retryAfterMs(' 5 '), 5000);
    assert.equal(retryAfterMs(['2', '9']), 2000);
    for (const v of [undefined, '', '1.5', '-1', 'Wed, 21 Oct 2015 07:28:00 GMT', '9999999'])
      assert.equal(retryAfterMs(v), undefined, String(v));
  });
});

describe('closeFrame', () => {
  test('FIN + close, unmasked, the code big-endian and the reason', () => {
    const f = closeFrame(4429, 'ROUTER_ERR_RATE_LIMITED retry_after_ms=1000');
    assert.equal(f[0], 0x88);
    assert.equal(f[1], 2 + 43);
    assert.equal(f.readUInt16BE(2), 4429);
    assert.equal(f.subarray(4).toString(), 'ROUTER_ERR_RATE_LIMITED retry_after_ms=1000');
    assert.equal(f.length, 4 + 43);
  });
});

describe('findClose', () => {
  test('a close frame, alone or after other frames of every length form', () => {
    assert.equal(findClose(frame(0x8, 2)), 'close');
    assert.equal(findClose(Buffer.concat([frame(0x1, 5), frame(0x2, 300), frame(0x8, 0)])), 'close');
    assert.equal(findClose(Buffer.concat([frame(0x2, 70_000), frame(0x8, 2)])), 'close');
  });

  test('more while incomplete or not a close', () => {
    const close = frame(0x8, 2);
    for (let cut = 0; cut < close.length; cut++) assert.equal(findClose(close.subarray(0, cut)), 'more');
    assert.equal(findClose(frame(0x1, 3)), 'more');
    assert.equal(findClose(frame(0x9, 0)), 'more');
    assert.equal(findClose(frame(0x2, 300).subarray(0, 3)), 'more');
    assert.equal(findClose(frame(0x2, 70_000).subarray(0, 9)), 'more');
  });
});
