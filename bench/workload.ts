/**
 * The upstreams a large installation puts in front of the exporter, built from the project's own simulators: a
 * Talos fleet behind one apid endpoint, a tailnet of thousands of devices, a management cluster holding the
 * operators' custom resources for many Talos clusters, S3 and directory backup targets, and the HTTP services the
 * health checks probe. `exporterConfig` writes the configuration that points the exporter at them.
 */
import { createServer, type Server } from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { readFixtureSnapshot } from "../test/sim/etcd-snapshot.ts";
import { seedOperatorResources } from "../test/sim/kube-fixtures.ts";
import { kubeconfigYaml, startKubeApiSim, type KubeApiSim, type KubeObject } from "../test/sim/kube-api.ts";
import { startS3Sim, type S3Sim } from "../test/sim/s3.ts";
import { startTailscaleSim, tsTime, ZERO_TIME, type TailscaleDevice, type TailscaleSim } from "../test/sim/tailscale.ts";
import { startTalosSim, talosconfigYaml, type ClusterModel, type SimNode, type SimService, type TalosSim } from "../test/sim/talos.ts";

/** How many of each thing one installation has. */
export interface Scale {
  name: string;
  talosNodes: number;
  tailscaleDevices: number;
  /** Talos clusters the management cluster's operator manages, each with its own custom resources. */
  managedClusters: number;
  machinesPerCluster: number;
  /** Tailscale gateway operator objects (endpoints, services, route policies). */
  gatewayObjects: number;
  httpChecks: number;
}

/**
 * Tuned so that the exporter's own /metrics holds about 5,000, 50,000 and 200,000 series. At 50k: 300 Talos nodes
 * with 9 services each, 2,000 devices, 100 managed clusters of 120 machines (about 13,000 custom resources) and
 * 1,000 HTTP checks, whose histograms are the largest single share.
 */
export const SCALES: Record<"5k" | "50k" | "200k", Scale> = {
  "5k": { name: "5k", talosNodes: 30, tailscaleDevices: 200, managedClusters: 9, machinesPerCluster: 120, gatewayObjects: 130, httpChecks: 100 },
  "50k": { name: "50k", talosNodes: 300, tailscaleDevices: 2_000, managedClusters: 100, machinesPerCluster: 120, gatewayObjects: 1_900, httpChecks: 1_000 },
  "200k": { name: "200k", talosNodes: 1_200, tailscaleDevices: 8_000, managedClusters: 400, machinesPerCluster: 120, gatewayObjects: 7_600, httpChecks: 4_000 },
};

export const CHECK_INTERVAL_S = 15;
/** Origins the checks are spread over: a sidecar's checks point at a handful of services, not one. */
const TARGET_ORIGINS = 10;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------------------------------------------
// Talos

/**
 * A talosctl-style call names every node in its own `nodes` metadata entry. Go's apid takes any number; Node's
 * HTTP/2 server, under the Talos simulator's grpc-js, refuses more than 128 header entries per request
 * (ENHANCE_YOUR_CALM, seen by the client as RESOURCE_EXHAUSTED), so a fleet over about 120 nodes could not be
 * polled at all. The simulator runs in this process; its servers get apid's headroom.
 */
function allowApidSizedMetadata(): void {
  const target = http2 as unknown as { createSecureServer: (options: http2.SecureServerOptions, ...rest: unknown[]) => http2.Http2SecureServer; benchPatched?: true };
  if (target.benchPatched) return;
  const original = target.createSecureServer.bind(http2);
  target.createSecureServer = (options, ...rest) =>
    original({ ...options, maxHeaderListPairs: 16_384, settings: { ...options.settings, maxHeaderListSize: 4 * 1024 * 1024 } }, ...rest);
  target.benchPatched = true;
}

const WORKER_EXTENSIONS = ["ext-iscsid", "ext-tailscale"];

function services(ids: string[], sick: boolean): SimService[] {
  return ids.map((id) => ({
    id,
    state: sick && id === "kubelet" ? "Failed" : "Running",
    healthy: id === "dashboard" ? undefined : !(sick && id === "kubelet"),
  }));
}

const CONTROL_PLANE_SERVICES = ["apid", "containerd", "cri", "dashboard", "etcd", "kubelet", "machined", "trustd", "udevd"];
const WORKER_SERVICES = ["apid", "containerd", "cri", "dashboard", "kubelet", "machined", "udevd", ...WORKER_EXTENSIONS];

