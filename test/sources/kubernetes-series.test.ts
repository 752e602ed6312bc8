import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createLogging } from "../../src/log.ts";
import { METRICS } from "../../src/metrics/catalogue.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { SeriesBudget } from "../../src/metrics/series-budget.ts";
import { OwnedSeries } from "../../src/metrics/series.ts";
import { type ResourceView, resourceView, sameView } from "../../src/sources/kubernetes/kinds.ts";
import { GAUGES, type GaugeKey, ResourceSeries } from "../../src/sources/kubernetes/series.ts";
import { configFrom, LogCapture } from "../helpers.ts";
import { expectedSeries, seriesKey, type SeriesMap } from "./kubernetes-model.ts";

/** ResourceSeries behind a store that tells it of every change as an informer does. */
function setup(limit?: number) {
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const h = metrics.handles;
  const logger = createLogging(configFrom({ logging: { level: "silent" } }).logging, new LogCapture()).root;
  const budget = new SeriesBudget({ source: "kubernetes", limit, dropped: h.seriesDropped, logger });
  const series = new ResourceSeries(Object.fromEntries(GAUGES.map((k) => [k, new OwnedSeries(h[k], METRICS[k].labels, budget)])) as Record<GaugeKey, OwnedSeries>);
  const store = new Map<string, ResourceView>();
  const listed: { kind: string; namespace: string }[] = [];
  const store1 = (v: ResourceView) => {
    const previous = store.get(v.uid);
    if (previous && sameView(previous, v)) return;
    store.set(v.uid, v);
    series.stored(v, previous);
  };
  const remove1 = (uid: string) => {
    const v = store.get(uid);
    if (!v) return;
    store.delete(uid);
    series.removed(v);
  };
  return {
    budget,
    series,
    store,
    /** Stores views (new or in place of those with their uid), without writing the aggregates yet. */
    stage: (...views: ResourceView[]) => views.forEach(store1),
    /** Removes objects, without writing the aggregates yet. */
    unstage: (...uids: string[]) => uids.forEach(remove1),
    put(...views: ResourceView[]) {
      views.forEach(store1);
      series.flush();
    },
    remove(...uids: string[]) {
      uids.forEach(remove1);
      series.flush();
    },
    /** A list replacing the store's contents: vanished objects leave first, as the informer has it. */
    relist(views: ResourceView[]) {
      const next = new Set(views.map((v) => v.uid));
      for (const uid of [...store.keys()]) if (!next.has(uid)) remove1(uid);
      views.forEach(store1);
      series.flush();
    },
    listed(kind: string, namespace: string) {
      listed.push({ kind, namespace });
      series.listed(kind, "talos", namespace);
      series.flush();
    },
    exported(family: GaugeKey): SeriesMap {
      return new Map(h[family].values().map((s) => [seriesKey(s.labels), s.value]));
    },
    expected: () => expectedSeries([...store.values()], listed),
    dropped: () => h.seriesDropped.value({ source: "kubernetes" }),
  };
}

type T = ReturnType<typeof setup>;

const view = (kind: string, name: string, extra: Partial<ResourceView> = {}): ResourceView => {
  const namespace = extra.namespace ?? "ns";
  return resourceView({ kind, family: kind.startsWith("Tailscale") ? "tailscale" : "talos", namespace, name, uid: `${kind}/${namespace}/${name}`, ready: true, status: "Ready", ...extra });
};
const cp = (name: string, namespace = "ns") => ({ kind: "TalosControlPlane" as const, name, namespace });
const worker = (name: string, namespace = "ns") => ({ kind: "TalosWorker" as const, name, namespace });
const uid = (kind: string, name: string, namespace = "ns") => `${kind}/${namespace}/${name}`;

/** talos_operator_machine_ready by cluster. */
const machineReady = (t: T) => Object.fromEntries([...t.exported("machineReady")].map(([k, v]) => [/cluster=([^,]*)/.exec(k)?.[1], v]));
const total = (t: T, kind: string, namespace = "ns") => t.exported("resourceTotal").get(seriesKey({ resource_type: kind.toLowerCase(), namespace }));
const status = (t: T, family: GaugeKey, kind: string, name: string, s: string, namespace = "ns") =>
  t.exported(family).get(seriesKey({ resource_type: kind.toLowerCase(), namespace, name, status: s }));

