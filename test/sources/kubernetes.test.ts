import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { sourceProber } from "../../src/checks/source.ts";
import type { SourceCheckSpec } from "../../src/config/types.ts";
import { createLogging } from "../../src/log.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { kubernetesSourceSchema, type KubernetesSourceConfig, type Schedule } from "../../src/sources/config.ts";
import { retryDelayMs } from "../../src/sources/kubernetes/informer.ts";
import { kubeconfigConnection } from "../../src/sources/kubernetes/kubeconfig.ts";
import { createKubernetesSource, type KubernetesSourceOptions } from "../../src/sources/kubernetes/source.ts";
import { TAILSCALE_KINDS } from "../../src/sources/kubernetes/tailscale-kinds.ts";
import { TALOS_KINDS } from "../../src/sources/kubernetes/talos-kinds.ts";
import { RetryAfterError } from "../../src/sources/health.ts";
import { SourceRegistry } from "../../src/sources/registry.ts";
import type { Source } from "../../src/sources/types.ts";
import { UpstreamError } from "../../src/errors.ts";
import { type Fault, kubeconfigYaml, startKubeApiSim, type KubeApiSim, type KubeApiSimOptions, type KubeObject, type RecordedRequest } from "../sim/kube-api.ts";
import { createCA, issueCert } from "../sim/pki.ts";
import { LogCapture, configFrom, eventually } from "../helpers.ts";

const TOKEN = "kube-sim-token-1";
const TALOS_GROUP = "talos.alperen.cloud";
const TS_GROUP = "gateway.tailscale.com";
const TALOS_API = `${TALOS_GROUP}/v1alpha1`;
const TS_API = `${TS_GROUP}/v1alpha1`;
const path = (group: string, plural: string, namespace?: string): string =>
  namespace === undefined ? `/apis/${group}/v1alpha1/${plural}` : `/apis/${group}/v1alpha1/namespaces/${namespace}/${plural}`;

type Labels = Record<string, string>;

