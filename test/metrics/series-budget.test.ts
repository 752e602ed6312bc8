import { describe, expect, it } from "vitest";
import { createLogging } from "../../src/log.ts";
import { Gauge } from "../../src/metrics/families.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { DEFAULT_SERIES_PER_SOURCE, SeriesBudget } from "../../src/metrics/series-budget.ts";
import { OwnedSeries, type Sample } from "../../src/metrics/series.ts";
import { configFrom, LogCapture } from "../helpers.ts";

function setup(limit?: number) {
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const logs = new LogCapture();
  const logger = createLogging(configFrom({}).logging, logs).root;
  let clock = 1_000_000;
  const budget = new SeriesBudget({ source: "demo", limit, dropped: metrics.handles.seriesDropped, logger, now: () => clock });
  const gauges = new Map<string, Gauge>();
  const gauge = (name: string, labelNames: string[]) => {
    const g = new Gauge({ name, help: name, labelNames });
    gauges.set(name, g);
    return g;
  };
  const a = new OwnedSeries(gauge("family_a", ["id"]), ["id"], budget);
  const b = new OwnedSeries(gauge("family_b", ["id"]), ["id"], budget);
  return {
    budget,
    a,
    b,
    logs,
    advance: (ms: number) => (clock += ms),
    async exported(family: string): Promise<string[]> {
      const text = gauges.get(family)?.renderSamples().toString("utf8") ?? "";
      return text.split("\n").filter((l) => l.startsWith(`${family}{`));
    },
    async dropped(): Promise<number> {
      const text = await metrics.render(false);
      const line = text.split("\n").find((l) => l.startsWith('sidecar_series_dropped_total{source="demo"}'));
      return line === undefined ? Number.NaN : Number(line.split(" ").at(-1));
    },
    warnings: () => logs.records().filter((r) => r.msg !== undefined && String(r.msg).startsWith("series limit reached")),
  };
}

const ids = (from: number, to: number, value = 1): Sample[] => Array.from({ length: to - from }, (_, i) => ({ labels: { id: String(from + i) }, value }));

describe("SeriesBudget with OwnedSeries", () => {
  it("defaults to 10,000 series and starts the drop counter at zero", async () => {
    const t = setup();
    expect(t.budget.limit).toBe(DEFAULT_SERIES_PER_SOURCE);
    expect(DEFAULT_SERIES_PER_SOURCE).toBe(10_000);
    expect(await t.dropped()).toBe(0);
  });

  it("exports up to the limit across every family of the source and counts the rest", async () => {
    const t = setup(10);
    t.a.replace(ids(0, 6));
    t.b.replace(ids(0, 8));
    expect(await t.exported("family_a")).toHaveLength(6);
    expect(await t.exported("family_b")).toHaveLength(4);
    expect(t.budget.used).toBe(10);
    expect(t.a.size + t.b.size).toBe(10);
    expect(await t.dropped()).toBe(4);
    // The first series of a family win: those are the ones the upstream listed first.
    expect(await t.exported("family_b")).toEqual(['family_b{id="0"} 1', 'family_b{id="1"} 1', 'family_b{id="2"} 1', 'family_b{id="3"} 1']);
  });

  it("keeps updating series already exported while new ones are dropped", async () => {
    const t = setup(5);
    t.a.replace(ids(0, 5, 1));
    t.a.replace([...ids(5, 10, 7), ...ids(0, 5, 2)]);
    expect(await t.exported("family_a")).toEqual(ids(0, 5).map((s) => `family_a{id="${s.labels.id}"} 2`));
    expect(await t.dropped()).toBe(5);
  });

  it("frees room when series go, within the same replace", async () => {
    const t = setup(5);
    t.a.replace(ids(0, 5));
    // One object swapped for another at the limit: the new one takes the room the old one leaves.
    t.a.replace([...ids(1, 5), { labels: { id: "new" }, value: 1 }]);
    expect(await t.exported("family_a")).toContain('family_a{id="new"} 1');
    expect(await t.exported("family_a")).not.toContain('family_a{id="0"} 1');
    expect(await t.dropped()).toBe(0);
    // A series that disappears from family a makes room for family b.
    t.b.replace(ids(0, 2));
    expect(await t.exported("family_b")).toHaveLength(0);
    t.a.replace(ids(1, 4));
    t.b.replace(ids(0, 2));
    expect(await t.exported("family_b")).toHaveLength(2);
    expect(t.budget.used).toBe(5);
    t.a.clear();
    t.b.clear();
    expect(t.budget.used).toBe(0);
  });

  it("counts a repeated key once", async () => {
    const t = setup(2);
    t.a.replace([{ labels: { id: "x" }, value: 1 }, { labels: { id: "x" }, value: 3 }, { labels: { id: "y" }, value: 1 }]);
    expect(await t.exported("family_a")).toEqual(['family_a{id="x"} 3', 'family_a{id="y"} 1']);
    expect(await t.dropped()).toBe(0);
  });

  it("warns at most once a minute, never per series", async () => {
    const t = setup(3);
    t.a.replace(ids(0, 1_000));
    t.b.replace(ids(0, 1_000));
    expect(t.warnings()).toHaveLength(1);
    expect(t.warnings()[0]).toMatchObject({ level: "warn", source: "demo", limit: 3, family: "family_a", dropped: 997 });
    for (let i = 0; i < 20; i++) {
      t.advance(2_000);
      t.a.replace(ids(0, 1_000));
    }
    expect(t.warnings()).toHaveLength(1);
    t.advance(30_000);
    t.a.replace(ids(0, 1_000));
    // The second line reports every drop since the first one.
    expect(t.warnings()).toHaveLength(2);
    expect(t.warnings()[1]).toMatchObject({ dropped: 1_000 + 21 * 997 });
    expect(await t.dropped()).toBe(997 + 1_000 + 21 * 997);
  });

  it("an OwnedSeries without a budget is unlimited", async () => {
    const owned = new OwnedSeries(new Gauge({ name: "free", help: "free", labelNames: ["id"] }), ["id"]);
    owned.replace(ids(0, 20_000));
    expect(owned.size).toBe(20_000);
  });
});

