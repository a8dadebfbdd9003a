// Idempotent retries by cid (issue 12) on in-process chat nodes over the in-process bus, real sockets on
// port 0: a retry gets the first answer and the receiver gets the message once; after a bus error the
// retry is sent again, with the first attempt's server id.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  ChatError,
  OwnerTable,
  callNode,
  createLogger,
  loadConfig,
  nodeConfigSchema,
  type BusMessage,
} from '@chat/shared';
import { MemoryBus, MemoryBusHub } from './bus/memory-bus.js';
import { newEpoch } from './bus/kafka-bus.js';
import { createChatNode, type ChatNode } from './chat-node.js';
import { SEND_ID_PREFIX } from './send-dedup.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const SHARDS = 8;

/** The in-process bus, with two faults a test can switch on: a held publish and an unconfirmed one. */
class FaultyBus extends MemoryBus {
  /** While set, publishes wait for it. */
  gate: Promise<void> | undefined;
  /** The next this many publishes are written and then fail with KAFKA_ERR_TIMEOUT (may arrive). */
  unconfirmed = 0;

  override async publishMessage(message: BusMessage, shard: number): Promise<void> {
    if (this.gate) await this.gate;
    await super.publishMessage(message, shard);
    if (this.unconfirmed > 0) {
      this.unconfirmed--;
      throw new ChatError('KAFKA_ERR_TIMEOUT', 'written, not confirmed in time');
    }
  }
}

interface TestNode {
  readonly node: ChatNode;
  readonly bus: FaultyBus;
  /** A URL that places `user` in a shard this node owns (once both test nodes are members). */
  url(user: string, protocols?: 'seed'): string;
  retries(result: string): Promise<number>;
  /** Whether this node's presence directory has `user` on node `on`. */
  sees(user: string, on: string): Promise<boolean>;
}

async function startNode(
  t: TestContext,
  hub: MemoryBusHub,
  nodeId: string,
  env: Record<string, string> = {},
): Promise<TestNode> {
  const config = loadConfig(nodeConfigSchema, {
    CHAT_NODE_ID: nodeId,
    CHAT_NODE_PORT: '0',
    CHAT_NODE_DRAIN_WINDOW_MS: '0',
    CHAT_AUTH_MODE: 'off',
    CHAT_CLUSTER_SHARDS: String(SHARDS),
    ...env,
  });
  const bus = new FaultyBus(hub, nodeId);
  const node = createChatNode(config, { logger, bus, epoch: newEpoch() });
  const address = await node.start();
  t.after(() => node.stop());
  return {
    node,
    bus,
    url: (user) => `ws://127.0.0.1:${address.port}/chat/${user}?affinity=${affinityOn(nodeId, user)}`,
    sees: async (user, on) => {
      const answer = await callNode(`http://127.0.0.1:${address.port}`, 'presence', undefined, {
        query: { user },
      });
      return answer.ok && answer.body.remoteNodes.includes(on);
    },
    retries: async (result) =>
      (await node.metrics.sendRetries.get()).values.find((v) => v.labels.result === result)?.value ?? 0,
  };
}

/** An affinity key whose shard node `nodeId` owns when nodes a and b are members. */
function affinityOn(nodeId: string, user: string): string {
  const table = new OwnerTable(
    ['a', 'b'].map((id) => ({ id, weight: 1 })),
    SHARDS,
  );
  for (let i = 0; ; i++) if (table.ownerOfKey(`${user}-${i}`) === nodeId) return `${user}-${i}`;
}

type Frame = Record<string, unknown>;

interface Client {
  readonly ws: WebSocket;
  readonly frames: Frame[];
  next(pred: (f: Frame) => boolean): Promise<Frame>;
  send(frame: Frame): void;
}

async function connect(t: TestContext, url: string, protocols: string[] = ['chat.v1']): Promise<Client> {
  const ws = new WebSocket(url, protocols);
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
    send: (frame) => ws.send(JSON.stringify(frame)),
  };
}

/** The `nth` answer (ack or error) with `cid` (1-based). */
const answer = (c: Client, cid: string, nth = 1) =>
  c.next(
    (f) =>
      f.cid === cid &&
      (f.type === 'ack' || f.type === 'error') &&
      c.frames.filter((g) => g.cid === cid && (g.type === 'ack' || g.type === 'error')).indexOf(f) ===
        nth - 1,
  );

