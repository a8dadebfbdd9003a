import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, utimesSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
import { isChatError } from '../errors.js';
import { bearerMatches, checkHandshake, extractToken } from './handshake.js';
import { mintToken } from './mint.js';
import { createTokenVerifier, type AuthConfig } from './token.js';

const SECRET = 'a-development-secret-of-32-chars!!';
const base: AuthConfig = {
  authMode: 'jwt',
  authHs256Secret: SECRET,
  authJwksFile: '',
  authJwksUrl: '',
  authIssuer: 'chat',
  authAudience: 'chat',
  authAffinityClaim: 'aff',
  authClockToleranceSec: 0,
  authMaxLifetimeSec: 86_400,
};

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    return isChatError(err) ? err.code : String(err);
  }
}

test('a valid HS256 token gives its subject, expiry and affinity claim', async () => {
  const verifier = createTokenVerifier(base);
  assert.ok(verifier);
  const token = await mintToken({ secret: SECRET, sub: 'alice', affinity: 'team-a', ttlSec: 60 });
  const v = await verifier.verify(token);
  assert.equal(v.sub, 'alice');
  assert.equal(v.affinity, 'team-a');
  assert.ok(v.exp > Date.now() / 1000);
});

test('bad tokens get their exact codes', async () => {
  const verifier = createTokenVerifier({ ...base, authIssuer: 'chat', authAudience: 'chat-clients' });
  assert.ok(verifier);
  const good = { secret: SECRET, sub: 'alice', issuer: 'chat', audience: 'chat-clients' };
  const cases: [string, Promise<string>][] = [
    ['garbage', Promise.resolve('not.a.jwt')],
    ['empty', Promise.resolve('')],
    ['expired', mintToken({ ...good, ttlSec: -10 })],
    ['wrong signature', mintToken({ ...good, secret: 'another-secret-that-is-32-chars-long' })],
    ['alg none', Promise.resolve(new UnsecuredJWT({ sub: 'alice' }).setExpirationTime('1h').encode())],
    ['wrong audience', mintToken({ ...good, audience: 'someone-else' })],
    ['wrong issuer', mintToken({ ...good, issuer: 'evil' })],
    [
      'no sub',
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('1h')
        .setIssuer('chat')
        .setAudience('chat-clients')
        .sign(new TextEncoder().encode(SECRET)),
    ],
    [
      'no exp',
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setIssuer('chat')
        .setAudience('chat-clients')
        .sign(new TextEncoder().encode(SECRET)),
    ],
    [
      'HS512',
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS512' })
        .setSubject('alice')
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(SECRET)),
    ],
    ['bad sub', mintToken({ ...good, sub: '../etc' })],
  ];
  const expected: Record<string, string> = {
    garbage: 'AUTH_ERR_INVALID_TOKEN',
    empty: 'AUTH_ERR_INVALID_TOKEN',
    expired: 'AUTH_ERR_TOKEN_EXPIRED',
    'wrong signature': 'AUTH_ERR_INVALID_TOKEN',
    'alg none': 'AUTH_ERR_INVALID_TOKEN',
    'wrong audience': 'AUTH_ERR_INVALID_CLAIMS',
    'wrong issuer': 'AUTH_ERR_INVALID_CLAIMS',
    'no sub': 'AUTH_ERR_INVALID_CLAIMS',
    'no exp': 'AUTH_ERR_INVALID_CLAIMS',
    HS512: 'AUTH_ERR_INVALID_TOKEN',
    'bad sub': 'AUTH_ERR_INVALID_CLAIMS',
  };
  for (const [name, token] of cases)
    assert.equal(await codeOf(verifier.verify(await token)), expected[name], name);
  assert.equal(await codeOf(verifier.verify(await mintToken(good))), 'ok');
});

test('RS256 and ES256 tokens from a JWKS file, with key rotation picked up without a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jwks-'));
  const file = join(dir, 'jwks.json');
  const rsa = await generateKeyPair('RS256');
  const ec = await generateKeyPair('ES256');
  const rotated = await generateKeyPair('RS256');
  const jwk = async (key: CryptoKey, kid: string, alg: string) => ({
    ...(await exportJWK(key)),
    kid,
    alg,
    use: 'sig',
  });
  writeFileSync(
    file,
    JSON.stringify({
      keys: [await jwk(rsa.publicKey, 'k1', 'RS256'), await jwk(ec.publicKey, 'k2', 'ES256')],
    }),
  );
  const verifier = createTokenVerifier({ ...base, authHs256Secret: '', authJwksFile: file });
  assert.ok(verifier);
  const sign = (key: CryptoKey, kid: string, alg: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg, kid })
      .setSubject('bob')
      .setIssuer('chat')
      .setAudience('chat')
      .setExpirationTime('1h')
      .sign(key);
  assert.equal((await verifier.verify(await sign(rsa.privateKey, 'k1', 'RS256'))).sub, 'bob');
  assert.equal((await verifier.verify(await sign(ec.privateKey, 'k2', 'ES256'))).sub, 'bob');
  // No HS256 secret configured: HS256 tokens are refused.
  assert.equal(
    await codeOf(verifier.verify(await mintToken({ secret: SECRET, sub: 'bob' }))),
    'AUTH_ERR_INVALID_TOKEN',
  );
  // Rotation: k3 replaces k1 in the file.
  const k3 = await sign(rotated.privateKey, 'k3', 'RS256');
  assert.equal(await codeOf(verifier.verify(k3)), 'AUTH_ERR_INVALID_TOKEN');
  writeFileSync(file, JSON.stringify({ keys: [await jwk(rotated.publicKey, 'k3', 'RS256')] }));
  const later = new Date(Date.now() + 5000);
  utimesSync(file, later, later);
  const deadline = Date.now() + 5000;
  while ((await codeOf(verifier.verify(k3))) !== 'ok') {
    assert.ok(Date.now() < deadline, 'rotated key not picked up');
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(
    await codeOf(verifier.verify(await sign(rsa.privateKey, 'k1', 'RS256'))),
    'AUTH_ERR_INVALID_TOKEN',
  );
});

