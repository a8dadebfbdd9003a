// In-process chat nodes on the in-process bus, real sockets on port 0: the node's behaviour without Kafka.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  OwnerTable,
  createLogger,
  loadConfig,
  mintToken,
  nodeConfigSchema,
  shardOf,
  type BusMessage,
} from '@chat/shared';
import { MemoryBusHub } from './bus/memory-bus.js';
import { createChatNode, type ChatNode } from './chat-node.js';
import { newEpoch } from './bus/kafka-bus.js';

const logger = createLogger({ name: 'test', level: 'silent' });

async function startNode(
  t: TestContext,
  hub: MemoryBusHub,
  nodeId: string,
  env: Record<string, string> = {},
) {
  const config = loadConfig(nodeConfigSchema, {
    CHAT_NODE_ID: nodeId,
    CHAT_NODE_PORT: '0',
    CHAT_NODE_DRAIN_WINDOW_MS: '0',
    CHAT_AUTH_MODE: 'off',
    ...env,
  });
  const node: ChatNode = createChatNode(config, { logger, bus: hub.connect(nodeId), epoch: newEpoch() });
  const address = await node.start();
  let stopped = false;
  t.after(async () => {
    if (!stopped) await node.stop();
  });
  return {
    node,
    url: (user: string) => `ws://127.0.0.1:${address.port}/chat/${user}`,
    stop: async () => {
      stopped = true;
      return node.stop();
    },
  };
}

/** An affinity key whose shard `nodeId` owns in the owner table of `members` (default shard count). */
function keyOwnedBy(nodeId: string, members: string[]): string {
  const table = new OwnerTable(
    members.map((id) => ({ id, weight: 1 })),
    nodeConfigSchema.clusterShards.default,
  );
  const key = Array.from({ length: 100 }, (_, i) => `key-${i}`).find((k) => table.ownerOfKey(k) === nodeId);
  assert.ok(key);
  return key;
}

interface Client {
  ws: WebSocket;
  frames: Record<string, unknown>[];
  next(pred: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

async function connect(
  t: TestContext,
  url: string,
  options: WebSocket.ClientOptions = {},
  protocols: string[] = ['chat.v1'],
): Promise<Client> {
  const ws = new WebSocket(url, protocols, options);
  const frames: Record<string, unknown>[] = [];
  const waiters: {
    pred: (f: Record<string, unknown>) => boolean;
    resolve: (f: Record<string, unknown>) => void;
  }[] = [];
  ws.on('message', (data: Buffer) => {
    const text = data.toString();
    const frame = text === 'pong' ? { type: 'pong' } : (JSON.parse(text) as Record<string, unknown>);
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.pred(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  });
  t.after(() => ws.terminate());
  await once(ws, 'open');
  return {
    ws,
    frames,
    next: (pred) => {
      const found = frames.find(pred);
      return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

test('local-first: receiver on the same node gets it and nothing is published', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'bob', body: 'hi' }));
  assert.equal((await bob.next((f) => f.type === 'message')).body, 'hi');
  assert.equal((await alice.next((f) => f.type === 'ack')).status, 'delivered');
  assert.equal(hub.published.message, 0);
});

test('cross-node over the in-process bus; a bus that refuses gives a retryable error, local still delivered', async (t) => {
  const hub = new MemoryBusHub();
  const a = await startNode(t, hub, 'a');
  const b = await startNode(t, hub, 'b');
  const alice = await connect(t, a.url('alice'));
  const bobHere = await connect(t, a.url('bob'));
  // Filed under a shard b owns (as a router would place it), so b reads the record.
  const bobThere = await connect(t, `${b.url('bob')}?affinity=${keyOwnedBy('b', ['a', 'b'])}`);
  // Presence propagates through the hub asynchronously.
  const deadline = Date.now() + 5000;
  while (!hub.presence.has('b/bob')) {
    assert.ok(Date.now() < deadline, 'presence of bob on b');
    await delay(1);
  }
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'bob', body: 'one' }));
  assert.equal((await alice.next((f) => f.cid === '1')).status, 'accepted');
  await bobThere.next((f) => f.body === 'one');
  await bobHere.next((f) => f.body === 'one');
  assert.equal(hub.published.message, 1);

