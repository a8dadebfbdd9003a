// The SDK keeps its own copy of the few protocol facts it needs (so a browser bundle never loads
// @chat/shared's runtime); these tests hold the copies to the shared source, and cover the small pure
// modules: JWT times and the refresh time, the duplicate window, the frame reader, the error table.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  BEARER_PROTOCOL_PREFIX as SHARED_BEARER,
  Body,
  CLOSE_CODES,
  MessageFrame,
  ServerFrame,
  SUBPROTOCOL as SHARED_SUBPROTOCOL,
  REFUSAL_SUBPROTOCOL as SHARED_REFUSAL_SUBPROTOCOL,
  UserId,
  formatSince as sharedFormatSince,
  mintToken,
} from '@chat/shared';
import {
  BEARER_PROTOCOL_PREFIX,
  CLIENT_ERRORS,
  CLOSE,
  ChatError,
  closePolicy,
  IdWindow,
  MAX_BODY_CHARS,
  REFRESH_LEAD_MS,
  REFUSAL_SUBPROTOCOL,
  SUBPROTOCOL,
  USER_ID_PATTERN,
  bodyLength,
  decodeServerFrame,
  formatSince,
  refreshInMs,
  tokenTimes,
} from '@chat/client';
import { repoRoot } from '../paths.js';

describe('protocol constants match @chat/shared', () => {
  test('subprotocol and bearer prefix', () => {
    assert.equal(SUBPROTOCOL, SHARED_SUBPROTOCOL);
    assert.equal(BEARER_PROTOCOL_PREFIX, SHARED_BEARER);
    assert.equal(REFUSAL_SUBPROTOCOL, SHARED_REFUSAL_SUBPROTOCOL);
  });

  test('every close code the server uses has the same number in the SDK, and the policy knows it', () => {
    for (const [name, spec] of Object.entries(CLOSE_CODES)) {
      assert.equal((CLOSE as Record<string, number>)[name], spec.code, name);
      // The policy reconnects exactly where the server says to; 1000 too, since a server that closes
      // normally without being asked has a reason the client cannot see (docs/client.md).
      const step = closePolicy(spec.code, '');
      assert.equal(step.action === 'reconnect', spec.reconnect || name === 'NORMAL', name);
    }
  });

  test('user ids: the SDK accepts exactly what the schema accepts', () => {
    const samples = [
      'a',
      'alice',
      'A.b_c@d-e',
      'x'.repeat(128),
      'x'.repeat(129),
      '',
      'a b',
      'ä',
      'a/b',
      'a%20',
    ];
    for (const s of samples) assert.equal(USER_ID_PATTERN.test(s), UserId.safeParse(s).success, s);
  });

  test('body limit: the SDK refuses exactly what the schema refuses (code points, not UTF-16 units)', () => {
    const samples = [
      '',
      'x'.repeat(MAX_BODY_CHARS),
      'x'.repeat(MAX_BODY_CHARS + 1),
      '😀'.repeat(MAX_BODY_CHARS / 2 + 1),
      '😀'.repeat(MAX_BODY_CHARS),
      '😀'.repeat(MAX_BODY_CHARS + 1),
      'é'.repeat(MAX_BODY_CHARS + 1),
      `${'x'.repeat(MAX_BODY_CHARS)}\ud800`,
    ];
    for (const s of samples)
      assert.equal(bodyLength(s) <= MAX_BODY_CHARS, Body.safeParse(s).success, `${s.length} units`);
  });

  test('formatSince writes what the shared one writes', () => {
    const pos = { shard: 3, offset: 1841, epoch: 'k9f2c4e01ab7d' };
    assert.equal(formatSince(pos), sharedFormatSince(pos));
  });
});

describe('decodeServerFrame', () => {
  const valid = [
    { type: 'message', id: 'n1-1', from: 'alice', to: 'bob', body: 'hi', ts: 1 },
    {
      type: 'message',
      id: 'n1-2',
      from: 'alice',
      to: 'bob',
      body: '',
      ts: 1,
      pos: { shard: 3, offset: 9, epoch: 'e-1' },
    },
    { type: 'ack', cid: 'c', id: 'n1-1', status: 'delivered' },
    { type: 'ack', id: 'n1-1', status: 'offline' },
    { type: 'error', code: 'NODE_ERR_DRAINING', retryable: true, message: 'x', cid: 'c' },
    { type: 'auth_ok', cid: 'a', exp: 1795779999 },
    { type: 'resumed', recovered: false, replayed: 0, reason: 'too_old' },
  ];
  test('reads every valid server frame (each also valid for the shared schema)', () => {
    for (const f of valid) {
      assert.ok(ServerFrame.safeParse(f).success, JSON.stringify(f));
      assert.deepEqual(decodeServerFrame(JSON.stringify(f)), f);
    }
  });

  test('refuses what is not a readable v1 server frame', () => {
    const invalid = [
      'not json',
      '[]',
      'null',
      '"pong"',
      JSON.stringify({ type: 'message', id: 'x', from: 'a', to: 'b', body: 1, ts: 1 }),
      JSON.stringify({ type: 'message', id: 'x', from: 'a', to: 'b', body: '', ts: 1.5 }),
      JSON.stringify({ type: 'message', id: 'x', from: 'a', to: 'b', body: '', ts: 1, pos: { shard: 1 } }),
      JSON.stringify({ type: 'ack', id: 'x', status: 'lost' }),
      JSON.stringify({ type: 'ack', id: 'x', status: 'delivered', cid: 5 }),
      JSON.stringify({ type: 'error', code: 'X', message: 'm' }),
      JSON.stringify({ type: 'auth_ok' }),
      JSON.stringify({ type: 'resumed', recovered: 'yes', replayed: 0 }),
      JSON.stringify({ type: 'presence' }),
      JSON.stringify({ sender_id: 'a', receiver_id: 'b', text: 'seed shape' }),
    ];
    for (const text of invalid) assert.equal(decodeServerFrame(text), undefined, text);
    assert.equal(MessageFrame.safeParse(JSON.parse(invalid[4] ?? '{}')).success, false);
  });
});

