import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { ALERTS } from "../../src/observe/alerts.ts";
import { DASHBOARDS } from "../../src/observe/dashboards.ts";
import { dashboardExprs } from "../../src/observe/grafana.ts";
import { RULES_FILE } from "../../src/observe/render.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const testsDir = join(root, "monitoring/tests");
const temp = mkdtempSync(join(tmpdir(), "observe-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** Runs the real promtool; a missing binary is a failure with the way to get it, never a skip. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync("promtool", args, { cwd: root, encoding: "utf8", timeout: 60_000 });
  expect(run.error, "promtool is not installed: it comes with the Debian package prometheus (apt-get install prometheus), which .ci/run installs").toBeUndefined();
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** What Grafana substitutes into queries, replaced by literals Prometheus accepts. */
function withGrafanaVariables(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "5m")
    .replaceAll("$__interval", "1m")
    .replaceAll("$__range", "6h")
    .replace(/\$\{cluster(?::[a-z]+)?\}|\$cluster\b/g, ".*");
}

const testFiles = readdirSync(testsDir).filter((f) => f.endsWith(".test.yml")).sort();

describe("promtool", () => {
  it("accepts the generated rules file", () => {
    const { status, output } = promtool("check", "rules", RULES_FILE);
    expect(output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(status, output).toBe(0);
  });

  it("parses every dashboard query, with Grafana's variables filled in", () => {
    const exprs = DASHBOARDS.flatMap(dashboardExprs);
    expect(exprs.length).toBeGreaterThan(30);
    const rules = exprs.map((e, i) => ({ record: `panel:${i}`, expr: withGrafanaVariables(e.expr) }));
    for (const r of rules) expect(r.expr, "a Grafana variable is left unsubstituted").not.toMatch(/\$/);
    const file = join(temp, "panels.rules.yml");
    writeFileSync(file, stringify({ groups: [{ name: "dashboard-panels", rules }] }));
    const { status, output } = promtool("check", "rules", file);
    const failing = [...output.matchAll(/panel:(\d+)/g)].map((m) => exprs[Number(m[1])]);
    expect(status, `${output}\n${JSON.stringify(failing, null, 2)}`).toBe(0);
    expect(output).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it("fails on a query that does not parse, so the check above means something", () => {
    const file = join(temp, "broken.rules.yml");
    writeFileSync(file, stringify({ groups: [{ name: "broken", rules: [{ record: "panel:0", expr: "sum by (check (rate(x[5m]))" }] }] }));
    expect(promtool("check", "rules", file).status).not.toBe(0);
  });

  it("passes the unit tests of monitoring/tests", () => {
    expect(testFiles.length).toBeGreaterThan(0);
    const { status, output } = promtool("test", "rules", ...testFiles.map((f) => join("monitoring/tests", f)));
    expect(status, output).toBe(0);
    expect(output.match(/SUCCESS/g)?.length).toBe(testFiles.length);
  });

  it("has a unit test for every alert that sees it fire and one that sees it stay silent", () => {
    interface AlertRuleTest {
      alertname: string;
      exp_alerts?: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[];
    }
    const fires = new Set<string>();
    const silent = new Set<string>();
    for (const f of testFiles) {
      const doc = parse(readFileSync(join(testsDir, f), "utf8")) as { rule_files: string[]; tests: { alert_rule_test?: AlertRuleTest[] }[] };
      expect(doc.rule_files, f).toEqual(["../alerts.rules.yml"]);
      for (const t of doc.tests.flatMap((x) => x.alert_rule_test ?? [])) {
        const expected = t.exp_alerts ?? [];
        if (expected.length === 0) silent.add(t.alertname);
        else fires.add(t.alertname);
        for (const e of expected) {
          expect(e.exp_labels?.severity, `${f}: ${t.alertname} expects its severity`).toBeDefined();
          expect(Object.keys(e.exp_annotations ?? {}).sort(), `${f}: ${t.alertname} expects its annotations`).toEqual(["description", "runbook", "summary"]);
        }
      }
    }
    const names = ALERTS.map((a) => a.alert);
    expect(names.filter((n) => !fires.has(n)), "alerts without a test in which they fire").toEqual([]);
    expect(names.filter((n) => !silent.has(n)), "alerts without a test in which they stay silent").toEqual([]);
    expect([...fires, ...silent].filter((n) => !names.includes(n)), "tests of alerts that do not exist").toEqual([]);
  });
});