  hub.available = false;
  alice.ws.send(JSON.stringify({ type: 'send', cid: '2', to: 'bob', body: 'two' }));
  const err = await alice.next((f) => f.cid === '2');
  assert.deepEqual([err.type, err.code, err.retryable], ['error', 'NODE_ERR_BUS_UNAVAILABLE', true]);
  await bobHere.next((f) => f.body === 'two');
  assert.equal(bobThere.frames.filter((f) => f.body === 'two').length, 0);
});

test('binary frames and bad JSON get error frames; the connection stays usable', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const c = await connect(t, n.url('alice'));
  c.ws.send(Buffer.from([1, 2, 3]));
  assert.equal((await c.next((f) => f.type === 'error')).code, 'PROTO_ERR_BINARY_UNSUPPORTED');
  c.ws.send('{"type":"send"');
  assert.equal((await c.next((f) => f.code === 'PROTO_ERR_MALFORMED')).retryable, false);
  c.ws.send('ping');
  await c.next((f) => f.type === 'pong');
});

test('a frame over CHAT_NODE_MAX_PAYLOAD_BYTES closes the connection with 1009', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a', { CHAT_NODE_MAX_PAYLOAD_BYTES: '1024' });
  const c = await connect(t, n.url('alice'));
  c.ws.send('x'.repeat(2048));
  const [code] = (await once(c.ws, 'close')) as [number];
  assert.equal(code, 1009);
});

test('a silent peer is terminated after the idle timeout', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a', {
    CHAT_NODE_PING_INTERVAL_MS: '50',
    CHAT_NODE_IDLE_TIMEOUT_MS: '200',
  });
  // A client that never answers pings, like a peer whose network vanished.
  const c = await connect(t, n.url('sleepy'), { autoPong: false });
  const started = Date.now();
  const [code] = (await once(c.ws, 'close')) as [number];
  assert.equal(code, 1006, 'terminated, no close frame');
  assert.ok(Date.now() - started >= 100);
  const metrics = await n.node.metrics.registry.getSingleMetricAsString(
    'chat_node_dead_peers_terminated_total',
  );
  assert.match(metrics, /chat_node_dead_peers_terminated_total 1/);
});

test('while the node drains, a send is answered NODE_ERR_DRAINING with its cid (the client retries that send elsewhere)', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a', { CHAT_NODE_DRAIN_WINDOW_MS: '1000' });
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  const stopped = n.stop();
  await until(() => !n.node.isReady(), 'draining');
  alice.ws.send(JSON.stringify({ type: 'send', cid: 'd1', to: 'bob', body: 'late' }));
  const answer = await alice.next((f) => f.type === 'error' || f.type === 'ack');
  assert.deepEqual([answer.type, answer.code, answer.cid], ['error', 'NODE_ERR_DRAINING', 'd1']);
  assert.equal(await stopped, true);
  assert.ok(!bob.frames.some((f) => f.type === 'message'), 'not delivered');
});

test('stop(): sessions get 4001 with a retry hint, the node is no longer ready, stop resolves clean', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const c = await connect(t, n.url('alice'));
  const closed = once(c.ws, 'close') as Promise<[number, Buffer]>;
  assert.equal(await n.stop(), true);
  const [code, reason] = await closed;
  assert.equal(code, 4001);
  assert.match(reason.toString(), /^draining retry_after_ms=\d+$/);
  assert.equal(n.node.isReady(), false);
});

