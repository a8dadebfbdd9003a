// Issuer and audience by default, the lifetime cap, a future `iat`, and the refusal log (issue 15, item 8).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import { commonConfigSchema } from '../config/schemas.js';
import { isChatError } from '../errors.js';
import { createLogger } from '../logger.js';
import { checkHandshake } from './handshake.js';
import { mintToken } from './mint.js';
import { createTokenVerifier, type AuthConfig } from './token.js';

const SECRET = 'a-development-secret-of-32-chars!!';
const KEY = new TextEncoder().encode(SECRET);
const defaults: AuthConfig = {
  authMode: 'jwt',
  authHs256Secret: SECRET,
  authJwksFile: '',
  authJwksUrl: '',
  authIssuer: commonConfigSchema.authIssuer.default,
  authAudience: commonConfigSchema.authAudience.default,
  authAffinityClaim: 'aff',
  authClockToleranceSec: commonConfigSchema.authClockToleranceSec.default,
  authMaxLifetimeSec: commonConfigSchema.authMaxLifetimeSec.default,
};

function capture() {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = {
    write: (s: string) => {
      raw.push(s);
      lines.push(JSON.parse(s) as Record<string, unknown>);
    },
  };
  return { lines, raw, logger: createLogger({ name: 't', level: 'info', destination }) };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    return isChatError(err) ? err.code : String(err);
  }
}

const nowSec = () => Math.floor(Date.now() / 1000);

/** A token with exactly these time claims (`iat` omitted when undefined). */
function timed(claims: { iat?: number; exp: number; iss?: string; aud?: string }): Promise<string> {
  let jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setIssuer(claims.iss ?? 'chat')
    .setAudience(claims.aud ?? 'chat')
    .setExpirationTime(claims.exp);
  if (claims.iat !== undefined) jwt = jwt.setIssuedAt(claims.iat);
  return jwt.sign(KEY);
}

test('by default the issuer and audience are checked: the defaults are what mintToken puts in', async () => {
  assert.equal(defaults.authIssuer, 'chat');
  assert.equal(defaults.authAudience, 'chat');
  const verifier = createTokenVerifier(defaults);
  assert.ok(verifier);
  assert.equal(await codeOf(verifier.verify(await mintToken({ secret: SECRET, sub: 'alice' }))), 'ok');
  const bare = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(KEY);
  assert.equal(await codeOf(verifier.verify(await bare)), 'AUTH_ERR_INVALID_CLAIMS', 'no iss, no aud');
  assert.equal(
    await codeOf(verifier.verify(await mintToken({ secret: SECRET, sub: 'alice', audience: 'billing' }))),
    'AUTH_ERR_INVALID_CLAIMS',
    'a token for another service',
  );
  assert.equal(
    await codeOf(verifier.verify(await mintToken({ secret: SECRET, sub: 'alice', issuer: 'elsewhere' }))),
    'AUTH_ERR_INVALID_CLAIMS',
  );
});

test('`*` turns the issuer or audience check off, with a warning at start-up', async () => {
  const { lines, logger } = capture();
  const verifier = createTokenVerifier({ ...defaults, authIssuer: '*', authAudience: '*' }, { logger });
  assert.ok(verifier);
  const warning = lines.find((l) => l.level === 'warn');
  assert.ok(warning, 'a start-up warning');
  assert.match(String(warning.msg), /not checked/);
  const other = await mintToken({ secret: SECRET, sub: 'alice', issuer: 'x', audience: 'y' });
  assert.equal(await codeOf(verifier.verify(other)), 'ok');
  // Checked (the default): no warning.
  const quiet = capture();
  createTokenVerifier(defaults, { logger: quiet.logger });
  assert.equal(quiet.lines.filter((l) => l.level === 'warn').length, 0);
});

test('a lifetime beyond CHAT_AUTH_MAX_LIFETIME_SEC is refused with AUTH_ERR_LIFETIME_TOO_LONG', async () => {
  assert.equal(defaults.authMaxLifetimeSec, 86_400);
  const verifier = createTokenVerifier(defaults);
  assert.ok(verifier);
  const now = nowSec();
  const hundredYears = await timed({ iat: now, exp: now + 100 * 365 * 86_400 });
  assert.equal(await codeOf(verifier.verify(hundredYears)), 'AUTH_ERR_LIFETIME_TOO_LONG');
  assert.equal(
    await codeOf(verifier.verify(await timed({ iat: now, exp: now + 86_401 }))),
    'AUTH_ERR_LIFETIME_TOO_LONG',
  );
  assert.equal(
    await codeOf(verifier.verify(await timed({ iat: now, exp: now + 86_400 }))),
    'ok',
    'exactly the cap',
  );
  // Issued an hour ago for 24 h: the cap counts from iat, not now.
  assert.equal(
    await codeOf(verifier.verify(await timed({ iat: now - 3600, exp: now + 86_400 - 3600 }))),
    'ok',
  );
  assert.equal(
    await codeOf(verifier.verify(await timed({ iat: now - 3600, exp: now + 86_400 }))),
    'AUTH_ERR_LIFETIME_TOO_LONG',
  );
  // Without iat the cap counts from now.
  assert.equal(
    await codeOf(verifier.verify(await timed({ exp: now + 2 * 86_400 }))),
    'AUTH_ERR_LIFETIME_TOO_LONG',
  );
  assert.equal(await codeOf(verifier.verify(await timed({ exp: now + 3600 }))), 'ok');
  // A configured cap.
  const short = createTokenVerifier({ ...defaults, authMaxLifetimeSec: 600 });
  assert.ok(short);
  assert.equal(
    await codeOf(short.verify(await mintToken({ secret: SECRET, sub: 'alice' }))),
    'AUTH_ERR_LIFETIME_TOO_LONG',
  );
  assert.equal(
    await codeOf(short.verify(await mintToken({ secret: SECRET, sub: 'alice', ttlSec: 600 }))),
    'ok',
  );
});

