// Row "Routers": upgrades, proxied connections, proxy errors.
import { timeseries, type RowSpec } from '../panels.js';

export const routersRow: RowSpec = {
  id: 104,
  title: 'Routers',
  panels: [
    timeseries({
      id: 11,
      title: 'Router upgrades by result',
      description: 'WebSocket upgrade requests: ok, or why they were refused.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (result) (rate(chat_router_upgrades_total{instance=~"$instance"}[$__rate_interval]))',
          legend: '{{result}}',
        },
      ],
    }),
    timeseries({
      id: 12,
      title: 'Proxied connections per router',
      description: 'WebSocket connections each router proxies to a node now.',
      unit: 'short',
      queries: [
        {
          expr: 'sum by (instance) (chat_router_proxied_connections{instance=~"$instance"})',
          legend: '{{instance}}',
        },
      ],
    }),
    timeseries({
      id: 13,
      title: 'Proxy errors by kind',
      description: 'Failures between a router and a node or a client.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (kind) (rate(chat_router_proxy_errors_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: '{{kind}}',
        },
      ],
    }),
  ],
};
