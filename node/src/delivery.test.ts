import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { createLogger, shardOf, type BusMessage, type MessageFrame } from '@chat/shared';
import { MemoryBusHub } from './bus/memory-bus.js';
import type { Connection } from './connection.js';
import { DeliveredIds } from './delivered-ids.js';
import { Delivery, type Outgoing } from './delivery.js';
import { Handoff } from './handoff.js';
import { NodeMetrics } from './metrics.js';
import type { OutboundMessage } from './outbound-message.js';
import { PresenceDirectory } from './presence-directory.js';
import { SessionRegistry } from './session-registry.js';

const logger = createLogger({ name: 'test', level: 'silent' });
const SHARDS = 8;

/** A session that records what is written to it. */
function session(userId: string) {
  const got: string[] = [];
  const conn = {
    userId,
    connectionId: undefined,
    shard: shardOf(userId, SHARDS),
    isOpen: true,
    deliver: (message: OutboundMessage) => got.push(String((message.frame as MessageFrame).body)),
  } as unknown as Connection;
  return { conn, got };
}

async function setup(t: TestContext) {
  const hub = new MemoryBusHub();
  const bus = hub.connect('a');
  await bus.start({
    onMessage: () => undefined,
    onPresence: () => undefined,
    onMember: () => undefined,
    onReadyChange: () => undefined,
    isMemberAlive: () => true,
  });
  t.after(() => bus.stop());
  const metrics = new NodeMetrics({ defaultMetrics: false });
  const sessions = new SessionRegistry();
  const handoff = new Handoff({ graceMs: 60_000, maxMessages: 100, metrics, logger });
  t.after(() => handoff.stop());
  let seq = 0;
  const delivery = new Delivery({
    nodeId: 'a',
    sessions,
    directory: new PresenceDirectory({ timeoutMs: 3000 }),
    bus,
    ownership: { owns: () => true },
    shards: SHARDS,
    metrics,
    logger,
    handoff,
    delivered: new DeliveredIds({ windowMs: 60_000 }),
    newId: () => `a-${++seq}`,
  });
  const dropped = async (path: string) =>
    (await metrics.duplicatesDropped.get()).values.find((v) => v.labels.path === path)?.value;
  return { hub, sessions, handoff, delivery, dropped };
}

const send = (to: string, body: string): Outgoing => ({
  kind: 'send',
  frame: { type: 'send', cid: 'c1', to, body },
});

function busMessage(id: string, to: string, body: string): BusMessage {
  return {
    v: 1,
    id,
    origin: 'b',
    from: 'x',
    to,
    ts: 0,
    frame: { type: 'message', id, from: 'x', to, body, ts: 0 },
  };
}

describe('Delivery.send', () => {
  test('the same server id sent twice to a local receiver (a retry with a derived id) is written once, both answered delivered', async (t) => {
    const { sessions, delivery, dropped } = await setup(t);
    const alice = session('alice');
    const bob = session('bob');
    sessions.add(alice.conn);
    sessions.add(bob.conn);
    for (let i = 0; i < 2; i++) {
      const answer = await delivery.send(alice.conn, send('bob', 'hi'), 'c:derived');
      assert.deepEqual([answer.type, answer.type === 'ack' && answer.status], ['ack', 'delivered']);
    }
    assert.deepEqual(bob.got, ['hi']);
    assert.equal(await dropped('local'), 1);
  });

  test('a receiver nowhere: offline while the bus is ready, the retryable bus error while it is not', async (t) => {
    const { hub, sessions, delivery } = await setup(t);
    const alice = session('alice');
    sessions.add(alice.conn);
    hub.available = false;
    const unknown = await delivery.send(alice.conn, send('nobody', '?'));
    assert.equal(unknown.type, 'error');
    assert.deepEqual(unknown.type === 'error' && [unknown.code, unknown.retryable, unknown.cid], [
      'NODE_ERR_BUS_UNAVAILABLE',
      true,
      'c1',
    ]);
    hub.available = true;
    const known = await delivery.send(alice.conn, send('nobody', '?'));
    assert.equal(known.type === 'ack' && known.status, 'offline');
  });
});

describe('Delivery.fromBus / arrived', () => {
  test('a record for a receiver not here is held and written when they arrive; a re-read is written once', async (t) => {
    const { sessions, handoff, delivery, dropped } = await setup(t);
    delivery.fromBus(busMessage('m1', 'carol', 'one'), { shard: 1, offset: 5 });
    delivery.fromBus(busMessage('m1', 'carol', 'one'), { shard: 1, offset: 5 });
    assert.equal(handoff.size, 1, 'held once');
    assert.equal(await dropped('handoff'), 1);
    const carol = session('carol');
    sessions.add(carol.conn);
    delivery.arrived('carol');
    assert.deepEqual(carol.got, ['one']);
    // Read again (after a hand-over or a crash), while she is here and after she left: never twice.
    delivery.fromBus(busMessage('m1', 'carol', 'one'), { shard: 1, offset: 5 });
    sessions.remove(carol.conn);
    delivery.fromBus(busMessage('m1', 'carol', 'one'), { shard: 1, offset: 5 });
    assert.equal(handoff.size, 0);
    assert.deepEqual(carol.got, ['one']);
    assert.equal(await dropped('bus'), 2);
  });

  test('arrived with no session (already gone) takes nothing', async (t) => {
    const { handoff, delivery } = await setup(t);
    delivery.fromBus(busMessage('m2', 'dan', 'two'), { shard: 2, offset: 1 });
    delivery.arrived('dan');
    assert.equal(handoff.size, 1);
  });
});
