// The demo's page server (demo/src/page-server.ts): the page and its bundled script, and the demo-only
// token and online endpoints with their coded refusals.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { decodeJwt } from 'jose';
import { startPageServer, PAGE_TOKEN_TTL, type PageServerOptions } from '../../../demo/src/page-server.js';

async function serve(t: { after: (fn: () => unknown) => void }, o: Partial<PageServerOptions> = {}) {
  const server = await startPageServer({
    routerUrl: 'ws://127.0.0.1:1234',
    mint: (sub, ttl) => Promise.resolve(`token-for-${sub}-${ttl}`),
    online: () => ['bob', 'alice', 'bob'],
    port: 0,
    ...o,
  });
  t.after(() => server.close());
  return server;
}

const post = (url: string, body: string) =>
  fetch(new URL('/demo/token', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });

test('serves the page, its script bundled for browsers (no Node.js built-in), with a content security policy', async (t) => {
  const server = await serve(t);
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const html = await fetch(server.url);
  assert.equal(html.status, 200);
  assert.match(await html.text(), /<script type="module" src="\/app.js">/);
  const csp = html.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'self'/);
  assert.match(
    csp,
    /connect-src 'self' ws:\/\/127\.0\.0\.1:1234/,
    'the page may reach the router and nothing else',
  );
  const script = await fetch(new URL('/app.js', server.url));
  assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
  const text = await script.text();
  assert.equal(Buffer.byteLength(text), server.scriptBytes);
  assert.doesNotMatch(text, /\bnode:|require\(/, 'nothing Node.js-only in what the browser loads');
  assert.match(text, /refusal=close|chat\.v1/, 'the SDK is in the bundle');
  assert.deepEqual(await (await fetch(new URL('/demo/config', server.url))).json(), {
    routerUrl: 'ws://127.0.0.1:1234',
  });
});

test('/demo/online lists each connected user once, sorted', async (t) => {
  const server = await serve(t);
  assert.deepEqual(await (await fetch(new URL('/demo/online', server.url))).json(), {
    users: ['alice', 'bob'],
  });
});

test('/demo/token mints for a valid user id and lifetime; the default lifetime without one', async (t) => {
  const server = await serve(t);
  assert.deepEqual(await (await post(server.url, '{"user":"alice","ttl":30}')).json(), {
    token: 'token-for-alice-30',
  });
  assert.deepEqual(await (await post(server.url, '{"user":"bob"}')).json(), {
    token: `token-for-bob-${PAGE_TOKEN_TTL.default}`,
  });
});

test('/demo/token with the demo’s real minting: a JWT for that user that expires after the lifetime asked', async (t) => {
  const { mintToken } = await import('@chat/shared');
  const server = await serve(t, {
    mint: (sub, ttlSec) => mintToken({ secret: 'x'.repeat(32), sub, ttlSec }),
  });
  const { token } = (await (await post(server.url, '{"user":"carol","ttl":60}')).json()) as { token: string };
  const claims = decodeJwt(token);
  assert.equal(claims.sub, 'carol');
  assert.equal((claims.exp ?? 0) - (claims.iat ?? 0), 60);
});

test('/demo/token refusals: coded answers for a bad body, user id, lifetime, size, method and path', async (t) => {
  const server = await serve(t);
  const cases: [string, number, string][] = [
    ['not json', 400, 'DEMO_ERR_BAD_REQUEST'],
    ['null', 400, 'DEMO_ERR_BAD_REQUEST'],
    ['{"user":"a b"}', 400, 'DEMO_ERR_BAD_USER'],
    ['{"user":""}', 400, 'DEMO_ERR_BAD_USER'],
    ['{}', 400, 'DEMO_ERR_BAD_USER'],
    [`{"user":"alice","ttl":${PAGE_TOKEN_TTL.min - 1}}`, 400, 'DEMO_ERR_BAD_TTL'],
    [`{"user":"alice","ttl":${PAGE_TOKEN_TTL.max + 1}}`, 400, 'DEMO_ERR_BAD_TTL'],
    ['{"user":"alice","ttl":"60"}', 400, 'DEMO_ERR_BAD_TTL'],
    ['{"user":"alice","ttl":1.5}', 400, 'DEMO_ERR_BAD_TTL'],
    [`{"user":"${'a'.repeat(2000)}"}`, 413, 'DEMO_ERR_TOO_LARGE'],
  ];
  for (const [body, status, code] of cases) {
    const answer = await post(server.url, body);
    const json = (await answer.json()) as { error: string; message: string };
    assert.deepEqual([answer.status, json.error], [status, code], body.slice(0, 40));
    assert.ok(json.message.length > 0);
  }
  const get = await fetch(new URL('/demo/token', server.url));
  assert.deepEqual([get.status, ((await get.json()) as { error: string }).error], [405, 'DEMO_ERR_METHOD']);
  const missing = await fetch(new URL('/nope', server.url));
  assert.deepEqual(
    [missing.status, ((await missing.json()) as { error: string }).error],
    [404, 'DEMO_ERR_NOT_FOUND'],
  );
});

test('/demo/token when the demo cannot mint (JWKS): 501 saying so; without authentication: a null token', async (t) => {
  const jwks = await serve(t, { mint: undefined });
  const refused = await post(jwks.url, '{"user":"alice"}');
  assert.equal(refused.status, 501);
  assert.equal(((await refused.json()) as { error: string }).error, 'DEMO_ERR_NO_MINT');
  const open = await serve(t, { mint: () => Promise.resolve(null) });
  assert.deepEqual(await (await post(open.url, '{"user":"alice"}')).json(), { token: null });
});

test('a minting failure is a 500 with a code, and the server keeps serving', async (t) => {
  const server = await serve(t, { mint: () => Promise.reject(new Error('key store down')) });
  const answer = await post(server.url, '{"user":"alice"}');
  assert.equal(answer.status, 500);
  assert.equal(((await answer.json()) as { error: string }).error, 'DEMO_ERR_INTERNAL');
  assert.equal((await fetch(server.url)).status, 200);
});

test('listens on loopback only, and a taken port fails the start', async (t) => {
  const server = await serve(t);
  const port = Number(new URL(server.url).port);
  await assert.rejects(serve(t, { port }), /EADDRINUSE/);
  // A request line the server cannot parse gets an answer, not a crash.
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/%', method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 404);
});
