/**
 * Metric families that alerts and dashboards may use although the catalogue does not define them. They are the
 * operator's own, merged into /metrics by the operator metrics passthrough (sources.operatorMetrics), so they
 * exist only where that source is configured, and their names are set by the operator and controller-runtime,
 * not here. Everything else must come from the catalogue, so that renaming a family breaks the build instead of
 * silently emptying a panel or an alert.
 */
export interface ExternalMetric {
  readonly name: string;
  readonly type: "counter" | "histogram";
  readonly labels: readonly string[];
  /** Where the family comes from. */
  readonly origin: string;
}

export const EXTERNAL_METRICS = {
  reconcileTotal: {
    name: "controller_runtime_reconcile_total",
    labels: ["controller", "result"],
    type: "counter",
    origin: "controller-runtime: reconciliations per controller and result (success, error, requeue, requeue_after)",
  },
  reconcileErrors: {
    name: "controller_runtime_reconcile_errors_total",
    labels: ["controller"],
    type: "counter",
    origin: "controller-runtime: reconciliations that returned an error, per controller",
  },
  reconcileTime: {
    name: "controller_runtime_reconcile_time_seconds",
    labels: ["controller"],
    type: "histogram",
    origin: "controller-runtime: duration of reconciliations per controller",
  },
  talosReconciliations: {
    name: "talos_operator_reconciliation_total",
    labels: ["controller", "result"],
    type: "counter",
    origin: "the Talos operator (internal/metrics): reconciliations per controller and result",
  },
  talosReconciliationDuration: {
    name: "talos_operator_reconciliation_duration_seconds",
    labels: ["controller"],
    type: "histogram",
    origin: "the Talos operator (internal/metrics): duration of reconciliations per controller",
  },
} as const satisfies Record<string, ExternalMetric>;
