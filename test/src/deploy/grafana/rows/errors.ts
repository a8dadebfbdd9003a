// Row "Errors and limits": what clients are refused, and why.
import { timeseries, type RowSpec } from '../panels.js';

export const errorsRow: RowSpec = {
  id: 103,
  title: 'Errors and limits',
  panels: [
    timeseries({
      id: 6,
      title: 'Errors sent to clients, by code',
      description: 'See docs/errors.md.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (code) (rate(chat_node_errors_sent_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: '{{code}}',
        },
      ],
    }),
    timeseries({
      id: 7,
      title: 'Limits hit, by limit',
      description: 'Rate limits, connection limits, slow consumers cut, oversize frames.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (limit) (rate(chat_node_limit_hits_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: '{{limit}}',
        },
      ],
    }),
    timeseries({
      id: 10,
      title: 'Authentication failures',
      description: 'Refused tokens and origins, by error code, at the router and at the nodes.',
      unit: 'ops',
      queries: [
        {
          expr: 'sum by (code) (rate(chat_router_auth_failures_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: 'router {{code}}',
        },
        {
          expr: 'sum by (code) (rate(chat_node_auth_failures_total{instance=~"$instance"}[$__rate_interval])) or vector(0)',
          legend: 'node {{code}}',
        },
      ],
    }),
  ],
};
