/**
 * The Prometheus alerts shipped with the exporter, as data. `npm run observe` renders them into
 * monitoring/alerts.rules.yml and k8s/monitoring/prometheusrule.yaml; monitoring/tests/*.test.yml holds a promtool
 * unit test for each. Expressions keep every label they do not aggregate away, so the custom labels
 * (metrics.custom.labels, e.g. cluster) and the scrape's job/instance/pod stay on the alert for routing.
 */
import { METRICS as M } from "../metrics/catalogue.ts";
import { EXTERNAL_METRICS as X } from "./external-metrics.ts";
import { bucketOf, sel } from "./promql.ts";

export type Severity = "warning" | "critical";

export interface AlertDef {
  readonly alert: string;
  readonly expr: string;
  /** How long the expression must hold before the alert fires (Prometheus duration). */
  readonly for: string;
  readonly severity: Severity;
  /** One line, with $labels. */
  readonly summary: string;
  /** A few sentences, with $labels. */
  readonly description: string;
  /** What the alert means: the first half of the runbook annotation and of the README table. */
  readonly meaning: string;
  /** What to do about it: the second half. */
  readonly action: string;
}

export interface AlertGroup {
  readonly name: string;
  readonly alerts: readonly AlertDef[];
}

/** Health check runs that may fail within 15 minutes before a check that is up again still counts as failing. */
const FLAPPING_RATIO = 0.25;
/** Three polls of the slowest usual interval (backups, 5m), so one slow or failed poll does not page. */
const SOURCE_STALE_SECONDS = "15 * 60";
/** A daily schedule plus two hours of slack for a slow upload. */
const BACKUP_MAX_AGE_SECONDS = "26 * 3600";
const KEY_EXPIRY_WARNING_SECONDS = "7 * 86400";

/**
 * `expr`, kept only for the replica that polls: with leader election the followers leave the cluster-wide sources
 * to the leader, and their frozen source series must not page anyone. Without it every replica exports
 * sidecar_leader 1, and nothing is filtered.
 */
function onLeader(expr: string): string {
  return `(${expr}) and on (job, instance) (${sel(M.leader)} == 1)`;
}

const healthChecks: AlertGroup = {
  name: "sidecar-exporter.health-checks",
  alerts: [
    {
      alert: "ServiceHealthCheckFailure",
      // The second half catches a flapping check whose latest run happens to pass.
      expr:
        `${sel(M.healthCheckUp)} == 0 or ` +
        `(rate(${sel(M.healthCheckFailure)}[15m]) / (rate(${sel(M.healthCheckSuccess)}[15m]) + rate(${sel(M.healthCheckFailure)}[15m])) > ${FLAPPING_RATIO})`,
      for: "5m",
      severity: "warning",
      summary: "Health check {{ $labels.check }} is failing",
      description:
        "Health check {{ $labels.check }} has been failing for 5 minutes, or more than a quarter of its runs in the last 15 minutes failed. " +
        "GET /health/{{ $labels.check }} on the health port shows the latest error.",
      meaning:
        "A configured health check (http, tcp, grpc, source or backup) keeps failing: its latest result has been failed or stale for 5 minutes, " +
        "or it flaps, failing more than a quarter of its runs over 15 minutes. A critical check also makes the pod unready.",
      action:
        "Read the latest error: `curl <pod>:8081/health/<check>`, or `kubectl exec deploy/<operator> -c sidecar-exporter -- sidecar-exporter check`. " +
        "Fix what the check probes (address, TLS, credentials, the upstream itself), or raise the check's timeout if the target is only slow.",
    },
    {
      alert: "HighGRPCErrorRate",
      expr: `sum without (code) (rate(${sel(M.grpcServerErrors)}[5m])) / sum without (code) (rate(${sel(M.grpcServerRequests)}[5m])) > 0.05`,
      for: "10m",
      severity: "warning",
      summary: "{{ $value | humanizePercentage }} of gRPC health {{ $labels.method }} requests fail",
      description:
        "More than 5 % of {{ $labels.method }} requests to the gRPC health server ended with a status other than OK over the last 5 minutes, for 10 minutes.",
      meaning:
        "Clients of the gRPC health server (kubelet gRPC probes, meshes, load balancers) receive errors. " +
        "The usual cause is a probe asking for a service that is not a configured check (NOT_FOUND).",
      action:
        "Break grpc_server_errors_total down by code. NOT_FOUND: a probe names a check that does not exist; compare its service with the check names in the config. " +
        "CANCELLED or DEADLINE_EXCEEDED: the client gives up early; raise its timeout.",
    },
    {
      alert: "SidecarScrapeSlow",
      expr: `histogram_quantile(0.99, rate(${sel(bucketOf(M.scrapeDuration))}[5m])) > 0.5`,
      for: "10m",
      severity: "warning",
      summary: "Rendering /metrics ({{ $labels.format }}) takes {{ $value | humanizeDuration }} at the 99th percentile",
      description: "The 99th percentile of {{ $labels.format }} /metrics renders has been above 0.5 s for 10 minutes.",
      meaning:
        "Scrapes are answered from memory, so slow renders mean very many series (a large tailnet, many custom resources, a large operator /metrics) " +
        "or a CPU-starved container. Slow scrapes risk scrape timeouts and gaps in every series.",
      action:
        "Compare scrape_samples_scraped for the target with its usual value, look at the container's CPU throttling, and the operator /metrics size. " +
        "Raise the CPU limit, or watch fewer namespaces or drop the passthrough.",
    },
  ],
};

