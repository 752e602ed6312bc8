import type { Sample } from "../../metrics/series.ts";
import { type Family, resourceType, type ResourceView } from "./kinds.ts";

export interface ListedScope {
  kind: string;
  family: Family;
  /** The namespace the list was limited to; undefined for a cluster-wide list. */
  namespace: string | undefined;
}

export interface SeriesInput {
  views: readonly ResourceView[];
  /** Scopes listed at least once: a configured namespace with none of a kind still reports a total of 0. */
  listed: readonly ListedScope[];
}

/** The complete current set of every gauge family this source owns. */
export interface SeriesSet {
  resourceStatus: Sample[];
  resourceTotal: Sample[];
  clusterHealth: Sample[];
  machineReady: Sample[];
  gatewayResourceStatus: Sample[];
  coordinatorServices: Sample[];
  clusters: number;
  clustersNotReady: number;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * Which TalosCluster a machine belongs to. The operator ties them together through owner references and spec
 * refs: TalosCluster owns (or names in spec.controlPlaneRef / spec.workerRef) a TalosControlPlane and a
 * TalosWorker, and those own the TalosMachines that name them in spec.controlPlaneRef / spec.workerRef. A
 * control plane that no TalosCluster claims is a cluster of its own: the operator uses its name as the Talos
 * cluster name. Undefined for a machine that belongs to nothing (the operator calls those Orphaned).
 */
export class ClusterResolver {
  readonly #controlPlanes = new Map<string, ResourceView>();
  readonly #workers = new Map<string, ResourceView>();
  readonly #claimedControlPlanes = new Map<string, string>();
  readonly #claimedWorkers = new Map<string, string>();

  constructor(views: readonly ResourceView[]) {
    for (const v of views) {
      if (v.kind === "TalosControlPlane") this.#controlPlanes.set(key(v.namespace, v.name), v);
      else if (v.kind === "TalosWorker") this.#workers.set(key(v.namespace, v.name), v);
      else if (v.kind === "TalosCluster" && v.refs) {
        if (v.refs.controlPlane) this.#claimedControlPlanes.set(key(v.namespace, v.refs.controlPlane), v.name);
        if (v.refs.worker) this.#claimedWorkers.set(key(v.namespace, v.refs.worker), v.name);
      }
    }
  }

  controlPlane(namespace: string, name: string): string {
    const k = key(namespace, name);
    return this.#controlPlanes.get(k)?.ownerCluster ?? this.#claimedControlPlanes.get(k) ?? name;
  }

  worker(namespace: string, name: string): string {
    const k = key(namespace, name);
    const worker = this.#workers.get(k);
    const claimed = worker?.ownerCluster ?? this.#claimedWorkers.get(k);
    if (claimed !== undefined) return claimed;
    return worker?.parent ? this.controlPlane(worker.parent.namespace, worker.parent.name) : name;
  }

  machine(m: ResourceView): string | undefined {
    if (m.ownerCluster !== undefined) return m.ownerCluster;
    if (!m.parent) return undefined;
    return m.parent.kind === "TalosControlPlane" ? this.controlPlane(m.parent.namespace, m.parent.name) : this.worker(m.parent.namespace, m.parent.name);
  }
}

function statusSample(v: ResourceView): Sample {
  return { labels: { resource_type: resourceType(v.kind), namespace: v.namespace, name: v.name, status: v.status }, value: v.ready ? 1 : 0 };
}

export function buildSeries(input: SeriesInput): SeriesSet {
  const out: SeriesSet = {
    resourceStatus: [],
    resourceTotal: [],
    clusterHealth: [],
    machineReady: [],
    gatewayResourceStatus: [],
    coordinatorServices: [],
    clusters: 0,
    clustersNotReady: 0,
  };
  const totals = new Map<string, { kind: string; namespace: string; count: number }>();
  for (const scope of input.listed) {
    if (scope.family !== "talos" || scope.namespace === undefined) continue;
    totals.set(key(scope.kind, scope.namespace), { kind: scope.kind, namespace: scope.namespace, count: 0 });
  }
  const readyMachines = new Map<string, { namespace: string; cluster: string; count: number }>();
  const services = new Map<string, Set<string>>();
  const resolver = new ClusterResolver(input.views);

  for (const v of input.views) {
    if (v.family === "tailscale") {
      out.gatewayResourceStatus.push(statusSample(v));
      for (const s of v.services ?? []) {
        const set = services.get(v.namespace) ?? new Set<string>();
        set.add(s);
        services.set(v.namespace, set);
      }
      continue;
    }
    out.resourceStatus.push(statusSample(v));
    const t = totals.get(key(v.kind, v.namespace)) ?? { kind: v.kind, namespace: v.namespace, count: 0 };
    t.count++;
    totals.set(key(v.kind, v.namespace), t);
    if (v.kind === "TalosCluster") {
      out.clusters++;
      if (!v.ready) out.clustersNotReady++;
      out.clusterHealth.push({ labels: { namespace: v.namespace, name: v.name }, value: v.ready ? 1 : 0 });
      // Every cluster has a machine count, 0 until a machine of it is ready.
      if (!readyMachines.has(key(v.namespace, v.name))) readyMachines.set(key(v.namespace, v.name), { namespace: v.namespace, cluster: v.name, count: 0 });
    } else if (v.kind === "TalosMachine") {
      const cluster = resolver.machine(v);
      if (cluster === undefined) continue;
      const m = readyMachines.get(key(v.namespace, cluster)) ?? { namespace: v.namespace, cluster, count: 0 };
      if (v.ready) m.count++;
      readyMachines.set(key(v.namespace, cluster), m);
    }
  }

  for (const t of totals.values()) out.resourceTotal.push({ labels: { resource_type: resourceType(t.kind), namespace: t.namespace }, value: t.count });
  for (const m of readyMachines.values()) out.machineReady.push({ labels: { namespace: m.namespace, cluster: m.cluster }, value: m.count });
  for (const [namespace, set] of services) out.coordinatorServices.push({ labels: { namespace }, value: set.size });
  return out;
}

export interface FinishedBackup {
  uid: string;
  namespace: string;
  name: string;
  status: "success" | "failed";
  durationSeconds: number | undefined;
}

/** TalosEtcdBackups in a terminal state, to be counted once each. */
export function finishedBackups(views: readonly ResourceView[]): FinishedBackup[] {
  const out: FinishedBackup[] = [];
  for (const v of views) {
    if (v.kind !== "TalosEtcdBackup" || !v.backup?.outcome) continue;
    out.push({ uid: v.uid, namespace: v.namespace, name: v.backup.seriesName, status: v.backup.outcome, durationSeconds: v.backup.durationSeconds });
  }
  return out;
}
