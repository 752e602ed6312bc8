/**
 * The Grafana dashboards shipped with the exporter, as data; `npm run observe` renders them into dashboards/*.json
 * through grafana.ts. Every query filters on the cluster variable (the `cluster` custom label) and groups by the
 * labels that identify what a panel shows, so replicas and clusters stay apart.
 */
import { METRICS as M } from "../metrics/catalogue.ts";
import { SOURCE_NAMES } from "../sources/config.ts";
import { EXTERNAL_METRICS as X } from "./external-metrics.ts";
import { CLUSTER, RATE, type DashboardDef, type States, type Steps } from "./grafana.ts";
import { countOf, quantile, sel, sumOf } from "./promql.ts";

const UP_DOWN: States = { 0: ["down", "red"], 1: ["up", "green"] };
const READY: States = { 0: ["not ready", "red"], 1: ["ready", "green"] };
const VERIFIED: States = { 0: ["not verified", "red"], 1: ["verified", "green"] };
/** Colours for "how many are in a bad state": anything above zero is red. */
const ZERO_GOOD: Steps = { base: "green", steps: [[1, "red"]] };

const HOUR = 3600;
const DAY = 24 * HOUR;

/** Seconds since a source's last successful poll, per source (or for one source). */
function sourceAge(source?: string): string {
  const matchers = source === undefined ? [CLUSTER] : [CLUSTER, `source="${source}"`];
  return `time() - max by (cluster, source) (${sel(M.sourceLastSuccess, ...matchers)})`;
}

/** How many series of a 0/1 gauge are 0, and 0 (not "no data") when none is. */
function countZero(family: typeof M.tailscaleDeviceOnline | typeof M.tailscaleAuthorized): string {
  return `count by (cluster) (${sel(family, CLUSTER)} == 0) or sum by (cluster) (${sel(family, CLUSTER)}) * 0`;
}

