// Row "Shards": who owns how many shards, shards nobody owns, moves and hand-overs under way, and the
// records held for receivers on their way to a shard's new owner (handoff). docs/metrics.md says what
// each metric counts; deploy/prometheus/alerts.yml alerts on the same series.
import { alarmStat, timeseries, type RowSpec } from '../panels.js';

export const shardsRow: RowSpec = {
  id: 106,
  title: 'Shards',
  panels: [
    timeseries({
      id: 17,
      title: 'Shards per node',
      description:
        'Shards each node owns and reads, from its own owner table. When the nodes agree, their sum is the shard count; a larger sum means some nodes see different members (some shards read twice), a smaller one shards nobody reads.',
      unit: 'short',
      queries: [
        { expr: 'max by (instance) (chat_node_shards_owned{instance=~"$instance"})', legend: '{{instance}}' },
        { expr: 'sum(chat_node_shards_owned)', legend: 'claimed by all nodes' },
        { expr: 'max(chat_router_shard_count)', legend: 'shards in the cluster' },
      ],
    }),
    alarmStat({
      id: 18,
      title: 'Shards without an owner',
      description:
        "In a router's owner table: no eligible node, or an owner it sees dead (new connections to them get 503). Read by no node: the shard count minus the shards the nodes claim (their messages wait in Kafka). 0 when healthy.",
      unit: 'short',
      redFrom: 1,
      queries: [
        { expr: 'max(chat_router_shards_without_owner)', legend: "in a router's table" },
        {
          expr: 'clamp_min(max(chat_router_shard_count) - (sum(chat_node_shards_owned) or vector(0)), 0)',
          legend: 'read by no node',
        },
      ],
    }),
    timeseries({
      id: 19,
      title: 'Moves in progress',
      description:
        "Routers: shards whose owner changed and whose connections are still open on the old owner. Nodes: shards being taken over (waiting for the previous owner's release) or released (final position not written yet). 0 when every move is done.",
      unit: 'short',
      queries: [
        {
          expr: 'sum by (instance) (chat_router_shard_moves_in_progress{instance=~"$instance"})',
          legend: 'moving connections {{instance}}',
        },
        {
          expr: 'sum by (instance, side) (chat_node_shard_handovers{instance=~"$instance"})',
          legend: '{{side}} {{instance}}',
        },
      ],
    }),
    timeseries({
      id: 20,
      title: 'Connections being moved',
      description:
        "Connections of moved shards still open on their old owner (asked to close with 4002, or left to a draining node); see 'Ring changes and migrations' for how they ended.",
      unit: 'short',
      queries: [
        {
          expr: 'sum by (instance) (chat_router_migrating_connections{instance=~"$instance"})',
          legend: '{{instance}}',
        },
      ],
    }),
    timeseries({
      id: 21,
      title: 'Handoff: messages held',
      description:
        'Records of a shard held for a receiver who has no session on its owner yet (reconnecting after a move, a drain or a crash), for up to CHAT_NODE_HANDOFF_GRACE_MS.',
      unit: 'short',
      queries: [
        {
          expr: 'sum by (instance) (chat_node_handoff_held_messages{instance=~"$instance"})',
          legend: '{{instance}}',
        },
      ],
    }),
    timeseries({
      id: 22,
      title: 'Handoff: messages leaving the hold, by result',
      description:
        'delivered (the receiver arrived), released (the shard moved on: its next owner reads them again), expired and overflow (not delivered live: the receiver did not come back within the grace, or the hold was full).',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (result) (rate(chat_node_handoff_total{instance=~"$instance"}[$__rate_interval]))',
          legend: '{{result}}',
        },
      ],
    }),
  ],
};