/** Three control planes and workers, nine services on every node, a rollout half done, one node in ~50 sick. */
export function talosModel(nodes: number): ClusterModel {
  const memberIds = ["10276657743932975437", "4077931553093449617", "16306225063722117379"];
  const leader = memberIds[0] ?? "0";
  const out: SimNode[] = [];
  for (let i = 0; i < nodes; i++) {
    const controlPlane = i < 3;
    const ip = `10.${5 + Math.floor(i / 250)}.${Math.floor(i / 250) % 250}.${(i % 250) + 2}`;
    const node: SimNode = {
      name: ip,
      hostname: controlPlane ? `talos-cp-${i + 1}` : `talos-worker-${i - 2}`,
      version: i % 2 === 0 ? "v1.9.5" : "v1.9.4",
      arch: i % 10 === 9 ? "arm64" : "amd64",
      controlPlane,
      services: services(controlPlane ? CONTROL_PLANE_SERVICES : WORKER_SERVICES, i % 50 === 49),
    };
    if (controlPlane) {
      node.etcd = {
        memberId: memberIds[i] ?? "0",
        dbSize: 120_000_000 + i * 4096,
        dbSizeInUse: 80_000_000 + i * 4096,
        leader,
        raftIndex: 9_184_467,
        raftTerm: 12,
        errors: [],
      };
    }
    out.push(node);
  }
  const etcdMembers = out
    .filter((n) => n.controlPlane)
    .map((n) => ({ id: n.etcd?.memberId ?? "0", hostname: n.hostname ?? n.name, peerUrls: [`https://${n.name}:2380`], clientUrls: [`https://${n.name}:2379`] }));
  return { nodes: out, etcdMembers };
}

// ---------------------------------------------------------------------------------------------------------------
// Tailscale

const OS_MIX = ["linux", "linux", "linux", "linux", "linux", "linux", "macOS", "windows", "iOS", "android"];

