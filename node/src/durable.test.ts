// Durable mode on in-process nodes over the in-process bus, real sockets on port 0: every message goes
// through its receiver's shard log, carries its position, and a client reconnecting with its last
// position gets exactly its gap (or an explicit `not recovered`).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { createLogger, formatSince, loadConfig, nodeConfigSchema, type MessagePos } from '@chat/shared';
import { MemoryBusHub } from './bus/memory-bus.js';
import { newEpoch } from './bus/kafka-bus.js';
import { createChatNode } from './chat-node.js';

const logger = createLogger({ name: 'test', level: 'silent' });
type Frame = Record<string, unknown>;

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
    CHAT_NODE_DELIVERY_MODE: 'durable',
    CHAT_NODE_HEARTBEAT_INTERVAL_MS: '50',
    ...env,
  });
  const node = createChatNode(config, { logger, bus: hub.connect(nodeId), epoch: newEpoch() });
  const address = await node.start();
  let stopped = false;
  t.after(async () => {
    if (!stopped) await node.stop();
  });
  return {
    node,
    url: (user: string, since?: string) =>
      `ws://127.0.0.1:${address.port}/chat/${user}${since === undefined ? '' : `?since=${since}`}`,
    stop: async () => {
      stopped = true;
      return node.stop();
    },
  };
}

interface Client {
  ws: WebSocket;
  frames: Frame[];
  next(pred: (f: Frame) => boolean): Promise<Frame>;
  close(): Promise<void>;
}

async function connect(t: TestContext, url: string): Promise<Client> {
  const ws = new WebSocket(url, ['chat.v1']);
  const frames: Frame[] = [];
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as Frame;
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
    close: async () => {
      ws.close();
      await once(ws, 'close');
    },
  };
}

const isType = (type: string) => (f: Frame) => f.type === type;
const messages = (c: Client) => c.frames.filter(isType('message'));

async function send(from: Client, to: string, cid: string): Promise<Frame> {
  from.ws.send(JSON.stringify({ type: 'send', cid, to, body: `body ${cid}` }));
  return from.next((f) => f.cid === cid);
}

test('durable: a local send goes through the log, is acked accepted, and arrives with its position', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  const ack = await send(alice, 'bob', 'c1');
  assert.equal(ack.status, 'accepted');
  assert.equal(hub.published.message, 1);
  const got = await bob.next(isType('message'));
  assert.equal(got.id, ack.id);
  const pos = got.pos as MessagePos;
  assert.equal(pos.epoch, hub.epoch);
  assert.equal(pos.offset, 0);
  assert.equal(typeof pos.shard, 'number');
});

test('durable: a receiver that reconnects with its last position gets exactly the gap, then live', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  let bob = await connect(t, n.url('bob'));
  await send(alice, 'bob', 'c0');
  const last = (await bob.next(isType('message'))).pos as MessagePos;
  await bob.close();
  const gap: unknown[] = [];
  for (const cid of ['c1', 'c2', 'c3']) gap.push((await send(alice, 'bob', cid)).id);
  bob = await connect(t, n.url('bob', formatSince(last)));
  const resumed = await bob.next(isType('resumed'));
  assert.deepEqual(resumed, { type: 'resumed', recovered: true, replayed: 3 });
  assert.deepEqual(
    messages(bob).map((m) => m.id),
    gap,
  );
  // The replayed records were also held for bob (handoff): none is written twice.
  const live = (await send(alice, 'bob', 'c4')).id;
  await bob.next((f) => f.id === live);
  assert.deepEqual(
    messages(bob).map((m) => m.id),
    [...gap, live],
  );
  const offsets = messages(bob).map((m) => (m.pos as MessagePos).offset);
  assert.deepEqual(
    offsets,
    [...offsets].sort((a, b) => a - b),
  );
  const metrics = await n.node.metrics.registry.getSingleMetricAsString('chat_node_resumes_total');
  assert.match(metrics, /result="recovered"} 1/);
});

test('durable: a position older than the recovery buffer is answered not recovered (too_old)', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a', { CHAT_NODE_RECOVERY_MAX_PER_SHARD: '2' });
  const alice = await connect(t, n.url('alice'));
  let bob = await connect(t, n.url('bob'));
  await send(alice, 'bob', 'c0');
  const last = (await bob.next(isType('message'))).pos as MessagePos;
  await bob.close();
  for (const cid of ['c1', 'c2', 'c3']) await send(alice, 'bob', cid);
  bob = await connect(t, n.url('bob', formatSince(last)));
  const resumed = await bob.next(isType('resumed'));
  assert.deepEqual(resumed, { type: 'resumed', recovered: false, replayed: 0, reason: 'too_old' });
  // Live messages follow.
  const live = (await send(alice, 'bob', 'c4')).id;
  await bob.next((f) => f.id === live);
});