/** Sends a marker and waits for it at `receiver`: what was sent before has arrived by then. */
async function barrier(sender: Client, receiver: Client, to: string, tag: string): Promise<void> {
  sender.send({ type: 'send', cid: `barrier-${tag}`, to, body: `barrier ${tag}` });
  await receiver.next((f) => f.body === `barrier ${tag}`);
}

async function waitFor(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    assert.ok(Date.now() < deadline, what);
    await delay(5);
  }
}

/** Two nodes on one hub, bob connected to b, alice to a, and a knowing bob is on b. */
async function twoNodes(t: TestContext) {
  const hub = new MemoryBusHub();
  const a = await startNode(t, hub, 'a');
  const b = await startNode(t, hub, 'b');
  const bob = await connect(t, b.url('bob'));
  const alice = await connect(t, a.url('alice'));
  const deadline = Date.now() + 5000;
  while (!(await a.sees('bob', 'b'))) {
    assert.ok(Date.now() < deadline, 'node a to see bob on b');
    await delay(5);
  }
  return { hub, a, b, alice, bob };
}

test('a retried send gets the original ack, from any connection of the sender; the receiver gets it once', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  const send = { type: 'send', cid: 'r1', to: 'bob', body: 'once' };
  alice.send(send);
  const first = await answer(alice, 'r1');
  assert.equal(first.status, 'delivered');
  assert.ok(String(first.id).startsWith(SEND_ID_PREFIX), 'an id derived from the cid');
  alice.send(send);
  assert.deepEqual(await answer(alice, 'r1', 2), first);
  // After a reconnect to the same node: the same answer.
  const again = await connect(t, n.url('alice'));
  again.send(send);
  assert.deepEqual(await answer(again, 'r1'), first);
  await barrier(alice, bob, 'bob', '1');
  const copies = bob.frames.filter((f) => f.body === 'once');
  assert.equal(copies.length, 1);
  assert.equal(copies[0]?.id, first.id, 'the message carries the id the ack named');
  assert.equal(await n.retries('replayed'), 2);
});

test('the same cid with another body or receiver is another message', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  const carol = await connect(t, n.url('carol'));
  alice.send({ type: 'send', cid: '1', to: 'bob', body: 'first' });
  alice.send({ type: 'send', cid: '1', to: 'bob', body: 'second' });
  alice.send({ type: 'send', cid: '1', to: 'carol', body: 'first' });
  const acks = [await answer(alice, '1', 1), await answer(alice, '1', 2), await answer(alice, '1', 3)];
  assert.deepEqual(
    acks.map((a) => a.status),
    ['delivered', 'delivered', 'delivered'],
  );
  assert.equal(new Set(acks.map((a) => a.id)).size, 3);
  await bob.next((f) => f.body === 'second');
  await carol.next((f) => f.body === 'first');
  assert.equal(await n.retries('replayed'), 0);
});

test('a seed frame with a cid retried: the same ack, delivered once', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a');
  const alice = await connect(t, n.url('alice'), []);
  const bob = await connect(t, n.url('bob'));
  const frame = { sender_id: 'alice', receiver_id: 'bob', cid: 'k1', text: 'seed hello' };
  alice.send(frame);
  const first = await answer(alice, 'k1');
  alice.send(frame);
  assert.deepEqual(await answer(alice, 'k1', 2), first);
  // Another field is another message.
  alice.send({ ...frame, text: 'seed bye' });
  assert.notEqual((await answer(alice, 'k1', 3)).id, first.id);
  await bob.next((f) => f.text === 'seed bye');
  assert.equal(bob.frames.filter((f) => f.text === 'seed hello').length, 1);
});

test('a retry while the first is in flight waits for the same answer; one record published', async (t) => {
  const { hub, a, alice, bob } = await twoNodes(t);
  let open!: () => void;
  a.bus.gate = new Promise((resolve) => (open = resolve));
  const send = { type: 'send', cid: 'j1', to: 'bob', body: 'joined' };
  alice.send(send);
  alice.send(send);
  const deadline = Date.now() + 5000;
  while ((await a.retries('joined')) < 1) {
    assert.ok(Date.now() < deadline, 'the retry to be joined');
    await delay(5);
  }
  assert.equal(alice.frames.length, 0, 'no answer while the publish is held');
  open();
  const [first, second] = [await answer(alice, 'j1', 1), await answer(alice, 'j1', 2)];
  assert.deepEqual(second, first);
  assert.equal(first.status, 'accepted');
  await bob.next((f) => f.body === 'joined');
  await barrier(alice, bob, 'bob', 'j');
  assert.equal(bob.frames.filter((f) => f.body === 'joined').length, 1);
  assert.equal(hub.published.message, 2, 'the send and the barrier');
});

