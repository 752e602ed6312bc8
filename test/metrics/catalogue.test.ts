import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CATALOGUE } from "../../src/metrics/catalogue.ts";
import { renderMetricsReference } from "../../src/metrics/reference.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";

describe("metric catalogue", () => {
  it("matches the committed reference, so a rename is always deliberate", () => {
    const committed = readFileSync(new URL("../../docs/metrics.md", import.meta.url), "utf8");
    expect(renderMetricsReference(), "run `npm run docs:metrics` and commit docs/metrics.md").toBe(committed);
  });

  it("uses valid, unique Prometheus names with the unit suffix the type asks for", () => {
    const names = CATALOGUE.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of CATALOGUE) {
      expect(m.name).toMatch(/^[a-z_][a-z0-9_]*$/);
      for (const l of m.labels) expect(l).toMatch(/^[a-z_][a-z0-9_]*$/);
      if (m.type === "counter") expect(m.name).toMatch(/_total$/);
      if (m.type !== "counter" && m.name.endsWith("_total")) expect(m.lintException, `${m.name} is a ${m.type} named *_total`).toBeTruthy();
      if (m.type !== "histogram" && m.name.endsWith("_count")) expect(m.lintException, `${m.name} is a ${m.type} named *_count`).toBeTruthy();
      if (m.unit) expect(m.name.endsWith(`_${m.unit}`), m.name).toBe(true);
      if (m.type === "histogram") expect(m.buckets?.length).toBeGreaterThan(0);
    }
  });

  it("registers every family it lists, in both exposition formats", async () => {
    const registry = new MetricRegistry({}, { processMetrics: false });
    const text = await registry.render(false);
    const om = await registry.render(true);
    for (const m of CATALOGUE) {
      expect(text).toContain(`# TYPE ${m.name} ${m.type}`);
      expect(om).toContain(`# HELP ${m.type === "counter" ? m.name.replace(/_total$/, "") : m.name} `);
    }
  });
});