const overview: DashboardDef = {
  uid: "sidecar-exporter-overview",
  file: "overview.json",
  title: "sidecar-exporter / Overview",
  description: "Health checks, sources and the exporter itself.",
  rows: [
    {
      row: "Health checks",
      panels: [
        {
          type: "stat",
          title: "Ready",
          description: "sidecar_ready: 1 when every critical check passes and the process is not shutting down.",
          w: 6,
          targets: [{ expr: `min by (cluster) (${sel(M.ready, CLUSTER)})`, legend: "{{cluster}}" }],
          states: READY,
        },
        {
          type: "table",
          title: "Checks",
          description: "Every configured check with its type, whether it gates readiness, and whether its latest result passed (health_check_up).",
          w: 18,
          targets: [
            {
              expr:
                `min by (cluster, check, type, critical) (${sel(M.healthCheckUp, CLUSTER)} ` +
                `* ignoring (type, critical) group_left (type, critical) ${sel(M.healthCheckInfo, CLUSTER)})`,
            },
          ],
          states: UP_DOWN,
          rename: { Value: "state" },
          sortBy: { column: "state", desc: false },
        },
        {
          type: "timeseries",
          title: "Success ratio per check",
          description: "Share of runs that passed.",
          w: 12,
          unit: "percentunit",
          min: 0,
          max: 1,
          targets: [
            {
              expr:
                `sum by (cluster, check) (rate(${sel(M.healthCheckSuccess, CLUSTER)}[${RATE}])) / ` +
                `(sum by (cluster, check) (rate(${sel(M.healthCheckSuccess, CLUSTER)}[${RATE}])) + sum by (cluster, check) (rate(${sel(M.healthCheckFailure, CLUSTER)}[${RATE}])))`,
              legend: "{{check}}",
            },
          ],
        },
        {
          type: "timeseries",
          title: "Check duration p95",
          description: "95th percentile of check run durations, failures and timeouts included.",
          w: 12,
          unit: "s",
          targets: [{ expr: quantile(0.95, M.healthCheckDuration, ["cluster", "check"], RATE, CLUSTER), legend: "{{check}}" }],
        },
      ],
    },
    {
      row: "Sources",
      panels: [
        {
          type: "stat",
          title: "Source up",
          description: "sidecar_source_up: whether each source's latest poll (or watch) succeeded.",
          w: 8,
          targets: [{ expr: `max by (cluster, source) (${sel(M.sourceUp, CLUSTER)})`, legend: "{{source}}" }],
          states: UP_DOWN,
        },
        {
          type: "timeseries",
          title: "Time since the last successful poll",
          description: "How old each source's series are. The red line is where SidecarSourceStale starts counting (15 minutes).",
          w: 8,
          unit: "s",
          min: 0,
          thresholdLines: true,
          colors: { base: "green", steps: [[15 * 60, "red"]] },
          targets: [{ expr: sourceAge(), legend: "{{source}}" }],
        },
        {
          type: "timeseries",
          title: "Source errors by reason",
          description: "Failed polls per second by source and reason; reasons that do not occur are left out.",
          w: 8,
          unit: "ops",
          targets: [{ expr: `sum by (cluster, source, reason) (rate(${sel(M.sourceErrors, CLUSTER)}[${RATE}])) > 0`, legend: "{{source}} {{reason}}" }],
        },
        {
          type: "timeseries",
          title: "Poll duration p95",
          description: "95th percentile of poll durations per source, failed polls included.",
          w: 12,
          unit: "s",
          targets: [{ expr: quantile(0.95, M.sourcePollDuration, ["cluster", "source"], RATE, CLUSTER), legend: "{{source}}" }],
        },
        {
          type: "timeseries",
          title: "Operator metric families dropped",
          description: "Families of the operator's /metrics the passthrough did not merge, by reason (name_clash, invalid).",
          w: 12,
          unit: "ops",
          targets: [{ expr: `sum by (cluster, reason) (rate(${sel(M.passthroughDropped, CLUSTER)}[${RATE}]))`, legend: "{{reason}}" }],
        },
      ],
    },
    {
      row: "Exporter",
      panels: [
        {
          type: "timeseries",
          title: "/metrics render time",
          description: "Median and 99th percentile of the time taken to render /metrics, per exposition format. SidecarScrapeSlow fires above 0.5 s at p99.",
          w: 12,
          unit: "s",
          targets: [
            { expr: quantile(0.5, M.scrapeDuration, ["cluster", "format"], RATE, CLUSTER), legend: "p50 {{format}}" },
            { expr: quantile(0.99, M.scrapeDuration, ["cluster", "format"], RATE, CLUSTER), legend: "p99 {{format}}" },
          ],
        },
        {
          type: "timeseries",
          title: "gRPC health requests by code",
          description: "Requests per second to the gRPC health server by status code (kubelet gRPC probes, meshes).",
          w: 12,
          unit: "reqps",
          targets: [{ expr: `sum by (cluster, code) (rate(${sel(M.grpcServerRequests, CLUSTER)}[${RATE}]))`, legend: "{{code}}" }],
        },
        {
          type: "table",
          title: "Versions",
          description: "Running exporter and Node.js versions, and how many instances run each.",
          w: 24,
          h: 5,
          targets: [{ expr: `count by (cluster, version, nodejs) (${sel(M.buildInfo, CLUSTER)})` }],
          rename: { Value: "instances" },
        },
      ],
    },
  ],
};

