import type { OwnedSeries } from "../../metrics/series.ts";
import { type CountSeries, writeCounts } from "./count-series.ts";
import { resourceType, type ResourceView, sameList } from "./kinds.ts";

interface Total extends CountSeries {
  readonly kind: string;
  readonly namespace: string;
  count: number;
  /** A scope listed in this namespace: its total is exported at 0 too. */
  kept: boolean;
}

/**
 * talos_operator_resource_total: objects per kind and namespace, counted as objects come and go and written at
 * the next flush. A namespace the source lists on its own (a configured one) keeps its total at 0; elsewhere a
 * total goes with the last object.
 */
export class ResourceTotals {
  readonly #byKind = new Map<string, Map<string, Total>>();
  readonly #dirty = new Set<Total>();

  constructor(private readonly series: OwnedSeries) {}

  add(kind: string, namespace: string, n: number): void {
    const t = this.#total(kind, namespace);
    t.count += n;
    this.#dirty.add(t);
  }

  /** A scope of this kind was listed in this namespace. */
  keep(kind: string, namespace: string): void {
    const t = this.#total(kind, namespace);
    t.kept = true;
    this.#dirty.add(t);
  }

  flush(): void {
    writeCounts(
      this.series,
      this.#dirty,
      (t) => (t.count > 0 || t.kept ? t.count : undefined),
      (t) => this.#byKind.get(t.kind)?.delete(t.namespace),
    );
  }

  clear(): void {
    this.#byKind.clear();
    this.#dirty.clear();
  }

  #total(kind: string, namespace: string): Total {
    let inKind = this.#byKind.get(kind);
    if (!inKind) {
      inKind = new Map();
      this.#byKind.set(kind, inKind);
    }
    let t = inKind.get(namespace);
    if (!t) {
      t = { kind, namespace, labels: { resource_type: resourceType(kind), namespace }, count: 0, kept: false, written: undefined };
      inKind.set(namespace, t);
    }
    return t;
  }
}

/**
 * service_coordinator_services_total: the distinct VIP services the gateway objects of a namespace declare. Each
 * name is counted by how many objects declare it, so one object's change moves only its own names.
 */
export class ServicesPerNamespace {
  /** Per namespace, each service with the number of declarations of it. */
  readonly #byNamespace = new Map<string, Map<string, number>>();
  readonly #dirty = new Set<string>();

  constructor(private readonly series: OwnedSeries) {}

  stored(v: ResourceView, previous: ResourceView | undefined): void {
    if (previous && sameList(previous.services, v.services)) return;
    if (previous) this.removed(previous);
    this.#count(v, 1);
  }

  removed(v: ResourceView): void {
    this.#count(v, -1);
  }

  flush(): void {
    for (const namespace of this.#dirty) {
      const names = this.#byNamespace.get(namespace);
      if (names && names.size > 0) {
        this.series.set({ namespace }, names.size);
      } else {
        this.#byNamespace.delete(namespace);
        this.series.delete({ namespace });
      }
    }
    this.#dirty.clear();
  }

  clear(): void {
    this.#byNamespace.clear();
    this.#dirty.clear();
  }

  #count(v: ResourceView, n: number): void {
    if (!v.services || v.services.length === 0) return;
    let names = this.#byNamespace.get(v.namespace);
    if (!names) {
      names = new Map();
      this.#byNamespace.set(v.namespace, names);
    }
    for (const s of v.services) {
      const declared = (names.get(s) ?? 0) + n;
      if (declared > 0) names.set(s, declared);
      else names.delete(s);
    }
    this.#dirty.add(v.namespace);
  }
}
