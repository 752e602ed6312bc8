import { readdirSync, readFileSync } from "node:fs";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { ALERTS } from "../../src/observe/alerts.ts";
import { DASHBOARDS } from "../../src/observe/dashboards.ts";
import { ALERTS_DOC, DASHBOARD_DIR, PROMETHEUS_RULE_FILE, RULES_FILE, renderObserveFiles } from "../../src/observe/render.ts";
import { PROMETHEUS_RULE_LABELS } from "../../src/observe/rules.ts";

const root = new URL("../../", import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), "utf8");

interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string }[];
}

describe("generated monitoring files", () => {
  it("are committed exactly as src/observe renders them", () => {
    const files = renderObserveFiles();
    expect([...files.keys()].sort()).toEqual([...DASHBOARDS.map((d) => `${DASHBOARD_DIR}/${d.file}`), PROMETHEUS_RULE_FILE, RULES_FILE, ALERTS_DOC].sort());
    for (const [path, content] of files) {
      let committed = "";
      try {
        committed = read(path);
      } catch {
        expect.fail(`${path} is missing: run \`npm run observe\` and commit the result`);
      }
      expect(committed, `${path} differs from a fresh generation: run \`npm run observe\` and commit the result`).toBe(content);
    }
    const onDisk = readdirSync(new URL(`${DASHBOARD_DIR}/`, root)).filter((f) => f.endsWith(".json")).map((f) => `${DASHBOARD_DIR}/${f}`);
    expect(onDisk.sort(), "dashboards/ holds a file no definition renders: run `npm run observe`").toEqual(DASHBOARDS.map((d) => `${DASHBOARD_DIR}/${d.file}`).sort());
  });

  it("renders the same bytes every time", () => {
    expect(renderObserveFiles()).toEqual(renderObserveFiles());
  });

  it("wraps the rules file's groups in a PrometheusRule that kube-prometheus-stack selects", () => {
    const rules = parse(read(RULES_FILE)) as { groups: unknown[] };
    const crd = parse(read(PROMETHEUS_RULE_FILE)) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string; labels: Record<string, string> };
      spec: { groups: unknown[] };
    };
    expect(crd.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(crd.kind).toBe("PrometheusRule");
    expect(crd.metadata.name).toBe("sidecar-exporter");
    expect(crd.metadata.labels).toEqual(PROMETHEUS_RULE_LABELS);
    expect(crd.metadata.labels.release).toBe("prometheus");
    expect(crd.spec.groups).toEqual(rules.groups);
    expect(rules.groups.length).toBeGreaterThan(0);
  });

  it("gives every alert a for, a severity, and summary, description and runbook annotations", () => {
    const rules = parse(read(RULES_FILE)) as {
      groups: { name: string; rules: { alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[];
    };
    const rendered = rules.groups.flatMap((g) => g.rules);
    expect(rendered.map((r) => r.alert)).toEqual(ALERTS.map((a) => a.alert));
    expect(new Set(rendered.map((r) => r.alert)).size).toBe(rendered.length);
    for (const r of rendered) {
      expect(r.for, `${r.alert}: for`).toMatch(/^[1-9][0-9]*[smhd]$/);
      expect(["warning", "critical"], `${r.alert}: severity`).toContain(r.labels?.severity);
      const a = r.annotations ?? {};
      expect(Object.keys(a).sort(), `${r.alert}: annotations`).toEqual(["description", "runbook", "summary"]);
      expect(a.summary, `${r.alert}: summary names what it is about`).toMatch(/\$labels\.[a-z_]+/);
      expect(a.description, `${r.alert}: description names what it is about`).toMatch(/\$labels\.[a-z_]+/);
      expect(a.runbook, `${r.alert}: runbook says what to do`).toMatch(/^.{40,} What to do: .{40,}$/);
    }
  });

  it("builds valid Grafana dashboards: unique uids and ids, a datasource variable, panels inside the grid", () => {
    const uids = new Set<string>();
    for (const d of DASHBOARDS) {
      const model = JSON.parse(read(`${DASHBOARD_DIR}/${d.file}`)) as {
        uid: string;
        schemaVersion: number;
        panels: GrafanaPanel[];
        templating: { list: { name: string; type: string }[] };
      };
      expect(model.uid).toBe(d.uid);
      expect(model.uid.length).toBeLessThanOrEqual(40);
      expect(uids.has(model.uid)).toBe(false);
      uids.add(model.uid);
      expect(model.schemaVersion).toBe(39);
      expect(model.templating.list.map((v) => `${v.name}:${v.type}`)).toEqual(["datasource:datasource", "cluster:query"]);
      const ids = model.panels.map((p) => p.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const p of model.panels) {
        expect(p.gridPos.x + p.gridPos.w, `${d.uid}/${p.title} fits the grid`).toBeLessThanOrEqual(24);
        if (p.type === "row") continue;
        expect(p.datasource, `${d.uid}/${p.title}`).toEqual({ type: "prometheus", uid: "${datasource}" });
        expect(p.targets?.length, `${d.uid}/${p.title} has queries`).toBeGreaterThan(0);
        expect(new Set(p.targets?.map((t) => t.refId)).size).toBe(p.targets?.length);
      }
      // Panels of one line never overlap.
      const cells = new Set<string>();
      for (const p of model.panels)
        for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
          for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
            expect(cells.has(`${x},${y}`), `${d.uid}/${p.title} overlaps another panel`).toBe(false);
            cells.add(`${x},${y}`);
          }
    }
  });
});
