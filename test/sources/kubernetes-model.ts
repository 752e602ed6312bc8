import { ClusterResolver } from "../../src/sources/kubernetes/cluster-resolver.ts";
import { resourceType, type ResourceView } from "../../src/sources/kubernetes/kinds.ts";
import type { GaugeKey } from "../../src/sources/kubernetes/series.ts";

/** One family's series, each as its labels in name order (`a=x,b=y`) with its value. */
export type SeriesMap = Map<string, number>;

export function seriesKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

/**
 * The series the Kubernetes source should export for a set of stored objects, worked out from all of them at
 * once, the plain way: what the source, which follows changes one object at a time, must agree with after any
 * sequence of them. `listed` are the (kind, namespace) scopes listed on their own, whose totals show 0 too.
 */
export function expectedSeries(views: readonly ResourceView[], listed: readonly { kind: string; namespace: string }[]): Record<GaugeKey, SeriesMap> {
  const out: Record<GaugeKey, SeriesMap> = {
    resourceStatus: new Map(),
    resourceTotal: new Map(),
    clusterHealth: new Map(),
    machineReady: new Map(),
    gatewayResourceStatus: new Map(),
    coordinatorServices: new Map(),
  };
  const add = (family: GaugeKey, labels: Record<string, string>, n: number) => {
    const k = seriesKey(labels);
    out[family].set(k, (out[family].get(k) ?? 0) + n);
  };
  for (const s of listed) add("resourceTotal", { resource_type: resourceType(s.kind), namespace: s.namespace }, 0);
  const resolver = new ClusterResolver(views);
  const services = new Map<string, Set<string>>();
  for (const v of views) {
    const status = { resource_type: resourceType(v.kind), namespace: v.namespace, name: v.name, status: v.status };
    if (v.family === "tailscale") {
      add("gatewayResourceStatus", status, v.ready ? 1 : 0);
      for (const s of v.services ?? []) services.set(v.namespace, (services.get(v.namespace) ?? new Set()).add(s));
      continue;
    }
    add("resourceStatus", status, v.ready ? 1 : 0);
    add("resourceTotal", { resource_type: resourceType(v.kind), namespace: v.namespace }, 1);
    if (v.kind === "TalosCluster") {
      add("clusterHealth", { namespace: v.namespace, name: v.name }, v.ready ? 1 : 0);
      add("machineReady", { namespace: v.namespace, cluster: v.name }, 0);
    } else if (v.kind === "TalosMachine") {
      const cluster = resolver.machine(v);
      if (cluster !== undefined) add("machineReady", { namespace: v.namespace, cluster }, v.ready ? 1 : 0);
    }
  }
  for (const [namespace, names] of services) add("coordinatorServices", { namespace }, names.size);
  return out;
}
