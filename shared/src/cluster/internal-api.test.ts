import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { callNode } from './internal-api.js';

async function serve(t: TestContext, answer: (path: string) => [number, string]): Promise<string> {
  const server = createServer((req, res) => {
    const [status, body] = answer(req.url ?? '');
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const ready = '{"ready":true,"accepting":true,"draining":false,"bus":true,"nodeId":"n1"}';

describe('callNode', () => {
  test('keeps a path in the base URL (a node behind a path-routed ingress)', async (t) => {
    const paths: string[] = [];
    const base = await serve(t, (path) => {
      paths.push(path);
      return [200, ready];
    });
    assert.equal((await callNode(`${base}/nodes/n1/`, 'readyz', undefined)).ok, true);
    assert.equal((await callNode(`${base}/nodes/n1`, 'readyz', undefined)).ok, true);
    assert.deepEqual(paths, ['/nodes/n1/readyz', '/nodes/n1/readyz']);
  });

  test('a 503 /readyz with a valid body is an answer; other failures say why', async (t) => {
    const base = await serve(t, (path) =>
      path === '/readyz'
        ? [503, ready.replace('"ready":true', '"ready":false')]
        : [400, '{"error":"NODE_ERR_BAD_REQUEST"}'],
    );
    const r = await callNode(base, 'readyz', undefined);
    assert.equal(r.ok && r.status === 503 && !r.body.ready, true);
    assert.deepEqual(await callNode(base, 'closeSessions', { connections: [] }), {
      ok: false,
      status: 400,
      error: 'NODE_ERR_BAD_REQUEST',
    });
  });

  test('a body that breaks the contract, or no answer at all, is not ok', async (t) => {
    const base = await serve(t, () => [200, '{"ready":"yes"}']);
    assert.deepEqual(await callNode(base, 'readyz', undefined), {
      ok: false,
      status: 200,
      error: 'answer breaks the internal contract',
    });
    const refused = await callNode('http://127.0.0.1:1', 'readyz', undefined, { timeoutMs: 500 });
    assert.equal(refused.ok, false);
    assert.equal(refused.status, 0);
  });
});