test('durable: a position from another log, another shard or malformed is answered at once', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const cases: [string, string][] = [
    ['0:0:otherlog', 'epoch'],
    ['not-a-position', 'invalid'],
    ['99999999:0:x', 'invalid'],
  ];
  for (const [since, reason] of cases) {
    const bob = await connect(t, n.url('bob', since));
    assert.equal((await bob.next(isType('resumed'))).reason, reason, since);
    await bob.close();
  }
  // bob's shard is not 0 or 1 both: one of them is another shard.
  const alice = await connect(t, n.url('alice'));
  const probe = await connect(t, n.url('bob'));
  await send(alice, 'bob', 'p');
  const shard = ((await probe.next(isType('message'))).pos as MessagePos).shard;
  const other = await connect(t, n.url('bob', `${shard + 1}:0:${hub.epoch}`));
  assert.equal((await other.next(isType('resumed'))).reason, 'shard');
});

test('fast mode: a resume is answered not recovered (not_durable)', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a', { CHAT_NODE_DELIVERY_MODE: 'local-first' });
  const bob = await connect(t, n.url('bob', `1:0:${hub.epoch}`));
  assert.deepEqual(await bob.next(isType('resumed')), {
    type: 'resumed',
    recovered: false,
    replayed: 0,
    reason: 'not_durable',
  });
});

test('durable: after its owner stops, the next owner reads back a window and fills a resuming gap', async (t) => {
  const hub = new MemoryBusHub();
  const a = await startNode(t, hub, 'a');
  const alice = await connect(t, a.url('alice'));
  const bob = await connect(t, a.url('bob'));
  const ids: unknown[] = [];
  for (const cid of ['c1', 'c2', 'c3']) ids.push((await send(alice, 'bob', cid)).id);
  await bob.next((f) => f.id === ids[2]);
  // bob keeps only the first: the other two were written but "lost" with the node (kill -9 style).
  const first = messages(bob)[0]?.pos as MessagePos;
  await a.stop();
  const b = await startNode(t, hub, 'b');
  const resumed = await connect(t, b.url('bob', formatSince(first)));
  assert.deepEqual(await resumed.next(isType('resumed')), { type: 'resumed', recovered: true, replayed: 2 });
  assert.deepEqual(
    messages(resumed).map((m) => m.id),
    ids.slice(1),
  );
});

test('durable: a resume on a node that does not read the shard waits, then gets not recovered (not_owner)', async (t) => {
  const hub = new MemoryBusHub();
  const env = { CHAT_NODE_RECOVERY_WAIT_MS: '300' };
  const a = await startNode(t, hub, 'a', env);
  const b = await startNode(t, hub, 'b', env);
  // Both nodes in the ring: find a user whose shard b does not own, by where its messages are written.
  const alice = await connect(t, a.url('alice'));
  let found: { user: string; pos: MessagePos } | undefined;
  for (let i = 0; i < 40 && !found; i++) {
    const user = `nw-${i}`;
    const probe = await connect(t, a.url(user));
    await send(alice, user, `p${i}`);
    const pos = (await probe.next(isType('message'))).pos as MessagePos;
    await probe.close();
    const onB = await connect(t, b.url(user, formatSince(pos)));
    const resumed = await onB.next(isType('resumed'));
    await onB.close();
    if (resumed.reason === 'not_owner') found = { user, pos };
  }
  assert.ok(found, 'a user whose shard b does not read');
  const metrics = await b.node.metrics.registry.getSingleMetricAsString('chat_node_resumes_total');
  assert.match(metrics, /result="not_owner"} [1-9]/);
});

test('durable: a send the log does not take is answered with a retryable error, not acked', async (t) => {
  const hub = new MemoryBusHub();
  const n = await startNode(t, hub, 'a');
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  hub.available = false;
  const refused = await send(alice, 'bob', 'x1');
  assert.deepEqual(
    [refused.type, refused.code, refused.retryable],
    ['error', 'NODE_ERR_BUS_UNAVAILABLE', true],
  );
  hub.available = true;
  const ack = await send(alice, 'bob', 'x2');
  assert.equal(ack.status, 'accepted');
  await bob.next((f) => f.id === ack.id);
  assert.deepEqual(
    messages(bob).map((m) => m.body),
    ['body x2'],
  );
});