/** Mostly tagged Linux servers (key expiry disabled), then people's laptops and phones; a few offline or stale. */
export function tailnetDevices(count: number, now = Date.now()): Partial<TailscaleDevice>[] {
  const out: Partial<TailscaleDevice>[] = [];
  for (let i = 0; i < count; i++) {
    const os = OS_MIX[i % OS_MIX.length] ?? "linux";
    const server = os === "linux" && i % 3 !== 0;
    const online = i % 17 !== 0;
    out.push({
      id: String(20_000_000_000_000 + i * 7_919),
      hostname: server ? `k8s-node-${String(i).padStart(5, "0")}` : `${os.toLowerCase()}-user-${i}`,
      os,
      user: server ? "ops@example.com" : `user${i % 400}@example.com`,
      tags: server ? ["tag:k8s"] : [],
      keyExpiryDisabled: server,
      expires: server ? ZERO_TIME : tsTime(now + ((i % 90) + 1) * DAY),
      updateAvailable: i % 11 === 0,
      authorized: i % 97 !== 0,
      connectedToControl: online,
      lastSeen: tsTime(online ? now : now - ((i % 48) + 1) * HOUR),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes custom resources

const TALOS_API = "talos.alperen.cloud/v1alpha1";
const GATEWAY_API = "gateway.tailscale.com/v1alpha1";

function ago(ms: number, now: number): string {
  return new Date(now - ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function ready(type: string, status: "True" | "False", now: number, minutesAgo = 30) {
  return { type, status, reason: status === "True" ? type : `Not${type}`, message: "", lastTransitionTime: ago(minutesAgo * 60_000, now) };
}

function ownedBy(kind: string, name: string, apiVersion = TALOS_API) {
  return [{ apiVersion, kind, name, uid: `uid-${kind.toLowerCase()}-${name}`, controller: true }];
}

/**
 * One managed Talos cluster as the operator keeps it: the cluster, its control plane and workers, its machines
 * (one in 40 still provisioning), a nightly backup schedule and the last week of backups (one failed).
 */
export function managedCluster(index: number, machines: number, now = Date.now()): KubeObject[] {
  const namespace = `tenant-${String(index).padStart(3, "0")}`;
  const name = `cluster-${index}`;
  const obj = (kind: string, objName: string, body: Omit<KubeObject, "apiVersion" | "kind" | "metadata"> & { metadata?: Record<string, unknown> }): KubeObject => ({
    apiVersion: TALOS_API,
    kind,
    ...body,
    metadata: { name: objName, namespace, ...body.metadata },
  });
  const out: KubeObject[] = [
    obj("TalosCluster", name, {
      spec: { controlPlaneRef: { name: `${name}-cp` }, workerRef: { name: `${name}-workers` } },
      status: { conditions: [ready("Ready", index % 25 === 24 ? "False" : "True", now)] },
    }),
    obj("TalosControlPlane", `${name}-cp`, { metadata: { ownerReferences: ownedBy("TalosCluster", name) }, status: { state: "Ready" } }),
    obj("TalosWorker", `${name}-workers`, {
      metadata: { ownerReferences: ownedBy("TalosCluster", name) },
      spec: { controlPlaneRef: { name: `${name}-cp` } },
      status: { state: "Ready" },
    }),
    obj("TalosEtcdBackupSchedule", `${name}-nightly`, { spec: { schedule: "0 2 * * *" }, status: { conditions: [ready("Ready", "True", now)] } }),
  ];
  for (let m = 0; m < machines; m++) {
    const cp = m < 3;
    out.push(
      obj("TalosMachine", `${name}-${cp ? "cp" : "worker"}-${cp ? m + 1 : m - 2}`, {
        metadata: { ownerReferences: ownedBy("TalosCluster", name) },
        spec: cp ? { controlPlaneRef: { name: `${name}-cp` } } : { workerRef: { name: `${name}-workers` } },
        status: { state: m % 40 === 39 ? "Pending" : "Available" },
      }),
    );
  }
  for (let d = 1; d <= 7; d++) {
    const started = now - d * DAY;
    const failed = d === 4;
    out.push(
      obj("TalosEtcdBackup", `${name}-nightly-${d}`, {
        metadata: { ownerReferences: ownedBy("TalosEtcdBackupSchedule", `${name}-nightly`), creationTimestamp: ago(now - started, now) },
        status: { conditions: [ready(failed ? "Failed" : "Ready", "True", now, (d * DAY - (30 + index % 90) * 1000) / 60_000)] },
      }),
    );
  }
  return out;
}

/** Tailscale gateway operator objects spread over namespaces: endpoints, services and route policies. */
export function gatewayObjects(count: number, now = Date.now()): KubeObject[] {
  const kinds = ["TailscaleEndpoints", "TailscaleServices", "TailscaleRoutePolicy"] as const;
  const out: KubeObject[] = [];
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length] ?? "TailscaleEndpoints";
    const namespace = `apps-${String(Math.floor(i / 50)).padStart(3, "0")}`;
    out.push({
      apiVersion: GATEWAY_API,
      kind,
      metadata: { name: `${kind.toLowerCase()}-${i}`, namespace },
      ...(kind === "TailscaleServices" && { spec: { vipService: { name: `svc:app-${i}` } } }),
      status: { conditions: [ready("Ready", i % 31 === 30 ? "False" : "True", now)] },
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Check targets

/** Small HTTP services answering 200, as the services a sidecar's checks probe would. */
export interface CheckTargets {
  /** One URL per check; append `&from=<who>` so requests are counted per prober. */
  urls: string[];
  /** Requests answered, by the `from` query parameter. */
  served(from: string): number;
  close(): Promise<void>;
}

export async function startCheckTargets(checks: number): Promise<CheckTargets> {
  const served = new Map<string, number>();
  const servers: Server[] = [];
  const origins: string[] = [];
  for (let i = 0; i < TARGET_ORIGINS; i++) {
    const server = createServer((req, res) => {
      const from = /[?&]from=([^&]*)/.exec(req.url ?? "")?.[1] ?? "";
      served.set(from, (served.get(from) ?? 0) + 1);
      req.resume();
      res.writeHead(200, { "content-type": "application/json", "content-length": "15" });
      res.end('{"status":"ok"}');
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    origins.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  }
  const urls = Array.from({ length: checks }, (_, i) => `${origins[i % origins.length] ?? ""}/healthz?svc=${i}`);
  return {
    urls,
    served: (from) => served.get(from) ?? 0,
    async close() {
      await Promise.all(
        servers.map((s) => {
          s.closeAllConnections();
          return new Promise<void>((resolve) => s.close(() => resolve()));
        }),
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// All upstreams together

export interface Upstreams {
  scale: Scale;
  dir: string;
  talos: TalosSim;
  kube: KubeApiSim;
  tailscale: TailscaleSim;
  s3: S3Sim;
  backupDir: string;
  targets: CheckTargets;
  /** Custom resources in the Kubernetes simulator. */
  customResources: number;
  close(): Promise<void>;
}

const KUBE_TOKEN = "bench-service-account-token";

export async function startUpstreams(scale: Scale): Promise<Upstreams> {
  const dir = mkdtempSync(join(tmpdir(), `sidecar-bench-${scale.name}-`));
  const now = Date.now();
  allowApidSizedMetadata();
  const talos = await startTalosSim({ model: talosModel(scale.talosNodes) });
  const kube = await startKubeApiSim({ token: KUBE_TOKEN, historyLimit: 1_000 });
  seedOperatorResources(kube);
  let customResources = 0;
  for (let c = 0; c < scale.managedClusters; c++) {
    for (const obj of managedCluster(c, scale.machinesPerCluster, now)) {
      kube.upsert(obj);
      customResources++;
    }
  }
  for (const obj of gatewayObjects(scale.gatewayObjects, now)) {
    kube.upsert(obj);
    customResources++;
  }
  const tailscale = await startTailscaleSim({ devices: tailnetDevices(scale.tailscaleDevices, now) });
  const s3 = await startS3Sim();
  await s3.putSnapshot("etcd/production/snapshot-old.db", { lastModified: new Date(now - 30 * HOUR) });
  await s3.putSnapshot("etcd/production/snapshot-new.db.gz", { gzip: true, lastModified: new Date(now - 2 * HOUR) });
  const backupDir = join(dir, "backups");
  mkdirSync(backupDir);
  const snapshot = join(backupDir, "etcd-snapshot.db");
  writeFileSync(snapshot, readFixtureSnapshot());
  utimesSync(snapshot, new Date(now - HOUR), new Date(now - HOUR));
  const targets = await startCheckTargets(scale.httpChecks);
  return {
    scale,
    dir,
    talos,
    kube,
    tailscale,
    s3,
    backupDir,
    targets,
    customResources,
    async close() {
      await Promise.allSettled([talos.close(), kube.close(), tailscale.close(), s3.close(), targets.close()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ExporterPorts {
  metrics: number;
  health: number;
  grpc: number;
}

export interface ExporterConfig {
  file: string;
  env: Record<string, string>;
}

/**
 * The exporter's configuration for these upstreams. `sources: false` leaves only the HTTP checks, to measure what
 * the checks cost on their own. Tailscale's timeout is longer than the slow-upstream scenario's 10 s answers, so
 * its polls wait them out rather than fail.
 */
export function exporterConfig(up: Upstreams, ports: ExporterPorts, opts: { name: string; sources?: boolean }): ExporterConfig {
  const talosconfig = join(up.dir, "talosconfig");
  writeFileSync(talosconfig, talosconfigYaml(up.talos, "bench"), { mode: 0o600 });
  const kubeconfig = join(up.dir, "kubeconfig");
  writeFileSync(kubeconfig, kubeconfigYaml(up.kube, { token: KUBE_TOKEN }), { mode: 0o600 });
  const withSources = opts.sources ?? true;
  const httpChecks = up.targets.urls.map((url, i) => ({ name: `svc-${String(i).padStart(5, "0")}`, type: "http", url: `${url}&from=${opts.name}`, interval: `${CHECK_INTERVAL_S}s`, timeout: "5s" }));
  const config = {
    metrics: { port: ports.metrics, custom: { labels: { cluster: "bench", region: "local" } }, collection: { interval: "15s", timeout: "10s" } },
    health: { port: ports.health },
    grpcHealth: { port: ports.grpc },
    server: { address: "127.0.0.1", shutdownDelay: "0s", shutdownGracePeriod: "1s" },
    limits: { seriesPerSource: 1_000_000, maxConnections: 256 },
    sources: withSources
      ? {
          talos: { talosconfig, cluster: "bench", interval: "15s", timeout: "10s" },
          kubernetes: { kubeconfig },
          tailscale: { baseUrl: up.tailscale.url, apiKey: { env: "BENCH_TAILSCALE_API_KEY" }, interval: "15s", timeout: "14s", maxBodyBytes: 64 * 1024 * 1024, expect: { tags: ["tag:k8s"] } },
          backups: {
            targets: [
              {
                name: "s3-primary",
                type: "s3",
                endpoint: up.s3.url,
                region: up.s3.region,
                bucket: up.s3.bucket,
                prefix: "etcd/production/",
                pathStyle: true,
                accessKeyId: { env: "BENCH_S3_ACCESS_KEY_ID" },
                secretAccessKey: { env: "BENCH_S3_SECRET_ACCESS_KEY" },
                namespace: "talos-system",
                backupName: "production-etcd",
              },
              { name: "local-pvc", type: "filesystem", path: up.backupDir, namespace: "talos-system", backupName: "production-etcd-local" },
            ],
          },
        }
      : {},
    healthChecks: {
      custom: withSources ? [{ name: "tailscale-connectivity" }, { name: "service-registry" }] : [],
      dependencies: [
        ...(withSources ? [{ name: "talos-api", type: "source", source: "talos", critical: true }, { name: "etcd-backup-fresh", type: "backup", target: "s3-primary", maxAge: "25h" }] : []),
        ...httpChecks,
      ],
    },
    // Costs nothing until asked; the benchmark takes a CPU profile during one run to show where the time goes.
    debug: { pprof: { enabled: true, maxProfileSeconds: 60 } },
    logging: { level: "warn", format: "json" },
  };
  const file = join(up.dir, `${opts.name}.yaml`);
  writeFileSync(file, stringify(config));
  return {
    file,
    env: { BENCH_TAILSCALE_API_KEY: up.tailscale.apiKey, BENCH_S3_ACCESS_KEY_ID: up.s3.accessKeyId, BENCH_S3_SECRET_ACCESS_KEY: up.s3.secretAccessKey },
  };
}
