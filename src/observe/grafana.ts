/**
 * Turns the dashboard definitions of dashboards.ts into Grafana's dashboard JSON model (schemaVersion 39). Ids,
 * refIds and grid positions follow from the order of the definitions, object keys are sorted, and nothing depends
 * on the time or the machine, so the same definitions always give the same bytes.
 */
import { METRICS } from "../metrics/catalogue.ts";

export interface Target {
  readonly expr: string;
  /** Grafana legend template, e.g. `{{check}}`. */
  readonly legend?: string;
}

/** Value → text and colour, for gauges that are states (1 up / 0 down). */
export type States = Readonly<Record<number, readonly [text: string, color: string]>>;

/** Colour steps: the base colour, then [from value, colour]. */
export interface Steps {
  readonly base: string;
  readonly steps?: readonly (readonly [number, string])[];
}

interface PanelBase {
  readonly title: string;
  readonly description: string;
  /** Width in grid columns (of 24). */
  readonly w: number;
  readonly h?: number;
  readonly targets: readonly Target[];
  readonly unit?: string;
  readonly states?: States;
  readonly colors?: Steps;
}

export interface TimeseriesPanel extends PanelBase {
  readonly type: "timeseries";
  readonly min?: number;
  readonly max?: number;
  /** Draws the thresholds (colors) as lines, e.g. an alert's threshold. */
  readonly thresholdLines?: boolean;
  readonly steps?: boolean;
}

export interface StatPanel extends PanelBase {
  readonly type: "stat";
}

export interface TablePanel extends PanelBase {
  readonly type: "table";
  /** Column names after renaming, hidden from view (Value for info-style series). */
  readonly hide?: readonly string[];
  readonly rename?: Readonly<Record<string, string>>;
  readonly sortBy?: { readonly column: string; readonly desc: boolean };
  /** Shown when the query returns nothing, e.g. "no alarms". */
  readonly noValue?: string;
}

export interface PieChartPanel extends PanelBase {
  readonly type: "piechart";
}

export type PanelDef = TimeseriesPanel | StatPanel | TablePanel | PieChartPanel;

export interface RowDef {
  readonly row: string;
  readonly panels: readonly PanelDef[];
}

export interface DashboardDef {
  readonly uid: string;
  /** File name under dashboards/. */
  readonly file: string;
  readonly title: string;
  readonly description: string;
  readonly rows: readonly RowDef[];
}

/** Every dashboard is tagged with this, and links to the others through it. */
export const DASHBOARD_TAG = "sidecar-exporter";
export const DATASOURCE = { type: "prometheus", uid: "${datasource}" } as const;
/** The custom label (metrics.custom.labels) the cluster variable filters on. */
export const CLUSTER = 'cluster=~"$cluster"';
export const RATE = "$__rate_interval";

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json | undefined };

const DEFAULT_HEIGHT = 8;
const GRID_WIDTH = 24;

function thresholds(colors: Steps | undefined): Json {
  const c = colors ?? { base: "green" };
  return {
    mode: "absolute",
    steps: [{ color: c.base, value: null }, ...(c.steps ?? []).map(([value, color]) => ({ color, value }))],
  };
}

function mappings(states: States | undefined): Json {
  if (!states) return [];
  const options: Record<string, Json> = {};
  Object.entries(states).forEach(([value, [text, color]], index) => (options[value] = { color, index, text }));
  return [{ options, type: "value" }];
}

function targets(panel: PanelDef, instant: boolean): Json[] {
  return panel.targets.map((t, i) => ({
    datasource: DATASOURCE,
    editorMode: "code",
    expr: t.expr,
    ...(instant ? { format: "table", instant: true, range: false } : { instant: false, range: true }),
    legendFormat: t.legend ?? "__auto",
    refId: String.fromCharCode(65 + i),
  }));
}

function fieldDefaults(panel: PanelDef, custom: Json): Record<string, Json> {
  return {
    custom,
    mappings: mappings(panel.states),
    thresholds: thresholds(panel.colors),
    ...(panel.unit !== undefined && { unit: panel.unit }),
  };
}

function timeseriesOptions(p: TimeseriesPanel): Record<string, Json> {
  return {
    fieldConfig: {
      defaults: {
        ...fieldDefaults(p, {
          drawStyle: "line",
          fillOpacity: 10,
          lineInterpolation: p.steps ? "stepAfter" : "linear",
          lineWidth: 1,
          pointSize: 4,
          showPoints: "never",
          spanNulls: false,
          thresholdsStyle: { mode: p.thresholdLines ? "line" : "off" },
        }),
        color: { mode: "palette-classic" },
        ...(p.min !== undefined && { min: p.min }),
        ...(p.max !== undefined && { max: p.max }),
      },
      overrides: [],
    },
    options: {
      legend: { calcs: [], displayMode: "list", placement: "bottom", showLegend: true },
      tooltip: { mode: "multi", sort: "desc" },
    },
    targets: targets(p, false),
  };
}

function statOptions(p: StatPanel): Record<string, Json> {
  return {
    fieldConfig: { defaults: { ...fieldDefaults(p, {}), color: { mode: "thresholds" } }, overrides: [] },
    options: {
      colorMode: "background",
      graphMode: "none",
      justifyMode: "auto",
      orientation: "auto",
      reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
      textMode: "value_and_name",
    },
    targets: targets(p, false),
  };
}

