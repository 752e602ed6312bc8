import type { ResourceView } from "./kinds.ts";

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * Which TalosCluster a machine belongs to. The operator ties them together through owner references and spec
 * refs: TalosCluster owns (or names in spec.controlPlaneRef / spec.workerRef) a TalosControlPlane and a
 * TalosWorker, and those own the TalosMachines that name them in spec.controlPlaneRef / spec.workerRef. A
 * control plane that no TalosCluster claims is a cluster of its own: the operator uses its name as the Talos
 * cluster name. Undefined for a machine that belongs to nothing (the operator calls those Orphaned).
 *
 * Built from the TalosClusters, TalosControlPlanes and TalosWorkers (other views are passed over): a handful per
 * cluster, so it is made again whenever one of them changes rather than kept up to date.
 */
export class ClusterResolver {
  readonly #controlPlanes = new Map<string, ResourceView>();
  readonly #workers = new Map<string, ResourceView>();
  readonly #claimedControlPlanes = new Map<string, string>();
  readonly #claimedWorkers = new Map<string, string>();

  constructor(views: Iterable<ResourceView>) {
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

  /** The cluster of a machine with these links (its owner cluster, else its parent's). */
  machine(m: Pick<ResourceView, "ownerCluster" | "parent">): string | undefined {
    if (m.ownerCluster !== undefined) return m.ownerCluster;
    if (!m.parent) return undefined;
    return m.parent.kind === "TalosControlPlane" ? this.controlPlane(m.parent.namespace, m.parent.name) : this.worker(m.parent.namespace, m.parent.name);
  }
}