/** Parses the Prometheus text exposition, so assertions do not depend on label order. */
function rows(text: string, name: string): { labels: Labels; value: number }[] {
  const out: { labels: Labels; value: number }[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Labels = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

function value(text: string, name: string, labels: Labels = {}): number | undefined {
  return rows(text, name).find((r) => Object.entries(labels).every(([k, v]) => r.labels[k] === v))?.value;
}

const stamp = (offsetSeconds = 0): string => new Date(Date.now() + offsetSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

function cond(type: string, status: "True" | "False" | "Unknown", lastTransitionTime = stamp()) {
  return { type, status, reason: "Test", message: "", lastTransitionTime };
}

interface ObjOpts {
  namespace?: string;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  labels?: Record<string, string>;
  owners?: { kind: string; name: string }[];
}

function obj(apiVersion: string, kind: string, name: string, o: ObjOpts = {}): KubeObject {
  return {
    apiVersion,
    kind,
    metadata: {
      name,
      namespace: o.namespace ?? "default",
      ...(o.labels && { labels: o.labels }),
      ...(o.owners && { ownerReferences: o.owners.map((r) => ({ apiVersion, kind: r.kind, name: r.name, uid: `uid-${r.name}` })) }),
    },
    spec: o.spec ?? {},
    ...(o.status && { status: o.status }),
  };
}

const talos = (kind: string, name: string, o: ObjOpts = {}) => obj(TALOS_API, kind, name, o);
const tailscale = (kind: string, name: string, o: ObjOpts = {}) => obj(TS_API, kind, name, o);

function addCrds(sim: KubeApiSim, skip: string[] = []): void {
  for (const k of TALOS_KINDS) if (!skip.includes(k.kind)) sim.addResource({ group: TALOS_GROUP, version: "v1alpha1", plural: k.plural, kind: k.kind, namespaced: k.namespaced });
  for (const k of TAILSCALE_KINDS) if (!skip.includes(k.kind)) sim.addResource({ group: TS_GROUP, version: "v1alpha1", plural: k.plural, kind: k.kind, namespaced: k.namespaced });
}

/** A small but complete estate: one healthy cluster with its control plane, worker and machines, plus a gateway. */
function seed(sim: KubeApiSim, namespace = "default"): void {
  sim.upsert(talos("TalosCluster", "prod", { namespace, status: { conditions: [cond("Ready", "True")] } }));
  sim.upsert(talos("TalosControlPlane", "prod-controlplane", { namespace, owners: [{ kind: "TalosCluster", name: "prod" }], status: { state: "Ready" } }));
  sim.upsert(
    talos("TalosWorker", "prod-worker", { namespace, owners: [{ kind: "TalosCluster", name: "prod" }], spec: { controlPlaneRef: { name: "prod-controlplane" } }, status: { state: "Pending" } }),
  );
  sim.upsert(talos("TalosMachine", "prod-controlplane-10.0.0.1", { namespace, spec: { controlPlaneRef: { kind: "TalosControlPlane", name: "prod-controlplane" } }, status: { state: "Available" } }));
  sim.upsert(talos("TalosMachine", "prod-worker-10.0.0.2", { namespace, spec: { workerRef: { kind: "TalosWorker", name: "prod-worker" } }, status: { state: "Installing" } }));
  sim.upsert(tailscale("TailscaleGateway", "gw", { namespace, status: { conditions: [cond("Ready", "True")], services: [{ name: "svc:web" }, { name: "svc:db" }] } }));
  sim.upsert(tailscale("TailscaleServices", "web", { namespace, spec: { vipService: { name: "svc:web" } }, status: { conditions: [cond("Ready", "False")] } }));
}

const FAST = { backoffBaseMs: 50, backoffMaxMs: 200, notFoundRetryMs: 300, heartbeatMs: 200 };

interface Harness {
  sim: KubeApiSim;
  source: Source;
  metrics: MetricRegistry;
  logs: LogCapture;
  dir: string;
  text(): Promise<string>;
  value(name: string, labels?: Labels): Promise<number | undefined>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface SetupOptions {
  sim?: KubeApiSimOptions;
  skip?: string[];
  config?: Record<string, unknown>;
  schedule?: Partial<Schedule>;
  options?: KubernetesSourceOptions;
  /** limits.seriesPerSource. */
  seriesLimit?: number;
  seed?: boolean;
  start?: boolean;
  kubeconfig?: (sim: KubeApiSim) => string;
}

async function setup(o: SetupOptions = {}): Promise<Harness> {
  const sim = await startKubeApiSim({ token: TOKEN, ...o.sim });
  cleanups.push(() => sim.close());
  addCrds(sim, o.skip);
  if (o.seed ?? true) seed(sim);
  const dir = await mkdtemp(join(tmpdir(), "kube-source-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, "kubeconfig.yaml");
  await writeFile(kubeconfig, o.kubeconfig ? o.kubeconfig(sim) : kubeconfigYaml(sim));
  const config: KubernetesSourceConfig & Schedule = {
    ...kubernetesSourceSchema.parse({ kubeconfig, watchTimeout: "30s", ...o.config }),
    intervalMs: 1_000,
    timeoutMs: 1_000,
    ...o.schedule,
  };
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const logs = new LogCapture();
  const logger = createLogging(configFrom({ logging: { level: "debug" } }).logging, logs).root;
  const source = createKubernetesSource(config, { logger, metrics, seriesLimit: o.seriesLimit }, { ...o.options, timing: { ...FAST, ...o.options?.timing } });
  cleanups.push(() => source.stop());
  if (o.start ?? true) source.start();
  const text = () => metrics.render(false);
  return { sim, source, metrics, logs, dir, text, value: async (name, labels = {}) => value(await text(), name, labels) };
}

const synced = (h: Harness) => eventually(() => h.source.status().up && h.source.status().healthy !== undefined);
const kindsDebug = (h: Harness) => h.source.debug().kinds as { kind: string; namespace: string | null; state: string; reason: string | null; error: string | null }[];
const requestsTo = (sim: KubeApiSim, p: string, kind: "list" | "watch"): RecordedRequest[] =>
  sim.requests.filter((r) => r.path === p && (kind === "watch" ? r.query.watch === "1" : r.query.watch === undefined));

describe("kubernetes source: list and watch", () => {
  it("lists every kind, then keeps the series current through ADDED, MODIFIED and DELETED events", async () => {
    const h = await setup();
    await synced(h);
    let text = await h.text();
    expect(value(text, "talos_operator_resource_status", { resource_type: "taloscluster", namespace: "default", name: "prod", status: "Ready" })).toBe(1);
    expect(value(text, "talos_operator_resource_status", { resource_type: "taloscontrolplane", name: "prod-controlplane", status: "Ready" })).toBe(1);
    expect(value(text, "talos_operator_resource_status", { resource_type: "talosworker", name: "prod-worker", status: "Pending" })).toBe(0);
    expect(value(text, "talos_operator_resource_status", { resource_type: "talosmachine", name: "prod-worker-10.0.0.2", status: "Installing" })).toBe(0);
    expect(value(text, "talos_operator_resource_total", { resource_type: "talosmachine", namespace: "default" })).toBe(2);
    expect(value(text, "talos_operator_cluster_health", { namespace: "default", name: "prod" })).toBe(1);
    expect(value(text, "talos_operator_machine_ready", { namespace: "default", cluster: "prod" })).toBe(1);
    expect(value(text, "tailscale_gateway_resource_status", { resource_type: "tailscalegateway", name: "gw", status: "Ready" })).toBe(1);
    expect(value(text, "tailscale_gateway_resource_status", { resource_type: "tailscaleservices", name: "web", status: "NotReady" })).toBe(0);
    // svc:web is declared by the TailscaleServices and reported by the gateway: one service, not two.
    expect(value(text, "service_coordinator_services_total", { namespace: "default" })).toBe(2);
    expect(h.source.status()).toMatchObject({ up: true, healthy: true, detail: "7 objects in 12 kinds" });

    const listsBefore = h.sim.requests.filter((r) => r.query.watch === undefined).length;
    // MODIFIED: the worker machine comes up.
    h.sim.upsert(talos("TalosMachine", "prod-worker-10.0.0.2", { spec: { workerRef: { kind: "TalosWorker", name: "prod-worker" } }, status: { state: "Available" } }));
    await eventually(async () => (await h.value("talos_operator_machine_ready", { cluster: "prod" })) === 2);
    // ADDED: a second cluster, not ready; the source turns unhealthy and says why.
    h.sim.upsert(talos("TalosCluster", "staging", { status: { conditions: [cond("Ready", "False")] } }));
    await eventually(async () => (await h.value("talos_operator_cluster_health", { name: "staging" })) === 0);
    await eventually(() => h.source.status().healthy === false);
    expect(h.source.status().detail).toBe("8 objects in 12 kinds, 1 cluster not ready");
    expect(await h.value("talos_operator_machine_ready", { cluster: "staging" })).toBe(0);
    // DELETED: its series go with it.
    h.sim.delete(TALOS_API, "talosclusters", "default", "staging");
    await eventually(async () => (await h.value("talos_operator_cluster_health", { name: "staging" })) === undefined);
    text = await h.text();
    expect(value(text, "talos_operator_resource_status", { name: "staging" })).toBeUndefined();
    expect(value(text, "talos_operator_machine_ready", { cluster: "staging" })).toBeUndefined();
    await eventually(() => h.source.status().healthy === true);
    // Events arrived by watch: nothing was listed again.
    expect(h.sim.requests.filter((r) => r.query.watch === undefined).length).toBe(listsBefore);
    // Every request was authenticated and watched with bookmarks from a list's version.
    const watch = requestsTo(h.sim, path(TALOS_GROUP, "talosclusters"), "watch")[0];
    expect(watch?.headers.authorization).toBe("Bearer <redacted>");
    expect(watch?.query).toMatchObject({ allowWatchBookmarks: "true", timeoutSeconds: "30" });
    expect(Number(watch?.query.resourceVersion)).toBeGreaterThan(1);
  });

  it("passes the service-registry source check once the lists succeed", async () => {
    const h = await setup();
    const logger = createLogging(configFrom({ logging: { level: "silent" } }).logging, new LogCapture()).root;
    const check = sourceProber({ name: "service-registry", type: "source", source: "kubernetes" } as SourceCheckSpec, { logger, sources: new SourceRegistry([h.source]) });
    await synced(h);
    expect(await check.probe(new AbortController().signal)).toEqual({ ok: true, message: "7 objects in 12 kinds" });
    expect(await h.value("sidecar_source_up", { source: "kubernetes" })).toBe(1);
    // While the watches run quietly, the heartbeat keeps the last success fresh.
    const first = await h.value("sidecar_source_last_success_timestamp_seconds", { source: "kubernetes" });
    await eventually(async () => ((await h.value("sidecar_source_last_success_timestamp_seconds", { source: "kubernetes" })) ?? 0) > (first ?? 0));
  });
});

describe("kubernetes source: series follow each object", () => {
  const machine = (name: string, state: string, spec: Record<string, unknown>) => talos("TalosMachine", name, { spec, status: { state } });

  it("moves a changed object's series, and keeps totals, machine counts and clusters not ready right after each step", async () => {
    const h = await setup();
    await synced(h);
    const step = async (check: () => Promise<boolean>) => {
      await eventually(check);
      return h.text();
    };
    // The worker machine comes up: its series moves to the new status.
    h.sim.upsert(machine("prod-worker-10.0.0.2", "Available", { workerRef: { name: "prod-worker" } }));
    let text = await step(async () => (await h.value("talos_operator_machine_ready", { cluster: "prod" })) === 2);
    expect(value(text, "talos_operator_resource_status", { name: "prod-worker-10.0.0.2", status: "Installing" })).toBeUndefined();
    expect(value(text, "talos_operator_resource_status", { name: "prod-worker-10.0.0.2", status: "Available" })).toBe(1);
    expect(value(text, "talos_operator_resource_total", { resource_type: "talosmachine" })).toBe(2);
    expect(h.source.status().detail).toBe("7 objects in 12 kinds");

    // A second cluster, not ready, with a control plane of its own.
    h.sim.upsert(talos("TalosCluster", "staging", { status: { conditions: [cond("Ready", "False")] } }));
    h.sim.upsert(talos("TalosControlPlane", "staging-cp", { owners: [{ kind: "TalosCluster", name: "staging" }], status: { state: "Ready" } }));
    text = await step(async () => (await h.value("talos_operator_resource_total", { resource_type: "taloscontrolplane" })) === 2);
    expect(value(text, "talos_operator_resource_total", { resource_type: "taloscluster" })).toBe(2);
    expect(value(text, "talos_operator_machine_ready", { cluster: "staging" })).toBe(0);
    await eventually(() => h.source.status().detail === "9 objects in 12 kinds, 1 cluster not ready");

    // The worker machine moves to the new cluster's control plane: its count moves with it.
    h.sim.upsert(machine("prod-worker-10.0.0.2", "Available", { controlPlaneRef: { name: "staging-cp" } }));
    text = await step(async () => (await h.value("talos_operator_machine_ready", { cluster: "staging" })) === 1);
    expect(value(text, "talos_operator_machine_ready", { cluster: "prod" })).toBe(1);
    expect(value(text, "talos_operator_resource_total", { resource_type: "talosmachine" })).toBe(2);

    // The cluster comes up, then goes; its control plane still names it, so its machine still counts there.
    h.sim.upsert(talos("TalosCluster", "staging", { status: { conditions: [cond("Ready", "True")] } }));
    await eventually(() => h.source.status().detail === "9 objects in 12 kinds");
    h.sim.delete(TALOS_API, "talosclusters", "default", "staging");
    text = await step(async () => (await h.value("talos_operator_resource_total", { resource_type: "taloscluster" })) === 1);
    expect(value(text, "talos_operator_cluster_health", { name: "staging" })).toBeUndefined();
    expect(value(text, "talos_operator_resource_status", { resource_type: "taloscluster", name: "staging" })).toBeUndefined();
    expect(value(text, "talos_operator_machine_ready", { cluster: "staging" })).toBe(1);
    await eventually(() => h.source.status().detail === "8 objects in 12 kinds" && h.source.status().healthy === true);
  });

  it("counts a control plane's machines under a cluster that claims it later", async () => {
    const h = await setup();
    await synced(h);
    h.sim.upsert(talos("TalosControlPlane", "solo-cp", { status: { state: "Ready" } }));
    h.sim.upsert(machine("solo-1", "Available", { controlPlaneRef: { name: "solo-cp" } }));
    await eventually(async () => (await h.value("talos_operator_machine_ready", { cluster: "solo-cp" })) === 1);
    h.sim.upsert(talos("TalosCluster", "solo", { spec: { controlPlaneRef: { name: "solo-cp" } }, status: { conditions: [cond("Ready", "True")] } }));
    await eventually(async () => (await h.value("talos_operator_machine_ready", { cluster: "solo" })) === 1);
    const text = await h.text();
    expect(value(text, "talos_operator_machine_ready", { cluster: "solo-cp" })).toBeUndefined();
    expect(value(text, "talos_operator_machine_ready", { cluster: "prod" })).toBe(1);
    expect(value(text, "talos_operator_resource_total", { resource_type: "taloscluster" })).toBe(2);
  });

  it("keeps to the series limit as objects come, and gives the room of a deleted one to the one waiting", async () => {
    // The seed's 14 series: 7 statuses, 4 totals, the cluster's health and machine count, the services of default.
    const h = await setup({ seriesLimit: 14 });
    await synced(h);
    expect(await h.value("sidecar_series_dropped_total", { source: "kubernetes" })).toBe(0);
    h.sim.upsert(tailscale("TailscaleEndpoints", "db", { status: { conditions: [cond("Ready", "True")] } }));
    await eventually(async () => (await h.value("sidecar_series_dropped_total", { source: "kubernetes" })) === 1);
    expect(await h.value("tailscale_gateway_resource_status", { name: "db" })).toBeUndefined();
    // Series already exported keep changing at the limit.
    h.sim.upsert(tailscale("TailscaleGateway", "gw", { status: { conditions: [cond("Ready", "False")], services: [{ name: "svc:web" }, { name: "svc:db" }] } }));
    await eventually(async () => (await h.value("tailscale_gateway_resource_status", { name: "gw", status: "NotReady" })) === 0);
    h.sim.delete(TS_API, "tailscaleservices", "default", "web");
    await eventually(async () => (await h.value("tailscale_gateway_resource_status", { name: "db", status: "Ready" })) === 1);
    const text = await h.text();
    expect(value(text, "tailscale_gateway_resource_status", { name: "web" })).toBeUndefined();
    expect(value(text, "service_coordinator_services_total", { namespace: "default" })).toBe(2);
    expect(value(text, "sidecar_series_dropped_total", { source: "kubernetes" })).toBe(1);
  });

  it("keeps to maxObjects, and keeps an object left out once room comes free and it changes", async () => {
    const h = await setup({ config: { maxObjects: 7 } });
    await synced(h);
    const endpoints = { resource_type: "tailscaleendpoints", name: "db" };
    const dropped = () => h.value("sidecar_objects_dropped_total", { source: "kubernetes", kind: "TailscaleEndpoints" });
    expect(await dropped()).toBe(0);
    h.sim.upsert(tailscale("TailscaleEndpoints", "db", { status: { conditions: [cond("Ready", "False")] } }));
    await eventually(async () => (await dropped()) === 1);
    await eventually(() => h.source.status().detail === "7 objects in 12 kinds, 1 object left out at sources.kubernetes.maxObjects (7)");
    expect(h.source.debug().objects).toEqual({ held: 7, limit: 7, leftOut: 1 });
    // A change to it while there is no room is not a second object left out.
    h.sim.upsert(tailscale("TailscaleEndpoints", "db", { status: { conditions: [cond("Ready", "True")] } }));
    h.sim.delete(TS_API, "tailscaleservices", "default", "web");
    await eventually(() => (h.source.debug().objects as { held: number }).held === 6);
    expect(await h.value("tailscale_gateway_resource_status", endpoints)).toBeUndefined();
    // Its next change finds the room.
    h.sim.upsert(tailscale("TailscaleEndpoints", "db", { status: { conditions: [cond("Ready", "False")] } }));
    await eventually(async () => (await h.value("tailscale_gateway_resource_status", { ...endpoints, status: "NotReady" })) === 0);
    expect(h.source.debug().objects).toEqual({ held: 7, limit: 7, leftOut: 0 });
    await eventually(() => h.source.status().detail === "7 objects in 12 kinds");
    expect(await dropped()).toBe(1);
  });
});

describe("kubernetes source: etcd backups", () => {
  it("counts a finished backup once, across re-watches and a 410 re-list, and observes its duration", async () => {
    const h = await setup();
    await synced(h);
    const owners = [{ kind: "TalosEtcdBackupSchedule", name: "nightly" }];
    h.sim.upsert(talos("TalosEtcdBackup", "nightly-1", { owners, spec: { talosControlPlaneRef: { name: "prod-controlplane" } }, status: { conditions: [cond("Progressing", "True")] } }));
    await eventually(async () => (await h.value("talos_operator_resource_status", { name: "nightly-1", status: "InProgress" })) === 0);
    expect(await h.value("talos_operator_etcd_backup_total")).toBeUndefined();

    const created = h.sim.get(TALOS_API, "talosetcdbackups", "default", "nightly-1")?.metadata.creationTimestamp as string;
    const done = new Date(Date.parse(created) + 42_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    h.sim.upsert(
      talos("TalosEtcdBackup", "nightly-1", { owners, spec: { talosControlPlaneRef: { name: "prod-controlplane" } }, status: { conditions: [cond("Ready", "True", done), cond("Progressing", "False", done)] } }),
    );
    await eventually(async () => (await h.value("talos_operator_etcd_backup_total", { namespace: "default", name: "nightly", status: "success" })) === 1);
    expect(await h.value("talos_operator_etcd_backup_duration_seconds_count", { namespace: "default", name: "nightly" })).toBe(1);
    expect(await h.value("talos_operator_etcd_backup_duration_seconds_sum", { namespace: "default", name: "nightly" })).toBe(42);
    // A manual backup with no schedule is named after its control plane; a failure counts as failed.
    h.sim.upsert(talos("TalosEtcdBackup", "manual", { spec: { talosControlPlaneRef: { name: "prod-controlplane" } }, status: { conditions: [cond("Failed", "True"), cond("Progressing", "False")] } }));
    await eventually(async () => (await h.value("talos_operator_etcd_backup_total", { name: "prod-controlplane", status: "failed" })) === 1);

    // The server ends every watch: the informers re-watch and see the same objects again.
    const backupsPath = path(TALOS_GROUP, "talosetcdbackups");
    const watchesBefore = requestsTo(h.sim, backupsPath, "watch").length;
    h.sim.endWatches();
    await eventually(() => requestsTo(h.sim, backupsPath, "watch").length > watchesBefore && h.sim.openWatches > 0);

    // History is compacted past the backups' version: the re-watch gets 410 and the informer lists again.
    h.sim.upsert(talos("TalosCluster", "prod", { status: { conditions: [cond("Ready", "True")] } }));
    const listsBefore = requestsTo(h.sim, backupsPath, "list").length;
    h.sim.compactHistory();
    h.sim.endWatches();
    await eventually(() => requestsTo(h.sim, backupsPath, "list").length > listsBefore);
    await eventually(() => requestsTo(h.sim, backupsPath, "watch").some((r) => Number(r.query.resourceVersion) >= Number(h.sim.resourceVersion)));
    await new Promise((r) => setTimeout(r, 100));
    const text = await h.text();
    expect(value(text, "talos_operator_etcd_backup_total", { name: "nightly", status: "success" })).toBe(1);
    expect(value(text, "talos_operator_etcd_backup_total", { name: "prod-controlplane", status: "failed" })).toBe(1);
    expect(value(text, "talos_operator_etcd_backup_duration_seconds_count", { name: "nightly" })).toBe(1);
    expect(h.source.status().up).toBe(true);
  });
});

describe("kubernetes source: watch protocol", () => {
  it("re-watches from the last resourceVersion seen after a stream ends, and from a BOOKMARK's", async () => {
    const h = await setup();
    await synced(h);
    const clusters = path(TALOS_GROUP, "talosclusters");
    const changed = h.sim.upsert(talos("TalosCluster", "prod", { status: { conditions: [cond("Ready", "False")] } }));
    await eventually(async () => (await h.value("talos_operator_cluster_health", { name: "prod" })) === 0);
    const before = requestsTo(h.sim, clusters, "watch").length;
    h.sim.endWatches();
    const rewatch = await eventually(() => requestsTo(h.sim, clusters, "watch")[before]);
    expect(rewatch.query.resourceVersion).toBe(changed.metadata.resourceVersion);
    expect(requestsTo(h.sim, clusters, "list")).toHaveLength(1);

    // Other kinds move the cluster-wide version; a bookmark carries it to this watch without any event.
    h.sim.upsert(tailscale("TailscaleTailnet", "corp", { namespace: "" }));
    await eventually(() => h.sim.openWatches >= 12);
    h.sim.sendBookmark();
    await new Promise((r) => setTimeout(r, 100));
    const bookmarked = h.sim.resourceVersion;
    h.sim.endWatches();
    const after = await eventually(() => requestsTo(h.sim, clusters, "watch")[before + 1]);
    expect(after.query.resourceVersion).toBe(bookmarked);
  });

  it("lists again after a 410 Expired watch answer", async () => {
    const h = await setup();
    await synced(h);
    const machines = path(TALOS_GROUP, "talosmachines");
    h.sim.setFault({ kind: "status", code: 410, message: "too old resource version" }, { pathPrefix: machines, only: "watch", times: 1 });
    h.sim.endWatches();
    await eventually(() => requestsTo(h.sim, machines, "list").length === 2);
    expect(h.source.status()).toMatchObject({ up: true, healthy: true });
    // 410 is the protocol working, not a failure.
    const counted = rows(await h.text(), "sidecar_source_errors_total").filter((r) => r.labels.source === "kubernetes" && r.value > 0);
    expect(counted).toEqual([]);
  });

  it("drops objects that vanished while the watch was down when it lists again, keeping the rest", async () => {
    const h = await setup();
    await synced(h);
    const machines = path(TALOS_GROUP, "talosmachines");
    // The watch breaks; meanwhile a machine is deleted and the history that would replay it is compacted.
    h.sim.setFault({ kind: "status", code: 503 }, { pathPrefix: machines, only: "watch" });
    h.sim.endWatches();
    await eventually(() => kindsDebug(h).find((k) => k.kind === "TalosMachine")?.state === "failed");
    expect(h.source.status()).toMatchObject({ up: true, healthy: false });
    expect(h.source.status().detail).toMatch(/1 kind failing \(TalosMachine: other\)/);
    h.sim.delete(TALOS_API, "talosmachines", "default", "prod-worker-10.0.0.2");
    // Another is deleted and made again under its name, as it was but for its uid: its series stay as they were.
    const remade = h.sim.get(TALOS_API, "talosmachines", "default", "prod-controlplane-10.0.0.1") as KubeObject;
    h.sim.delete(TALOS_API, "talosmachines", "default", "prod-controlplane-10.0.0.1");
    h.sim.upsert(remade);
    h.sim.upsert(talos("TalosCluster", "prod", { status: { conditions: [cond("Ready", "True")] } }));
    h.sim.compactHistory();
    expect(await h.value("talos_operator_resource_total", { resource_type: "talosmachine" })).toBe(2);
    h.sim.setFault("none");
    await eventually(async () => (await h.value("talos_operator_resource_total", { resource_type: "talosmachine" })) === 1);
    const text = await h.text();
    expect(value(text, "talos_operator_resource_status", { name: "prod-worker-10.0.0.2" })).toBeUndefined();
    expect(value(text, "talos_operator_resource_status", { name: "prod-controlplane-10.0.0.1", status: "Available" })).toBe(1);
    expect(value(text, "talos_operator_machine_ready", { cluster: "prod" })).toBe(1);
    expect(requestsTo(h.sim, machines, "list")).toHaveLength(2);
    await eventually(() => h.source.status().healthy === true);
    expect(await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "other" })).toBeGreaterThanOrEqual(1);
  });

  it("lists every kind once on refresh() without starting the watches", async () => {
    const h = await setup({ start: false });
    await h.source.refresh();
    expect(h.source.status()).toMatchObject({ up: true, healthy: true, detail: "7 objects in 12 kinds" });
    expect(await h.value("talos_operator_cluster_health", { name: "prod" })).toBe(1);
    expect(h.sim.requests.every((r) => r.query.watch === undefined)).toBe(true);
    expect(h.sim.requests).toHaveLength(12);
    h.sim.upsert(talos("TalosCluster", "prod", { status: { conditions: [cond("Ready", "False")] } }));
    await h.source.refresh();
    expect(await h.value("talos_operator_cluster_health", { name: "prod" })).toBe(0);
    expect(h.source.status()).toMatchObject({ up: true, healthy: false, detail: "7 objects in 12 kinds, 1 cluster not ready" });
  });
});

describe("kubernetes source: failures", () => {
  it("turns down as unauthorized on 401 everywhere, keeps its series, and recovers", async () => {
    const h = await setup();
    await synced(h);
    h.sim.token = "someone-else";
    h.sim.endWatches();
    await eventually(() => !h.source.status().up, 5_000);
    expect(h.source.debug()).toMatchObject({ up: false, reason: "unauthorized" });
    expect(h.source.status().error).toMatch(/401.*check the service-account token or the kubeconfig user/);
    expect(h.source.status().error).not.toContain(TOKEN);
    expect(await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "unauthorized" })).toBeGreaterThanOrEqual(1);
    expect(await h.value("talos_operator_cluster_health", { name: "prod" })).toBe(1);
    expect(h.logs.text).not.toContain(TOKEN);
    h.sim.token = TOKEN;
    await eventually(() => h.source.status().up && h.source.status().healthy === true, 5_000);
  });

  it("reports a missing CRD as not_found while the other kinds keep working, and picks it up once installed", async () => {
    const h = await setup({ skip: ["TalosEtcdBackupSchedule"] });
    await synced(h);
    expect(h.source.status()).toMatchObject({ up: true, healthy: false });
    expect(h.source.status().detail).toBe("7 objects in 11 kinds, 1 kind failing (TalosEtcdBackupSchedule: not_found)");
    const schedules = kindsDebug(h).find((k) => k.kind === "TalosEtcdBackupSchedule");
    expect(schedules).toMatchObject({ state: "failed", reason: "not_found" });
    expect(schedules?.error).toMatch(/talosetcdbackupschedules\.talos\.alperen\.cloud CustomResourceDefinition .* is not installed/);
    expect(await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "not_found" })).toBeGreaterThanOrEqual(1);
    expect(await h.value("talos_operator_cluster_health", { name: "prod" })).toBe(1);
    // Retried slowly, not hammered.
    const tries = requestsTo(h.sim, path(TALOS_GROUP, "talosetcdbackupschedules"), "list");
    expect(tries.length).toBeLessThanOrEqual(2);

    h.sim.addResource({ group: TALOS_GROUP, version: "v1alpha1", plural: "talosetcdbackupschedules", kind: "TalosEtcdBackupSchedule" });
    h.sim.upsert(talos("TalosEtcdBackupSchedule", "nightly", { spec: { schedule: "0 2 * * *", paused: true } }));
    await eventually(async () => (await h.value("talos_operator_resource_status", { resource_type: "talosetcdbackupschedule", name: "nightly", status: "Paused" })) === 0);
    await eventually(() => h.source.status().healthy === true);
  });

  it("waits as long as a 429's Retry-After asks", async () => {
    const clusters = path(TALOS_GROUP, "talosclusters");
    const h = await setup({ start: false });
    h.sim.setFault({ kind: "retryAfter", seconds: 1 }, { pathPrefix: clusters, only: "list", times: 1 });
    h.source.start();
    await eventually(() => requestsTo(h.sim, clusters, "list").length === 2, 5_000);
    const [first, second] = requestsTo(h.sim, clusters, "list");
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "rate_limited" })).toBe(1);
    await synced(h);
  });

  it("classifies a malformed list or event as decode and resumes", async () => {
    const machines = path(TALOS_GROUP, "talosmachines");
    const h = await setup({ start: false });
    h.sim.setFault({ kind: "malformed" }, { pathPrefix: machines, only: "list", times: 1 });
    h.source.start();
    await synced(h);
    expect(await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "decode" })).toBe(1);
    h.sim.setFault({ kind: "malformed" }, { pathPrefix: machines, only: "watch", times: 1 });
    h.sim.endWatches();
    await eventually(async () => (await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "decode" })) === 2);
    await eventually(() => h.source.status().healthy === true);
    // The next watch resumed from the last good version: no re-list was needed.
    expect(requestsTo(h.sim, machines, "list")).toHaveLength(2);
    expect(await h.value("talos_operator_resource_total", { resource_type: "talosmachine" })).toBe(2);
  });

  it("times out a list that hangs and a watch that sends headers then nothing", async () => {
    const clusters = path(TALOS_GROUP, "talosclusters");
    const h = await setup({ start: false, schedule: { timeoutMs: 300 }, config: { watchTimeout: "1s" } });
    h.sim.setFault({ kind: "hang" }, { pathPrefix: clusters, only: "list", times: 1 });
    h.source.start();
    await eventually(async () => (await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "timeout" })) === 1, 5_000);
    await synced(h);
    h.sim.setFault({ kind: "headersThenHang" }, { pathPrefix: clusters, only: "watch", times: 1 });
    h.sim.endWatches();
    await eventually(async () => (await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "timeout" })) === 2, 8_000);
    const failed = h.logs.records().find((r) => r.msg === "kind failing" && String(r.err).includes("stream still open"));
    expect(failed).toMatchObject({ kind: "TalosCluster", reason: "timeout", phase: "watch" });
    await eventually(() => h.source.status().healthy === true, 5_000);
  });

  it("explains a kubeconfig it cannot use", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kubeconfig-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, "config");
    const base = { apiVersion: "v1", kind: "Config", clusters: [{ name: "c", cluster: { server: "https://k8s.example:6443" } }], "current-context": "a" };
    await writeFile(file, stringify({ ...base, contexts: [{ name: "a", context: { cluster: "c", user: "u" } }], users: [{ name: "u", user: { exec: { command: "aws" } } }] }));
    await expect(kubeconfigConnection(file, undefined)).rejects.toThrow(/user "u" gets its credentials from an exec or auth-provider plugin/);
    await expect(kubeconfigConnection(file, "b")).rejects.toThrow(/context "b" not found; contexts are: a/);
    await writeFile(file, stringify({ ...base, contexts: [{ name: "a", context: { cluster: "c", user: "u" } }], users: [{ name: "u", user: { token: " " } }] }));
    await expect(kubeconfigConnection(file, undefined)).rejects.toMatchObject({ reason: "unauthorized", message: expect.stringMatching(/user "u": token is empty; set it/) });
    await writeFile(file, stringify({ ...base, contexts: [{ name: "a", context: { cluster: "c", user: "u" } }], users: [{ name: "u", user: { tokenFile: "missing-token" } }] }));
    await expect(kubeconfigConnection(file, undefined)).rejects.toMatchObject({ reason: "unauthorized", message: expect.stringMatching(/cannot read token file .*missing-token: ENOENT/) });
    await writeFile(join(dir, "token"), "file-token-value\n");
    await writeFile(file, stringify({ ...base, contexts: [{ name: "a", context: { cluster: "c", user: "u" } }], users: [{ name: "u", user: { tokenFile: "token" } }] }));
    const conn = await kubeconfigConnection(file, undefined);
    expect(conn).toMatchObject({ origin: `kubeconfig ${file}, context a` });
    expect(conn.server.reveal()).toBe("https://k8s.example:6443/");
    expect(await conn.credentials.authorization()).toBe("Bearer file-token-value");
  });

  it("backs off exponentially with jitter up to the cap, and never sooner than Retry-After", () => {
    const timing = { watchTimeoutSeconds: 300, pageSize: 100, backoffBaseMs: 1_000, backoffMaxMs: 30_000, notFoundRetryMs: 60_000 };
    const other = new UpstreamError("boom", "other");
    expect(retryDelayMs(other, 1, timing, () => 0)).toBe(500);
    expect(retryDelayMs(other, 1, timing, () => 1)).toBe(1_000);
    expect(retryDelayMs(other, 4, timing, () => 1)).toBe(8_000);
    expect(retryDelayMs(other, 20, timing, () => 1)).toBe(30_000);
    expect(retryDelayMs(new UpstreamError("no CRD", "not_found"), 1, timing, () => 0)).toBe(60_000);
    expect(retryDelayMs(new RetryAfterError("slow", 45_000), 1, timing, () => 0)).toBe(45_000);
  });
});

