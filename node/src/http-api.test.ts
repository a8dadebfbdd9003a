// The node's HTTP API over a real listener on port 0: the contract's answers, the internal token, and a
// failing handler answered with 500 instead of taking the process down.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { callNode, createLogger, type ReadyzBody } from '@chat/shared';
import { createHttpApi, type HttpApiDeps } from './http-api.js';
import { NodeMetrics } from './metrics.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const readyz: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: 'n1' };

async function serve(t: TestContext, overrides: Partial<HttpApiDeps> = {}): Promise<string> {
  const deps: HttpApiDeps = {
    nodeId: 'n1',
    logger,
    internalToken: '',
    metrics: new NodeMetrics(),
    status: () => readyz,
    presence: () => ({ localSessions: 0, remoteNodes: [] }),
    drain: () => Promise.resolve(),
    undrain: () => Promise.resolve(),
    closeSessions: () => 0,
    ...overrides,
  };
  const server = createServer(createHttpApi(deps));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('createHttpApi', () => {
  test('answers the contract: /readyz, /healthz, presence, close sessions', async (t) => {
    const closed: string[][] = [];
    const base = await serve(t, {
      closeSessions: (ids, windowMs) => {
        closed.push([...ids, String(windowMs)]);
        return ids.size;
      },
    });
    assert.deepEqual(await callNode(base, 'readyz', undefined), { ok: true, status: 200, body: readyz });
    assert.deepEqual((await callNode(base, 'healthz', undefined)).ok, true);
    const presence = await callNode(base, 'presence', undefined, { query: { user: 'alice' } });
    assert.deepEqual(presence, {
      ok: true,
      status: 200,
      body: { user: 'alice', localSessions: 0, remoteNodes: [] },
    });
    const close = await callNode(base, 'closeSessions', { connections: ['r1-1', 'r1-2'], windowMs: 10 });
    assert.deepEqual(close, { ok: true, status: 200, body: { closing: 2 } });
    assert.deepEqual(closed, [['r1-1', 'r1-2', '10']]);
  });

  test('GET /internal/shard-stats: the cumulative counts per shard, behind the internal token', async (t) => {
    const base = await serve(t, { internalToken: 'secret-token-0123456789', shardMessages: () => [3, 0, 7] });
    assert.equal((await fetch(`${base}/internal/shard-stats`)).status, 401);
    const answer = await callNode(base, 'shardStats', undefined, {
      headers: { authorization: 'Bearer secret-token-0123456789' },
    });
    assert.deepEqual(answer, { ok: true, status: 200, body: { nodeId: 'n1', messages: [3, 0, 7] } });
  });

  test('a request body with fields this version does not know is accepted (rolling deploys)', async (t) => {
    const base = await serve(t, { closeSessions: (ids) => ids.size });
    const res = await fetch(`${base}/internal/sessions/close`, {
      method: 'POST',
      body: JSON.stringify({ connections: ['r1-1'], windowMs: 0, shard: 7 }),
    });
    assert.deepEqual([res.status, await res.json()], [200, { closing: 1 }]);
  });

  test('a handler that fails is answered 500 NODE_ERR_INTERNAL and the listener keeps serving', async (t) => {
    let fail = true;
    const base = await serve(t, {
      status: () => {
        if (fail) throw new Error('bug');
        return readyz;
      },
    });
    const res = await fetch(`${base}/readyz`);
    assert.deepEqual([res.status, await res.json()], [500, { error: 'NODE_ERR_INTERNAL' }]);
    fail = false;
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });

  test('the internal API needs the token when one is set; other paths do not', async (t) => {
    const base = await serve(t, { internalToken: 'secret-token-0123456789' });
    assert.equal((await fetch(`${base}/internal/presence?user=a`)).status, 401);
    const ok = await callNode(base, 'presence', undefined, {
      query: { user: 'a' },
      headers: { authorization: 'Bearer secret-token-0123456789' },
    });
    assert.equal(ok.ok, true);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
  });
});