test('mode off gives no verifier; jwt without key material is a configuration error', () => {
  assert.equal(createTokenVerifier({ ...base, authMode: 'off' }), undefined);
  assert.throws(
    () => createTokenVerifier({ ...base, authHs256Secret: '' }),
    (e) => isChatError(e, 'CONFIG_ERR_INVALID'),
  );
});

const req = (headers: Record<string, string>, url = '/chat/alice') =>
  ({ headers, url }) as unknown as IncomingMessage;

test('tokens are found in the Authorization header, the subprotocol list, or (only if allowed) the query', () => {
  assert.deepEqual(extractToken(req({ authorization: 'Bearer abc' }), false), {
    token: 'abc',
    source: 'header',
  });
  assert.deepEqual(extractToken(req({ 'sec-websocket-protocol': 'chat.v1, bearer.x.y.z' }), false), {
    token: 'x.y.z',
    source: 'protocol',
  });
  assert.equal(extractToken(req({}, '/chat/alice?access_token=q'), false), undefined);
  assert.deepEqual(extractToken(req({}, '/chat/alice?access_token=q'), true), {
    token: 'q',
    source: 'query',
  });
  assert.equal(extractToken(req({ authorization: 'Basic abc' }), false), undefined);
});

test('the handshake check: origin allowlist, missing token, subject mismatch', async () => {
  const verifier = createTokenVerifier(base);
  const check = { verifier, allowQueryToken: false, allowedOrigins: ['https://chat.example.com'] };
  const token = await mintToken({ secret: SECRET, sub: 'alice' });
  const ok = await checkHandshake(
    req({ authorization: `Bearer ${token}`, origin: 'https://chat.example.com' }),
    'alice',
    check,
  );
  assert.equal(ok.ok, true);
  assert.deepEqual(
    await checkHandshake(
      req({ authorization: `Bearer ${token}`, origin: 'https://evil.example' }),
      'alice',
      check,
    ),
    {
      ok: false,
      status: 403,
      code: 'AUTH_ERR_ORIGIN_FORBIDDEN',
    },
  );
  assert.deepEqual(await checkHandshake(req({}), 'alice', check), {
    ok: false,
    status: 401,
    code: 'AUTH_ERR_MISSING_TOKEN',
  });
  assert.deepEqual(await checkHandshake(req({ authorization: `Bearer ${token}` }), 'mallory', check), {
    ok: false,
    status: 403,
    code: 'AUTH_ERR_SUBJECT_MISMATCH',
  });
});

test('bearer tokens for internal APIs are compared exactly', () => {
  assert.equal(bearerMatches('Bearer secret-token-1234', 'secret-token-1234'), true);
  assert.equal(bearerMatches('Bearer secret-token-1235', 'secret-token-1234'), false);
  assert.equal(bearerMatches('Bearer short', 'secret-token-1234'), false);
  assert.equal(bearerMatches(undefined, 'secret-token-1234'), false);
});

test('RS256 tokens from a JWKS URL; a new key id is fetched again (rotation)', async (t) => {
  const { createServer } = await import('node:http');
  const first = await generateKeyPair('RS256');
  const second = await generateKeyPair('RS256');
  let keys = [{ ...(await exportJWK(first.publicKey)), kid: 'u1', alg: 'RS256' }];
  let fetches = 0;
  const server = createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const verifier = createTokenVerifier({
    ...base,
    authHs256Secret: '',
    authJwksUrl: `http://127.0.0.1:${port}/jwks.json`,
  });
  assert.ok(verifier);
  const sign = (key: CryptoKey, kid: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid })
      .setSubject('carol')
      .setIssuer('chat')
      .setAudience('chat')
      .setExpirationTime('1h')
      .sign(key);
  assert.equal((await verifier.verify(await sign(first.privateKey, 'u1'))).sub, 'carol');
  assert.equal(fetches, 1);
  keys = [...keys, { ...(await exportJWK(second.publicKey)), kid: 'u2', alg: 'RS256' }];
  // The cooldown (5 s) limits re-fetches; poll (with a deadline) until the rotated key is found.
  const deadline = Date.now() + 10_000;
  const pollMs = 250;
  while ((await codeOf(verifier.verify(await sign(second.privateKey, 'u2')))) !== 'ok') {
    assert.ok(Date.now() < deadline, 'rotated key never fetched');
    await new Promise((r) => setTimeout(r, pollMs));
  }
  assert.ok(fetches >= 2);
});
