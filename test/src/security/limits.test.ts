// Every limit of the node, against a real node process: its documented error or close code and metric.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startNode } from '../harness/node-process.js';
import { rawRequest, upgradeRequest } from '../harness/raw-http.js';
import { TestClient, isMessage } from '../harness/ws-client.js';
import { pollUntil } from '../poll.js';

test('frame size: a frame over the limit closes with 1009', async (t) => {
  const node = await startNode(t, { nodeId: 'size', env: { CHAT_NODE_MAX_PAYLOAD_BYTES: '1024' } });
  const c = await TestClient.connect(t, node.wsUrl('big'));
  c.send('x'.repeat(1025));
  assert.equal((await c.closed).code, 1009);
  await pollUntil(
    async () => (await node.metric('chat_node_limit_hits_total', { limit: 'frame_size' })) === 1,
    {
      what: 'frame_size counted',
    },
  );
});

test('rate: the first excess frame gets NODE_ERR_RATE_LIMITED, sustained excess closes with 4008', async (t) => {
  const node = await startNode(t, {
    nodeId: 'rate',
    env: { CHAT_NODE_RATE_PER_SEC: '1', CHAT_NODE_RATE_BURST: '5', CHAT_NODE_RATE_CLOSE_AFTER: '20' },
  });
  const alice = await TestClient.connect(t, node.wsUrl('alice'));
  const bob = await TestClient.connect(t, node.wsUrl('bob'));
  for (let i = 0; i < 8; i++) alice.send({ type: 'send', cid: `c${i}`, to: 'bob', body: `m${i}` });
  const limited = (await alice.next(
    (f) => typeof f === 'object' && f.code === 'NODE_ERR_RATE_LIMITED',
  )) as Record<string, unknown>;
  assert.equal(limited.retryable, true);
  assert.equal(limited.cid, 'c5', 'the first frame over the burst is the one refused');
  await bob.waitCount(isMessage, 5);
  assert.equal(alice.ofType('error').length, 1, 'only the first refusal of a run is answered');
  for (let i = 0; i < 30; i++) alice.send({ type: 'send', cid: `f${i}`, to: 'bob', body: 'flood' });
  const closed = await alice.closed;
  assert.equal(closed.code, 4008);
  assert.match(closed.reason, /^rate_limited retry_after_ms=\d+$/);
  assert.ok((await node.metric('chat_node_limit_hits_total', { limit: 'rate_close' })) === 1);
  assert.ok(bob.frames.filter(isMessage).length <= 6, 'the flood did not get through');
  assert.equal(bob.ws.readyState, WebSocket.OPEN, 'other users are not affected');
});

test('connections per user (429) and per node (503)', async (t) => {
  const node = await startNode(t, {
    nodeId: 'conns',
    env: { CHAT_NODE_MAX_CONNECTIONS_PER_USER: '2', CHAT_NODE_MAX_CONNECTIONS: '3' },
  });
  await TestClient.connect(t, node.wsUrl('u'));
  await TestClient.connect(t, node.wsUrl('u'));
  const third = await rawRequest(node.port, upgradeRequest('/chat/u'));
  assert.equal(third.status, 429);
  third.socket.destroy();
  await TestClient.connect(t, node.wsUrl('v'));
  const full = await rawRequest(node.port, upgradeRequest('/chat/w'));
  assert.equal(full.status, 503);
  assert.equal(full.headers['retry-after'], '5');
  full.socket.destroy();
  assert.equal(await node.metric('chat_node_limit_hits_total', { limit: 'user_connections' }), 1);
  assert.equal(await node.metric('chat_node_limit_hits_total', { limit: 'node_connections' }), 1);
});

test('a slow consumer is cut (4009) so the node’s memory stays bounded; the sender is unaffected', async (t) => {
  const node = await startNode(t, {
    nodeId: 'slow',
    env: {
      CHAT_NODE_MAX_BUFFERED_BYTES: '262144',
      CHAT_NODE_RATE_PER_SEC: '100000',
      CHAT_NODE_RATE_BURST: '100000',
      CHAT_NODE_RATE_BYTES_PER_SEC: '1000000000',
      CHAT_NODE_RATE_BYTES_BURST: '1000000000',
    },
  });
  const sender = await TestClient.connect(t, node.wsUrl('fast'));
  const slow = await TestClient.connect(t, node.wsUrl('slow'));
  // The slow reader stops reading; the kernel buffers fill, then the node's send buffer grows.
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const body = 'x'.repeat(16_000);
  let i = 0;
  await pollUntil(
    async () => {
      for (let k = 0; k < 50; k++) sender.send({ type: 'send', cid: `s${i++}`, to: 'slow', body });
      return (await node.metric('chat_node_limit_hits_total', { limit: 'slow_consumer' })) >= 1;
    },
    { timeoutMs: 30_000, intervalMs: 20, what: 'the slow consumer cut' },
  );
  await pollUntil(async () => (await node.metric('chat_node_connections')) === 1, {
    what: 'slow session gone',
  });
  sender.send('ping');
  await sender.next((f) => f === 'pong');
  assert.equal(sender.ws.readyState, WebSocket.OPEN);
});

