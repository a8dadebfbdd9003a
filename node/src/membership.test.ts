import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger } from '@chat/shared';
import { MemoryBusHub } from './bus/memory-bus.js';
import type { Connection } from './connection.js';
import { Membership } from './membership.js';
import { SessionRegistry } from './session-registry.js';

const logger = createLogger({ name: 'test', level: 'silent' });

test('a user who connected during a bus outage is published when the bus returns (pending presence kept)', async (t) => {
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
  const sessions = new SessionRegistry();
  const membership = new Membership({
    nodeId: 'a',
    epoch: 'e1',
    url: () => 'http://127.0.0.1:1',
    weight: 1,
    intervalMs: 20,
    bus,
    sessions,
    logger,
  });
  await membership.start();
  t.after(() => membership.stop());
  hub.available = false;
  // The user connects while Kafka is down: the presence publish fails and stays pending.
  sessions.add({ userId: 'during-outage', connectionId: undefined, shard: 3 } as unknown as Connection);
  membership.touch('during-outage');
  await membership.flushPresence();
  assert.equal(membership.pendingPresence, 1, 'kept for a retry');
  assert.equal(hub.presence.has('a/during-outage'), false);
  hub.available = true;
  // The next heartbeat that gets through publishes it.
  const deadline = Date.now() + 5000;
  while (!hub.presence.has('a/during-outage')) {
    assert.ok(Date.now() < deadline, 'presence published after the outage');
    await delay(5);
  }
  const published = JSON.parse(hub.presence.get('a/during-outage') ?? '{}') as { shard?: number };
  assert.equal(published.shard, 3);
  assert.equal(membership.pendingPresence, 0);
});
