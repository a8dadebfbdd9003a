// Small typed helpers over the Grafana Foundation SDK's builders, so each row module reads as a list of
// panels (title, unit, PromQL) and every panel of the dashboard is built the same way.
import {
  VizLegendOptionsBuilder,
  LegendDisplayMode,
  LegendPlacement,
} from '@grafana/grafana-foundation-sdk/common';
import { ThresholdsConfigBuilder, ThresholdsMode } from '@grafana/grafana-foundation-sdk/dashboard';
import { DataqueryBuilder } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StatPanelBuilder } from '@grafana/grafana-foundation-sdk/stat';
import { ReduceDataOptionsBuilder } from '@grafana/grafana-foundation-sdk/common';
import { PanelBuilder as TimeseriesPanelBuilder } from '@grafana/grafana-foundation-sdk/timeseries';

/** The provisioned Prometheus data source (deploy/grafana/provisioning/datasources/prometheus.yml). */
export const prometheus = { type: 'prometheus', uid: 'prometheus' };

/** One PromQL query of a panel: `$instance` is the dashboard's instance variable. */
export interface Query {
  readonly expr: string;
  readonly legend: string;
}

/** What a panel shows: its id stays fixed (links to a panel survive regeneration). */
export interface PanelSpec {
  readonly id: number;
  readonly title: string;
  readonly description: string;
  /** Grafana unit id: short, ops, s. */
  readonly unit: string;
  readonly queries: readonly Query[];
}

/** Panels are laid out two per line, each half the width. */
const HEIGHT = 8;
const WIDTH = 12;

function targets(queries: readonly Query[]): DataqueryBuilder[] {
  return queries.map((q, i) =>
    new DataqueryBuilder()
      .refId(String.fromCharCode(65 + i))
      .expr(q.expr)
      .legendFormat(q.legend)
      .datasource(prometheus),
  );
}

/** A time series panel with the legend shown under it. */
export function timeseries(spec: PanelSpec): TimeseriesPanelBuilder {
  return new TimeseriesPanelBuilder()
    .id(spec.id)
    .title(spec.title)
    .description(spec.description)
    .datasource(prometheus)
    .unit(spec.unit)
    .legend(
      new VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(LegendDisplayMode.List)
        .placement(LegendPlacement.Bottom)
        .calcs([]),
    )
    .targets(targets(spec.queries))
    .height(HEIGHT)
    .span(WIDTH);
}

/**
 * A stat panel of the last value, green at 0 and red from `redFrom` on: for counts that must be 0 in a
 * healthy cluster.
 */
export function alarmStat(spec: PanelSpec & { readonly redFrom: number }): StatPanelBuilder {
  return new StatPanelBuilder()
    .id(spec.id)
    .title(spec.title)
    .description(spec.description)
    .datasource(prometheus)
    .unit(spec.unit)
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .thresholds(
      new ThresholdsConfigBuilder().mode(ThresholdsMode.Absolute).steps([
        { value: null, color: 'green' },
        { value: spec.redFrom, color: 'red' },
      ]),
    )
    .targets(targets(spec.queries))
    .height(HEIGHT)
    .span(WIDTH);
}

/** A titled group of panels (a Grafana row, expanded). */
export interface RowSpec {
  readonly id: number;
  readonly title: string;
  readonly panels: readonly (TimeseriesPanelBuilder | StatPanelBuilder)[];
}