const talos: DashboardDef = {
  uid: "sidecar-exporter-talos",
  file: "talos.json",
  title: "sidecar-exporter / Talos",
  description: "Talos nodes, services and etcd as the machine API reports them, the operator's custom resources, and its reconciliations.",
  rows: [
    {
      row: "Nodes",
      panels: [
        {
          type: "table",
          title: "Nodes",
          description: "Talos version and architecture of every node that answered.",
          w: 12,
          h: 10,
          targets: [{ expr: `max by (cluster, node, version, arch) (${sel(M.talosNodeInfo, CLUSTER)})` }],
          hide: ["Value"],
          sortBy: { column: "node", desc: false },
        },
        {
          type: "table",
          title: "Services",
          description: "Talos services per node: up when Running and healthy. Services that are down come first.",
          w: 12,
          h: 10,
          targets: [{ expr: `min by (cluster, node, service) (${sel(M.talosServiceUp, CLUSTER)})` }],
          states: UP_DOWN,
          rename: { Value: "state" },
          sortBy: { column: "state", desc: false },
        },
      ],
    },
    {
      row: "etcd",
      panels: [
        {
          type: "stat",
          title: "etcd members",
          // The family's own cluster label (the Talos cluster's name) takes the custom label's place, so the
          // cluster variable does not apply.
          description: "Members of the etcd cluster as the control plane lists them, per Talos cluster.",
          w: 6,
          h: 6,
          targets: [{ expr: `max by (cluster) (${sel(M.talosEtcdMemberCount)})`, legend: "{{cluster}}" }],
          colors: { base: "red", steps: [[3, "green"]] },
        },
        {
          type: "table",
          title: "Leader",
          description: "The node whose etcd member is the leader.",
          w: 6,
          h: 6,
          targets: [{ expr: `max by (cluster, node) (${sel(M.talosEtcdLeader, CLUSTER)}) == 1` }],
          hide: ["Value"],
          noValue: "no leader",
        },
        {
          type: "table",
          title: "Alarms",
          description: "Alarms and errors reported by each node's etcd member (NOSPACE, CORRUPT, …).",
          w: 12,
          h: 6,
          targets: [{ expr: `max by (cluster, node, alarm) (${sel(M.talosEtcdAlarm, CLUSTER)}) > 0` }],
          hide: ["Value"],
          noValue: "no alarms",
        },
        {
          type: "timeseries",
          title: "etcd database size",
          description: "Size of the etcd database on each control plane node.",
          w: 24,
          unit: "bytes",
          targets: [{ expr: `max by (cluster, node) (${sel(M.talosEtcdDbSize, CLUSTER)})`, legend: "{{node}}" }],
        },
      ],
    },
    {
      row: "Talos API calls",
      panels: [
        {
          type: "timeseries",
          title: "API calls by operation and result",
          description: "Machine API calls the exporter makes, per second, by RPC and result.",
          w: 12,
          unit: "reqps",
          targets: [{ expr: `sum by (cluster, operation, result) (rate(${sel(M.talosApiCalls, CLUSTER)}[${RATE}]))`, legend: "{{operation}} {{result}}" }],
        },
        {
          type: "timeseries",
          title: "API call latency p95",
          description: "95th percentile of machine API call durations by RPC.",
          w: 12,
          unit: "s",
          targets: [{ expr: quantile(0.95, M.talosApiCallDuration, ["cluster", "operation"], RATE, CLUSTER), legend: "{{operation}}" }],
        },
      ],
    },
    {
      row: "Operator resources",
      panels: [
        {
          type: "stat",
          title: "TalosClusters",
          description: "Whether each TalosCluster is Ready. TalosOperatorClusterUnhealthy fires after 10 minutes not ready.",
          w: 8,
          targets: [{ expr: `max by (cluster, namespace, name) (${sel(M.clusterHealth, CLUSTER)})`, legend: "{{namespace}}/{{name}}" }],
          states: READY,
        },
        {
          type: "timeseries",
          title: "Ready machines per cluster",
          // Like talos_etcd_member_count, this family's cluster label is the TalosCluster, not the custom label.
          description: "Ready TalosMachines of each TalosCluster.",
          w: 8,
          targets: [{ expr: `max by (namespace, cluster) (${sel(M.machineReady)})`, legend: "{{namespace}}/{{cluster}}" }],
          steps: true,
        },
        {
          type: "table",
          title: "Resources not ready",
          description: "Talos operator custom resources that are not ready, with their own phase or state.",
          w: 8,
          targets: [{ expr: `max by (cluster, resource_type, namespace, name, status) (${sel(M.resourceStatus, CLUSTER)}) == 0` }],
          hide: ["Value"],
          noValue: "all ready",
        },
      ],
    },
    {
      row: "Reconciliation (needs the operator metrics passthrough)",
      panels: [
        {
          type: "timeseries",
          title: "Reconciliations by controller and result",
          description: "controller-runtime's reconciliations per second, from the operator's own /metrics.",
          w: 12,
          unit: "ops",
          targets: [{ expr: `sum by (cluster, controller, result) (rate(${sel(X.reconcileTotal, CLUSTER)}[${RATE}]))`, legend: "{{controller}} {{result}}" }],
        },
        {
          type: "timeseries",
          title: "Reconciliation error ratio",
          description: "Share of reconciliations that returned an error. The red line is TalosOperatorHighReconciliationFailures' threshold.",
          w: 12,
          unit: "percentunit",
          min: 0,
          thresholdLines: true,
          colors: { base: "green", steps: [[0.1, "red"]] },
          targets: [
            {
              expr:
                `sum by (cluster, controller) (rate(${sel(X.reconcileErrors, CLUSTER)}[${RATE}])) / ` +
                `sum by (cluster, controller) (rate(${sel(X.reconcileTotal, CLUSTER)}[${RATE}]))`,
              legend: "{{controller}}",
            },
          ],
        },
        {
          type: "timeseries",
          title: "Reconciliation time p95",
          description: "95th percentile of reconciliation durations: controller-runtime's, and the Talos operator's own histogram.",
          w: 12,
          unit: "s",
          targets: [
            { expr: quantile(0.95, X.reconcileTime, ["cluster", "controller"], RATE, CLUSTER), legend: "{{controller}}" },
            { expr: quantile(0.95, X.talosReconciliationDuration, ["cluster", "controller"], RATE, CLUSTER), legend: "{{controller}} (operator)" },
          ],
        },
        {
          type: "timeseries",
          title: "Talos operator reconciliations by result",
          description: "The Talos operator's own reconciliation counter (success, error, requeue, not_found).",
          w: 12,
          unit: "ops",
          targets: [
            { expr: `sum by (cluster, controller, result) (rate(${sel(X.talosReconciliations, CLUSTER)}[${RATE}]))`, legend: "{{controller}} {{result}}" },
          ],
        },
      ],
    },
  ],
};

