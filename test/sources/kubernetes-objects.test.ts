import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, get, startRuntime, type TestRuntime } from "../helpers.ts";
import { TALOS_KINDS } from "../../src/sources/kubernetes/talos-kinds.ts";
import { kubeconfigYaml, startKubeApiSim } from "../sim/kube-api.ts";

const GROUP = "talos.alperen.cloud";
const VERSION = "v1alpha1";
const collection = (plural: string) => `/apis/${GROUP}/${VERSION}/${plural}`;

interface KindStatus {
  kind: string;
  listedAt: string | null;
  objects: number;
  leftOut: number;
}
interface KubernetesStatus {
  up: boolean;
  detail: string | null;
  objects: { held: number; limit: number; leftOut: number };
  kinds: KindStatus[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function kubernetesStatus(rt: TestRuntime): Promise<KubernetesStatus> {
  const status = JSON.parse((await get(`${rt.healthUrl}/debug/status`)).body) as { sources: ({ name: string } & KubernetesStatus)[] };
  const source = status.sources.find((s) => s.name === "kubernetes");
  if (!source) throw new Error("no kubernetes source in /debug/status");
  return source;
}

async function droppedTotal(rt: TestRuntime): Promise<number> {
  const text = (await get(`${rt.metricsUrl}/metrics`)).body;
  let total = 0;
  for (const line of text.split("\n"))
    if (line.startsWith('sidecar_objects_dropped_total{source="kubernetes"')) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  return total;
}

describe("kubernetes source: a flood of objects", () => {
  it("holds at most sources.kubernetes.maxObjects from lists and watches, counts the rest and says so in /debug/status", async () => {
    const sim = await startKubeApiSim({ token: "flood-token" });
    cleanups.push(() => sim.close());
    for (const k of TALOS_KINDS) sim.addResource({ group: GROUP, version: VERSION, kind: k.kind, plural: k.plural, namespaced: k.namespaced });
    sim.upsert({ apiVersion: `${GROUP}/${VERSION}`, kind: "TalosCluster", metadata: { name: "prod", namespace: "talos-system" }, spec: {} });
    const dir = await mkdtemp(join(tmpdir(), "kube-flood-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, kubeconfigYaml(sim));

    // The first list of machines is 2,000 objects long, in pages.
    sim.setFault({ kind: "flood", objects: 2_000 }, { pathPrefix: collection("talosmachines"), only: "list" });
    const rt = await startRuntime({
      logging: { level: "warn" },
      sources: { kubernetes: { kubeconfig, interval: "1s", timeout: "1s", maxObjects: 300, tailscale: { enabled: false } } },
    });
    cleanups.push(() => rt.runtime.stop());

    let status = await eventually(async () => {
      const s = await kubernetesStatus(rt);
      return s.up && s.kinds.length === TALOS_KINDS.length && s.kinds.every((k) => k.listedAt !== null) ? s : undefined;
    }, 10_000);
    // 2,001 objects listed, 300 kept: every page was cut to the room left, none held whole.
    expect(status.kinds.reduce((n, k) => n + k.objects, 0)).toBe(300);
    expect(status.kinds.reduce((n, k) => n + k.leftOut, 0)).toBe(1_701);
    expect(status.objects).toEqual({ held: 300, limit: 300, leftOut: 1_701 });
    status = await eventually(async () => {
      const s = await kubernetesStatus(rt);
      return s.detail?.includes("left out") ? s : undefined;
    });
    expect(status.detail).toContain("1701 objects left out at sources.kubernetes.maxObjects (300)");
    expect(await droppedTotal(rt)).toBe(1_701);

    // A watch then floods 1,500 ADDED workers: none finds room.
    sim.setFault({ kind: "flood", objects: 1_500 }, { pathPrefix: collection("talosworkers"), only: "watch" });
    sim.endWatches();
    await eventually(async () => (await droppedTotal(rt)) === 3_201, 10_000);
    status = await eventually(async () => {
      const s = await kubernetesStatus(rt);
      return s.objects.leftOut === 3_201 ? s : undefined;
    });
    expect(status.kinds.reduce((n, k) => n + k.objects, 0)).toBe(300);
    expect(status.kinds.find((k) => k.kind === "TalosWorker")).toMatchObject({ objects: 0, leftOut: 1_500 });
    await eventually(async () => (await kubernetesStatus(rt)).detail?.includes("3201 objects left out"));
    // Warned once, not once per object or per list.
    expect(rt.logs.records().filter((r) => String(r.msg).startsWith("object limit reached"))).toHaveLength(1);
  });
});
