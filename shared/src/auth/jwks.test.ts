// Broken key sets (issue 15, item 8): a JWKS file or URL that cannot be used is logged once per change
// with its location and reason and counted; the last good set stays in use; with none, valid tokens are
// refused with AUTH_ERR_KEYS_UNAVAILABLE (retryable, HTTP 503), not AUTH_ERR_INVALID_TOKEN.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ERROR_CODES, isChatError } from '../errors.js';
import { createLogger } from '../logger.js';
import { checkHandshake } from './handshake.js';
import type { KeySourceKind } from './jwks.js';
import { createTokenVerifier, type AuthConfig } from './token.js';

type Pair = Awaited<ReturnType<typeof generateKeyPair>>;

const base: AuthConfig = {
  authMode: 'jwt',
  authHs256Secret: '',
  authJwksFile: '',
  authJwksUrl: '',
  authIssuer: 'chat',
  authAudience: 'chat',
  authAffinityClaim: 'aff',
  authClockToleranceSec: 5,
  authMaxLifetimeSec: 86_400,
};

function harness() {
  const lines: Record<string, unknown>[] = [];
  const destination = { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) };
  const counted: KeySourceKind[] = [];
  let clock = Date.now();
  return {
    lines,
    counted,
    /** Lines about the key set (not refusals). */
    keyLines: (level: string) => lines.filter((l) => l.level === level && String(l.msg).startsWith('JWKS')),
    options: {
      logger: createLogger({ name: 't', level: 'info', destination }),
      keyErrors: { inc: ({ source }: { source: KeySourceKind }) => void counted.push(source) },
      now: () => clock,
    },
    advance: (ms: number) => void (clock += ms),
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    return isChatError(err) ? err.code : String(err);
  }
}

const jwk = async (pair: Pair, kid: string) => ({
  ...(await exportJWK(pair.publicKey)),
  kid,
  alg: 'RS256',
  use: 'sig',
});
const sign = (pair: Pair, kid: string) =>
  new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', kid })
    .setSubject('bob')
    .setIssuer('chat')
    .setAudience('chat')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(pair.privateKey);

test('AUTH_ERR_KEYS_UNAVAILABLE is retryable', () => {
  assert.equal(ERROR_CODES.AUTH_ERR_KEYS_UNAVAILABLE.retryable, true);
});

test('JWKS file: broken at start, fixed, broken by a rotation (last good kept), empty, gone, unreadable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jwks-broken-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'jwks.json');
  const k1 = await generateKeyPair('RS256');
  const k2 = await generateKeyPair('RS256');
  const t1 = await sign(k1, 'k1');
  const t2 = await sign(k2, 'k2');
  let version = Date.now() / 1000;
  /** Writes the file with a modification time of its own (a rotation). */
  const write = (text: string) => {
    writeFileSync(file, text);
    version += 10;
    utimesSync(file, version, version);
  };
  const h = harness();
  write('{"keys": [ {"kty": "RSA"'); // cut off mid-write
  const verifier = createTokenVerifier({ ...base, authJwksFile: file }, h.options);
  assert.ok(verifier);

  // No good set ever: a valid token is refused as keys unavailable, and the handshake answers 503.
  assert.equal(await codeOf(verifier.verify(t1)), 'AUTH_ERR_KEYS_UNAVAILABLE');
  const req = { headers: { authorization: `Bearer ${t1}` }, url: '/chat/bob' } as unknown as IncomingMessage;
  const check = { verifier, allowQueryToken: false, allowedOrigins: [] };
  assert.deepEqual(await checkHandshake(req, 'bob', check), {
    ok: false,
    status: 503,
    code: 'AUTH_ERR_KEYS_UNAVAILABLE',
  });
  // Logged once at error with the path and the reason, counted once, however many tokens come.
  for (let i = 0; i < 5; i++) {
    h.advance(1001);
    assert.equal(await codeOf(verifier.verify(t1)), 'AUTH_ERR_KEYS_UNAVAILABLE');
  }
  let errors = h.keyLines('error');
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.location, file);
  assert.match(String(errors[0]?.reason), /^not JSON/);
  assert.equal(errors[0]?.keptKeys, 0);
  assert.deepEqual(h.counted, ['file']);
  // The refusals themselves: one warn line (rate-limited), the server's fault.
  const refusals = h.lines.filter((l) => l.code === 'AUTH_ERR_KEYS_UNAVAILABLE');
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0]?.level, 'warn');

  // Fixed: tokens pass, the recovery is logged.
  write(JSON.stringify({ keys: [await jwk(k1, 'k1')] }));
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  assert.equal(h.keyLines('info').at(-1)?.recovered, true);

  // A rotation writes a broken file: the last good set (k1) stays in use; logged and counted once.
  write('not json at all');
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  errors = h.keyLines('error');
  assert.equal(errors.length, 2);
  assert.equal(errors[1]?.keptKeys, 1);
  assert.match(String(errors[1]?.msg), /keeping the last good key set/);
  assert.deepEqual(h.counted, ['file', 'file']);

  // No keys, then no file at all, then a directory where the file was: each logged once, k1 kept.
  write('{"keys": []}');
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  rmSync(file);
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  mkdirSync(file);
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t1)), 'ok');
  errors = h.keyLines('error');
  assert.deepEqual(
    errors.slice(2).map((l) => l.reason),
    ['no keys: the "keys" array is empty', 'cannot read: ENOENT', 'cannot read: EISDIR'],
  );
  assert.equal(h.counted.length, 5);

  // A good rotation replaces the set: k2 in, k1 out.
  rmSync(file, { recursive: true });
  write(JSON.stringify({ keys: [await jwk(k2, 'k2')] }));
  h.advance(1001);
  assert.equal(await codeOf(verifier.verify(t2)), 'ok');
  assert.equal(await codeOf(verifier.verify(t1)), 'AUTH_ERR_INVALID_TOKEN');
});

