import type { Labels, OwnedSeries } from "../../metrics/series.ts";
import { type Family, resourceType, type ResourceView } from "./kinds.ts";
import { MachinesPerCluster } from "./machine-clusters.ts";
import { ResourceTotals, ServicesPerNamespace } from "./namespace-counts.ts";

/** The gauge families the source owns, in the order waiting series are given room. */
export const GAUGES = ["resourceStatus", "resourceTotal", "clusterHealth", "machineReady", "gatewayResourceStatus", "coordinatorServices"] as const;
export type GaugeKey = (typeof GAUGES)[number];

function statusLabels(v: ResourceView): Labels {
  return { resource_type: resourceType(v.kind), namespace: v.namespace, name: v.name, status: v.status };
}

/**
 * Every series of the Kubernetes source, following the informers' stores object by object. An object's own
 * series (resource status, gateway resource status, cluster health) change as it does: a status that changes
 * moves the series to the new label set. The aggregates (totals per kind and namespace, ready machines per
 * cluster, services per namespace) are counted as objects come and go and written at `flush`, once per burst of
 * changes; a view that says what the stored one said changes nothing and allocates nothing.
 */
export class ResourceSeries {
  readonly #series: Record<GaugeKey, OwnedSeries>;
  readonly #totals: ResourceTotals;
  readonly #machines: MachinesPerCluster;
  readonly #services: ServicesPerNamespace;
  #clustersNotReady = 0;

  constructor(series: Record<GaugeKey, OwnedSeries>) {
    this.#series = series;
    this.#totals = new ResourceTotals(series.resourceTotal);
    this.#machines = new MachinesPerCluster(series.machineReady);
    this.#services = new ServicesPerNamespace(series.coordinatorServices);
  }

  /** TalosClusters whose Ready condition is not True. */
  get clustersNotReady(): number {
    return this.#clustersNotReady;
  }

  /** An object stored, new (`previous` undefined) or in place of `previous`. */
  stored(v: ResourceView, previous: ResourceView | undefined): void {
    if (previous && (previous.kind !== v.kind || previous.namespace !== v.namespace || previous.name !== v.name)) {
      this.removed(previous);
      previous = undefined;
    }
    this.#status(v, previous);
    if (v.family === "tailscale") {
      this.#services.stored(v, previous);
      return;
    }
    if (!previous) this.#totals.add(v.kind, v.namespace, 1);
    if (v.kind === "TalosMachine") this.#machines.machineStored(v, previous);
    else if (v.kind === "TalosControlPlane" || v.kind === "TalosWorker") this.#machines.linkStored(v, previous);
    else if (v.kind === "TalosCluster") {
      this.#machines.linkStored(v, previous);
      this.#clusterHealth(v, previous);
    }
  }

  /** An object gone from its store. */
  removed(v: ResourceView): void {
    this.#statusSeries(v.family).delete(statusLabels(v));
    if (v.family === "tailscale") {
      this.#services.removed(v);
      return;
    }
    this.#totals.add(v.kind, v.namespace, -1);
    if (v.kind === "TalosMachine") this.#machines.machineRemoved(v);
    else if (v.kind === "TalosControlPlane" || v.kind === "TalosWorker") this.#machines.linkRemoved(v);
    else if (v.kind === "TalosCluster") {
      this.#machines.linkRemoved(v);
      if (!v.ready) this.#clustersNotReady--;
      this.#series.clusterHealth.delete({ namespace: v.namespace, name: v.name });
    }
  }

  /** A scope was listed: a Talos kind listed in one namespace has a total there, 0 when it has no object. */
  listed(kind: string, family: Family, namespace: string | undefined): void {
    if (family === "talos" && namespace !== undefined) this.#totals.keep(kind, namespace);
  }

  /** Writes the aggregates that changed, then gives room that came free to series waiting for it. */
  flush(): void {
    this.#totals.flush();
    this.#machines.flush();
    this.#services.flush();
    for (const k of GAUGES) if (this.#series[k].waiting > 0) this.#series[k].admitWaiting();
  }

  /** Removes every series and forgets every object. */
  clear(): void {
    for (const k of GAUGES) this.#series[k].clear();
    this.#totals.clear();
    this.#machines.clear();
    this.#services.clear();
    this.#clustersNotReady = 0;
  }

  #statusSeries(family: Family): OwnedSeries {
    return family === "talos" ? this.#series.resourceStatus : this.#series.gatewayResourceStatus;
  }

  #status(v: ResourceView, previous: ResourceView | undefined): void {
    const series = this.#statusSeries(v.family);
    if (previous?.status === v.status) {
      if (previous.ready !== v.ready) series.set(statusLabels(v), v.ready ? 1 : 0);
      return;
    }
    if (previous) series.delete(statusLabels(previous));
    series.set(statusLabels(v), v.ready ? 1 : 0);
  }

  #clusterHealth(v: ResourceView, previous: ResourceView | undefined): void {
    if (previous?.ready === v.ready) return;
    if (previous && !previous.ready) this.#clustersNotReady--;
    if (!v.ready) this.#clustersNotReady++;
    this.#series.clusterHealth.set({ namespace: v.namespace, name: v.name }, v.ready ? 1 : 0);
  }
}
