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
  /**
   * Why this family keeps a name that `promtool check metrics` objects to (a gauge ending in _total or _count):
   * the name is already in use by the operators' seed metrics or by users' dashboards. Tests allow exactly these.
   */
  readonly lintException?: string;
  /** The part of the program that owns the family, for grouping in docs and dashboards. */
  readonly group:
    | "health checks"
    | "gRPC health server"
    | "exporter"
    | "sources"
    | "Talos API"
    | "Kubernetes resources"
    | "Tailscale API"
    | "etcd backups"
    | "operator metrics passthrough";
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
  authnRequests: {
    name: "sidecar_authn_requests_total",
    type: "counter",
    help: "Authentication of requests to protected endpoints by result: no_token, authenticated_api, authenticated_cache, unauthenticated_api, unauthenticated_cache, error.",
    labels: ["result"],
    group: "exporter",
  },
  authzRequests: {
    name: "sidecar_authz_requests_total",
    type: "counter",
    help: "Authorization of authenticated requests to protected endpoints by result: allowed_api, allowed_cache, denied_api, denied_cache, error.",
    labels: ["result"],
    group: "exporter",
  },
  leader: {
    name: "sidecar_leader",
    type: "gauge",
    help: "1 while this replica holds the leader Lease and polls the cluster-wide sources (always 1 without leader election).",
    labels: [],
    group: "exporter",
  },
  configReloads: {
    name: "sidecar_config_reload_total",
    type: "counter",
    help: "Configuration reloads (SIGHUP or a change of the file) by result: success or failure.",
    labels: ["result"],
    group: "exporter",
  },
  configLastReloadSuccess: {
    name: "sidecar_config_last_reload_success_timestamp_seconds",
    type: "gauge",
    help: "Unix time the configuration was last loaded successfully (at start or by a reload).",
    labels: [],
    unit: "timestamp_seconds",
    group: "exporter",
  },
  connectionsDropped: {
    name: "sidecar_connections_dropped_total",
    type: "counter",
    help: "Connections closed to keep a server (health, metrics, grpc) within limits.maxConnections, by reason: idle or stalled (closed to make room for a new one), refused (every connection had a request being answered, so the new one was closed).",
    labels: ["server", "reason"],
    group: "exporter",
  },
  seriesDropped: {
    name: "sidecar_series_dropped_total",
    type: "counter",
    help: "Series a source produced beyond limits.seriesPerSource, not exported.",
    labels: ["source"],
    group: "sources",
  },
  objectsDropped: {
    name: "sidecar_objects_dropped_total",
    type: "counter",
    help: "Objects a watch-driven source did not keep because it held its limit (sources.kubernetes.maxObjects); counted when added and at each list that leaves them out.",
    labels: ["source", "kind"],
    group: "sources",
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

  // Every source reports its own freshness.
  sourceUp: {
    name: "sidecar_source_up",
    type: "gauge",
    help: "1 when the source's latest poll (or watch) succeeded, else 0.",
    labels: ["source"],
    group: "sources",
  },
  sourceLastSuccess: {
    name: "sidecar_source_last_success_timestamp_seconds",
    type: "gauge",
    help: "Unix time of the source's latest successful poll; its series are as old as this.",
    labels: ["source"],
    unit: "timestamp_seconds",
    group: "sources",
  },
  sourcePollDuration: {
    name: "sidecar_source_poll_duration_seconds",
    type: "histogram",
    help: "Duration of source polls, successful or not.",
    labels: ["source"],
    unit: "seconds",
    buckets: LATENCY_BUCKETS,
    group: "sources",
  },
  sourceErrors: {
    name: "sidecar_source_errors_total",
    type: "counter",
    help: "Failed source polls by reason: timeout, unauthorized, not_found, rate_limited, tls, connection, decode, other; a poll that reached only some of its upstreams (backup targets) counts each that failed.",
    labels: ["source", "reason"],
    group: "sources",
  },

  talosApiCalls: {
    name: "talos_operator_talos_api_calls_total",
    type: "counter",
    help: "Talos machine API calls by RPC name and result (success or error).",
    labels: ["operation", "result"],
    group: "Talos API",
  },
  talosApiCallDuration: {
    name: "talos_operator_talos_api_call_duration_seconds",
    type: "histogram",
    help: "Duration of Talos machine API calls by RPC name.",
    labels: ["operation"],
    unit: "seconds",
    buckets: LATENCY_BUCKETS,
    group: "Talos API",
  },
  talosNodeInfo: {
    name: "talos_node_info",
    type: "gauge",
    help: "Talos version and architecture of each node; always 1.",
    labels: ["node", "version", "arch"],
    group: "Talos API",
  },
  talosServiceUp: {
    name: "talos_service_up",
    type: "gauge",
    help: "1 when the Talos service is Running and its health check (if any) passes, else 0.",
    labels: ["node", "service"],
    group: "Talos API",
  },
  talosEtcdMemberCount: {
    name: "talos_etcd_member_count",
    type: "gauge",
    help: "Members of the etcd cluster as the control plane reports them.",
    labels: ["cluster"],
    lintException: "a gauge named *_count; the name is the one dashboards and alerts use",
    group: "Talos API",
  },
  talosEtcdDbSize: {
    name: "talos_etcd_db_size_bytes",
    type: "gauge",
    help: "Size of the etcd database on each control plane node.",
    labels: ["node"],
    unit: "bytes",
    group: "Talos API",
  },
  talosEtcdLeader: {
    name: "talos_etcd_leader",
    type: "gauge",
    help: "1 when the node's etcd member is the leader, else 0.",
    labels: ["node"],
    group: "Talos API",
  },
  talosEtcdAlarm: {
    name: "talos_etcd_alarm",
    type: "gauge",
    help: "1 for each alarm or error the node's etcd member reports.",
    labels: ["node", "alarm"],
    group: "Talos API",
  },

  resourceStatus: {
    name: "talos_operator_resource_status",
    type: "gauge",
    help: "Talos operator custom resources: 1 when ready, 0 when not; status is the resource's own phase or state.",
    labels: ["resource_type", "namespace", "name", "status"],
    group: "Kubernetes resources",
  },
  resourceTotal: {
    name: "talos_operator_resource_total",
    type: "gauge",
    help: "Number of Talos operator custom resources of each kind per namespace.",
    labels: ["resource_type", "namespace"],
    lintException: "name and type kept from the Talos operator's own metrics, where it is a gauge",
    group: "Kubernetes resources",
  },
  clusterHealth: {
    name: "talos_operator_cluster_health",
    type: "gauge",
    help: "1 when the TalosCluster is ready, else 0.",
    labels: ["namespace", "name"],
    group: "Kubernetes resources",
  },
  machineReady: {
    name: "talos_operator_machine_ready",
    type: "gauge",
    help: "Number of ready TalosMachines of each cluster.",
    labels: ["namespace", "cluster"],
    group: "Kubernetes resources",
  },
  etcdBackupTotal: {
    name: "talos_operator_etcd_backup_total",
    type: "counter",
    help: "TalosEtcdBackup objects that finished, by status (success or failed); each object is counted once.",
    labels: ["namespace", "name", "status"],
    group: "Kubernetes resources",
  },
  etcdBackupDuration: {
    name: "talos_operator_etcd_backup_duration_seconds",
    type: "histogram",
    help: "Duration of finished etcd backups, from the TalosEtcdBackup's timestamps.",
    labels: ["namespace", "name"],
    unit: "seconds",
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    group: "Kubernetes resources",
  },
  gatewayResourceStatus: {
    name: "tailscale_gateway_resource_status",
    type: "gauge",
    help: "Tailscale gateway operator custom resources: 1 when ready, 0 when not.",
    labels: ["resource_type", "namespace", "name", "status"],
    group: "Kubernetes resources",
  },
  coordinatorServices: {
    name: "service_coordinator_services_total",
    type: "gauge",
    help: "Services the Tailscale gateway operator's custom resources declare, per namespace.",
    labels: ["namespace"],
    lintException: "name kept from the Tailscale gateway operator's seed metrics",
    group: "Kubernetes resources",
  },

  tailscaleDevices: {
    name: "tailscale_devices_total",
    type: "gauge",
    help: "Devices in the tailnet by operating system.",
    labels: ["os"],
    lintException: "a count of devices that goes up and down; the name is the one dashboards and alerts use",
    group: "Tailscale API",
  },
  tailscaleDeviceOnline: {
    name: "tailscale_device_online",
    type: "gauge",
    help: "1 when the device is connected to the control plane (or was seen within the online window), else 0.",
    labels: ["device", "hostname"],
    group: "Tailscale API",
  },
  tailscaleKeyExpiry: {
    name: "tailscale_device_key_expiry_timestamp_seconds",
    type: "gauge",
    help: "Unix time the device's node key expires; absent when key expiry is disabled.",
    labels: ["device"],
    unit: "timestamp_seconds",
    group: "Tailscale API",
  },
  tailscaleUpdateAvailable: {
    name: "tailscale_device_update_available",
    type: "gauge",
    help: "1 when a Tailscale client update is available for the device.",
    labels: ["device"],
    group: "Tailscale API",
  },
  tailscaleAuthorized: {
    name: "tailscale_device_authorized",
    type: "gauge",
    help: "1 when the device is authorized in the tailnet.",
    labels: ["device"],
    group: "Tailscale API",
  },

  backupLastTimestamp: {
    name: "etcd_backup_last_timestamp_seconds",
    type: "gauge",
    help: "Unix time of the newest etcd backup at the target.",
    labels: ["target"],
    unit: "timestamp_seconds",
    group: "etcd backups",
  },
  backupSize: {
    name: "talos_operator_etcd_backup_size_bytes",
    type: "gauge",
    help: "Size of the newest etcd backup.",
    labels: ["namespace", "name"],
    unit: "bytes",
    group: "etcd backups",
  },
  backupObjects: {
    name: "etcd_backup_objects_total",
    type: "gauge",
    help: "Backups stored at the target.",
    labels: ["target"],
    lintException: "a count of stored backups that goes up and down; the name is the one dashboards and alerts use",
    group: "etcd backups",
  },
  backupAge: {
    name: "etcd_backup_age_seconds",
    type: "gauge",
    help: "Age of the newest etcd backup at the target, as of the latest poll.",
    labels: ["target"],
    unit: "seconds",
    group: "etcd backups",
  },
  backupVerified: {
    name: "etcd_backup_verified",
    type: "gauge",
    help: "1 when the newest backup's first bytes are an etcd (bbolt) snapshot, else 0; the reason is in /debug/status.",
    labels: ["target"],
    group: "etcd backups",
  },
  backupTargetUp: {
    name: "etcd_backup_target_up",
    type: "gauge",
    help: "1 when the latest poll listed the target, else 0; its error is in /debug/status.",
    labels: ["target"],
    group: "etcd backups",
  },
  backupTargetLastSuccess: {
    name: "etcd_backup_target_last_success_timestamp_seconds",
    type: "gauge",
    help: "Unix time of the target's latest successful listing; its etcd_backup_* series are as old as this.",
    labels: ["target"],
    unit: "timestamp_seconds",
    group: "etcd backups",
  },
  backupTargetErrors: {
    name: "etcd_backup_target_errors_total",
    type: "counter",
    help: "Polls that could not list the target, by reason (the reasons of sidecar_source_errors_total).",
    labels: ["target", "reason"],
    group: "etcd backups",
  },

  passthroughDropped: {
    name: "sidecar_passthrough_dropped_total",
    type: "counter",
    help: "Metric families of the operator's /metrics not merged, by reason (name_clash, invalid).",
    labels: ["reason"],
    group: "operator metrics passthrough",
  },
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;
export const CATALOGUE: readonly MetricDef[] = Object.values(METRICS);
