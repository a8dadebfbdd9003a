// The "Chat cluster" Grafana dashboard, built with Grafana's own typed builders (Foundation SDK) from one
// module per row. `pnpm docs:gen` writes it to deploy/grafana/dashboards/chat-cluster.json (provisioned by
// deploy/grafana/provisioning/dashboards/chat.yml); dashboard-generated.test.ts fails when they differ.
import {
  DashboardBuilder,
  QueryVariableBuilder,
  RowBuilder,
  VariableRefresh,
  type Dashboard,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { join } from 'node:path';
import { repoRoot } from '../../paths.js';
import { prometheus, type RowSpec } from './panels.js';
import { errorsRow } from './rows/errors.js';
import { kafkaRow } from './rows/kafka.js';
import { ringRow } from './rows/ring.js';
import { routersRow } from './rows/routers.js';
import { shardsRow } from './rows/shards.js';
import { trafficRow } from './rows/traffic.js';

/** Where the dashboard is committed, from the repository root. */
export const DASHBOARD_PATH = 'deploy/grafana/dashboards/chat-cluster.json';

/** The rows, top to bottom. */
export const ROWS: readonly RowSpec[] = [trafficRow, kafkaRow, errorsRow, routersRow, ringRow, shardsRow];

/** The `instance` variable every query filters on (`.*` for all: nodes and routers). */
function instanceVariable(): QueryVariableBuilder {
  const query = 'label_values(up{job=~"chat-.*"}, instance)';
  return new QueryVariableBuilder('instance')
    .label('Instance')
    .datasource(prometheus)
    .query({ query, refId: 'instance' })
    .definition(query)
    .includeAll(true)
    .multi(true)
    .allValue('.*')
    .current({ text: 'All', value: '$__all' })
    .refresh(VariableRefresh.OnTimeRangeChanged);
}

/** The dashboard as Grafana's JSON model. */
export function chatClusterDashboard(): Dashboard {
  const builder = new DashboardBuilder('Chat cluster')
    .uid('chat-cluster')
    .tags(['chat'])
    .timezone('browser')
    .refresh('10s')
    .time({ from: 'now-1h', to: 'now' })
    .version(1)
    .annotations([])
    .withVariable(instanceVariable());
  for (const row of ROWS) {
    builder.withRow(new RowBuilder(row.title).id(row.id));
    for (const panel of row.panels) builder.withPanel(panel);
  }
  return builder.build();
}

/**
 * The committed file's text: the model as JSON, formatted by the repository's prettier (so `prettier
 * --check` agrees with the generator).
 */
export async function renderDashboard(): Promise<string> {
  const { format, resolveConfig } = await import('prettier');
  const options = (await resolveConfig(join(repoRoot, DASHBOARD_PATH))) ?? {};
  return format(JSON.stringify(chatClusterDashboard(), null, 2), { ...options, parser: 'json' });
}
