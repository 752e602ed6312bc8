/**
 * `npm run demo`: starts a simulator for every upstream (Talos nodes over mTLS, the Kubernetes API with the
 * operators' custom resources, the Tailscale API, an S3 bucket and a directory holding real etcd snapshots, and an
 * operator's own /metrics), writes a config pointing at them, and runs the exporter against it. Every metric family
 * is populated within a few seconds. Ctrl-C stops everything.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { readFixtureSnapshot } from "../test/sim/etcd-snapshot.ts";
import { seedOperatorResources } from "../test/sim/kube-fixtures.ts";
import { type KubeApiSim, kubeconfigYaml, startKubeApiSim } from "../test/sim/kube-api.ts";
import { type S3Sim, startS3Sim } from "../test/sim/s3.ts";
import { startTailscaleSim, type TailscaleSim } from "../test/sim/tailscale.ts";
import { startTalosSim, type TalosSim, talosconfigYaml } from "../test/sim/talos.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HOUR = 3_600_000;

/** A stand-in for the operator container's own /metrics, which the exporter merges into its own. */
const OPERATOR_METRICS = `# HELP controller_runtime_reconcile_total Total number of reconciliations per controller
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="taloscluster",result="success"} 128
controller_runtime_reconcile_total{controller="taloscluster",result="error"} 2
# HELP controller_runtime_reconcile_errors_total Total number of reconciliation errors per controller
# TYPE controller_runtime_reconcile_errors_total counter
controller_runtime_reconcile_errors_total{controller="taloscluster"} 2
# HELP talos_operator_reconciliation_total Total number of reconciliations
# TYPE talos_operator_reconciliation_total counter
talos_operator_reconciliation_total{controller="taloscluster",result="success"} 128
talos_operator_reconciliation_total{controller="taloscluster",result="error"} 2
# HELP talos_operator_reconciliation_duration_seconds Duration of reconciliations
# TYPE talos_operator_reconciliation_duration_seconds histogram
talos_operator_reconciliation_duration_seconds_bucket{controller="taloscluster",le="0.1"} 90
talos_operator_reconciliation_duration_seconds_bucket{controller="taloscluster",le="1"} 125
talos_operator_reconciliation_duration_seconds_bucket{controller="taloscluster",le="+Inf"} 130
talos_operator_reconciliation_duration_seconds_sum{controller="taloscluster"} 31.5
talos_operator_reconciliation_duration_seconds_count{controller="taloscluster"} 130
`;

export interface DemoEnvironment {
  configFile: string;
  /** Environment the exporter needs (credentials the config names by variable). */
  env: Record<string, string>;
  /** The running simulators, for scripts that change what they serve while the exporter runs (scripts/soak.ts). */
  sims: { talos: TalosSim; kube: KubeApiSim; tailscale: TailscaleSim; s3: S3Sim };
  close(): Promise<void>;
}

