import { NodeMetrics } from '@chat/node';
import { RouterMetrics } from '@chat/router';
type Registry = NodeMetrics['registry'];

interface MetricInfo {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly labels: readonly string[];
}

/** The metrics a registry holds (without the process defaults), sorted by name. */
export function metricsOf(registry: Registry): MetricInfo[] {
  return registry
    .getMetricsAsArray()
    .map((m) => {
      const meta = m as unknown as { name: string; type: string; help: string; labelNames?: string[] };
      return { name: meta.name, type: meta.type, help: meta.help, labels: meta.labelNames ?? [] };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Every metric name either service registers (its own, not the process defaults). */
export function allMetricNames(): string[] {
  return [
    ...metricsOf(new NodeMetrics({ defaultMetrics: false }).registry),
    ...metricsOf(new RouterMetrics({ defaultMetrics: false }).registry),
  ].map((m) => m.name);
}

function table(metrics: MetricInfo[]): string[] {
  return [
    '| Metric | Type | Labels | Meaning |',
    '| --- | --- | --- | --- |',
    ...metrics.map(
      (m) =>
        `| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(', ') || '-'} | ${m.help} |`,
    ),
  ];
}

/** Renders docs/metrics.md from the registries; a test checks the committed file matches. */
export function renderMetricsDocs(): string {
  return [
    '# Metrics',
    '',
    '<!-- Generated from node/src/metrics.ts and router/src/metrics.ts by `pnpm docs:gen`; do not edit by hand. -->',
    '',
    'Every process has its own registry. Nodes serve `/metrics` on their listener; routers on the admin',
    'listener (behind `CHAT_ROUTER_ADMIN_TOKEN` when set). Both also export the prom-client process defaults',
    '(`process_*`, `nodejs_*`). Labels are low-cardinality enums: never a user, room or connection id.',
    'Histograms add `_bucket`, `_sum` and `_count` series.',
    '',
    '## Chat node',
    '',
    ...table(metricsOf(new NodeMetrics({ defaultMetrics: false }).registry)),
    '',
    '## Router',
    '',
    ...table(metricsOf(new RouterMetrics({ defaultMetrics: false }).registry)),
    '',
  ].join('\n');
}