function expectAsFromScratch(t: T): void {
  const expected = t.expected();
  for (const k of GAUGES) expect(Object.fromEntries(t.exported(k)), k).toEqual(Object.fromEntries(expected[k]));
}

/** Under a series limit: as many of the expected series as it allows, each with its expected value. */
function expectWithinLimit(t: T): void {
  const expected = t.expected();
  let wanted = 0;
  let exported = 0;
  for (const k of GAUGES) {
    wanted += expected[k].size;
    exported += t.exported(k).size;
    for (const [labels, value] of t.exported(k)) expect(expected[k].get(labels), `${k} ${labels}`).toBe(value);
  }
  expect(exported).toBe(Math.min(wanted, t.budget.limit));
  expect(t.budget.used).toBe(exported);
}

describe("Kubernetes series, object by object", () => {
  it("resolves each machine's cluster through owner references and spec refs", () => {
    const t = setup();
    t.put(
      view("TalosCluster", "a", { refs: { controlPlane: "shared-cp", worker: undefined } }),
      view("TalosControlPlane", "shared-cp"),
      view("TalosControlPlane", "solo-cp"),
      view("TalosWorker", "w", { parent: cp("solo-cp") }),
      view("TalosMachine", "m1", { parent: cp("shared-cp") }),
      view("TalosMachine", "m2", { parent: worker("w") }),
      view("TalosMachine", "m3", { ownerCluster: "b", ready: false }),
      view("TalosMachine", "orphan"),
    );
    t.listed("TalosMachine", "ns");
    t.listed("TalosEtcdBackup", "ns");
    expect(machineReady(t)).toEqual({ a: 1, "solo-cp": 1, b: 0 });
    expect(total(t, "TalosEtcdBackup")).toBe(0);
    expect(total(t, "TalosMachine")).toBe(4);
    expectAsFromScratch(t);
  });

  it("moves an object's series to its new status, and leaves everything alone for a view that says nothing new", () => {
    const t = setup();
    t.put(view("TalosMachine", "m", { ownerCluster: "c", ready: false, status: "Installing" }));
    expect(status(t, "resourceStatus", "TalosMachine", "m", "Installing")).toBe(0);
    expect(machineReady(t)).toEqual({ c: 0 });
    t.put(view("TalosMachine", "m", { ownerCluster: "c", ready: true, status: "Available" }));
    expect(status(t, "resourceStatus", "TalosMachine", "m", "Installing")).toBeUndefined();
    expect(status(t, "resourceStatus", "TalosMachine", "m", "Available")).toBe(1);
    expect(t.exported("resourceStatus").size).toBe(1);
    expect(total(t, "TalosMachine")).toBe(1);
    expect(machineReady(t)).toEqual({ c: 1 });
    // Ready without a new status: the same series, its value changed.
    t.put(view("TailscaleGateway", "gw", { ready: true, status: "Ready", services: ["svc:a"] }));
    t.put(view("TailscaleGateway", "gw", { ready: false, status: "Ready", services: ["svc:a"] }));
    expect([...t.exported("gatewayResourceStatus")]).toEqual([[seriesKey({ resource_type: "tailscalegateway", namespace: "ns", name: "gw", status: "Ready" }), 0]]);
    const used = t.budget.used;
    t.put(view("TailscaleGateway", "gw", { ready: false, status: "Ready", services: ["svc:a"] }));
    expect(t.budget.used).toBe(used);
    expectAsFromScratch(t);
  });

  it("takes a deleted object's series with it and gives their room back", () => {
    const t = setup();
    t.put(
      view("TalosCluster", "c", { ready: false, status: "NotReady" }),
      view("TalosMachine", "m", { ownerCluster: "c" }),
      view("TailscaleServices", "web", { services: ["svc:web"] }),
    );
    // Three statuses, two totals, the cluster's health and machine count, the namespace's services.
    expect(t.budget.used).toBe(8);
    expect(t.series.clustersNotReady).toBe(1);
    t.remove(uid("TalosMachine", "m"));
    expect(status(t, "resourceStatus", "TalosMachine", "m", "Ready")).toBeUndefined();
    expect(total(t, "TalosMachine")).toBeUndefined();
    expect(machineReady(t)).toEqual({ c: 0 });
    expect(t.budget.used).toBe(6);
    t.remove(uid("TalosCluster", "c"), uid("TailscaleServices", "web"));
    for (const k of GAUGES) expect(t.exported(k).size, k).toBe(0);
    expect(t.series.clustersNotReady).toBe(0);
    expect(t.budget.used).toBe(0);
  });

  it("moves a machine's count when it moves between clusters", () => {
    const t = setup();
    t.put(
      view("TalosCluster", "a"),
      view("TalosCluster", "b"),
      view("TalosControlPlane", "cp-a", { ownerCluster: "a" }),
      view("TalosControlPlane", "cp-b", { ownerCluster: "b" }),
      view("TalosMachine", "m", { parent: cp("cp-a") }),
    );
    expect(machineReady(t)).toEqual({ a: 1, b: 0 });
    t.put(view("TalosMachine", "m", { parent: cp("cp-b") }));
    expect(machineReady(t)).toEqual({ a: 0, b: 1 });
    // An owner reference wins over the parent; a cluster with no object of its own has a count while it has machines.
    t.put(view("TalosMachine", "m", { parent: cp("cp-b"), ownerCluster: "elsewhere" }));
    expect(machineReady(t)).toEqual({ a: 0, b: 0, elsewhere: 1 });
    t.put(view("TalosMachine", "m", { parent: cp("cp-b"), ownerCluster: "elsewhere", ready: false, status: "Rebooting" }));
    expect(machineReady(t)).toEqual({ a: 0, b: 0, elsewhere: 0 });
    t.remove(uid("TalosMachine", "m"));
    expect(machineReady(t)).toEqual({ a: 0, b: 0 });
    expectAsFromScratch(t);
  });

  it("counts the machines of a control plane under the cluster that claims it later, and back when it goes", () => {
    const t = setup();
    t.put(
      view("TalosControlPlane", "solo"),
      view("TalosWorker", "solo-workers", { parent: cp("solo") }),
      view("TalosMachine", "cp-1", { parent: cp("solo") }),
      view("TalosMachine", "worker-1", { parent: worker("solo-workers") }),
      view("TalosMachine", "worker-2", { parent: worker("solo-workers"), ready: false, status: "Pending" }),
    );
    // A control plane no cluster claims is a cluster of its own; its worker's machines count with it.
    expect(machineReady(t)).toEqual({ solo: 2 });
    t.put(view("TalosCluster", "prod", { refs: { controlPlane: "solo", worker: undefined } }));
    expect(machineReady(t)).toEqual({ prod: 2 });
    t.put(view("TalosControlPlane", "solo", { ownerCluster: "other" }));
    expect(machineReady(t)).toEqual({ prod: 0, other: 2 });
    t.put(view("TalosControlPlane", "solo"));
    t.remove(uid("TalosCluster", "prod"));
    expect(machineReady(t)).toEqual({ solo: 2 });
    expectAsFromScratch(t);
  });

  it("keeps the totals and the clusters not ready right after every step", () => {
    const t = setup();
    t.listed("TalosCluster", "ns");
    expect(total(t, "TalosCluster")).toBe(0);
    t.put(view("TalosCluster", "a", { ready: false, status: "NotReady" }), view("TalosCluster", "b"));
    expect([total(t, "TalosCluster"), t.series.clustersNotReady]).toEqual([2, 1]);
    t.put(view("TalosCluster", "b", { ready: false, status: "NotReady" }));
    expect([total(t, "TalosCluster"), t.series.clustersNotReady]).toEqual([2, 2]);
    t.put(view("TalosCluster", "a"));
    expect([total(t, "TalosCluster"), t.series.clustersNotReady]).toEqual([2, 1]);
    t.remove(uid("TalosCluster", "b"));
    expect([total(t, "TalosCluster"), t.series.clustersNotReady]).toEqual([1, 0]);
    t.remove(uid("TalosCluster", "a"));
    // Listed in this namespace: the total stays, at 0. Elsewhere it goes with the last object.
    expect([total(t, "TalosCluster"), t.series.clustersNotReady]).toEqual([0, 0]);
    t.put(view("TalosCluster", "x", { namespace: "other" }));
    expect(total(t, "TalosCluster", "other")).toBe(1);
    t.remove(uid("TalosCluster", "x", "other"));
    expect(total(t, "TalosCluster", "other")).toBeUndefined();
    expectAsFromScratch(t);
  });

  it("writes the aggregates once per burst, at flush", () => {
    const t = setup();
    t.stage(view("TalosMachine", "m1", { ownerCluster: "c" }), view("TalosMachine", "m2", { ownerCluster: "c" }));
    // Objects' own series are there at once; totals and counts wait for the flush.
    expect(t.exported("resourceStatus").size).toBe(2);
    expect(t.exported("resourceTotal").size).toBe(0);
    t.series.flush();
    expect(total(t, "TalosMachine")).toBe(2);
    expect(machineReady(t)).toEqual({ c: 2 });
  });

  it("honours the source's series limit one object at a time, and gives room that comes free to those waiting", () => {
    const t = setup(3);
    const gw = (name: string, ready = true) => view("TailscaleEndpoints", name, { ready });
    t.put(gw("e1"), gw("e2"), gw("e3"), gw("e4"));
    expect(t.exported("gatewayResourceStatus").size).toBe(3);
    expect(t.budget.used).toBe(3);
    expect(t.dropped()).toBe(1);
    // A series already exported keeps updating at the limit; one waiting is not counted again for a change.
    t.put(gw("e2", false));
    expect(t.exported("gatewayResourceStatus").get(seriesKey({ resource_type: "tailscaleendpoints", namespace: "ns", name: "e2", status: "Ready" }))).toBe(0);
    t.put(gw("e4", false));
    expect(t.dropped()).toBe(1);
    // An object that goes gives its room to the one waiting, with its latest value.
    t.remove(uid("TailscaleEndpoints", "e1"));
    expect(t.exported("gatewayResourceStatus").get(seriesKey({ resource_type: "tailscaleendpoints", namespace: "ns", name: "e4", status: "Ready" }))).toBe(0);
    expect(t.budget.used).toBe(3);
    // A waiting object that goes frees nothing it did not have.
    t.put(gw("e5"));
    expect(t.dropped()).toBe(2);
    t.remove(uid("TailscaleEndpoints", "e5"));
    expect(t.budget.used).toBe(3);
    t.remove(uid("TailscaleEndpoints", "e2"));
    expect(t.budget.used).toBe(2);
    expect(t.exported("gatewayResourceStatus").size).toBe(2);
    expectAsFromScratch(t);
  });

  it("forgets everything on clear()", () => {
    const t = setup();
    t.put(view("TalosCluster", "c", { ready: false, status: "NotReady" }), view("TalosMachine", "m", { ownerCluster: "c" }));
    t.series.clear();
    for (const k of GAUGES) expect(t.exported(k).size, k).toBe(0);
    expect(t.series.clustersNotReady).toBe(0);
    expect(t.budget.used).toBe(0);
    // Stored again from scratch, as the informers of a restarted source would.
    t.store.clear();
    t.put(view("TalosMachine", "m", { ownerCluster: "c" }));
    expect(machineReady(t)).toEqual({ c: 1 });
    expect(total(t, "TalosMachine")).toBe(1);
  });
});