describe("kubernetes source: watches that prove nothing", () => {
  // The nth retry in a row waits between 100·2^(n-1) and 200·2^(n-1) ms (jitter), up to 2 s.
  const BACKOFF = { backoffBaseMs: 200, backoffMaxMs: 2_000 };
  /** When each watch request since `from` arrived, per path, oldest first. */
  const watchesSince = (sim: KubeApiSim, from: number): Map<string, number[]> => {
    const byPath = new Map<string, number[]>();
    for (const r of sim.requests) if (r.query.watch === "1" && r.at >= from) byPath.set(r.path, [...(byPath.get(r.path) ?? []), r.at]);
    return byPath;
  };
  type KindDebug = { kind: string; state: string; reason: string | null; consecutiveFailures: number; earlyWatchEnds: number };
  const kinds = (h: Harness) => h.source.debug().kinds as KindDebug[];
  /** A source whose watches are all open, then `fault` on every watch from `from` on (the open ones are ended). */
  const faultEveryWatch = async (fault: Fault): Promise<{ h: Harness; from: number }> => {
    const h = await setup({ options: { timing: BACKOFF } });
    await synced(h);
    await eventually(() => h.sim.openWatches === 12);
    const from = Date.now();
    h.sim.setFault(fault, { only: "watch" });
    h.sim.endWatches();
    return { h, from };
  };
  /** The ended stream and three retries back off by doubling: the third retry waited at least 100·2^3 ms. */
  const expectDoubling = (watches: Map<string, number[]>): void => {
    expect(watches.size).toBe(12);
    for (const [p, at] of watches) expect((at[3] as number) - (at[2] as number), p).toBeGreaterThanOrEqual(800);
  };

  it("backs off a watch that opens and then sends garbage, counted as decode, until a decoded event", async () => {
    const { h, from } = await faultEveryWatch({ kind: "garbage" });
    // Opening the watch is no success: every kind's failures in a row climb instead of starting over each time.
    await eventually(() => kinds(h).every((k) => k.consecutiveFailures >= 4 && k.reason === "decode" && k.state === "failed"), 15_000);
    const watches = watchesSince(h.sim, from);
    expectDoubling(watches);
    // A handful of attempts per kind in the seconds where every attempt used to be followed by another at once.
    for (const [p, at] of watches) expect(at.length, p).toBeLessThanOrEqual(6);
    expect(await h.value("sidecar_source_errors_total", { source: "kubernetes", reason: "decode" })).toBeGreaterThanOrEqual(48);
    // One warning per kind for the whole streak, not one per attempt.
    expect(h.logs.records().filter((r) => r.msg === "kind failing")).toHaveLength(12);

    // Once the garbage stops, the first decoded event (a bookmark here) is what counts as a success again.
    h.sim.setFault("none");
    await eventually(() => {
      h.sim.sendBookmark();
      return kinds(h).every((k) => k.state === "synced" && k.consecutiveFailures === 0);
    }, 15_000, 100);
    await eventually(() => h.source.status().healthy === true);
  });

  it("backs off a watch that ends as soon as it opens, without counting it as a failure", async () => {
    const { h, from } = await faultEveryWatch({ kind: "endAtOnce" });
    await eventually(() => [...watchesSince(h.sim, from).values()].filter((at) => at.length >= 4).length === 12, 15_000);
    expectDoubling(watchesSince(h.sim, from));
    expect(kinds(h).every((k) => k.state === "synced" && k.consecutiveFailures === 0 && k.earlyWatchEnds >= 4)).toBe(true);
    const text = await h.text();
    expect(rows(text, "sidecar_source_errors_total").reduce((n, r) => n + r.value, 0)).toBe(0);
    expect(h.source.status()).toMatchObject({ up: true, healthy: true });
  });

  it("re-opens at once a watch the server ends at its timeoutSeconds, with nothing to deliver", async () => {
    const h = await setup({ options: { timing: BACKOFF }, config: { watchTimeout: "1s" } });
    await synced(h);
    const from = Date.now();
    await eventually(() => [...watchesSince(h.sim, from).values()].filter((at) => at.length >= 3).length === 12, 10_000);
    expect(kinds(h).every((k) => k.state === "synced" && k.earlyWatchEnds === 0)).toBe(true);
  });
});

