// Cases for `promtool test rules` over the shard alerts of deploy/prometheus/alerts.yml: made-up series
// (Prometheus's expanding notation: '0 2x6' is 0, then 2 seven times; 'stale' ends a series), when each
// alert must fire (its labels) and when it must stay quiet. Annotations are checked separately.

export interface AlertCase {
  readonly name: string;
  /** Series selector with labels -> values, one per minute from 0m. */
  readonly series: Record<string, string>;
  /** At each time, the alerts expected firing (their labels, besides alertname), or none. */
  readonly expect: {
    readonly at: string;
    readonly alert: string;
    readonly firing: Record<string, string>[];
  }[];
}

const router = (metric: string, instance = 'chat-router-0') =>
  `${metric}{job="chat-router",instance="${instance}"}`;
const node = (metric: string, instance: string, extra = '') =>
  `${metric}{job="chat-node",instance="${instance}"${extra}}`;

export const SHARD_ALERT_CASES: readonly AlertCase[] = [
  {
    name: "a router's table has shards without a live owner for more than a minute",
    series: {
      [router('chat_router_shards_without_owner')]: '0 2x8',
      [router('chat_router_shard_count')]: '4x8',
      [node('chat_node_shards_owned', 'chat-node-0')]: '4x8',
    },
    expect: [
      { at: '0m', alert: 'ChatShardWithoutOwner', firing: [] },
      { at: '1m', alert: 'ChatShardWithoutOwner', firing: [] },
      { at: '3m', alert: 'ChatShardWithoutOwner', firing: [{ instance: 'chat-router-0', severity: 'page' }] },
    ],
  },
  {
    name: 'a node is gone and the others do not claim its shards',
    series: {
      [router('chat_router_shards_without_owner')]: '0x8',
      [router('chat_router_shard_count')]: '4x8',
      [node('chat_node_shards_owned', 'chat-node-0')]: '2x8',
      [node('chat_node_shards_owned', 'chat-node-1')]: '2 2 stale',
    },
    expect: [
      { at: '1m', alert: 'ChatShardWithoutOwner', firing: [] },
      { at: '5m', alert: 'ChatShardWithoutOwner', firing: [{ severity: 'page' }] },
    ],
  },
  {
    name: 'a node takes over the shards of one that left within the minute',
    series: {
      [router('chat_router_shards_without_owner')]: '0x8',
      [router('chat_router_shard_count')]: '4x8',
      [node('chat_node_shards_owned', 'chat-node-0')]: '2 2 2 4x5',
      [node('chat_node_shards_owned', 'chat-node-1')]: '2 2 stale',
    },
    expect: [{ at: '6m', alert: 'ChatShardWithoutOwner', firing: [] }],
  },
  {
    name: 'held messages expire or overflow; delivered and released ones do not alert',
    series: {
      [node('chat_node_handoff_total', 'chat-node-0', ',result="expired"')]: '0x5 0+3x5',
      [node('chat_node_handoff_total', 'chat-node-1', ',result="overflow"')]: '0x5 0+1x5',
      [node('chat_node_handoff_total', 'chat-node-2', ',result="delivered"')]: '0+10x10',
      [node('chat_node_handoff_total', 'chat-node-2', ',result="released"')]: '0+10x10',
    },
    expect: [
      { at: '4m', alert: 'ChatHandoffExpiring', firing: [] },
      {
        at: '8m',
        alert: 'ChatHandoffExpiring',
        firing: [
          { instance: 'chat-node-0', severity: 'warn' },
          { instance: 'chat-node-1', severity: 'warn' },
        ],
      },
    ],
  },
  {
    name: 'a move that lasts past 15 minutes; one that ended does not alert',
    series: {
      [router('chat_router_shard_moves_in_progress')]: '3x20',
      [router('chat_router_shard_moves_in_progress', 'chat-router-1')]: '1 1 0x18',
    },
    expect: [
      { at: '10m', alert: 'ChatShardMoveStuck', firing: [] },
      { at: '16m', alert: 'ChatShardMoveStuck', firing: [{ instance: 'chat-router-0', severity: 'warn' }] },
    ],
  },
  {
    name: 'a release that cannot be written for 5 minutes; a quick take-over does not alert',
    series: {
      [node('chat_node_shard_handovers', 'chat-node-0', ',side="releasing"')]: '1x10',
      [node('chat_node_shard_handovers', 'chat-node-0', ',side="taking"')]: '0x10',
      [node('chat_node_shard_handovers', 'chat-node-1', ',side="taking"')]: '1 1 0x8',
    },
    expect: [
      { at: '3m', alert: 'ChatShardHandoverStuck', firing: [] },
      { at: '7m', alert: 'ChatShardHandoverStuck', firing: [{ instance: 'chat-node-0', severity: 'warn' }] },
    ],
  },
  {
    name: 'nodes claim more shards than there are for 5 minutes; agreeing nodes do not alert',
    series: {
      [router('chat_router_shard_count')]: '4x10',
      [node('chat_node_shards_owned', 'chat-node-0')]: '2x10',
      [node('chat_node_shards_owned', 'chat-node-1')]: '2 2 3x8',
    },
    expect: [
      { at: '1m', alert: 'ChatShardOwnersDisagree', firing: [] },
      { at: '5m', alert: 'ChatShardOwnersDisagree', firing: [] },
      { at: '9m', alert: 'ChatShardOwnersDisagree', firing: [{ severity: 'warn' }] },
    ],
  },
];

/** The shard alerts (their annotations must name a procedure of docs/operations.md). */
export const SHARD_ALERTS = [
  'ChatShardWithoutOwner',
  'ChatHandoffExpiring',
  'ChatShardMoveStuck',
  'ChatShardHandoverStuck',
  'ChatShardOwnersDisagree',
];

/** The procedures' anchors in docs/operations.md a shard alert's runbook may point at. */
export const PROCEDURE_ANCHORS = ['scale-out', 'scale-in', 'rolling-restart', 'broker-restart'];
