import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../paths.js';

export interface PanelQuery {
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
}

interface DashboardPanel {
  title: string;
  type: string;
  targets?: { refId: string; expr: string }[];
  /** A collapsed row's panels. */
  panels?: DashboardPanel[];
}

/** Every query of every panel of the provisioned Grafana dashboard (rows have none; collapsed ones hold panels). */
export function dashboardQueries(): PanelQuery[] {
  const dashboard = JSON.parse(
    readFileSync(join(repoRoot, 'deploy/grafana/dashboards/chat-cluster.json'), 'utf8'),
  ) as { panels: DashboardPanel[] };
  const panels = dashboard.panels.flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
  return panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })),
  );
}

/** The dashboard's template variables and Grafana's interval filled in, as Prometheus takes them. */
export function concrete(expr: string, rateInterval = '20s'): string {
  return expr.replaceAll('$instance', '.*').replaceAll('$__rate_interval', rateInterval);
}

/** Every alert rule of deploy/prometheus/alerts.yml. */
export function alertRules(): AlertRule[] {
  const doc = parse(readFileSync(join(repoRoot, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
    groups: { rules: AlertRule[] }[];
  };
  return doc.groups.flatMap((g) => g.rules);
}

/** Metric names an expression reads (ours and `up`). */
export function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bchat_[a-z_]+\b|\bup\b/g) ?? [])];
}
