import type { OwnedSeries } from "../../metrics/series.ts";
import { ClusterResolver } from "./cluster-resolver.ts";
import { type CountSeries, writeCounts } from "./count-series.ts";
import { type ResourceView, sameLinks } from "./kinds.ts";

/** One cluster's talos_operator_machine_ready series. */
interface ClusterEntry extends CountSeries {
  readonly key: string;
  /** Ready machines of the groups that resolve to it. */
  ready: number;
  /** Groups that resolve to it, plus the TalosCluster of its name: its series exists while there is one. */
  holders: number;
}

/** Machines of one namespace that name the same owner cluster, or else the same parent: they share a cluster. */
interface MachineGroup {
  readonly namespace: string;
  readonly links: Pick<ResourceView, "ownerCluster" | "parent">;
  machines: number;
  ready: number;
  /** The entry the group counts in, as the current resolver has it; undefined for machines of no cluster. */
  cluster: ClusterEntry | undefined;
}

/** Machines that name the same things resolve to the same cluster; undefined for a machine that names nothing. */
function groupKey(m: ResourceView): string | undefined {
  if (m.ownerCluster !== undefined) return `o\u0000${m.namespace}\u0000${m.ownerCluster}`;
  const p = m.parent;
  return p && `p\u0000${m.namespace}\u0000${p.kind}\u0000${p.namespace}\u0000${p.name}`;
}

/**
 * talos_operator_machine_ready: ready machines per cluster, every TalosCluster with a series (0 without a ready
 * machine). Machines are many and counted in groups of those that name the same owner cluster or parent, so a
 * machine's change moves one group's count and one cluster's series. Which cluster a group belongs to depends on
 * the TalosClusters, TalosControlPlanes and TalosWorkers (a handful per cluster): when one of them changes how
 * things are tied together, the next flush resolves every group again, which is a pass over the groups, not over
 * the machines.
 */
export class MachinesPerCluster {
  /** TalosClusters, TalosControlPlanes and TalosWorkers by uid: what the resolver is made from. */
  readonly #links = new Map<string, ResourceView>();
  readonly #groups = new Map<string, MachineGroup>();
  readonly #clusters = new Map<string, ClusterEntry>();
  /** Entries whose series may differ from their count. */
  readonly #dirty = new Set<ClusterEntry>();
  #resolver = new ClusterResolver([]);
  /** The resolver no longer matches #links: every group is resolved again at the next flush. */
  #stale = false;

  constructor(private readonly series: OwnedSeries) {}

  /** A TalosCluster, TalosControlPlane or TalosWorker stored, new or in place of `previous`. */
  linkStored(v: ResourceView, previous: ResourceView | undefined): void {
    this.#links.set(v.uid, v);
    if (previous === undefined || !sameLinks(previous, v)) this.#stale = true;
  }

  linkRemoved(v: ResourceView): void {
    if (this.#links.delete(v.uid)) this.#stale = true;
  }

  /** A TalosMachine stored, new or in place of `previous`. */
  machineStored(m: ResourceView, previous: ResourceView | undefined): void {
    if (previous === undefined) {
      this.#count(m, 1, m.ready ? 1 : 0);
    } else if (!sameLinks(previous, m)) {
      this.#count(previous, -1, previous.ready ? -1 : 0);
      this.#count(m, 1, m.ready ? 1 : 0);
    } else if (previous.ready !== m.ready) {
      this.#count(m, 0, m.ready ? 1 : -1);
    }
  }

  machineRemoved(m: ResourceView): void {
    this.#count(m, -1, m.ready ? -1 : 0);
  }

  /** Writes the series that changed since the last flush. */
  flush(): void {
    if (this.#stale) this.#resolveAll();
    writeCounts(
      this.series,
      this.#dirty,
      (e) => (e.holders > 0 ? e.ready : undefined),
      (e) => this.#clusters.delete(e.key),
    );
  }

  /** Forgets everything; the series are the owner's to clear. */
  clear(): void {
    this.#links.clear();
    this.#groups.clear();
    this.#clusters.clear();
    this.#dirty.clear();
    this.#resolver = new ClusterResolver([]);
    this.#stale = false;
  }

  #count(m: ResourceView, machines: number, ready: number): void {
    const key = groupKey(m);
    if (key === undefined) return;
    let g = this.#groups.get(key);
    if (!g) {
      g = { namespace: m.namespace, links: { ownerCluster: m.ownerCluster, parent: m.parent }, machines: 0, ready: 0, cluster: undefined };
      this.#groups.set(key, g);
      this.#attach(g);
    }
    g.machines += machines;
    g.ready += ready;
    if (g.cluster && ready !== 0) {
      g.cluster.ready += ready;
      this.#dirty.add(g.cluster);
    }
    if (g.machines <= 0) {
      this.#groups.delete(key);
      this.#detach(g);
    }
  }

  #attach(g: MachineGroup): void {
    const cluster = this.#resolver.machine(g.links);
    if (cluster === undefined) return;
    const e = this.#entry(g.namespace, cluster);
    e.holders++;
    e.ready += g.ready;
    g.cluster = e;
  }

  #detach(g: MachineGroup): void {
    const e = g.cluster;
    if (!e) return;
    e.holders--;
    e.ready -= g.ready;
    this.#dirty.add(e);
    g.cluster = undefined;
  }

  #entry(namespace: string, cluster: string): ClusterEntry {
    const key = `${namespace}\u0000${cluster}`;
    let e = this.#clusters.get(key);
    if (!e) {
      e = { key, labels: { namespace, cluster }, ready: 0, holders: 0, written: undefined };
      this.#clusters.set(key, e);
    }
    this.#dirty.add(e);
    return e;
  }

  #resolveAll(): void {
    this.#stale = false;
    this.#resolver = new ClusterResolver(this.#links.values());
    for (const e of this.#clusters.values()) {
      e.holders = 0;
      e.ready = 0;
      this.#dirty.add(e);
    }
    for (const v of this.#links.values()) if (v.kind === "TalosCluster") this.#entry(v.namespace, v.name).holders++;
    for (const g of this.#groups.values()) this.#attach(g);
  }
}