async function listenHttp(body: string): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => {
    res.setHeader("content-type", "text/plain; version=0.0.4");
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics` };
}

/** Starts every simulator and writes the exporter's config; `ports` 0 picks free ports (tests). */
export async function startDemoEnvironment(ports = { metrics: 8080, health: 8081, grpc: 8082 }, interval = "5s"): Promise<DemoEnvironment> {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-demo-"));
  const talos = await startTalosSim();
  const kube = await startKubeApiSim({ token: "demo-service-account-token" });
  seedOperatorResources(kube);
  const tailscale = await startTailscaleSim();
  const s3 = await startS3Sim();
  await s3.putSnapshot("etcd/production/snapshot-old.db", { lastModified: new Date(Date.now() - 30 * HOUR) });
  await s3.putSnapshot("etcd/production/snapshot-new.db.gz", { gzip: true, lastModified: new Date(Date.now() - 2 * HOUR) });
  const backupDir = join(dir, "backups");
  mkdirSync(backupDir);
  const snapshotFile = join(backupDir, "etcd-snapshot.db");
  writeFileSync(snapshotFile, readFixtureSnapshot());
  const oneHourAgo = new Date(Date.now() - HOUR);
  utimesSync(snapshotFile, oneHourAgo, oneHourAgo);
  const operator = await listenHttp(OPERATOR_METRICS);

  const talosconfig = join(dir, "talosconfig");
  writeFileSync(talosconfig, talosconfigYaml(talos, "demo"), { mode: 0o600 });
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, kubeconfigYaml(kube, { token: "demo-service-account-token" }), { mode: 0o600 });

  const config = {
    metrics: { port: ports.metrics, custom: { labels: { cluster: "demo", region: "local" } }, collection: { interval, timeout: "2s" } },
    health: { port: ports.health },
    grpcHealth: { port: ports.grpc },
    // Nothing routes to the demo through a Service, so a stop need not wait for one to notice.
    server: { address: "127.0.0.1", shutdownDelay: "0s" },
    sources: {
      talos: { talosconfig, cluster: "demo" },
      kubernetes: { kubeconfig },
      tailscale: { baseUrl: tailscale.url, apiKey: { env: "DEMO_TAILSCALE_API_KEY" }, expect: { tags: ["tag:k8s"] } },
      backups: {
        targets: [
          {
            name: "s3-primary",
            type: "s3",
            endpoint: s3.url,
            region: s3.region,
            bucket: s3.bucket,
            prefix: "etcd/production/",
            pathStyle: true,
            accessKeyId: { env: "DEMO_S3_ACCESS_KEY_ID" },
            secretAccessKey: { env: "DEMO_S3_SECRET_ACCESS_KEY" },
            namespace: "talos-system",
            backupName: "production-etcd",
          },
          { name: "local-pvc", type: "filesystem", path: backupDir, namespace: "talos-system", backupName: "production-etcd-local" },
        ],
      },
      operatorMetrics: { url: operator.url },
    },
    healthChecks: {
      custom: [
        { name: "tailscale-connectivity", endpoint: "/health/tailscale", timeout: "2s", interval },
        { name: "service-registry", endpoint: "/health/registry", timeout: "2s", interval },
      ],
      dependencies: [
        { name: "kubernetes-api", type: "http", url: `${kube.url}/healthz`, headers: { Authorization: "Bearer demo-service-account-token" }, critical: true, interval, timeout: "2s" },
        { name: "talos-api", type: "source", source: "talos", critical: true, interval, timeout: "2s" },
        // The newest object is the small bundled snapshot gzip'ed (under 1 KiB); a real one is megabytes.
        { name: "etcd-backup-fresh", type: "backup", target: "s3-primary", maxAge: "25h", minBytes: 512, interval, timeout: "2s" },
        { name: "operator-metrics-port", type: "tcp", address: operator.url.replace(/^http:\/\/([^/]+).*$/, "$1"), interval, timeout: "1s" },
      ],
    },
    logging: { level: "info", format: "console" },
  };
  const configFile = join(dir, "config.yaml");
  writeFileSync(configFile, stringify(config));
  return {
    configFile,
    env: {
      DEMO_TAILSCALE_API_KEY: tailscale.apiKey,
      DEMO_S3_ACCESS_KEY_ID: s3.accessKeyId,
      DEMO_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
    sims: { talos, kube, tailscale, s3 },
    async close() {
      operator.server.closeAllConnections();
      operator.server.close();
      await Promise.allSettled([talos.close(), kube.close(), tailscale.close(), s3.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const demo = await startDemoEnvironment();
  process.stdout.write(
    [
      "Simulators are up. Starting the exporter with " + demo.configFile,
      "Try:  curl -s localhost:8080/metrics | grep -E '^(talos|tailscale|etcd_backup|sidecar_source)_'",
      "      curl -s 'localhost:8081/readyz?verbose'",
      "      curl -s localhost:8081/debug/status",
      "",
    ].join("\n"),
  );
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli.ts"), "--config", demo.configFile], {
    stdio: "inherit",
    env: { ...process.env, ...demo.env },
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    child.kill("SIGTERM");
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const code = await new Promise<number>((resolve) => child.on("exit", (c) => resolve(c ?? 0)));
  await demo.close();
  process.exit(code);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
