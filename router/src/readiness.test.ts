// The router's readiness against a member table probing real HTTP servers on 127.0.0.1 port 0, with a
// membership source whose replay the test finishes: one describe per public member.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { createLogger, type ReadyzBody } from '@chat/shared';
import { MemberTable } from './member-table.js';
import type { MemberInfo } from './membership/types.js';
import { RouterMetrics } from './metrics.js';
import { RouterReadiness } from './readiness.js';

const logger = createLogger({ name: 'test', level: 'silent' });

/** A node's /readyz: accepting, or silent (`hang`) until the probe times out. */
async function fakeNode(t: TestContext, id: string, hang = false): Promise<MemberInfo> {
  const held: ServerResponse[] = [];
  const server = createServer((req, res) => {
    if (hang) return void held.push(res);
    const body: ReadyzBody = { ready: true, accepting: true, draining: false, bus: true, nodeId: id };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { id, url, weight: 1, state: 'active' };
}

function setup(t: TestContext) {
  const members = new MemberTable({
    shardCount: 16,
    probeIntervalMs: 60_000,
    probeTimeoutMs: 150,
    probeFailures: 1,
    metrics: new RouterMetrics({ defaultMetrics: false }),
    logger,
  });
  t.after(() => members.stop());
  const membership = { replayed: false };
  const readiness = new RouterReadiness({ membership, members, logger });
  return { members, membership, readiness };
}

describe('RouterReadiness#check', () => {
  test('a partial view is not ready: not before the replay ended, even with a healthy member', async (t) => {
    const { members, membership, readiness } = setup(t);
    const n1 = await fakeNode(t, 'n1');
    // The first heartbeat of three replayed: n1 is probed and healthy, the owner table has one member.
    members.setMembers([n1]);
    await members.probeAll();
    assert.equal(members.owners.size, 1);
    assert.deepEqual(readiness.check(), { ready: false, settled: false, reason: 'replaying' });
    const [n2, n3] = await Promise.all([fakeNode(t, 'n2'), fakeNode(t, 'n3')]);
    members.setMembers([n1, n2, n3]);
    membership.replayed = true;
    // Replayed, but n2 and n3 not yet probed.
    assert.deepEqual(readiness.check(), { ready: false, settled: false, reason: 'probing' });
    await members.probeAll();
    assert.deepEqual(readiness.check(), { ready: true, settled: true });
    assert.equal(members.owners.size, 3, 'ready only with every member in the table');
  });

  test('a member that never answers counts once its probe timed out, and stays out of the table', async (t) => {
    const { members, membership, readiness } = setup(t);
    const ok = await fakeNode(t, 'ok');
    const silent = await fakeNode(t, 'silent', true);
    membership.replayed = true;
    members.setMembers([ok, silent]);
    assert.equal(readiness.check().reason, 'probing');
    await members.probeAll();
    assert.deepEqual(readiness.check(), { ready: true, settled: true });
    assert.deepEqual(
      members.owners.members.map((m) => m.id),
      ['ok'],
    );
  });

  test('settled with nobody in the table: not ready (no_member) until a member is probed healthy', async (t) => {
    const { members, membership, readiness } = setup(t);
    membership.replayed = true;
    members.setMembers([]);
    assert.deepEqual(readiness.check(), { ready: false, settled: true, reason: 'no_member' });
    members.setMembers([await fakeNode(t, 'n1')]);
    await members.probeAll();
    assert.deepEqual(readiness.check(), { ready: true, settled: true });
  });

  test('settling happens once: a member joining later does not make the router unready', async (t) => {
    const { members, membership, readiness } = setup(t);
    const n1 = await fakeNode(t, 'n1');
    membership.replayed = true;
    members.setMembers([n1]);
    await members.probeAll();
    assert.equal(readiness.check().ready, true);
    members.setMembers([n1, await fakeNode(t, 'n2')]);
    assert.equal(members.allProbed, false);
    assert.deepEqual(readiness.check(), { ready: true, settled: true });
  });
});

describe('RouterReadiness#stop', () => {
  test('a stopping router is not ready', async (t) => {
    const { members, membership, readiness } = setup(t);
    membership.replayed = true;
    members.setMembers([await fakeNode(t, 'n1')]);
    await members.probeAll();
    assert.equal(readiness.check().ready, true);
    readiness.stop();
    assert.deepEqual(readiness.check(), { ready: false, settled: true, reason: 'stopping' });
  });
});