function tableOptions(p: TablePanel): Record<string, Json> {
  const excludeByName: Record<string, boolean> = { Time: true, __name__: true };
  for (const column of p.hide ?? []) excludeByName[column] = true;
  // Only the value column is coloured; label columns stay plain.
  const valueColumn = p.rename?.Value ?? "Value";
  const coloured = p.states !== undefined || p.colors !== undefined;
  return {
    fieldConfig: {
      defaults: {
        ...fieldDefaults(p, { align: "auto", cellOptions: { type: "auto" }, inspect: false }),
        color: { mode: "thresholds" },
        ...(p.noValue !== undefined && { noValue: p.noValue }),
      },
      overrides: coloured
        ? [{ matcher: { id: "byName", options: valueColumn }, properties: [{ id: "custom.cellOptions", value: { type: "color-background" } }] }]
        : [],
    },
    options: {
      cellHeight: "sm",
      footer: { countRows: false, fields: "", reducer: ["sum"], show: false },
      showHeader: true,
      ...(p.sortBy && { sortBy: [{ desc: p.sortBy.desc, displayName: p.sortBy.column }] }),
    },
    targets: targets(p, true),
    transformations: [{ id: "organize", options: { excludeByName, indexByName: {}, renameByName: { ...p.rename } } }],
  };
}

function pieOptions(p: PieChartPanel): Record<string, Json> {
  return {
    fieldConfig: { defaults: { ...fieldDefaults(p, {}), color: { mode: "palette-classic" } }, overrides: [] },
    options: {
      displayLabels: ["name"],
      legend: { displayMode: "table", placement: "right", showLegend: true, values: ["value"] },
      pieType: "pie",
      reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
      tooltip: { mode: "single", sort: "none" },
    },
    targets: targets(p, false),
  };
}

function panelBody(p: PanelDef): Record<string, Json> {
  switch (p.type) {
    case "timeseries":
      return timeseriesOptions(p);
    case "stat":
      return statOptions(p);
    case "table":
      return tableOptions(p);
    case "piechart":
      return pieOptions(p);
  }
}

/** Lays rows out top to bottom and panels left to right, wrapping at the grid's width. */
function layout(rows: readonly RowDef[]): Json[] {
  const panels: Json[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    panels.push({ collapsed: false, gridPos: { h: 1, w: GRID_WIDTH, x: 0, y }, id: id++, panels: [], title: row.row, type: "row" });
    y += 1;
    let x = 0;
    let lineHeight = 0;
    for (const p of row.panels) {
      const h = p.h ?? DEFAULT_HEIGHT;
      if (x + p.w > GRID_WIDTH) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      panels.push({
        ...panelBody(p),
        datasource: DATASOURCE,
        description: p.description,
        gridPos: { h, w: p.w, x, y },
        id: id++,
        title: p.title,
        type: p.type,
      });
      x += p.w;
      lineHeight = Math.max(lineHeight, h);
    }
    y += lineHeight;
  }
  return panels;
}

/** The query that lists the values of the cluster variable. */
export const CLUSTER_VARIABLE_QUERY = `label_values(${METRICS.buildInfo.name}, cluster)`;

function templating(): Json {
  return {
    list: [
      {
        current: {},
        hide: 0,
        includeAll: false,
        label: "Data source",
        multi: false,
        name: "datasource",
        options: [],
        query: "prometheus",
        refresh: 1,
        regex: "",
        skipUrlSync: false,
        type: "datasource",
      },
      {
        // .* rather than Grafana's list of every value, so series without the label (no custom labels) still match.
        allValue: ".*",
        current: { selected: true, text: ["All"], value: ["$__all"] },
        datasource: DATASOURCE,
        definition: CLUSTER_VARIABLE_QUERY,
        hide: 0,
        includeAll: true,
        label: "cluster",
        multi: true,
        name: "cluster",
        options: [],
        query: { qryType: 1, query: CLUSTER_VARIABLE_QUERY, refId: "PrometheusVariableQueryEditor-VariableQuery" },
        refresh: 2,
        regex: "",
        skipUrlSync: false,
        sort: 1,
        type: "query",
      },
    ],
  };
}

export function dashboardModel(d: DashboardDef): Json {
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
      ],
    },
    description: `${d.description} Generated from src/observe/dashboards.ts by \`npm run observe\`.`,
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [{ asDropdown: true, icon: "external link", includeVars: true, keepTime: true, tags: [DASHBOARD_TAG], targetBlank: false, title: "sidecar-exporter", type: "dashboards" }],
    panels: layout(d.rows),
    refresh: "1m",
    schemaVersion: 39,
    tags: [DASHBOARD_TAG],
    templating: templating(),
    time: { from: "now-6h", to: "now" },
    timepicker: {},
    timezone: "",
    title: d.title,
    uid: d.uid,
    version: 1,
    weekStart: "",
  };
}

/** Recursively sorts object keys; arrays keep their order, which is meaningful (panels, targets, steps). */
function sortKeys(value: Json | undefined): Json | undefined {
  if (Array.isArray(value)) return value.map((v: Json) => sortKeys(v) ?? null);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, Json> = {};
  for (const key of Object.keys(value).sort()) {
    const v = sortKeys((value as Record<string, Json | undefined>)[key]);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

export function renderDashboard(d: DashboardDef): string {
  return `${JSON.stringify(sortKeys(dashboardModel(d)), null, 2)}\n`;
}

/** Every PromQL expression of a dashboard, panel by panel, for the tests. */
export function dashboardExprs(d: DashboardDef): { panel: string; expr: string }[] {
  return d.rows.flatMap((r) => r.panels.flatMap((p) => p.targets.map((t) => ({ panel: `${d.uid} / ${p.title}`, expr: t.expr }))));
}
