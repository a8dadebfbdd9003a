// The shard gauges (computed when scraped from the router's tables): what they count, and that a
// registry's /metrics text carries them once the router's tables are watched.
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { OwnerTable } from '@chat/shared';
import type { ProxiedConnection } from './connections.js';
import type { Liveness } from './member-table.js';
import { RouterMetrics, shardGaugeValues, type ShardTables } from './metrics.js';

const SHARDS = 16;
const table = new OwnerTable(
  [
    { id: 'a', weight: 1 },
    { id: 'b', weight: 1 },
  ],
  SHARDS,
);

/** A connection of `shard` with unconnected sockets (destroyed when `open` is false). */
function connection(t: TestContext, shard: number, migrating: boolean, open = true): ProxiedConnection {
  const client = new Socket();
  const upstream = new Socket();
  t.after(() => {
    client.destroy();
    upstream.destroy();
  });
  if (!open) client.destroy();
  return { id: `c${shard}`, key: `k${shard}`, shard, nodeId: 'a', client, upstream, migrating };
}

function tables(
  owners: OwnerTable,
  liveness: Record<string, Liveness>,
  connections: ProxiedConnection[] = [],
): ShardTables {
  return { owners: () => owners, liveness: (id) => liveness[id] ?? 'gone', connections: () => connections };
}

test('a table with live owners has no shard without an owner; an empty table has none owned', () => {
  assert.deepEqual(shardGaugeValues(tables(table, { a: 'active', b: 'active' })), {
    shards: SHARDS,
    withoutOwner: 0,
    movingShards: 0,
    movingConnections: 0,
  });
  const empty = shardGaugeValues(tables(new OwnerTable([], SHARDS), {}));
  assert.equal(empty.withoutOwner, SHARDS);
});

test("a dead or gone owner's shards count as without an owner; a draining one's do not", () => {
  const ofB = table.shardsOf('b').length;
  assert.ok(ofB > 0 && ofB < SHARDS);
  assert.equal(shardGaugeValues(tables(table, { a: 'active', b: 'dead' })).withoutOwner, ofB);
  assert.equal(shardGaugeValues(tables(table, { a: 'active' })).withoutOwner, ofB);
  assert.equal(shardGaugeValues(tables(table, { a: 'active', b: 'draining' })).withoutOwner, 0);
});

test('moves in progress: distinct shards of open connections being moved', (t) => {
  const connections = [
    connection(t, 3, true),
    connection(t, 3, true),
    connection(t, 5, true),
    connection(t, 7, false), // not moving
    connection(t, 9, true, false), // moved: closed already
  ];
  const values = shardGaugeValues(tables(table, { a: 'active', b: 'active' }, connections));
  assert.equal(values.movingShards, 2);
  assert.equal(values.movingConnections, 3);
});

test('the registry reports the watched tables when scraped, zeros before', async (t) => {
  const metrics = new RouterMetrics({ defaultMetrics: false });
  const value = async (name: string) => {
    const text = await metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line?.split(' ')[1]);
  };
  assert.equal(await value('chat_router_shards_without_owner'), 0);
  assert.equal(await value('chat_router_shard_count'), 0);
  const connections = [connection(t, 1, true)];
  metrics.watchShards(tables(table, { a: 'active' }, connections));
  assert.equal(await value('chat_router_shard_count'), SHARDS);
  assert.equal(await value('chat_router_shards_without_owner'), table.shardsOf('b').length);
  assert.equal(await value('chat_router_shard_moves_in_progress'), 1);
  assert.equal(await value('chat_router_migrating_connections'), 1);
  connections[0]?.client.destroy();
  assert.equal(await value('chat_router_shard_moves_in_progress'), 0);
});