describe("OwnedSeries one series at a time", () => {
  it("sets and deletes single series within the budget, and a series refused waits for room", async () => {
    const t = setup(3);
    for (const s of ids(0, 4)) t.a.set(s.labels, s.value);
    expect(await t.exported("family_a")).toHaveLength(3);
    expect(t.a.waiting).toBe(1);
    expect(await t.dropped()).toBe(1);
    // Waiting, it takes the latest value and is not counted again.
    t.a.set({ id: "3" }, 5);
    expect(await t.dropped()).toBe(1);
    // Room given back by any family of the budget goes to it once asked.
    t.a.delete({ id: "0" });
    expect(t.budget.used).toBe(2);
    t.b.set({ id: "b" }, 1);
    expect(await t.exported("family_b")).toEqual(['family_b{id="b"} 1']);
    t.b.delete({ id: "b" });
    t.a.admitWaiting();
    expect(t.a.waiting).toBe(0);
    expect((await t.exported("family_a")).sort()).toEqual(['family_a{id="1"} 1', 'family_a{id="2"} 1', 'family_a{id="3"} 5']);
    expect(t.budget.used).toBe(3);
    // Deleting what is not exported gives back nothing.
    t.a.delete({ id: "never" });
    expect(t.budget.used).toBe(3);
  });

  it("keys series by the family's key, whatever order the labels come in", async () => {
    const metrics = new MetricRegistry({}, { processMetrics: false });
    const gauge = metrics.handles.talosServiceUp;
    const owned = new OwnedSeries(gauge, ["node", "service"]);
    owned.set({ service: "etcd", node: "a" }, 1);
    owned.set({ node: "a", service: "etcd" }, 0);
    expect(gauge.values()).toEqual([{ labels: { node: "a", service: "etcd" }, value: 0 }]);
    owned.replace([{ labels: { service: "etcd", node: "a" }, value: 1 }]);
    expect(owned.size).toBe(1);
    owned.delete({ service: "etcd", node: "a" });
    expect(gauge.size).toBe(0);
    expect(() => new OwnedSeries(gauge, ["service", "node"])).toThrow(/labelled service, node, but its labels are node, service/);
  });
});

describe("SeriesBudget.takeAll", () => {
  it("takes room for a group only when all of it fits, and nothing otherwise", () => {
    const t = setup(10);
    expect(t.budget.takeAll(7)).toBe(true);
    expect(t.budget.used).toBe(7);
    expect(t.budget.takeAll(4)).toBe(false);
    expect(t.budget.used).toBe(7);
    expect(t.budget.takeAll(3)).toBe(true);
    expect(t.budget.used).toBe(10);
    expect(t.budget.take()).toBe(false);
  });
});