describe("kubernetes source: scope and connection", () => {
  it("requests only the configured namespaces' paths (cluster-scoped kinds at the cluster path)", async () => {
    const h = await setup({ seed: false, start: false, config: { namespaces: ["team-a", "team-b"] } });
    seed(h.sim, "team-a");
    seed(h.sim, "team-c");
    h.sim.upsert(tailscale("TailscaleTailnet", "corp", { namespace: "", status: { conditions: [cond("Ready", "True")] } }));
    h.source.start();
    await synced(h);
    const paths = new Set(h.sim.requests.map((r) => r.path));
    for (const p of paths) {
      if (p === path(TS_GROUP, "tailscaletailnets")) continue;
      expect(p).toMatch(/^\/apis\/[^/]+\/v1alpha1\/namespaces\/team-[ab]\/[a-z]+$/);
    }
    expect(paths.has(path(TALOS_GROUP, "talosclusters", "team-b"))).toBe(true);
    expect(paths.has(path(TS_GROUP, "tailscaletailnets"))).toBe(true);
    const text = await h.text();
    expect(value(text, "talos_operator_cluster_health", { namespace: "team-a", name: "prod" })).toBe(1);
    expect(value(text, "talos_operator_cluster_health", { namespace: "team-c" })).toBeUndefined();
    expect(value(text, "talos_operator_resource_total", { resource_type: "taloscluster", namespace: "team-b" })).toBe(0);
    expect(value(text, "tailscale_gateway_resource_status", { resource_type: "tailscaletailnet", namespace: "", name: "corp", status: "Ready" })).toBe(1);
    expect(kindsDebug(h).filter((k) => k.kind === "TalosCluster").map((k) => k.namespace)).toEqual(["team-a", "team-b"]);
  });

  it("connects over TLS as the in-cluster service account and follows a rotated token", async () => {
    const ca = await createCA("kube-sim-ca");
    const server = await issueCert(ca, { commonName: "kube-apiserver", ipAddresses: ["127.0.0.1"], server: true });
    const h = await setup({ start: false, sim: { tls: { ...server, caPem: ca.certPem } } });
    expect(h.sim.url).toMatch(/^https:/);
    const tokenFile = join(h.dir, "token");
    const caFile = join(h.dir, "ca.crt");
    await writeFile(tokenFile, `${TOKEN}\n`);
    await writeFile(caFile, ca.certPem);
    const config = { ...kubernetesSourceSchema.parse({}), intervalMs: 1_000, timeoutMs: 1_000 };
    const env = { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: new URL(h.sim.url).port };
    const source = createKubernetesSource(config, { logger: createLogging(configFrom({}).logging, h.logs).root, metrics: h.metrics }, { inCluster: { tokenFile, caFile }, env, timing: FAST });
    cleanups.push(() => source.stop());
    source.start();
    await eventually(() => source.status().up && source.status().healthy === true);
    expect(source.debug().connection).toBe(`in-cluster (${h.sim.url}/)`);
    expect(await h.value("talos_operator_cluster_health", { name: "prod" })).toBe(1);

    // The kubelet rotates the projected token; the server stops accepting the old one.
    await writeFile(tokenFile, "kube-sim-token-2\n");
    h.sim.token = "kube-sim-token-2";
    h.sim.endWatches();
    await eventually(() => h.sim.openWatches >= 12 && source.status().healthy === true, 5_000);
    h.sim.upsert(talos("TalosCluster", "prod", { status: { conditions: [cond("Ready", "False")] } }));
    await eventually(async () => (await h.value("talos_operator_cluster_health", { name: "prod" })) === 0);
  });

  it("connects over TLS with the kubeconfig's inline CA", async () => {
    const ca = await createCA("kube-sim-ca");
    const server = await issueCert(ca, { commonName: "kube-apiserver", ipAddresses: ["127.0.0.1"], server: true });
    const h = await setup({ sim: { tls: { ...server, caPem: ca.certPem } } });
    await synced(h);
    expect(h.source.status()).toMatchObject({ up: true, healthy: true, detail: "7 objects in 12 kinds" });
    expect(h.source.debug().connection).toBe(`kubeconfig ${join(h.dir, "kubeconfig.yaml")}, context kube-api-sim (${h.sim.url}/)`);
    expect(await h.value("talos_operator_machine_ready", { cluster: "prod" })).toBe(1);
  });

  it("refuses a server whose certificate the kubeconfig's CA did not sign, as tls", async () => {
    const ca = await createCA("kube-sim-ca");
    const other = await createCA("someone-else");
    const server = await issueCert(ca, { commonName: "kube-apiserver", ipAddresses: ["127.0.0.1"], server: true });
    const h = await setup({ sim: { tls: { ...server, caPem: ca.certPem } }, kubeconfig: (sim) => kubeconfigYaml(sim, { caPem: other.certPem }) });
    await eventually(() => h.source.debug().reason === "tls", 5_000);
    expect(h.source.status().up).toBe(false);
  });

  it("leaves no watch, socket or timer behind after stop()", async () => {
    const before = process.getActiveResourcesInfo();
    const count = (list: string[], what: string) => list.filter((r) => r === what).length;
    const h = await setup();
    await synced(h);
    await eventually(() => h.sim.openWatches === 12);
    expect(count(process.getActiveResourcesInfo(), "TCPSocketWrap")).toBeGreaterThan(count(before, "TCPSocketWrap"));
    await h.source.stop();
    await eventually(() => h.sim.openWatches === 0);
    await eventually(() => {
      const now = process.getActiveResourcesInfo();
      return count(now, "TCPSocketWrap") <= count(before, "TCPSocketWrap") && count(now, "Timeout") <= count(before, "Timeout");
    });
    // Its gauges are gone with it.
    expect(await h.value("talos_operator_cluster_health", { name: "prod" })).toBeUndefined();
  });
});