test('JWKS URL: failing at start, recovered, failing later (last good kept), not hammered', async (t) => {
  const k1 = await generateKeyPair('RS256');
  const token = await sign(k1, 'u1');
  let answer: 'error' | 'good' | 'garbage' | 'empty' = 'error';
  let fetches = 0;
  const good = JSON.stringify({ keys: [await jwk(k1, 'u1')] });
  const server = createServer((_req, res) => {
    fetches++;
    if (answer === 'error') return res.writeHead(500).end('oops');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(answer === 'good' ? good : answer === 'empty' ? '{"keys":[]}' : '<html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const url = `http://127.0.0.1:${port}/jwks.json?tenant=x`;
  const h = harness();
  const verifier = createTokenVerifier({ ...base, authJwksUrl: url }, h.options);
  assert.ok(verifier);

  assert.equal(await codeOf(verifier.verify(token)), 'AUTH_ERR_KEYS_UNAVAILABLE');
  assert.equal(fetches, 1);
  // Within the cooldown: refused at once, no second fetch.
  assert.equal(await codeOf(verifier.verify(token)), 'AUTH_ERR_KEYS_UNAVAILABLE');
  assert.equal(fetches, 1);
  let errors = h.keyLines('error');
  assert.equal(errors.length, 1);
  assert.equal(errors[0]?.reason, 'HTTP 500');
  assert.equal(errors[0]?.location, `http://127.0.0.1:${port}/jwks.json`, 'no query');
  assert.deepEqual(h.counted, ['url']);
  // Still failing after the cooldown: fetched again, not logged again.
  h.advance(5000);
  assert.equal(await codeOf(verifier.verify(token)), 'AUTH_ERR_KEYS_UNAVAILABLE');
  assert.equal(fetches, 2);
  assert.equal(h.keyLines('error').length, 1);

  answer = 'good';
  h.advance(5000);
  assert.equal(await codeOf(verifier.verify(token)), 'ok');
  assert.equal(h.keyLines('info').at(-1)?.recovered, true);

  // The set ages out and the URL fails: the last good set stays in use, logged and counted once.
  answer = 'garbage';
  h.advance(600_000);
  assert.equal(await codeOf(verifier.verify(token)), 'ok');
  h.advance(5000);
  assert.equal(await codeOf(verifier.verify(token)), 'ok');
  answer = 'empty';
  h.advance(5000);
  assert.equal(await codeOf(verifier.verify(token)), 'ok');
  errors = h.keyLines('error');
  assert.deepEqual(
    errors.slice(1).map((l) => [String(l.reason).split(':')[0], l.keptKeys]),
    [
      ['not JSON', 1],
      ['no keys', 1],
    ],
  );
  assert.equal(h.counted.length, 3);

  // Unreachable: the reason says so.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
  h.advance(5000);
  assert.equal(await codeOf(verifier.verify(token)), 'ok');
  // ECONNREFUSED, or the pooled connection's reset (UND_ERR_SOCKET).
  assert.match(String(h.keyLines('error').at(-1)?.reason), /^fetch failed: [A-Z_]+$/);
  assert.equal(h.counted.length, 4);
});