describe('token times', () => {
  test('exp and iat from a real token; nothing from what is not a JWT with exp', async () => {
    const before = Math.floor(Date.now() / 1000);
    const jwt = await mintToken({ secret: 'x'.repeat(32), sub: 'alice', ttlSec: 300 });
    const times = tokenTimes(jwt);
    assert.ok(times);
    assert.ok(times.iat !== undefined && times.iat >= before && times.iat <= before + 2);
    assert.equal(times.exp, times.iat + 300);
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    assert.deepEqual(tokenTimes(`h.${b64({ exp: 5 })}.s`), { exp: 5 });
    for (const bad of [
      '',
      'abc',
      'a..b',
      `h.${b64({ sub: 'x' })}.s`,
      `h.${b64({ exp: '5' })}.s`,
      'h.!!!.s',
      'h.e30.s',
    ])
      assert.equal(tokenTimes(bad), undefined, bad);
    // A payload with UTF-8 (a user id is ASCII, but other claims need not be).
    assert.deepEqual(tokenTimes(`h.${b64({ exp: 7, name: 'Zoë 😀' })}.s`), { exp: 7 });
  });

  test('refresh 60 s before exp, or at 80% of a shorter lifetime', () => {
    const now = 1_000_000_000_000;
    const s = now / 1000;
    assert.equal(refreshInMs({ iat: s, exp: s + 3600 }, now), 3600_000 - REFRESH_LEAD_MS);
    assert.equal(refreshInMs({ iat: s, exp: s + 100 }, now), 80_000);
    assert.equal(refreshInMs({ iat: s, exp: s + 5 }, now), 4_000);
    assert.equal(refreshInMs({ exp: s + 10 }, now), 8_000, 'no iat: the lifetime runs from now');
    assert.equal(refreshInMs({ iat: s - 50, exp: s + 50 }, now), 30_000, 'a token issued a while ago');
    assert.equal(refreshInMs({ iat: s - 100, exp: s - 1 }, now), 0, 'an expired token: at once');
  });
});

describe('IdWindow', () => {
  test('drops an id seen within the window, forgets the oldest beyond it', () => {
    const w = new IdWindow(3);
    assert.equal(w.add('a'), true);
    assert.equal(w.add('a'), false);
    w.add('b');
    w.add('c');
    assert.equal(w.add('b'), false);
    w.add('d'); // 'a' leaves
    assert.equal(w.size, 3);
    assert.equal(w.add('a'), true);
    assert.equal(w.add('d'), false);
  });
});

describe('ChatError and the error table', () => {
  test('client errors carry their documented retryable flag; withCid keeps the rest', () => {
    const e = ChatError.client('CLIENT_ERR_TIMEOUT', 'late', { cid: 'c1', closeCode: 4001 });
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'ChatError');
    assert.equal(e.retryable, true);
    const f = e.withCid('c2');
    assert.deepEqual(
      [f.code, f.retryable, f.message, f.cid, f.closeCode],
      ['CLIENT_ERR_TIMEOUT', true, 'late', 'c2', 4001],
    );
    assert.equal(ChatError.client('CLIENT_ERR_CLOSED', 'x').retryable, false);
  });

  test('docs/client.md documents every CLIENT_ERR_* code with its retryable flag', () => {
    const doc = readFileSync(join(repoRoot, 'docs', 'client.md'), 'utf8');
    for (const [code, spec] of Object.entries(CLIENT_ERRORS)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` `));
      assert.ok(row, `${code} has a row in docs/client.md`);
      const cells = row.split('|').map((c) => c.trim());
      assert.equal(cells[2], spec.retryable ? 'yes' : 'no', `${code}: retryable ${spec.retryable}`);
    }
    const documented = [...doc.matchAll(/^\| `(CLIENT_ERR_[A-Z_]+)`/gm)].map((m) => m[1]);
    assert.deepEqual(documented.sort(), Object.keys(CLIENT_ERRORS).sort(), 'no stale code in the docs');
  });
});
