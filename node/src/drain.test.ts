// A node's drains on the in-process bus, real sockets on port 0: SIGTERM (stop) and the admin drain close
// every session themselves, spread over the drain window, while the listener keeps answering.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { callNode, createLogger, loadConfig, nodeConfigSchema } from '@chat/shared';
import { MemoryBusHub } from './bus/memory-bus.js';
import { newEpoch } from './bus/kafka-bus.js';
import { createChatNode } from './chat-node.js';

const logger = createLogger({
  name: 'test',
  level: (process.env.DRAIN_LOG as 'info' | undefined) ?? 'silent',
});

async function startNode(t: TestContext, env: Record<string, string>) {
  const hub = new MemoryBusHub();
  const config = loadConfig(nodeConfigSchema, {
    CHAT_NODE_ID: 'a',
    CHAT_NODE_PORT: '0',
    CHAT_AUTH_MODE: 'off',
    ...env,
  });
  const node = createChatNode(config, { logger, bus: hub.connect('a'), epoch: newEpoch() });
  const { port } = await node.start();
  let stopped: Promise<boolean> | undefined;
  t.after(() => (stopped ??= node.stop()));
  return {
    node,
    base: `http://127.0.0.1:${port}`,
    url: (user: string) => `ws://127.0.0.1:${port}/chat/${user}`,
    stop: () => (stopped ??= node.stop()),
  };
}

interface Closed {
  code: number;
  reason: string;
  at: number;
}

/** A client with a router connection id; `closed` resolves with the close code, reason and time. */
async function connect(t: TestContext, url: string, connectionId: string) {
  const ws = new WebSocket(url, ['chat.v1'], { headers: { 'x-chat-connection-id': connectionId } });
  t.after(() => ws.terminate());
  const closed = new Promise<Closed>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })),
  );
  await once(ws, 'open');
  return { ws, closed };
}

/** An upgrade attempt: the HTTP status and Retry-After of its refusal (or 101). */
function upgrade(url: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['chat.v1']);
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      resolve({ status: 101, retryAfter: undefined });
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

test('stop() (SIGTERM): 4001 spread over the window; listener, /readyz and migrate answered until the last close', async (t) => {
  const windowMs = 400;
  const n = await startNode(t, { CHAT_NODE_DRAIN_WINDOW_MS: String(windowMs) });
  const clients = await Promise.all([0, 1, 2, 3, 4].map((i) => connect(t, n.url(`user-${i}`), `r1-${i}`)));
  const started = Date.now();
  const stopping = n.stop();
  const first = await Promise.race(clients.map((c) => c.closed));
  // Between the first close and the last one (100 ms apart here) the node still answers.
  const readyz = await callNode(n.base, 'readyz', undefined);
  assert.ok(readyz.ok);
  assert.equal(readyz.status, 503);
  assert.equal(readyz.body.draining, true);
  assert.equal(readyz.body.accepting, false);
  assert.deepEqual(await upgrade(n.url('late')), { status: 503, retryAfter: '1' });
  // A router that asks to migrate a session of a draining node is told yes: the node closes it itself.
  const migrate = await callNode(n.base, 'closeSessions', { connections: ['r1-4'], windowMs: 0 });
  assert.deepEqual(migrate, { ok: true, status: 200, body: { closing: 1 } });

  assert.equal(await stopping, true, 'clean: within the grace period');
  const elapsed = Date.now() - started;
  const closes = await Promise.all(clients.map((c) => c.closed));
  for (const c of closes) {
    assert.equal(c.code, 4001, 'every session closed by the node with 4001, the migrate request included');
    assert.match(c.reason, /^draining retry_after_ms=\d+$/);
  }
  const times = closes.map((c) => c.at).sort((a, b) => a - b);
  const spread = (times.at(-1) ?? 0) - (times[0] ?? 0);
  t.diagnostic(
    `closes ${first.at - started} ms to ${spread + first.at - started} ms after stop(); stopped after ${elapsed} ms`,
  );
  assert.ok(spread >= windowMs * 0.75, `closes spread over ${spread} ms, window ${windowMs} ms`);
  assert.ok(elapsed >= windowMs, `stop took ${elapsed} ms, window ${windowMs} ms`);
  // The listener closes last.
  assert.equal((await callNode(n.base, 'readyz', undefined)).status, 0);
});

test('admin drain: the node closes every session itself with 4002 and a retry hint, spread over the window', async (t) => {
  const windowMs = 300;
  const n = await startNode(t, { CHAT_NODE_DRAIN_WINDOW_MS: String(windowMs) });
  const clients = await Promise.all([0, 1, 2, 3].map((i) => connect(t, n.url(`user-${i}`), `r1-${i}`)));
  const drained = await callNode(n.base, 'drain', undefined);
  assert.deepEqual(drained, { ok: true, status: 200, body: { nodeId: 'a', draining: true } });
  // A router's migrate request meanwhile is answered (found, left to the node's own closes).
  const migrate = await callNode(n.base, 'closeSessions', { connections: ['r1-3'], windowMs: 0 });
  assert.deepEqual(migrate, { ok: true, status: 200, body: { closing: 1 } });
  const closes = await Promise.all(clients.map((c) => c.closed));
  for (const c of closes) {
    assert.equal(c.code, 4002);
    assert.match(c.reason, /^moved retry_after_ms=\d+$/);
  }
  const times = closes.map((c) => c.at).sort((a, b) => a - b);
  const spread = (times.at(-1) ?? 0) - (times[0] ?? 0);
  assert.ok(spread >= windowMs * 0.75, `closes spread over ${spread} ms, window ${windowMs} ms`);
  const readyz = await callNode(n.base, 'readyz', undefined);
  assert.ok(readyz.ok && readyz.body.draining && !readyz.body.accepting);
  assert.equal((await upgrade(n.url('late'))).status, 503);
  // Undrain: accepting again, and a new session is not closed by the finished drain.
  assert.deepEqual(await callNode(n.base, 'undrain', undefined), {
    ok: true,
    status: 200,
    body: { nodeId: 'a', draining: false },
  });
  assert.equal((await upgrade(n.url('back'))).status, 101);
  assert.equal(await n.stop(), true);
});

test('stop() after an admin drain: what is still open is closed with 4001 and the node stops clean', async (t) => {
  // A long window: the drain's closes are still pending when SIGTERM comes, and stop supersedes them.
  const n = await startNode(t, { CHAT_NODE_DRAIN_WINDOW_MS: '60000', CHAT_NODE_SHUTDOWN_GRACE_MS: '130000' });
  const clients = await Promise.all([0, 1].map((i) => connect(t, n.url(`user-${i}`), `r1-${i}`)));
  await callNode(n.base, 'drain', undefined);
  // The drain closes the first at once, the second at the end of its 60 s window.
  const first = await Promise.race(clients.map((c) => c.closed));
  assert.equal(first.code, 4002);
  const stopping = n.stop();
  const closes = await Promise.all(clients.map((c) => c.closed));
  assert.deepEqual(
    closes.map((c) => c.code).sort(),
    [4001, 4002],
    'the one left is closed by the shutdown (4001), at once since it is alone',
  );
  assert.equal(await stopping, true);
});
