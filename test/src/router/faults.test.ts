// Every way an upgrade through the router can go wrong: the expected HTTP status or close, a metric, and
// no socket left open on the router or the upstream afterwards.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { AFFINITY_HEADER, CONNECTION_ID_HEADER } from '@chat/shared';
import { FakeUpstream } from '../harness/fake-upstream.js';
import { startNode } from '../harness/node-process.js';
import { rawConnect, rawRequest, upgradeRequest } from '../harness/raw-http.js';
import { startRouter, type RouterProcess } from '../harness/router-process.js';
import { TestClient } from '../harness/ws-client.js';
import { pollUntil } from '../poll.js';

describe('router fault handling', () => {
  const cleanups: (() => unknown)[] = [];
  const cleanup = { after: (fn: () => unknown) => cleanups.push(fn) };
  let fake: FakeUpstream;
  let router: RouterProcess;

  before(async () => {
    fake = await FakeUpstream.start(cleanup);
    router = await startRouter(cleanup, {
      CHAT_ROUTER_NODES: `fake=${fake.url}`,
      CHAT_ROUTER_HANDSHAKE_TIMEOUT_MS: '500',
      CHAT_ROUTER_AFFINITY_QUERY: 'true',
      CHAT_HTTP_MAX_HEADER_BYTES: '8192',
    });
    await pollUntil(async () => (await router.members()).ringSize === 1, { what: 'fake in the ring' });
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  /** Zero leaked sockets: the router's gauges and the fake's own count go back to 0. */
  async function noLeaks(r: RouterProcess = router, upstream: FakeUpstream = fake): Promise<void> {
    await pollUntil(
      async () =>
        (await r.metric('chat_router_open_sockets', { side: 'client' })) === 0 &&
        (await r.metric('chat_router_open_sockets', { side: 'upstream' })) === 0 &&
        (await r.metric('chat_router_proxied_connections')) === 0 &&
        upstream.sockets.size === 0,
      { timeoutMs: 10_000, what: 'no open sockets on router and upstream' },
    );
  }

  async function expectStatus(request: string, status: number, result?: string): Promise<void> {
    const before = result ? await router.metric('chat_router_upgrades_total', { result }) : 0;
    const res = await rawRequest(router.port, request);
    assert.equal(res.status, status, request.split('\r\n')[0]);
    assert.equal(res.headers.connection?.toLowerCase(), 'close');
    res.socket.destroy();
    if (result) assert.equal(await router.metric('chat_router_upgrades_total', { result }), before + 1);
    await noLeaks();
  }

  test('unknown paths get 404; bad user ids and affinity keys 400', async () => {
    await expectStatus(upgradeRequest('/nope'), 404, 'not_found');
    await expectStatus(upgradeRequest('/chat/a/b'), 404, 'not_found');
    await expectStatus(upgradeRequest('/chat/'), 400, 'bad_request');
    await expectStatus(upgradeRequest('/chat/bad%20id'), 400, 'bad_request');
    await expectStatus(upgradeRequest('/chat/..%2F..%2Fetc'), 400, 'bad_request');
    await expectStatus(upgradeRequest(`/chat/${'x'.repeat(200)}`), 400, 'bad_request');
    await expectStatus(upgradeRequest('/chat/ok-a?affinity=a%2Fb'), 400, 'bad_request');
    assert.equal((await fetch(router.httpUrl('/nope'))).status, 404);
  });

  test('malformed upgrade requests get 400', async () => {
    await expectStatus(upgradeRequest('/chat/ok-a').replace('GET', 'POST'), 400, 'bad_request');
    await expectStatus(
      upgradeRequest('/chat/ok-a').replace('Upgrade: websocket', 'Upgrade: h2c'),
      400,
      'bad_request',
    );
    const before = await router.metric('chat_router_bad_requests_total', { reason: 'malformed' });
    await expectStatus('GARBAGE\r\n\r\n', 400);
    assert.equal(await router.metric('chat_router_bad_requests_total', { reason: 'malformed' }), before + 1);
  });

  test('oversize headers get 431', async () => {
    const before = await router.metric('chat_router_bad_requests_total', { reason: 'header_too_large' });
    await expectStatus(upgradeRequest('/chat/ok-a', `X-Big: ${'a'.repeat(10_000)}\r\n`), 431);
    assert.equal(
      await router.metric('chat_router_bad_requests_total', { reason: 'header_too_large' }),
      before + 1,
    );
  });

  test('a handshake the node never answers gets 504 after the timeout', async () => {
    await expectStatus(upgradeRequest('/chat/silent-1'), 504, 'upstream_timeout');
  });

  test('the node resetting before its 101 gives 502', async () => {
    await expectStatus(upgradeRequest('/chat/reset-1'), 502, 'upstream_refused');
  });

  for (const [how, user] of [
    ['closing (FIN)', 'silent-2'],
    ['resetting (TCP RST)', 'silent-3'],
  ] as const) {
    test(`the client ${how} before the node’s 101 aborts the upstream request`, async () => {
      const before = await router.metric('chat_router_upgrades_total', { result: 'client_gone' });
      const socket = await rawConnect(router.port);
      socket.on('error', () => undefined);
      socket.write(upgradeRequest(`/chat/${user}`));
      await pollUntil(() => fake.sockets.size === 1, { what: 'upstream reached' });
      if (how === 'closing (FIN)') socket.destroy();
      else socket.resetAndDestroy();
      await noLeaks();
      assert.equal(await router.metric('chat_router_upgrades_total', { result: 'client_gone' }), before + 1);
    });
  }

  test('a client that never finishes its request head gets 408', async () => {
    const before = await router.metric('chat_router_bad_requests_total', { reason: 'timeout' });
    const socket = await rawConnect(router.port);
    socket.on('error', () => undefined);
    const response = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (b: Buffer) => (text += b.toString()));
      socket.once('close', () => resolve(text));
    });
    socket.write('GET /chat/ok-slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    assert.match(await response, /^HTTP\/1\.1 408 /);
    assert.equal(await router.metric('chat_router_bad_requests_total', { reason: 'timeout' }), before + 1);
    await noLeaks();
  });

  test('the client resetting after the 101 closes the upstream too', async (t) => {
    const client = await TestClient.connect(t, router.wsUrl('ok-reset'), []);
    client.send('echo');
    await client.next((f) => f === 'echo');
    assert.equal(await router.metric('chat_router_proxied_connections'), 1);
    (client.ws as unknown as { _socket: { destroy(): void } })._socket.destroy();
    await noLeaks();
  });

  test('the node dying mid-stream closes the client (1006) and counts the close', async (t) => {
    const before = await router.metric('chat_router_connections_closed_total', { by: 'upstream' });
    const client = await TestClient.connect(t, router.wsUrl('die-1'), []);
    assert.equal((await client.closed).code, 1006);
    await noLeaks();
    assert.equal(await router.metric('chat_router_connections_closed_total', { by: 'upstream' }), before + 1);
  });

  test('a proxied connection works both ways and a normal close leaves nothing behind', async (t) => {
    const client = await TestClient.connect(t, router.wsUrl('ok-normal'), []);
    for (let i = 0; i < 20; i++) client.send(`m${i}`);
    await client.waitCount((f) => typeof f === 'string' && f.startsWith('m'), 20);
    await client.close();
    await noLeaks();
  });

  test('the node is told the affinity key (query where allowed, else the user) and the connection id', async (t) => {
    for (const [query, key] of [
      [undefined, 'ok-hdr'],
      ['affinity=team-x', 'team-x'],
    ] as const) {
      const client = await TestClient.connect(t, router.wsUrl('ok-hdr', query), []);
      const seen = fake.upgrades.at(-1);
      assert.equal(seen?.url.split('?')[0], '/chat/ok-hdr');
      assert.equal(seen?.headers[AFFINITY_HEADER], key);
      assert.match(String(seen?.headers[CONNECTION_ID_HEADER]), /^[0-9a-f]{6}-[0-9a-z]+$/);
      await client.close();
    }
    await noLeaks();
  });

  test('the owner refuses the connection: 502 ROUTER_ERR_UPSTREAM_REFUSED with Retry-After, no other node tried', async (t) => {
    const a = await FakeUpstream.start(t, 'a');
    const b = await FakeUpstream.start(t, 'b');
    const r = await startRouter(t, {
      CHAT_ROUTER_NODES: `a=${a.url},b=${b.url}`,
      // Probes so rare that the table still holds a node after it went away: the connect path decides.
      CHAT_ROUTER_PROBE_INTERVAL_MS: '60000',
      CHAT_ROUTER_PROBE_FAILURES: '100',
    });
    await pollUntil(async () => (await r.members()).ringSize === 2, { what: 'a and b in the table' });
    const keys = Array.from({ length: 50 }, (_, i) => `ok-${i}`);
    const owners = await r.lookup(keys);
    const keyOnA = keys.find((_, i) => owners[i] === 'a') ?? '';
    const keyOnB = keys.find((_, i) => owners[i] === 'b') ?? '';
    assert.ok(keyOnA && keyOnB);
    await a.close();
    for (let i = 1; i <= 2; i++) {
      const res = await rawRequest(r.port, upgradeRequest(`/chat/${keyOnA}`));
      assert.equal(res.status, 502);
      assert.equal(res.headers['retry-after'], '1', 'retryable: the client comes back');
      assert.match(res.rest, /"error":"ROUTER_ERR_UPSTREAM_REFUSED"/, 'written with the head');
      res.socket.destroy();
      assert.equal(await r.metric('chat_router_upgrades_total', { result: 'upstream_refused' }), i);
    }
    // Only a's shards are refused, and b never got a's connections (it does not read their partitions).
    assert.equal(b.sockets.size, 0);
    const client = await TestClient.connect(t, r.wsUrl(keyOnB), []);
    client.send('on b');
    await client.next((f) => f === 'on b');
    await client.close();
    await noLeaks(r, b);
  });

  test('no node available: 503 with Retry-After', async (t) => {
    const gone = await FakeUpstream.start(t);
    await gone.close();
    const r = await startRouter(t, { CHAT_ROUTER_NODES: `gone=${gone.url}` });
    const res = await rawRequest(r.port, upgradeRequest('/chat/ok-1'));
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '1');
    res.socket.destroy();
    assert.equal(await r.metric('chat_router_upgrades_total', { result: 'no_node' }), 1);
    assert.equal((await fetch(r.httpUrl('/readyz'))).status, 503);
    const ws = new WebSocket(r.wsUrl('ok-2'));
    ws.on('error', () => undefined);
    const [, response] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(response.statusCode, 503);
    ws.terminate();
  });
});

test('SIGTERM on a router: its clients are asked to reconnect (4002) and it exits 0', async (t) => {
  const node = await startNode(t, { nodeId: 'behind' });
  const r = await startRouter(t, { CHAT_ROUTER_NODES: `behind=http://127.0.0.1:${node.port}` });
  await pollUntil(async () => (await r.members()).ringSize === 1, { what: 'node in the ring' });
  const clients = await Promise.all(['s1', 's2', 's3'].map((u) => TestClient.connect(t, r.wsUrl(u))));
  r.child.kill('SIGTERM');
  for (const closed of await Promise.all(clients.map((c) => c.closed))) {
    assert.equal(closed.code, 4002);
    assert.match(closed.reason, /^moved retry_after_ms=\d+$/);
  }
  assert.deepEqual(await r.exited, { code: 0, signal: null });
  // The node itself was not disturbed.
  assert.equal(await node.ready(), true);
});
