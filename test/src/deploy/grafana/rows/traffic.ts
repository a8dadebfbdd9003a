// Row "Traffic": sessions, deliveries and their latency, acks.
import { timeseries, type RowSpec } from '../panels.js';

export const trafficRow: RowSpec = {
  id: 101,
  title: 'Traffic',
  panels: [
    timeseries({
      id: 1,
      title: 'Connections per node',
      description: 'Open client sessions on each node.',
      unit: 'short',
      queries: [
        { expr: 'sum by (instance) (chat_node_connections{instance=~"$instance"})', legend: '{{instance}}' },
      ],
    }),
    timeseries({
      id: 2,
      title: 'Messages delivered per second: local vs bus',
      description: 'Local: sender and receiver on one node, no Kafka. Bus: crossed nodes over Kafka.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (path) (rate(chat_node_deliveries_total{instance=~"$instance"}[$__rate_interval]))',
          legend: '{{path}}',
        },
      ],
    }),
    timeseries({
      id: 3,
      title: 'Delivery latency (end to end)',
      description: "Sender's frame in to receiver's frame out.",
      unit: 's',
      queries: [
        { q: '0.5', p: 'p50' },
        { q: '0.99', p: 'p99' },
      ].map(({ q, p }) => ({
        expr: `histogram_quantile(${q}, sum by (le, path) (rate(chat_node_delivery_latency_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
        legend: `${p} {{path}}`,
      })),
    }),
    timeseries({
      id: 8,
      title: 'Acks by status',
      description: 'delivered / accepted / offline.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (status) (rate(chat_node_acks_total{instance=~"$instance"}[$__rate_interval]))',
          legend: '{{status}}',
        },
      ],
    }),
  ],
};
