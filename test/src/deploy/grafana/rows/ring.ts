// Row "Ring and nodes": membership as the routers see it, and the nodes' readiness.
import { timeseries, type RowSpec } from '../panels.js';

export const ringRow: RowSpec = {
  id: 105,
  title: 'Ring and nodes',
  panels: [
    timeseries({
      id: 14,
      title: 'Ring members and version',
      description: 'Routers with the same members share a version.',
      unit: 'short',
      queries: [
        {
          expr: 'max by (instance) (chat_router_ring_members{instance=~"$instance"})',
          legend: 'members {{instance}}',
        },
        {
          expr: 'count by (version) (chat_router_ring_version_info{instance=~"$instance"})',
          legend: 'routers on {{version}}',
        },
      ],
    }),
    timeseries({
      id: 15,
      title: 'Ring changes and migrations',
      description:
        'Ring changes, connections moved to their shard’s new owner (by how), and connections the router cut.',
      unit: 'short',
      queries: [
        {
          expr: 'sum (increase(chat_router_ring_changes_total{instance=~"$instance"}[$__rate_interval]))',
          legend: 'ring changes',
        },
        {
          expr: 'sum by (result) (increase(chat_router_migrations_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: 'migrations {{result}}',
        },
        {
          expr: 'sum by (reason) (increase(chat_router_connections_cut_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: 'cut by the router {{reason}}',
        },
      ],
    }),
    timeseries({
      id: 16,
      title: 'Nodes ready',
      description: '1 when accepting and the bus works.',
      unit: 'short',
      queries: [{ expr: 'chat_node_ready{instance=~"$instance"}', legend: '{{instance}}' }],
    }),
  ],
};
