// Refused tokens are logged and counted by real router and node processes, never written out (issue 15,
// item 8): a bad signature and a 100-year token are refused at the router with their codes, and its log
// says why without the token; a broken JWKS file is logged once with its path and counted by both
// processes, valid tokens then get a retryable 503 AUTH_ERR_KEYS_UNAVAILABLE, and a fixed file is picked
// up without a restart.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { mintToken } from '@chat/shared';
import { startNode, type NodeProcess } from '../harness/node-process.js';
import { rawRequest, upgradeRequest } from '../harness/raw-http.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { pollUntil } from '../poll.js';

const SECRET = 'auth-log-test-secret-0123456789abcdef';
const OTHER_SECRET = 'some-other-secret-0123456789abcdefgh';
const ADMIN = 'admin-token-0123456789';

/** The JSON lines of a process's log file. */
function linesOf(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The status, the `error` code of the body, and the Retry-After of an upgrade with `token`. */
async function upgrade(port: number, user: string, token: string) {
  const res = await rawRequest(port, upgradeRequest(`/chat/${user}`, `Authorization: Bearer ${token}\r\n`));
  if (res.status === 101) {
    res.socket.destroy();
    return { status: 101, code: undefined, retryAfter: undefined };
  }
  const body = await new Promise<string>((resolve) => {
    let text = res.rest;
    res.socket.on('data', (b: Buffer) => (text += b.toString()));
    res.socket.once('close', () => resolve(text));
  });
  const { error } = JSON.parse(body.slice(body.indexOf('{'))) as { error: string };
  return { status: res.status, code: error, retryAfter: res.headers['retry-after'] };
}

describe('authentication failures in the logs and metrics of real processes', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  const dir = mkdtempSync(join(tmpdir(), 'auth-log-'));
  const jwksFile = join(dir, 'jwks.json');
  let node: NodeProcess;
  let router: RouterProcess;
  let pair: Awaited<ReturnType<typeof generateKeyPair>>;

  before(async () => {
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    pair = await generateKeyPair('RS256');
    writeFileSync(jwksFile, '{"keys": ['); // a rotation cut off mid-write, before the processes start
    const env = {
      CHAT_AUTH_MODE: 'jwt',
      CHAT_AUTH_HS256_SECRET: SECRET,
      CHAT_AUTH_JWKS_FILE: jwksFile,
    };
    node = await startNode(cleanup, { nodeId: 'l1', env });
    router = await startRouter(cleanup, {
      ...env,
      CHAT_ROUTER_NODES: `l1=http://127.0.0.1:${node.port}`,
      CHAT_ROUTER_ADMIN_TOKEN: ADMIN,
    });
    await pollUntil(async () => (await router.members()).ringSize === 1, { what: 'the node in the ring' });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('bad tokens are refused with their codes, and logged with the reason but never the token', async () => {
    const wrong = await mintToken({ secret: OTHER_SECRET, sub: 'alice' });
    const now = Math.floor(Date.now() / 1000);
    const century = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer('chat')
      .setAudience('chat')
      .setIssuedAt(now)
      .setExpirationTime(now + 100 * 365 * 86_400)
      .sign(new TextEncoder().encode(SECRET));
    assert.deepEqual(await upgrade(router.port, 'alice', wrong), {
      status: 401,
      code: 'AUTH_ERR_INVALID_TOKEN',
      retryAfter: undefined,
    });
    assert.equal((await upgrade(router.port, 'alice', century)).code, 'AUTH_ERR_LIFETIME_TOO_LONG');
    assert.equal(
      await router.metric('chat_router_auth_failures_total', { code: 'AUTH_ERR_INVALID_TOKEN' }),
      1,
    );
    assert.equal(
      await router.metric('chat_router_auth_failures_total', { code: 'AUTH_ERR_LIFETIME_TOO_LONG' }),
      1,
    );
    const refused = await pollUntil(
      () => {
        const lines = linesOf(router.logFile).filter((l) => l.msg === 'authentication refused');
        return lines.length >= 2 && lines;
      },
      { what: 'two refusal lines in the router log' },
    );
    const byCode = new Map(refused.map((l) => [l.code, l]));
    assert.equal(byCode.get('AUTH_ERR_INVALID_TOKEN')?.user, 'alice');
    assert.match(String(byCode.get('AUTH_ERR_INVALID_TOKEN')?.reason), /signature/);
    assert.match(String(byCode.get('AUTH_ERR_LIFETIME_TOO_LONG')?.reason), /at most 86400 s/);
    const log = readFileSync(router.logFile, 'utf8');
    for (const token of [wrong, century]) {
      assert.ok(!log.includes(token), 'a token in the log');
      assert.ok(!log.includes(token.split('.')[2] ?? '-'), 'a signature in the log');
    }
  });

  test('a broken JWKS file: logged and counted once, valid tokens get a retryable 503, a fixed file is used', async () => {
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'r1' })
      .setSubject('bob')
      .setIssuer('chat')
      .setAudience('chat')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(pair.privateKey);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(await upgrade(router.port, 'bob', token), {
        status: 503,
        code: 'AUTH_ERR_KEYS_UNAVAILABLE',
        retryAfter: '5',
      });
    }
    // The node, reached directly, answers the same.
    assert.deepEqual(await upgrade(node.port, 'bob', token), {
      status: 503,
      code: 'AUTH_ERR_KEYS_UNAVAILABLE',
      retryAfter: '5',
    });
    assert.equal(
      await node.metric('chat_node_auth_failures_total', { code: 'AUTH_ERR_KEYS_UNAVAILABLE' }),
      1,
    );
    for (const proc of [router, node]) {
      const errors = linesOf(proc.logFile).filter((l) => l.level === 'error' && l.msg !== undefined);
      const jwks = errors.filter((l) => String(l.msg).startsWith('JWKS not loaded'));
      assert.equal(jwks.length, 1, `one JWKS error line in ${proc.logFile}`);
      assert.equal(jwks[0]?.location, jwksFile);
      assert.match(String(jwks[0]?.reason), /^not JSON/);
    }
    assert.equal(await router.metric('chat_router_auth_key_errors_total', { source: 'file' }), 1);
    assert.equal(await node.metric('chat_node_auth_key_errors_total', { source: 'file' }), 1);

    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'r1', alg: 'RS256', use: 'sig' };
    writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
    // Router and node each look at the file at most once a second.
    await pollUntil(async () => (await upgrade(router.port, 'bob', token)).status === 101, {
      what: 'the fixed JWKS file picked up by router and node',
    });
    assert.equal(await router.metric('chat_router_auth_key_errors_total', { source: 'file' }), 1);
  });
});
