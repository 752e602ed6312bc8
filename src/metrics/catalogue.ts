/**
 * Every metric family this exporter defines: the single list that registers them, and that the metrics
 * reference, dashboards and alerts are generated from. Metric names and labels are an API: renaming one is a
 * breaking change, which is why test/metrics/catalogue.test.ts compares this list with docs/metrics.md.
 */
export type MetricType = "counter" | "gauge" | "histogram";

export interface MetricDef {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
  readonly unit?: "seconds" | "bytes" | "timestamp_seconds";
  readonly buckets?: readonly number[];
  /** The part of the program that owns the family, for grouping in docs and dashboards. */
  readonly group: "health checks" | "gRPC health server" | "exporter";
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export const METRICS = {
  healthCheckDuration: {
    name: "health_check_duration_seconds",
    type: "histogram",
    help: "Duration of health check runs, successful or not.",
    labels: ["check"],
    unit: "seconds",
    buckets: LATENCY_BUCKETS,
    group: "health checks",
  },
  healthCheckSuccess: {
    name: "health_check_success_total",
    type: "counter",
    help: "Health check runs that passed.",
    labels: ["check"],
    group: "health checks",
  },
  healthCheckFailure: {
    name: "health_check_failure_total",
    type: "counter",
    help: "Health check runs that failed, timed out included.",
    labels: ["check"],
    group: "health checks",
  },
  healthCheckUp: {
    name: "health_check_up",
    type: "gauge",
    help: "1 when the check's latest result passed and is not stale, else 0.",
    labels: ["check"],
    group: "health checks",
  },
  healthCheckLastRun: {
    name: "health_check_last_run_timestamp_seconds",
    type: "gauge",
    help: "Unix time the check last finished a run.",
    labels: ["check"],
    unit: "timestamp_seconds",
    group: "health checks",
  },
  healthCheckSkipped: {
    name: "health_check_skipped_total",
    type: "counter",
    help: "Runs not started because the previous run of the same check had not finished.",
    labels: ["check"],
    group: "health checks",
  },
  healthCheckInfo: {
    name: "health_check_info",
    type: "gauge",
    help: "Configured checks; always 1. critical is true when the check gates readiness.",
    labels: ["check", "type", "critical"],
    group: "health checks",
  },
  grpcServerRequests: {
    name: "grpc_server_requests_total",
    type: "counter",
    help: "gRPC requests handled by the health server, by method and status code.",
    labels: ["method", "code"],
    group: "gRPC health server",
  },
  grpcServerDuration: {
    name: "grpc_server_request_duration_seconds",
    type: "histogram",
    help: "Duration of gRPC requests handled by the health server; for Watch, the life of the stream.",
    labels: ["method"],
    unit: "seconds",
    buckets: LATENCY_BUCKETS,
    group: "gRPC health server",
  },
  grpcServerErrors: {
    name: "grpc_server_errors_total",
    type: "counter",
    help: "gRPC requests of the health server that ended with a status other than OK.",
    labels: ["method", "code"],
    group: "gRPC health server",
  },
  buildInfo: {
    name: "sidecar_build_info",
    type: "gauge",
    help: "Version of the exporter and of Node.js; always 1.",
    labels: ["version", "nodejs"],
    group: "exporter",
  },
  ready: {
    name: "sidecar_ready",
    type: "gauge",
    help: "1 when every critical check passes and the process is not shutting down, else 0.",
    labels: [],
    group: "exporter",
  },
  scrapeDuration: {
    name: "sidecar_scrape_duration_seconds",
    type: "histogram",
    help: "Time taken to render the /metrics response.",
    labels: ["format"],
    unit: "seconds",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    group: "exporter",
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;
export const CATALOGUE: readonly MetricDef[] = Object.values(METRICS);
