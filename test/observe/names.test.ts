import { describe, expect, it } from "vitest";
import { CATALOGUE } from "../../src/metrics/catalogue.ts";
import { ALERTS } from "../../src/observe/alerts.ts";
import { DASHBOARDS } from "../../src/observe/dashboards.ts";
import { EXTERNAL_METRICS } from "../../src/observe/external-metrics.ts";
import { CLUSTER_VARIABLE_QUERY, dashboardExprs } from "../../src/observe/grafana.ts";
import { familyOf, metricNames } from "../../src/observe/promql-names.ts";

const EXTERNAL = Object.values(EXTERNAL_METRICS);
const KNOWN = [...CATALOGUE, ...EXTERNAL];
/** Labels every series has besides its family's: the custom label the dashboards filter on, and the scrape's. */
const COMMON_LABELS = ["cluster", "job", "instance"];

interface Query {
  where: string;
  expr: string;
  legend?: string;
}

const queries: Query[] = [
  ...ALERTS.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
  ...DASHBOARDS.flatMap((d) =>
    d.rows.flatMap((r) => r.panels.flatMap((p) => p.targets.map((t) => ({ where: `${d.uid} / ${p.title}`, expr: t.expr, ...(t.legend !== undefined && { legend: t.legend }) })))),
  ),
  // label_values(<selector>, label): the selector is PromQL, the label is not.
  { where: "cluster variable", expr: CLUSTER_VARIABLE_QUERY.replace(/^label_values\((.*),\s*[a-z_]+\)$/, "$1") },
];

describe("metric names in PromQL", () => {
  it("finds metric names and nothing else", () => {
    expect(
      metricNames(
        'sum without (method, code) (rate(grpc_server_errors_total{code!="OK", method=~"a|b"}[5m] offset 1h)) / on (instance) group_left (version) ' +
          "sidecar_build_info > bool 0.5e-3 and ignoring (le) x_total unless y or histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))",
      ),
    ).toEqual(["grpc_server_errors_total", "h_bucket", "sidecar_build_info", "x_total", "y"]);
    expect(metricNames('max by (cluster) (talos_etcd_member_count{cluster=~"$cluster"}) - time() < 7 * 86400')).toEqual(["talos_etcd_member_count"]);
    expect(metricNames("count(up == 0) or vector(0) * Inf + NaN")).toEqual(["up"]);
    expect(metricNames('label_replace(a:recorded, "dst", "$1", "src", "(.*)") @ end()')).toEqual(["a:recorded"]);
    expect(metricNames('sum(x) by (le, "quoted") + rate(y[5m:30s])')).toEqual(["x", "y"]);
  });

  it("resolves histogram series to their family, and nothing else", () => {
    expect(familyOf("health_check_duration_seconds_bucket", CATALOGUE)?.name).toBe("health_check_duration_seconds");
    expect(familyOf("talos_operator_etcd_backup_duration_seconds_count", CATALOGUE)?.name).toBe("talos_operator_etcd_backup_duration_seconds");
    expect(familyOf("health_check_up", CATALOGUE)?.name).toBe("health_check_up");
    expect(familyOf("health_check_up_bucket", CATALOGUE)).toBeUndefined();
    expect(familyOf("health_check_up_total", CATALOGUE)).toBeUndefined();
    expect(familyOf("controller_runtime_reconcile_time_seconds_bucket", KNOWN)?.name).toBe("controller_runtime_reconcile_time_seconds");
  });

  it("uses only families of the catalogue, or of the operator passthrough's explicit list", () => {
    const unknown = queries.flatMap((q) => metricNames(q.expr).filter((n) => !familyOf(n, KNOWN)).map((n) => `${q.where}: ${n}`));
    expect(unknown).toEqual([]);
    const used = new Set(queries.flatMap((q) => metricNames(q.expr)).map((n) => familyOf(n, KNOWN)?.name));
    expect(EXTERNAL.filter((m) => !used.has(m.name)).map((m) => m.name), "external families nothing uses").toEqual([]);
    expect(queries.every((q) => metricNames(q.expr).length > 0)).toBe(true);
  });

  it("keeps the external list to families the catalogue does not define", () => {
    for (const m of EXTERNAL) expect(familyOf(m.name, CATALOGUE), m.name).toBeUndefined();
  });
});

describe("labels in alerts and panels", () => {
  /** The labels any family in `expr` can carry. */
  function labelsOf(expr: string): Set<string> {
    const labels = new Set(COMMON_LABELS);
    for (const n of metricNames(expr)) {
      const family = familyOf(n, KNOWN);
      for (const l of family?.labels ?? []) labels.add(l);
      if (family?.type === "histogram" && n.endsWith("_bucket")) labels.add("le");
    }
    return labels;
  }

  it("groups and matches only on labels the families have", () => {
    const wrong: string[] = [];
    for (const q of queries) {
      const labels = labelsOf(q.expr);
      for (const m of q.expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g))
        for (const l of (m[1] ?? "").split(",").map((s) => s.trim()).filter(Boolean)) if (!labels.has(l)) wrong.push(`${q.where}: ${l}`);
      for (const m of q.expr.matchAll(/\{([^}]*)\}/g))
        for (const l of (m[1] ?? "").matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)) if (!labels.has(l[1] ?? "")) wrong.push(`${q.where}: {${l[1]}}`);
      for (const m of (q.legend ?? "").matchAll(/\{\{\s*([a-z_]+)\s*\}\}/g)) if (!labels.has(m[1] ?? "")) wrong.push(`${q.where}: legend ${m[1]}`);
    }
    expect(wrong).toEqual([]);
  });

  it("names in annotations only labels the alert's series carry", () => {
    const wrong: string[] = [];
    for (const a of ALERTS) {
      const labels = labelsOf(a.expr);
      for (const m of `${a.summary} ${a.description}`.matchAll(/\$labels\.([a-z_]+)/g)) if (!labels.has(m[1] ?? "")) wrong.push(`${a.alert}: ${m[1]}`);
    }
    expect(wrong).toEqual([]);
  });

  it("never aggregates away the labels that identify what an alert is about", () => {
    // Alerts aggregate with `without`, so the custom labels (cluster, region, …) and the scrape's labels survive.
    for (const a of ALERTS) expect(a.expr, a.alert).not.toMatch(/\bby\s*\(/);
  });
});

describe("dashboard queries", () => {
  it("filter on the cluster variable, except where the family's own cluster label replaces the custom one", () => {
    const ownCluster = CATALOGUE.filter((m) => m.labels.includes("cluster")).map((m) => m.name);
    expect(ownCluster.sort()).toEqual(["talos_etcd_member_count", "talos_operator_machine_ready"]);
    for (const d of DASHBOARDS)
      for (const { panel, expr } of dashboardExprs(d))
        for (const m of expr.matchAll(/([a-z_:]+)(\{[^}]*\})?(?=[\s)[]|$)/g)) {
          const name = m[1] ?? "";
          if (!familyOf(name, KNOWN) || ownCluster.includes(name)) continue;
          expect(m[2] ?? "", `${panel}: ${name}`).toContain('cluster=~"$cluster"');
        }
  });
});