test('internal API: sessions named by router connection id are closed with 4002; bad bodies get 400', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const moved = await connect(t, n.url('moved'), { headers: { 'x-chat-connection-id': 'r1-7' } });
  const stays = await connect(t, n.url('stays'), { headers: { 'x-chat-connection-id': 'r1-8' } });
  const base = n.url('x').replace('ws://', 'http://').replace('/chat/x', '');
  const post = (path: string, body: string) => fetch(`${base}${path}`, { method: 'POST', body });
  const res = await post(
    '/internal/sessions/close',
    JSON.stringify({ connections: ['r1-7', 'nope'], windowMs: 50 }),
  );
  assert.deepEqual(await res.json(), { closing: 1 });
  const [code, reason] = (await once(moved.ws, 'close')) as [number, Buffer];
  assert.equal(code, 4002);
  assert.match(reason.toString(), /^moved retry_after_ms=\d+$/);
  assert.equal(stays.ws.readyState, WebSocket.OPEN);
  for (const body of ['not json', '{}', '{"connections":[1]}', '{"connections":[],"windowMs":-1}']) {
    const bad = await post('/internal/sessions/close', body);
    assert.equal(bad.status, 400, body);
    assert.deepEqual(await bad.json(), { error: 'NODE_ERR_BAD_REQUEST' });
  }
  assert.equal((await post('/internal/nope', '')).status, 404);
});

test('internal API: drain takes the node out (accepting false, upgrades 503), undrain brings it back', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const base = n.url('x').replace('ws://', 'http://').replace('/chat/x', '');
  const kept = await connect(t, n.url('kept'));
  const keptClosed = once(kept.ws, 'close') as Promise<[number]>;
  assert.equal((await fetch(`${base}/internal/drain`, { method: 'POST' })).status, 200);
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as { accepting: boolean }).accepting, false);
  await assert.rejects(connect(t, n.url('late')), /503/);
  // The node closes its sessions itself (4002), not the routers (see drain.test.ts).
  assert.equal((await keptClosed)[0], 4002);
  await fetch(`${base}/internal/undrain`, { method: 'POST' });
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  await connect(t, n.url('later'));
});

test('seed mode: every message goes through the bus, the origin node delivers what it reads', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a', { CHAT_NODE_DELIVERY_MODE: 'seed' });
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'bob', body: 'via the bus' }));
  assert.equal((await bob.next((f) => f.type === 'message')).body, 'via the bus');
  assert.equal((await alice.next((f) => f.type === 'ack')).status, 'accepted');
  assert.equal(hub.published.message, 1);
  assert.equal(bob.frames.filter((f) => f.type === 'message').length, 1, 'delivered once');
  const metrics = await n.node.metrics.registry.getSingleMetricAsString('chat_node_deliveries_total');
  assert.match(metrics, /path="bus"} 1/);
  assert.match(metrics, /path="local"} 0/);
});

test('a client that offers no subprotocol is spoken to in the seed shapes', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const seedA = await connect(t, n.url('seed-a'), {}, []);
  const seedB = await connect(t, n.url('seed-b'), {}, []);
  const v1 = await connect(t, n.url('v1-c'));
  assert.equal(seedA.ws.protocol, '');

  // No cid: delivered, and no ack (the seed never sent one); the pong shows nothing came before it.
  seedA.ws.send(JSON.stringify({ sender_id: 'seed-a', receiver_id: 'seed-b', text: 'one' }));
  assert.deepEqual(await seedB.next((f) => f.text === 'one'), {
    sender_id: 'seed-a',
    receiver_id: 'seed-b',
    text: 'one',
  });
  seedA.ws.send('ping');
  await seedA.next((f) => f.type === 'pong');
  assert.deepEqual(seedA.frames, [{ type: 'pong' }]);

  // With a cid: the sender asked for an answer.
  seedA.ws.send(JSON.stringify({ sender_id: 'seed-a', receiver_id: 'seed-b', text: 'two', cid: 'k2' }));
  assert.equal((await seedA.next((f) => f.cid === 'k2')).status, 'delivered');

  // A v1 sender's message reaches a seed receiver in the seed's shape.
  v1.ws.send(JSON.stringify({ type: 'send', cid: 'c1', to: 'seed-b', body: 'from v1' }));
  const got = await seedB.next((f) => f.body === 'from v1');
  assert.deepEqual(Object.keys(got).sort(), ['body', 'id', 'receiver_id', 'sender_id', 'ts']);
  assert.deepEqual([got.sender_id, got.receiver_id], ['v1-c', 'seed-b']);
  assert.equal((await v1.next((f) => f.cid === 'c1')).status, 'delivered');
});