test('after NODE_ERR_BUS_UNAVAILABLE (not sent) the retry sends, and is delivered once', async (t) => {
  const { hub, alice, bob } = await twoNodes(t);
  hub.available = false;
  const send = { type: 'send', cid: 'u1', to: 'bob', body: 'after outage' };
  alice.send(send);
  const refused = await answer(alice, 'u1');
  assert.deepEqual([refused.type, refused.code], ['error', 'NODE_ERR_BUS_UNAVAILABLE']);
  hub.available = true;
  alice.send(send);
  const ack = await answer(alice, 'u1', 2);
  assert.equal(ack.status, 'accepted');
  const got = await bob.next((f) => f.body === 'after outage');
  assert.equal(got.id, ack.id);
  await barrier(alice, bob, 'bob', 'u');
  assert.equal(bob.frames.filter((f) => f.body === 'after outage').length, 1);
});

test('after NODE_ERR_BUS_TIMEOUT (may arrive) the retry is sent again with the same server id', async (t) => {
  const { hub, a, alice, bob } = await twoNodes(t);
  a.bus.unconfirmed = 1;
  const send = { type: 'send', cid: 't1', to: 'bob', body: 'unconfirmed' };
  alice.send(send);
  const timedOut = await answer(alice, 't1');
  assert.deepEqual(
    [timedOut.type, timedOut.code, timedOut.retryable],
    ['error', 'NODE_ERR_BUS_TIMEOUT', true],
  );
  const firstCopy = await bob.next((f) => f.body === 'unconfirmed');
  alice.send(send);
  const ack = await answer(alice, 't1', 2);
  assert.equal(ack.status, 'accepted');
  assert.equal(ack.id, firstCopy.id, 'the resend carries the first attempt’s id');
  assert.equal(hub.published.message, 2, 'sent again');
  assert.equal(await a.retries('resent'), 1);
  // From now on the ack is replayed.
  alice.send(send);
  assert.deepEqual(await answer(alice, 't1', 3), ack);
  await barrier(alice, bob, 'bob', 't');
  // The receiver's node drops a repeated id; where it does not, the copy carries the same id (the SDK
  // drops it).
  const copies = bob.frames.filter((f) => f.body === 'unconfirmed');
  assert.ok(copies.length >= 1 && copies.length <= 2, `copies: ${copies.length}`);
  assert.ok(copies.every((f) => f.id === ack.id));
});

test('a retry on another node after a reconnect carries the first attempt’s id', async (t) => {
  const { a, b, alice, bob } = await twoNodes(t);
  const send = { type: 'send', cid: 'm1', to: 'bob', body: 'moved' };
  alice.send(send);
  const first = await answer(alice, 'm1');
  assert.equal(first.status, 'accepted');
  await bob.next((f) => f.body === 'moved');
  alice.ws.close();
  const there = await connect(t, b.url('alice'));
  there.send(send);
  const second = await answer(there, 'm1');
  assert.equal(second.id, first.id);
  await barrier(there, bob, 'bob', 'm');
  const copies = bob.frames.filter((f) => f.body === 'moved');
  assert.ok(copies.length >= 1 && copies.length <= 2, `copies: ${copies.length}`);
  assert.ok(copies.every((f) => f.id === first.id));
  assert.equal(await a.retries('replayed'), 0);
});

test('CHAT_NODE_SEND_DEDUP_WINDOW_MS=0: the same send twice is two messages with fresh ids', async (t) => {
  const n = await startNode(t, new MemoryBusHub(), 'a', { CHAT_NODE_SEND_DEDUP_WINDOW_MS: '0' });
  const alice = await connect(t, n.url('alice'));
  const bob = await connect(t, n.url('bob'));
  const send = { type: 'send', cid: 'o1', to: 'bob', body: 'twice' };
  alice.send(send);
  alice.send(send);
  const acks = [await answer(alice, 'o1', 1), await answer(alice, 'o1', 2)];
  assert.notEqual(acks[0]?.id, acks[1]?.id);
  assert.ok(acks.every((f) => !String(f.id).startsWith(SEND_ID_PREFIX)));
  await waitFor('two copies', () => bob.frames.filter((f) => f.body === 'twice').length === 2);
});