const sources: AlertGroup = {
  name: "sidecar-exporter.sources",
  alerts: [
    {
      alert: "SidecarSourceDown",
      expr: onLeader(`${sel(M.sourceUp)} == 0`),
      for: "10m",
      severity: "warning",
      summary: "Source {{ $labels.source }} is down",
      description: "The polls of source {{ $labels.source }} have failed for 10 minutes; its series keep the values of the last good poll.",
      meaning:
        "The exporter cannot read one of its upstreams (the Talos API, the Kubernetes API, the Tailscale API, backup targets or the operator's /metrics). " +
        "Its series are frozen at the last good poll, so panels and alerts built on them describe the past.",
      action:
        "sidecar_source_errors_total{source} gives the reason (unauthorized, tls, connection, timeout, rate_limited, not_found, decode) and /debug/status on the health port the last error. " +
        "Fix the credential, certificate, address or network policy; the source retries with backoff and recovers by itself.",
    },
    {
      alert: "SidecarSourceStale",
      expr: onLeader(`time() - ${sel(M.sourceLastSuccess)} > ${SOURCE_STALE_SECONDS}`),
      for: "5m",
      severity: "warning",
      summary: "Data from source {{ $labels.source }} is {{ $value | humanizeDuration }} old",
      description:
        "Source {{ $labels.source }} last polled successfully {{ $value | humanizeDuration }} ago (more than 15 minutes); every series it owns is at least that old.",
      meaning:
        "No successful poll of the source for more than 15 minutes, three polls of the slowest usual interval. " +
        "Everything built on its series (backup age, device state, etcd health, resource status) is out of date.",
      action:
        "As for SidecarSourceDown: the reason is in sidecar_source_errors_total and /debug/status. " +
        "A source configured with an interval longer than 5 minutes needs a longer threshold; silence the alert for it.",
    },
  ],
};

const talos: AlertGroup = {
  name: "sidecar-exporter.talos",
  alerts: [
    {
      alert: "TalosOperatorClusterUnhealthy",
      expr: `${sel(M.clusterHealth)} == 0`,
      for: "10m",
      severity: "critical",
      summary: "TalosCluster {{ $labels.namespace }}/{{ $labels.name }} is not ready",
      description: "TalosCluster {{ $labels.namespace }}/{{ $labels.name }} has not been Ready for 10 minutes.",
      meaning:
        "The TalosCluster's Ready (or Available) condition is not True: the operator considers the cluster unhealthy, " +
        "e.g. a control plane not bootstrapped, machines not available, or reconciliation failing.",
      action:
        "`kubectl -n <namespace> describe taloscluster <name>`: the condition's message says what is missing. " +
        "Then look at its TalosControlPlane, TalosWorker and TalosMachine objects (the Talos dashboard lists resources that are not ready) and the operator's logs.",
    },
    {
      alert: "TalosOperatorEtcdBackupFailed",
      // The counter of a schedule starts at its first finished backup, at 1, which increase() cannot see; the
      // second half catches that first failure as a series that did not exist an hour ago.
      expr:
        `increase(${sel(M.etcdBackupTotal, 'status="failed"')}[1h]) > 0 or ` +
        `(${sel(M.etcdBackupTotal, 'status="failed"')} unless ${sel(M.etcdBackupTotal, 'status="failed"')} offset 1h)`,
      for: "1m",
      severity: "warning",
      summary: "etcd backup {{ $labels.namespace }}/{{ $labels.name }} failed",
      description: "A TalosEtcdBackup of {{ $labels.namespace }}/{{ $labels.name }} finished with status Failed within the last hour.",
      meaning:
        "The Talos operator ran an etcd backup and it failed; name is the backup schedule (or control plane) it belongs to. " +
        "The previous backup is still there; EtcdBackupTooOld fires when failures go on.",
      action:
        "`kubectl -n <namespace> get talosetcdbackups` and describe the failed one: its conditions carry the error (storage credentials, bucket, Talos API access); the operator's logs have more. " +
        "Delete failed TalosEtcdBackup objects once handled: the exporter counts each object once per start, so the alert fires again for an hour after an exporter restart while they remain.",
    },
    {
      alert: "TalosOperatorHighReconciliationFailures",
      expr: `rate(${sel(X.reconcileErrors)}[5m]) / sum without (result) (rate(${sel(X.reconcileTotal)}[5m])) > 0.1`,
      for: "15m",
      severity: "warning",
      summary: "{{ $value | humanizePercentage }} of the operator's {{ $labels.controller }} reconciliations fail",
      description: "More than 10 % of the operator's {{ $labels.controller }} reconciliations returned an error over the last 5 minutes, for 15 minutes.",
      meaning:
        "The operator keeps failing to reconcile objects of one kind, so changes to them are not applied and their status goes stale. " +
        "Evaluated only where the operator metrics passthrough (sources.operatorMetrics) is configured; without it there is no data and the alert stays silent.",
      action:
        "Read the operator's logs for that controller (`kubectl logs <operator pod> -c manager`): usually an unreachable Talos API, an invalid spec or a missing Secret. " +
        "The Talos dashboard's reconciliation panels show which controller fails and since when.",
    },
  ],
};