test('invalid UTF-8 in a text frame closes with 1007; binary frames get an error frame', async (t) => {
  const node = await startNode(t, { nodeId: 'utf8' });
  const c = await TestClient.connect(t, node.wsUrl('u'));
  c.ws.send(Buffer.from([0x7b, 0xff]), { binary: true });
  assert.equal(
    ((await c.next((f) => typeof f === 'object' && f.type === 'error')) as Record<string, unknown>).code,
    'PROTO_ERR_BINARY_UNSUPPORTED',
  );
  c.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
  assert.equal((await c.closed).code, 1007);
});

test('a client reset in the middle of a frame leaves nothing behind and disturbs no one', async (t) => {
  const node = await startNode(t, { nodeId: 'midframe' });
  const bystander = await TestClient.connect(t, node.wsUrl('bystander'));
  const res = await rawRequest(node.port, upgradeRequest('/chat/resetter'));
  assert.equal(res.status, 101);
  await pollUntil(async () => (await node.metric('chat_node_connections')) === 2, { what: 'two sessions' });
  // A masked text frame header announcing 100 bytes, then only 3 of them, then a reset.
  res.socket.write(Buffer.from([0x81, 0x80 | 100, 1, 2, 3, 4, 0x61, 0x62, 0x63]));
  res.socket.resetAndDestroy();
  await pollUntil(async () => (await node.metric('chat_node_connections')) === 1, {
    what: 'the reset session gone',
  });
  bystander.send('ping');
  await bystander.next((f) => f === 'pong');
});

test('one user’s connections share one budget (CHAT_NODE_USER_RATE_CONNECTIONS); another user keeps theirs', async (t) => {
  const node = await startNode(t, {
    nodeId: 'user-rate',
    env: {
      CHAT_NODE_RATE_PER_SEC: '1',
      CHAT_NODE_RATE_BURST: '4',
      CHAT_NODE_USER_RATE_CONNECTIONS: '1',
    },
  });
  const alice1 = await TestClient.connect(t, node.wsUrl('alice'));
  const alice2 = await TestClient.connect(t, node.wsUrl('alice'));
  const bob = await TestClient.connect(t, node.wsUrl('bob'));
  // Alice's two connections together get what one may: a burst of 4 frames (each of them alone may send 4).
  for (let i = 0; i < 3; i++) alice1.send({ type: 'send', cid: `a${i}`, to: 'bob', body: `a${i}` });
  await alice1.waitCount((f) => typeof f === 'object' && f.type === 'ack', 3);
  alice2.send({ type: 'send', cid: 'b0', to: 'bob', body: 'b0' });
  alice2.send({ type: 'send', cid: 'b1', to: 'bob', body: 'b1' });
  assert.equal((await alice2.reply('b0')).status, 'delivered');
  const limited = await alice2.reply('b1');
  assert.equal(limited.code, 'NODE_ERR_RATE_LIMITED');
  assert.equal(await node.metric('chat_node_limit_hits_total', { limit: 'user_rate' }), 1);
  assert.equal(await node.metric('chat_node_limit_hits_total', { limit: 'rate' }), 0);
  // Bob's budget is his own.
  for (let i = 0; i < 4; i++) bob.send({ type: 'send', cid: `c${i}`, to: 'alice', body: `c${i}` });
  await bob.waitCount((f) => typeof f === 'object' && f.type === 'ack', 4);
  assert.equal(bob.ofType('error').length, 0);
});

test('bytes count: large frames are refused within the frame rate (CHAT_NODE_RATE_BYTES_*)', async (t) => {
  const node = await startNode(t, {
    nodeId: 'byte-rate',
    env: { CHAT_NODE_RATE_BYTES_PER_SEC: '1000', CHAT_NODE_RATE_BYTES_BURST: '20000' },
  });
  const alice = await TestClient.connect(t, node.wsUrl('alice'));
  const body = 'x'.repeat(9000);
  for (let i = 0; i < 3; i++) alice.send({ type: 'send', cid: `m${i}`, to: 'bob', body });
  assert.equal((await alice.reply('m0')).status, 'offline');
  assert.equal((await alice.reply('m1')).status, 'offline');
  assert.equal((await alice.reply('m2')).code, 'NODE_ERR_RATE_LIMITED', 'the third 9 KB frame is over 20 KB');
  assert.equal(await node.metric('chat_node_limit_hits_total', { limit: 'rate_bytes' }), 1);
});

test('binary frames are charged too: over the rate they get NODE_ERR_RATE_LIMITED without a cid', async (t) => {
  const node = await startNode(t, {
    nodeId: 'binary-rate',
    env: { CHAT_NODE_RATE_PER_SEC: '1', CHAT_NODE_RATE_BURST: '1' },
  });
  const c = await TestClient.connect(t, node.wsUrl('u'));
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  const errors = (await c.waitCount((f) => typeof f === 'object' && f.type === 'error', 2)) as Record<
    string,
    unknown
  >[];
  assert.deepEqual(
    errors.map((e) => [e.code, e.cid]),
    [
      ['PROTO_ERR_BINARY_UNSUPPORTED', undefined],
      ['NODE_ERR_RATE_LIMITED', undefined],
    ],
  );
  assert.equal(await node.metric('chat_node_frames_in_total', { type: 'rate_limited' }), 1);
});
