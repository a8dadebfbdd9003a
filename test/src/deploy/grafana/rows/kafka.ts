// Row "Kafka": the bus seen from the nodes (produce latency, consumer lag, errors).
import { timeseries, type RowSpec } from '../panels.js';

export const kafkaRow: RowSpec = {
  id: 102,
  title: 'Kafka',
  panels: [
    timeseries({
      id: 4,
      title: 'Kafka produce latency',
      description: 'acks=all, per batch.',
      unit: 's',
      queries: [
        { q: '0.99', p: 'p99' },
        { q: '0.5', p: 'p50' },
      ].map(({ q, p }) => ({
        expr: `histogram_quantile(${q}, sum by (le) (rate(chat_node_bus_produce_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
        legend: p,
      })),
    }),
    timeseries({
      id: 5,
      title: 'Kafka consumer lag per node',
      description: 'Records on the message topic a node has not read yet.',
      unit: 'short',
      queries: [
        {
          expr: 'max by (instance) (chat_node_bus_consumer_lag_records{instance=~"$instance"})',
          legend: '{{instance}}',
        },
      ],
    }),
    timeseries({
      id: 9,
      title: 'Bus produce errors and invalid records',
      description: 'Records Kafka did not take, by kind; records read and skipped, by reason.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (kind) (rate(chat_node_bus_produce_errors_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: 'produce {{kind}}',
        },
        {
          expr: 'sum by (reason) (rate(chat_node_bus_consume_errors_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: 'consume {{reason}}',
        },
      ],
    }),
  ],
};