const backups: AlertGroup = {
  name: "sidecar-exporter.etcd-backups",
  alerts: [
    {
      alert: "EtcdBackupTooOld",
      // From the backup's own timestamp, not etcd_backup_age_seconds, so the age keeps growing while the target
      // cannot be reached; a target that holds nothing has no timestamp and is caught by the object count.
      expr: `time() - ${sel(M.backupLastTimestamp)} > ${BACKUP_MAX_AGE_SECONDS} or ${sel(M.backupObjects)} == 0`,
      for: "10m",
      severity: "critical",
      summary: "No etcd backup at {{ $labels.target }} in the last 26 hours",
      description: "The newest etcd backup at target {{ $labels.target }} is older than 26 hours, or the target holds no backup at all.",
      meaning:
        "No new backup reached this target for longer than a daily schedule allows (24 hours plus 2 hours of slack), " +
        "measured from the backup's own timestamp, so it keeps growing while the target is unreachable. A restore now would lose more than a day.",
      action:
        "Check the TalosEtcdBackupSchedule (paused?), the latest TalosEtcdBackup objects and the operator's logs, and that the exporter's prefix and match still cover where backups are written. " +
        "Take a manual backup if the fix takes time. For a schedule other than daily, set the threshold to its interval plus slack.",
    },
    {
      alert: "EtcdBackupTargetDown",
      expr: onLeader(`${sel(M.backupTargetUp)} == 0`),
      for: "15m",
      severity: "warning",
      summary: "Backup target {{ $labels.target }} cannot be listed",
      description:
        "For 15 minutes, the polls of the backups source have not been able to list target {{ $labels.target }}; its series keep the values of the last good listing.",
      meaning:
        "One backup target (a bucket or a directory) cannot be read, while the source may still be up because other targets answer. " +
        "Nothing is known about new backups there, and `backup` checks of it fail once its data is stale.",
      action:
        "etcd_backup_target_errors_total{target} gives the reason (unauthorized, not_found, tls, connection, timeout, rate_limited, decode) and /debug/status on the health port the target's last error. " +
        "Fix the credential, bucket, endpoint, certificate or volume mount; the target recovers on the next poll.",
    },
    {
      alert: "EtcdBackupNotVerified",
      expr: `${sel(M.backupVerified)} == 0`,
      for: "30m",
      severity: "warning",
      summary: "The newest backup at {{ $labels.target }} is not a verified etcd snapshot",
      description:
        "For 30 minutes, the first bytes of the newest backup at target {{ $labels.target }} have not been an etcd (bbolt) snapshot; /debug/status gives the reason.",
      meaning:
        "The newest backup does not look like an etcd snapshot (wrong magic, empty, or a compression the exporter cannot read), " +
        "so a restore from it would probably fail.",
      action:
        "Read the target's reason in /debug/status (`not an etcd snapshot: magic …`, `empty file`, `not verifiable`) and inspect the file, e.g. with `etcdutl snapshot status`. " +
        "zstd, xz, bzip2 and lz4 files cannot be verified: store backups plain or gzip'ed, or silence the alert for that target.",
    },
  ],
};

const tailscale: AlertGroup = {
  name: "sidecar-exporter.tailscale",
  alerts: [
    {
      alert: "TailscaleDeviceKeyExpiringSoon",
      expr: `${sel(M.tailscaleKeyExpiry)} - time() < ${KEY_EXPIRY_WARNING_SECONDS}`,
      for: "15m",
      severity: "warning",
      summary: "The Tailscale node key of {{ $labels.device }} expires in {{ $value | humanizeDuration }}",
      description:
        "The node key of Tailscale device {{ $labels.device }} expires in less than 7 days ({{ $value | humanizeDuration }}; negative when already expired).",
      meaning:
        "A device's node key is about to expire or has expired. An expired device drops off the tailnet until it is re-authenticated; " +
        "for a gateway or an operator proxy that is an outage.",
      action:
        "Re-authenticate the device (`tailscale up --force-reauth`), or disable key expiry for servers and Kubernetes proxies in the admin console (Machines → the device → Disable key expiry).",
    },
  ],
};

export const ALERT_GROUPS: readonly AlertGroup[] = [healthChecks, sources, talos, backups, tailscale];

export const ALERTS: readonly AlertDef[] = ALERT_GROUPS.flatMap((g) => g.alerts);

/** The runbook annotation: what it means, then what to do. */
export function runbook(a: AlertDef): string {
  return `${a.meaning} What to do: ${a.action}`;
}