const tailscale: DashboardDef = {
  uid: "sidecar-exporter-tailscale",
  file: "tailscale.json",
  title: "sidecar-exporter / Tailscale",
  description: "The tailnet's devices as the Tailscale API reports them, and the Tailscale gateway operator's resources.",
  rows: [
    {
      row: "Devices",
      panels: [
        {
          type: "stat",
          title: "Online",
          description: "Devices connected to the control plane (or seen within the online window).",
          w: 6,
          h: 5,
          targets: [{ expr: `sum by (cluster) (${sel(M.tailscaleDeviceOnline, CLUSTER)})`, legend: "{{cluster}}" }],
          colors: { base: "blue" },
        },
        {
          type: "stat",
          title: "Offline",
          description: "Devices not connected.",
          w: 6,
          h: 5,
          targets: [{ expr: countZero(M.tailscaleDeviceOnline), legend: "{{cluster}}" }],
          colors: ZERO_GOOD,
        },
        {
          type: "stat",
          title: "Not authorized",
          description: "Devices waiting for authorization in the tailnet.",
          w: 6,
          h: 5,
          targets: [{ expr: countZero(M.tailscaleAuthorized), legend: "{{cluster}}" }],
          colors: ZERO_GOOD,
        },
        {
          type: "stat",
          title: "Data age",
          description: "Time since the Tailscale source last polled successfully; the series below are this old.",
          w: 6,
          h: 5,
          unit: "s",
          targets: [{ expr: sourceAge(SOURCE_NAMES.tailscale), legend: "{{cluster}}" }],
          colors: { base: "green", steps: [[15 * 60, "red"]] },
        },
        {
          type: "piechart",
          title: "Devices by OS",
          description: "Devices in the tailnet by operating system.",
          w: 8,
          targets: [{ expr: `sum by (cluster, os) (${sel(M.tailscaleDevices, CLUSTER)})`, legend: "{{os}}" }],
        },
        {
          type: "timeseries",
          title: "Devices online",
          description: "Online devices against all devices over time.",
          w: 16,
          steps: true,
          targets: [
            { expr: `sum by (cluster) (${sel(M.tailscaleDeviceOnline, CLUSTER)})`, legend: "online {{cluster}}" },
            { expr: `count by (cluster) (${sel(M.tailscaleDeviceOnline, CLUSTER)})`, legend: "all {{cluster}}" },
          ],
        },
      ],
    },
    {
      row: "Keys and updates",
      panels: [
        {
          type: "table",
          title: "Node key expiry",
          description:
            "Time until each device's node key expires, soonest first; negative once expired. Devices with key expiry disabled are not listed. " +
            "TailscaleDeviceKeyExpiringSoon fires below 7 days.",
          w: 12,
          h: 10,
          unit: "dtdurations",
          targets: [{ expr: `min by (cluster, device) (${sel(M.tailscaleKeyExpiry, CLUSTER)}) - time()` }],
          colors: {
            base: "red",
            steps: [
              [7 * DAY, "orange"],
              [30 * DAY, "green"],
            ],
          },
          rename: { Value: "expires in" },
          sortBy: { column: "expires in", desc: false },
        },
        {
          type: "table",
          title: "Offline devices",
          description: "Devices that are not connected.",
          w: 12,
          h: 10,
          targets: [{ expr: `max by (cluster, device, hostname) (${sel(M.tailscaleDeviceOnline, CLUSTER)}) == 0` }],
          hide: ["Value"],
          noValue: "all online",
        },
        {
          type: "table",
          title: "Update available",
          description: "Devices for which a Tailscale client update is available.",
          w: 12,
          targets: [{ expr: `max by (cluster, device) (${sel(M.tailscaleUpdateAvailable, CLUSTER)}) == 1` }],
          hide: ["Value"],
          noValue: "all up to date",
        },
        {
          type: "table",
          title: "Unauthorized devices",
          description: "Devices not authorized in the tailnet.",
          w: 12,
          targets: [{ expr: `max by (cluster, device) (${sel(M.tailscaleAuthorized, CLUSTER)}) == 0` }],
          hide: ["Value"],
          noValue: "all authorized",
        },
      ],
    },
    {
      row: "Gateway operator",
      panels: [
        {
          type: "table",
          title: "Gateway resources not ready",
          description: "Tailscale gateway operator custom resources that are not ready.",
          w: 12,
          targets: [{ expr: `max by (cluster, resource_type, namespace, name, status) (${sel(M.gatewayResourceStatus, CLUSTER)}) == 0` }],
          hide: ["Value"],
          noValue: "all ready",
        },
        {
          type: "timeseries",
          title: "Services per namespace",
          description: "VIP services the gateway operator's resources declare.",
          w: 12,
          steps: true,
          targets: [{ expr: `sum by (cluster, namespace) (${sel(M.coordinatorServices, CLUSTER)})`, legend: "{{namespace}}" }],
        },
      ],
    },
  ],
};