test('a blank frame is ignored for a seed client and refused for a v1 client', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const seed = await connect(t, n.url('seed-blank'), {}, []);
  seed.ws.send('');
  seed.ws.send('  \n');
  seed.ws.send('ping');
  await seed.next((f) => f.type === 'pong');
  assert.deepEqual(seed.frames, [{ type: 'pong' }]);
  const metrics = await n.node.metrics.registry.getSingleMetricAsString('chat_node_frames_in_total');
  assert.match(metrics, /type="blank"} 2/);

  const v1 = await connect(t, n.url('v1-blank'));
  v1.ws.send('');
  assert.equal((await v1.next((f) => f.type === 'error')).code, 'PROTO_ERR_MALFORMED');
});

test('concurrent handshakes of one user cannot exceed the per-user limit (checked again after the token)', async (t) => {
  const secret = 'per-user-limit-test-secret-0123456789';
  const n = await startNode(t, new MemoryBusHub(), 'a', {
    CHAT_AUTH_MODE: 'jwt',
    CHAT_AUTH_HS256_SECRET: secret,
    CHAT_NODE_MAX_CONNECTIONS_PER_USER: '3',
  });
  const token = await mintToken({ secret, sub: 'many', ttlSec: 600 });
  // Ten at once: the token check is asynchronous, so all ten pass the first limit check together.
  const attempts = Array.from({ length: 10 }, () =>
    connect(t, n.url('many'), {}, ['chat.v1', `bearer.${token}`]).then(
      () => 'open',
      (err: Error) => (/429/.test(err.message) ? '429' : err.message),
    ),
  );
  const results = await Promise.all(attempts);
  assert.deepEqual(
    [results.filter((r) => r === 'open').length, results.filter((r) => r === '429').length],
    [3, 7],
  );
});

// Handoff, dedupe by id and honest `offline` (issue 12).

/** Polls `check` every few ms until it holds; fails after `timeoutMs`. */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await delay(5);
  }
}

async function metricValue(node: ChatNode, name: string, labels: Record<string, string> = {}) {
  const metric = node.metrics.registry.getSingleMetric(name);
  assert.ok(metric, name);
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l))
    .reduce((sum, v) => sum + v.value, 0);
}

function busMessage(id: string, to: string, body: string): BusMessage {
  const ts = Date.now();
  return {
    v: 1,
    id,
    origin: 'elsewhere',
    from: 'zed',
    to,
    ts,
    frame: { type: 'message', id, from: 'zed', to, body, ts },
  };
}

test('handoff: a message to a receiver who left is accepted, held by their shard’s owner and delivered once when they reconnect', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('h-bob'));
  bob.ws.close();
  await until(() => !hub.presence.has('a/h-bob'), 'bob gone from presence');
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'h-bob', body: 'while away' }));
  assert.equal((await alice.next((f) => f.cid === '1')).status, 'accepted', 'reconnecting, not offline');
  await until(async () => (await metricValue(n.node, 'chat_node_handoff_held_messages')) === 1, 'held');
  const back = await connect(t, n.url('h-bob'));
  assert.equal((await back.next((f) => f.type === 'message')).body, 'while away');
  alice.ws.send(JSON.stringify({ type: 'send', cid: '2', to: 'h-bob', body: 'marker' }));
  await back.next((f) => f.body === 'marker');
  assert.deepEqual(
    back.frames.filter((f) => f.type === 'message').map((f) => f.body),
    ['while away', 'marker'],
  );
  assert.equal(await metricValue(n.node, 'chat_node_handoff_total', { result: 'delivered' }), 1);
  assert.equal(await metricValue(n.node, 'chat_node_handoff_held_messages'), 0);
});