describe("Kubernetes series against the series worked out from scratch", () => {
  const NAMESPACES = ["a", "b"];
  const SLOTS: { kind: string; name: string; namespace: string }[] = [];
  for (const namespace of NAMESPACES) {
    for (const [kind, names] of [
      ["TalosCluster", ["c1", "c2"]],
      ["TalosControlPlane", ["cp1", "cp2"]],
      ["TalosWorker", ["w1"]],
      ["TalosMachine", ["m1", "m2", "m3", "m4"]],
      ["TalosEtcdBackup", ["b1"]],
      ["TailscaleGateway", ["g1"]],
      ["TailscaleServices", ["s1", "s2"]],
    ] as const) {
      for (const name of names) SLOTS.push({ kind, name, namespace });
    }
  }
  const slot = fc.nat(SLOTS.length - 1);
  const params = fc.record({
    // An object made again under its name gets a new uid; most changes are to the object that is there.
    generation: fc.constantFrom(0, 0, 0, 1),
    ready: fc.boolean(),
    status: fc.constantFrom("Ready", "NotReady", "Pending"),
    ownerCluster: fc.constantFrom(undefined, undefined, "c1", "c2"),
    parent: fc.constantFrom(undefined, "cp1", "cp2", "w1"),
    parentElsewhere: fc.constantFrom(false, false, false, true),
    refs: fc.record({ controlPlane: fc.constantFrom(undefined, "cp1", "cp2"), worker: fc.constantFrom(undefined, "w1") }),
    services: fc.subarray(["svc:x", "svc:y", "svc:z"]),
  });
  type Params = typeof params extends fc.Arbitrary<infer P> ? P : never;

  function viewOf(at: number, p: Params): ResourceView {
    const s = SLOTS[at] as (typeof SLOTS)[number];
    const parent =
      p.parent === undefined || s.kind === "TalosCluster" || s.kind === "TalosControlPlane" || (s.kind === "TalosWorker" && p.parent === "w1")
        ? undefined
        : {
            kind: p.parent === "w1" ? ("TalosWorker" as const) : ("TalosControlPlane" as const),
            name: p.parent,
            namespace: p.parentElsewhere ? (NAMESPACES.find((n) => n !== s.namespace) as string) : s.namespace,
          };
    const linked = s.kind === "TalosControlPlane" || s.kind === "TalosWorker" || s.kind === "TalosMachine";
    return view(s.kind, s.name, {
      namespace: s.namespace,
      uid: `${s.kind}/${s.namespace}/${s.name}#${p.generation}`,
      ready: p.ready,
      status: p.status,
      ownerCluster: linked ? p.ownerCluster : undefined,
      parent: s.kind === "TalosWorker" || s.kind === "TalosMachine" ? parent : undefined,
      refs: s.kind === "TalosCluster" ? p.refs : undefined,
      services: s.kind.startsWith("Tailscale") ? p.services : undefined,
    });
  }

  const op = fc.oneof(
    { weight: 8, arbitrary: fc.record({ type: fc.constant("put" as const), at: slot, p: params, flush: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ type: fc.constant("delete" as const), at: slot, flush: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant("relist" as const), objects: fc.array(fc.record({ at: slot, p: params }), { maxLength: SLOTS.length }) }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant("listed" as const), kind: fc.constantFrom("TalosMachine", "TalosEtcdBackup", "TalosCluster"), namespace: fc.constantFrom(...NAMESPACES) }) },
  );

  it("agrees after any sequence of adds, changes, deletes, re-lists and listed scopes, within any series limit", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.option(fc.integer({ min: 1, max: 40 }), { freq: 3 }), (ops, limit) => {
        const t = setup(limit ?? undefined);
        const check = limit === null ? expectAsFromScratch : expectWithinLimit;
        /** The uid each slot's object has now, as the server would: one object per name. */
        const current = new Map<number, string>();
        for (const o of ops) {
          if (o.type === "put") {
            const v = viewOf(o.at, o.p);
            const was = current.get(o.at);
            // Made again under its name: the server reports the old one deleted first.
            if (was !== undefined && was !== v.uid) t.unstage(was);
            current.set(o.at, v.uid);
            t.stage(v);
          } else if (o.type === "delete") {
            const was = current.get(o.at);
            current.delete(o.at);
            if (was !== undefined) t.unstage(was);
          } else if (o.type === "relist") {
            const next = new Map(o.objects.map(({ at, p }) => [at, viewOf(at, p)]));
            current.clear();
            for (const [at, v] of next) current.set(at, v.uid);
            t.relist([...next.values()]);
          } else {
            t.listed(o.kind, o.namespace);
          }
          if (o.type === "relist" || o.type === "listed" || o.flush) {
            t.series.flush();
            check(t);
          }
        }
        t.series.flush();
        check(t);
      }),
      { numRuns: 300 },
    );
  });
});