test('an iat in the future beyond the clock tolerance is refused with AUTH_ERR_ISSUED_IN_FUTURE', async () => {
  const verifier = createTokenVerifier({ ...defaults, authClockToleranceSec: 5 });
  assert.ok(verifier);
  const now = nowSec();
  assert.equal(
    await codeOf(verifier.verify(await timed({ iat: now + 3600, exp: now + 7200 }))),
    'AUTH_ERR_ISSUED_IN_FUTURE',
  );
  assert.equal(
    await codeOf(verifier.verify(await timed({ iat: now + 60, exp: now + 3600 }))),
    'AUTH_ERR_ISSUED_IN_FUTURE',
  );
  // Within the tolerance (a clock a few seconds ahead): accepted.
  assert.equal(await codeOf(verifier.verify(await timed({ iat: now + 3, exp: now + 3600 }))), 'ok');
});

test('refusals are logged with code and reason, never the token, at most one line per code per interval', async () => {
  const { lines, raw, logger } = capture();
  let clock = Date.now();
  const verifier = createTokenVerifier(defaults, { logger, refusalLogIntervalMs: 10_000, now: () => clock });
  assert.ok(verifier);
  const wrong = await mintToken({ secret: 'another-secret-that-is-32-chars-long', sub: 'alice' });
  for (let i = 0; i < 50; i++) await codeOf(verifier.verify(wrong, { user: 'alice' }));
  const now = nowSec();
  const long = await timed({ iat: now, exp: now + 10 * 86_400 });
  assert.equal(await codeOf(verifier.verify(long, { user: 'alice' })), 'AUTH_ERR_LIFETIME_TOO_LONG');
  let refusals = lines.filter((l) => l.msg === 'authentication refused');
  assert.equal(refusals.length, 2, 'one line per code');
  const [first, second] = refusals;
  assert.equal(first?.code, 'AUTH_ERR_INVALID_TOKEN');
  assert.equal(first?.level, 'info');
  assert.equal(first?.user, 'alice');
  assert.equal(first?.alg, 'HS256');
  assert.match(String(first?.reason), /signature/);
  assert.equal(second?.code, 'AUTH_ERR_LIFETIME_TOO_LONG');
  assert.match(String(second?.reason), /at most 86400 s/);
  // After the interval, one line with the count held back.
  clock += 10_000;
  await codeOf(verifier.verify(wrong));
  refusals = lines.filter((l) => l.msg === 'authentication refused');
  assert.equal(refusals.length, 3);
  assert.equal(refusals[2]?.suppressed, 49);
  // Never the token, nor its signature.
  const signature = wrong.split('.')[2] ?? '';
  for (const line of raw) {
    assert.ok(!line.includes(wrong), 'token in a log line');
    assert.ok(!line.includes(signature), 'signature in a log line');
  }
});

test('without a logger nothing is logged and nothing throws', async () => {
  const verifier = createTokenVerifier(defaults);
  assert.ok(verifier);
  assert.equal(await codeOf(verifier.verify('garbage')), 'AUTH_ERR_INVALID_TOKEN');
  verifier.refused?.('AUTH_ERR_MISSING_TOKEN', 'no token');
});

test('the handshake check logs its own refusals (no token, another user, a foreign origin) with the user', async () => {
  const { lines, raw, logger } = capture();
  const verifier = createTokenVerifier(defaults, { logger });
  const check = { verifier, allowQueryToken: false, allowedOrigins: ['https://chat.example.com'] };
  const req = (headers: Record<string, string>) =>
    ({ headers, url: '/chat/alice' }) as unknown as IncomingMessage;
  const bobs = await mintToken({ secret: SECRET, sub: 'bob' });
  assert.equal((await checkHandshake(req({}), 'alice', check)).ok, false);
  assert.equal((await checkHandshake(req({ authorization: `Bearer ${bobs}` }), 'alice', check)).ok, false);
  assert.equal((await checkHandshake(req({ origin: 'https://evil.example' }), 'alice', check)).ok, false);
  const refusals = lines.filter((l) => l.msg === 'authentication refused');
  assert.deepEqual(
    refusals.map((l) => [l.code, l.user]),
    [
      ['AUTH_ERR_MISSING_TOKEN', 'alice'],
      ['AUTH_ERR_SUBJECT_MISMATCH', 'alice'],
      ['AUTH_ERR_ORIGIN_FORBIDDEN', 'alice'],
    ],
  );
  assert.equal(refusals[2]?.origin, 'https://evil.example');
  assert.ok(!raw.some((line) => line.includes(bobs)));
});