const backups: DashboardDef = {
  uid: "sidecar-exporter-backups",
  file: "backups.json",
  title: "sidecar-exporter / etcd backups",
  description: "etcd backups at each target (S3, directories), and the Talos operator's TalosEtcdBackup objects.",
  rows: [
    {
      row: "Targets",
      panels: [
        {
          type: "timeseries",
          title: "Age of the newest backup",
          description:
            "Time since the newest backup at each target was written, from its own timestamp, so it keeps growing while a target is unreachable. " +
            "The red line is EtcdBackupTooOld's threshold (26 hours).",
          w: 12,
          unit: "s",
          min: 0,
          thresholdLines: true,
          colors: { base: "green", steps: [[26 * HOUR, "red"]] },
          targets: [{ expr: `time() - max by (cluster, target) (${sel(M.backupLastTimestamp, CLUSTER)})`, legend: "{{target}}" }],
        },
        {
          type: "stat",
          title: "Verified",
          description: "Whether the newest backup at each target starts like an etcd (bbolt) snapshot; /debug/status has the reason.",
          w: 6,
          targets: [{ expr: `min by (cluster, target) (${sel(M.backupVerified, CLUSTER)})`, legend: "{{target}}" }],
          states: VERIFIED,
        },
        {
          type: "stat",
          title: "Backups stored",
          description: "Backups at each target (after the match pattern).",
          w: 6,
          targets: [{ expr: `max by (cluster, target) (${sel(M.backupObjects, CLUSTER)})`, legend: "{{target}}" }],
          colors: { base: "red", steps: [[1, "green"]] },
        },
        {
          type: "timeseries",
          title: "Size of the newest backup",
          description: "Size of the newest backup per TalosEtcdBackup schedule (namespace/name).",
          w: 12,
          unit: "bytes",
          targets: [{ expr: `max by (cluster, namespace, name) (${sel(M.backupSize, CLUSTER)})`, legend: "{{namespace}}/{{name}}" }],
        },
        {
          type: "stat",
          title: "Listed",
          description: "Whether the latest poll could list each target; the error is in /debug/status and etcd_backup_target_errors_total.",
          w: 6,
          targets: [{ expr: `min by (cluster, target) (${sel(M.backupTargetUp, CLUSTER)})`, legend: "{{target}}" }],
          states: UP_DOWN,
        },
        {
          type: "stat",
          title: "Data age",
          description: "Time since each target was last listed: every other panel of this row is that old for it.",
          w: 6,
          unit: "s",
          targets: [{ expr: `time() - max by (cluster, target) (${sel(M.backupTargetLastSuccess, CLUSTER)})`, legend: "{{target}}" }],
          colors: { base: "green", steps: [[15 * 60, "red"]] },
        },
      ],
    },
    {
      row: "TalosEtcdBackup objects",
      panels: [
        {
          type: "table",
          title: "Finished backups",
          description: "TalosEtcdBackup objects that finished, by schedule and status, counted since the exporter started.",
          w: 12,
          targets: [{ expr: `sum by (cluster, namespace, name, status) (${sel(M.etcdBackupTotal, CLUSTER)})` }],
          rename: { Value: "backups" },
          sortBy: { column: "status", desc: false },
        },
        {
          type: "timeseries",
          title: "Finished backups over time",
          description: "The same counts over time, by status: a step up is a backup finishing.",
          w: 12,
          steps: true,
          targets: [{ expr: `sum by (cluster, namespace, name, status) (${sel(M.etcdBackupTotal, CLUSTER)})`, legend: "{{namespace}}/{{name}} {{status}}" }],
        },
        {
          type: "timeseries",
          title: "Backup duration",
          description: "Mean duration of the backups that finished in the preceding 24 hours, per schedule; empty while none did.",
          w: 24,
          unit: "s",
          targets: [
            {
              expr:
                `sum by (cluster, namespace, name) (increase(${sel(sumOf(M.etcdBackupDuration), CLUSTER)}[1d])) / ` +
                `(sum by (cluster, namespace, name) (increase(${sel(countOf(M.etcdBackupDuration), CLUSTER)}[1d])) > 0)`,
              legend: "{{namespace}}/{{name}}",
            },
          ],
        },
      ],
    },
  ],
};

export const DASHBOARDS: readonly DashboardDef[] = [overview, talos, tailscale, backups];