/** A client that upgrades, then reads nothing and answers nothing: a close frame from the node goes unanswered. */
async function deafClient(
  t: TestContext,
  url: string,
  headers: Record<string, string> = {},
): Promise<Socket> {
  const { port, pathname } = new URL(url);
  const socket = netConnect({ host: '127.0.0.1', port: Number(port) });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra.join('')}\r\n`,
  );
  const [head] = (await once(socket, 'data')) as [Buffer];
  assert.match(head.toString('latin1'), /^HTTP\/1\.1 101 /);
  return socket;
}

test('a receiver whose only session is closing (its close frame unanswered) is not `delivered`: the message is held and written to their next session', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  const deaf = await deafClient(t, n.url('c-bob'), { 'x-chat-connection-id': 'r1-9' });
  const closeFrame = new Promise<void>((resolve) =>
    deaf.on('data', (chunk: Buffer) => chunk[0] === 0x88 && resolve()),
  );
  const base = n.url('x').replace('ws://', 'http://').replace('/chat/x', '');
  const res = await fetch(`${base}/internal/sessions/close`, {
    method: 'POST',
    body: JSON.stringify({ connections: ['r1-9'], windowMs: 0 }),
  });
  assert.deepEqual(await res.json(), { closing: 1 });
  // The node sent its 4002 and waits for an answer that never comes: the session is closing, still registered.
  await closeFrame;
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'c-bob', body: 'while closing' }));
  assert.equal((await alice.next((f) => f.cid === '1')).status, 'accepted', 'not written: not delivered');
  await until(async () => (await metricValue(n.node, 'chat_node_handoff_held_messages')) === 1, 'held');
  const back = await connect(t, n.url('c-bob'));
  assert.equal((await back.next((f) => f.type === 'message')).body, 'while closing');
  assert.equal(await metricValue(n.node, 'chat_node_handoff_total', { result: 'delivered' }), 1);
  deaf.destroy(); // Before the node stops, which would wait for this session to close.
});

test('handoff: a held message whose receiver does not come back within the grace period expires, counted', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a', { CHAT_NODE_HANDOFF_GRACE_MS: '100' });
  const alice = await connect(t, n.url('alice'));
  const carol = await connect(t, n.url('e-carol'));
  carol.ws.close();
  await until(() => !hub.presence.has('a/e-carol'), 'carol gone from presence');
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'e-carol', body: 'too late' }));
  assert.equal((await alice.next((f) => f.cid === '1')).status, 'accepted');
  await until(
    async () => (await metricValue(n.node, 'chat_node_handoff_total', { result: 'expired' })) === 1,
    'the expiry counted',
  );
  const back = await connect(t, n.url('e-carol'));
  alice.ws.send(JSON.stringify({ type: 'send', cid: '2', to: 'e-carol', body: 'marker' }));
  await back.next((f) => f.body === 'marker');
  assert.deepEqual(
    back.frames.filter((f) => f.type === 'message').map((f) => f.body),
    ['marker'],
  );
  assert.equal(await metricValue(n.node, 'chat_node_handoff_total', { result: 'delivered' }), 0);
});

test('a server message id read twice (a re-read after a crash or hand-over) is written to its receiver once', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const dave = await connect(t, n.url('d-dave'));
  await until(() => hub.presence.has('a/d-dave'), 'dave present');
  const other = hub.connect('x');
  await other.start({
    onMessage: () => undefined,
    onPresence: () => undefined,
    onMember: () => undefined,
    onReadyChange: () => undefined,
    isMemberAlive: () => true,
  });
  t.after(() => other.stop());
  const shard = shardOf('d-dave', nodeConfigSchema.clusterShards.default);
  const twice = busMessage('dup-1', 'd-dave', 'once');
  await other.publishMessage(twice, shard);
  await other.publishMessage(twice, shard);
  await other.publishMessage(busMessage('dup-2', 'd-dave', 'marker'), shard);
  await dave.next((f) => f.body === 'marker');
  // And again while dave is away: not held for him either (he already has it).
  dave.ws.close();
  await until(() => !hub.presence.has('a/d-dave'), 'dave gone');
  await other.publishMessage(twice, shard);
  await other.publishMessage(busMessage('dup-3', 'd-dave', 'held'), shard);
  await until(async () => (await metricValue(n.node, 'chat_node_handoff_held_messages')) === 1, 'held');
  const back = await connect(t, n.url('d-dave'));
  await back.next((f) => f.body === 'held');
  assert.deepEqual(
    [...dave.frames, ...back.frames].filter((f) => f.type === 'message').map((f) => f.body),
    ['once', 'marker', 'held'],
  );
  assert.equal(await metricValue(n.node, 'chat_node_duplicates_dropped_total', { path: 'bus' }), 2);
});

test('kill -9 of a node: its users are `accepted` (not offline) for the presence grace period and get the message when they reconnect elsewhere', async (t) => {
  const hub = new MemoryBusHub();
  const env = { CHAT_NODE_HEARTBEAT_INTERVAL_MS: '50', CHAT_NODE_HEARTBEAT_TIMEOUT_MS: '500' };
  const n = await startNode(t, hub, 'a', env);
  const shards = nodeConfigSchema.clusterShards.default;
  // A user whose shard the dead node owned while it lived (so the survivor takes the shard over).
  const user = keyOwnedBy('b', ['a', 'b']);
  // Node b, as the others see it: heartbeats and one user's presence; then it stops dead (no goodbye).
  const b = hub.connect('b');
  await b.start({
    onMessage: () => undefined,
    onPresence: () => undefined,
    onMember: () => undefined,
    onReadyChange: () => undefined,
    isMemberAlive: () => true,
  });
  t.after(() => b.stop());
  const beat = () =>
    b.publishHeartbeat({
      v: 1,
      id: 'b',
      url: 'http://127.0.0.1:1',
      weight: 1,
      state: 'active',
      epoch: 'b-epoch',
      ts: Date.now(),
      intervalMs: 50,
    });
  await beat();
  const beating = setInterval(() => void beat(), 50);
  t.after(() => clearInterval(beating));
  await b.publishPresence([
    {
      userId: user,
      record: { v: 1, userId: user, nodeId: 'b', epoch: 'b-epoch', shard: shardOf(user, shards) },
    },
  ]);
  const base = n.url('x').replace('ws://', 'http://').replace('/chat/x', '');
  const remoteNodes = async () =>
    ((await (await fetch(`${base}/internal/presence?user=${user}`)).json()) as { remoteNodes: string[] })
      .remoteNodes;
  await until(async () => (await remoteNodes()).includes('b'), 'a sees the user on b');
  clearInterval(beating); // kill -9
  await until(async () => (await remoteNodes()).length === 0, 'b dead for a');
  const alice = await connect(t, n.url('alice'));
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: user, body: 'after the crash' }));
  assert.equal((await alice.next((f) => f.cid === '1')).status, 'accepted', 'not offline');
  const back = await connect(t, n.url(user));
  assert.equal((await back.next((f) => f.type === 'message')).body, 'after the crash');
});

test('presence unknown (bus not ready): a send to a receiver this node does not know gets the retryable bus error, not offline', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  hub.available = false;
  alice.ws.send(JSON.stringify({ type: 'send', cid: '1', to: 'u-nobody', body: '?' }));
  const err = await alice.next((f) => f.cid === '1');
  assert.deepEqual([err.type, err.code, err.retryable], ['error', 'NODE_ERR_BUS_UNAVAILABLE', true]);
  hub.available = true;
  alice.ws.send(JSON.stringify({ type: 'send', cid: '2', to: 'u-nobody', body: '?' }));
  assert.equal((await alice.next((f) => f.cid === '2')).status, 'offline');
});
