// The operator's steps the procedure scenarios run (procedures.ts: chatctl in a child process, as an SRE
// types it), against a real cluster (2 nodes, 1 router, the run's Kafka broker) with a few connected
// users: each plan matches what then moves, and every refusal or unfinished step is an error naming the
// command and its exit code, never a silent success.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { useKafka, type KafkaFixture } from '../kafka/harness.js';
import { pollUntil } from '../poll.js';
import { ChaosCluster, Scope, groupKey } from './cluster.js';
import { LoadClient } from './load-client.js';
import {
  describeMove,
  drainAndWait,
  planChange,
  planUndrain,
  startMoveMeter,
  statusHealthy,
  undrain,
} from './procedures.js';

describe('operator steps of the procedures (plan, drain until done, undrain) on a live cluster', () => {
  const cleanups: (() => unknown)[] = [];
  let kafka: KafkaFixture;
  let cluster: ChaosCluster;
  let load: LoadClient;
  before(
    async () => {
      kafka = await useKafka({ after: (fn) => cleanups.push(fn) });
      const scope = new Scope();
      cleanups.push(() => scope.close());
      cluster = await ChaosCluster.start(scope, {
        brokers: kafka.brokers,
        prefix: `procedures-${Date.now()}`,
        nodeIds: ['n1', 'n2'],
        shards: 16,
      });
      await cluster.waitSettled({ users: [], openCount: 0 }, 40_000);
      const c = cluster;
      load = new LoadClient({
        url: (user, group) => c.router.wsUrl(user, `affinity=${groupKey(group)}`),
        users: 16,
        groups: 8,
        ratePerSec: 1,
        crossShare: 0,
        tag: 'procedures',
      });
      scope.after(() => load.close());
      await load.connect(30_000);
      await cluster.waitSettled(load, 40_000);
    },
    { timeout: 180_000 },
  );
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('a plan the router refuses is an error: adding a member, removing a stranger', async () => {
    await assert.rejects(planChange(cluster.router, { add: 'n1' }), /chatctl plan add n1: exit 5/);
    await assert.rejects(planChange(cluster.router, { remove: 'n9' }), /chatctl plan remove n9: exit 5/);
    await assert.rejects(planUndrain(cluster.router, 'n9'), /undrain n9: not a member/);
  });

  test('draining a node the router does not know is an error', async () => {
    await assert.rejects(drainAndWait(cluster.router, 'n9', 5000), /chatctl drain n9: exit 5/);
    await assert.rejects(undrain(cluster.router, 'n9', 5000), /chatctl undrain n9: exit 5/);
  });

  test('drain: the plan is what moves; not done within the deadline is an error; undrain moves it back', async () => {
    const out = await planChange(cluster.router, { remove: 'n2' });
    assert.ok(out.shards > 0 && out.connections > 0, `n2 owns shards and users: ${JSON.stringify(out)}`);
    assert.equal(out.totalConnections, 16);
    const meter = await startMoveMeter(cluster.router, load.closes);
    // Its sessions are closed over the node's drain window (2 s): not done within 1 ms.
    await assert.rejects(drainAndWait(cluster.router, 'n2', 1), /chatctl drain n2: exit 1/);
    await drainAndWait(cluster.router, 'n2', 30_000);
    cluster.drained.add('n2');
    await cluster.waitSettled(load, 40_000);
    const moved = await meter.read();
    assert.equal(moved.shards, out.shards);
    assert.deepEqual(moved.migrations, { draining: out.connections });
    assert.deepEqual(moved.closes, { 4002: out.connections });
    assert.match(describeMove(out, moved), new RegExp(`predicted ${out.shards} of 16 shards`));

    const back = await planUndrain(cluster.router, 'n2');
    assert.equal(back.shards, out.shards, 'the same shards come back');
    const backMeter = await startMoveMeter(cluster.router, load.closes);
    await undrain(cluster.router, 'n2', 30_000);
    cluster.drained.delete('n2');
    await cluster.waitSettled(load, 40_000);
    const returned = await backMeter.read();
    assert.equal(returned.shards, back.shards);
    assert.deepEqual(returned.migrations, { asked: back.connections });
    const status = await statusHealthy(cluster.router);
    assert.equal(status.code, 0, status.stderr);
  });

  test('status exits 1 while a member is not alive', async () => {
    await cluster.stopNode('n1', 'SIGKILL');
    // The router finds out by its probes (about a second); the exit code follows what it says.
    const status = await pollUntil(
      async () => {
        const run = await statusHealthy(cluster.router);
        return run.code !== 0 && run;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'chatctl status to exit non-zero' },
    );
    assert.equal(status.code, 1, JSON.stringify(status.report));
  });
});
