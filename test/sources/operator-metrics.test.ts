import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseExposition, renderFamilies } from "../../src/metrics/text-format.ts";
import { eventually, get, httpServer, startRuntime, type TestRuntime, type TestServer } from "../helpers.ts";

const OPERATOR_METRICS = `# HELP controller_runtime_reconcile_total Total number of reconciliations per controller
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="taloscluster",result="success"} 42
controller_runtime_reconcile_total{controller="taloscluster",result="error"} 3
# HELP talos_operator_reconciliation_duration_seconds Reconciliation duration.
# TYPE talos_operator_reconciliation_duration_seconds histogram
talos_operator_reconciliation_duration_seconds_bucket{le="0.1"} 5
talos_operator_reconciliation_duration_seconds_bucket{le="+Inf"} 9
talos_operator_reconciliation_duration_seconds_sum 1.5
talos_operator_reconciliation_duration_seconds_count 9
# HELP health_check_up The operator's own gauge, which would clash with ours.
# TYPE health_check_up gauge
health_check_up{check="operator"} 1
# TYPE workqueue_depth gauge
workqueue_depth{name="taloscluster",note="a \\"quoted\\" value"} 0
`;

let operator: TestServer;
let rt: TestRuntime;
let body = OPERATOR_METRICS;
let status = 200;
let seenAuth: string | undefined;

afterEach(async () => {
  await rt?.runtime.stop();
  await operator?.close();
  body = OPERATOR_METRICS;
  status = 200;
});

async function start(extra: Record<string, unknown> = {}) {
  operator = await httpServer((req, res) => {
    seenAuth = req.headers.authorization;
    res.statusCode = status;
    res.end(body);
  });
  rt = await startRuntime({
    metrics: { custom: { labels: { cluster: "prod" } } },
    sources: { operatorMetrics: { url: `${operator.url}/metrics`, interval: "100ms", timeout: "80ms", ...extra } },
  });
  await eventually(() => rt.runtime.sources.sourceStatus("operator-metrics")?.up);
}

describe("operator metrics passthrough", () => {
  it("appends the operator's families to /metrics with our labels, and drops clashing ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tok-"));
    writeFileSync(join(dir, "token"), "sa-token-value-123\n");
    await start({ bearerTokenFile: join(dir, "token") });
    expect(seenAuth).toBe("Bearer sa-token-value-123");
    const text = (await get(`${rt.metricsUrl}/metrics`)).body;
    expect(text).toContain('controller_runtime_reconcile_total{controller="taloscluster",result="success",cluster="prod"} 42');
    expect(text).toContain('talos_operator_reconciliation_duration_seconds_bucket{le="+Inf",cluster="prod"} 9');
    expect(text).toContain('workqueue_depth{name="taloscluster",note="a \\"quoted\\" value",cluster="prod"} 0');
    expect(text).not.toContain('check="operator"');
    expect(text).toMatch(/^sidecar_passthrough_dropped_total\{reason="name_clash",cluster="prod"\} [1-9]\d*$/m);
    expect(text).toMatch(/^sidecar_source_up\{source="operator-metrics",cluster="prod"\} 1$/m);
    expect(rt.logs.text).toContain("operator metric family dropped");
    // One warning per family, however many polls.
    await new Promise((r) => setTimeout(r, 300));
    expect(rt.logs.lines.filter((l) => l.includes("operator metric family dropped"))).toHaveLength(1);
  });

  it("keeps OpenMetrics valid: counters renamed for the family, everything before # EOF", async () => {
    await start();
    const om = (await get(`${rt.metricsUrl}/metrics`, { accept: "application/openmetrics-text; version=1.0.0" })).body;
    expect(om).toContain("# TYPE controller_runtime_reconcile counter");
    expect(om).toContain('controller_runtime_reconcile_total{controller="taloscluster",result="error",cluster="prod"} 3');
    expect(om).toContain("# TYPE workqueue_depth gauge");
    expect(om.trimEnd().endsWith("# EOF")).toBe(true);
    expect(om.indexOf("# EOF")).toBe(om.lastIndexOf("# EOF"));
  });

  it("keeps the last good families when the operator breaks, and reports why", async () => {
    await start();
    body = "this is not an exposition {{{";
    await eventually(() => rt.runtime.sources.sourceStatus("operator-metrics")?.up === false);
    expect(rt.runtime.sources.sourceStatus("operator-metrics")?.error).toMatch(/did not answer in the Prometheus text format/);
    let text = (await get(`${rt.metricsUrl}/metrics`)).body;
    expect(text).toContain("controller_runtime_reconcile_total");
    expect(text).toMatch(/^sidecar_source_errors_total\{source="operator-metrics",reason="decode",cluster="prod"\} [1-9]/m);
    status = 401;
    body = OPERATOR_METRICS;
    await eventually(async () => /reason="unauthorized"/.test((await get(`${rt.metricsUrl}/metrics`)).body));
    text = (await get(`${rt.metricsUrl}/metrics`)).body;
    expect(text).toContain("controller_runtime_reconcile_total");
  });

  it("merges only as many series as limits.seriesPerSource allows, whole families, and counts the rest", async () => {
    // Two reconcile counters and four histogram samples make six; the clashing family is not merged anyway, and
    // workqueue_depth would be the seventh.
    operator = await httpServer((_req, res) => res.end(OPERATOR_METRICS));
    rt = await startRuntime({ limits: { seriesPerSource: 6 }, sources: { operatorMetrics: { url: operator.url, interval: "100ms", timeout: "80ms" } } });
    await eventually(() => rt.runtime.sources.sourceStatus("operator-metrics")?.up);
    const text = await eventually(async () => {
      const t = (await get(`${rt.metricsUrl}/metrics`)).body;
      return t.includes("controller_runtime_reconcile_total") ? t : undefined;
    });
    expect(text).toContain("talos_operator_reconciliation_duration_seconds_count 9");
    expect(text).not.toContain("workqueue_depth");
    expect(text).toMatch(/^sidecar_series_dropped_total\{source="operator-metrics"\} [1-9]\d*$/m);
    expect(rt.logs.text).toContain("series limit reached");
    expect(rt.runtime.sources.sourceStatus("operator-metrics")?.detail).toBe("2 families merged, 1 dropped (name clash), 1 left out (series limit)");
  });

  it("refuses a body larger than maxBodyBytes", async () => {
    body = `${OPERATOR_METRICS}${"# padding\n".repeat(2_000)}`;
    operator = await httpServer((_req, res) => res.end(body));
    rt = await startRuntime({ sources: { operatorMetrics: { url: operator.url, interval: "100ms", timeout: "80ms", maxBodyBytes: 4096 } } });
    await eventually(() => rt.runtime.sources.sourceStatus("operator-metrics")?.error);
    expect(rt.runtime.sources.sourceStatus("operator-metrics")?.error).toMatch(/larger than 4096 bytes/);
  });
});

describe("exposition reader", () => {
  it("reads families, types, escaped labels and timestamps, and reports bad lines", () => {
    const parsed = parseExposition(
      [
        "# TYPE a counter",
        'a_total{x="1\\n2"} 5 1700000000000',
        "# TYPE h histogram",
        'h_bucket{le="1"} 1',
        "h_count 1",
        "h_sum 0.5",
        "untyped_thing 3.5e-3",
        "bad line here",
        'broken{x="unterminated} 1',
        "nan_value NaN",
        "h 2",
      ].join("\n"),
    );
    expect(parsed.families.map((f) => [f.name, f.type, f.samples.length])).toEqual([
      ["a", "counter", 1],
      ["h", "histogram", 3],
      ["untyped_thing", "untyped", 1],
      ["nan_value", "untyped", 1],
    ]);
    expect(parsed.families[0]?.samples[0]).toEqual({ name: "a_total", labels: [["x", "1\n2"]], value: "5", timestamp: "1700000000000" });
    expect(parsed.errors).toHaveLength(3);
    expect(parsed.errors[0]).toMatch(/^line 8: bad value/);
    expect(parsed.errors[2]).toBe("line 11: sample h does not belong to the histogram h (its samples are h_bucket, h_sum, h_count, h_created)");
    const round = renderFamilies(parsed.families, {}, "text");
    expect(round).toContain('a_total{x="1\\n2"} 5 1700000000000');
    expect(renderFamilies(parsed.families, {}, "openmetrics")).toContain('a_total{x="1\\n2"} 5 1700000000');
  });
});

describe("sources in readiness", () => {
  it("lists each source in /readyz?verbose without letting it decide readiness", async () => {
    operator = await httpServer((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    rt = await startRuntime({ sources: { operatorMetrics: { url: operator.url, interval: "100ms", timeout: "80ms" } } });
    await eventually(() => rt.runtime.sources.sourceStatus("operator-metrics")?.error);
    const verbose = await get(`${rt.healthUrl}/readyz?verbose`);
    expect(verbose.status).toBe(200);
    expect(verbose.body).toMatch(/^\[-\]source\/operator-metrics failed: .*answered 500 \(not critical\)$/m);
    expect(verbose.body).toMatch(/readyz check passed\n$/);
    const one = await get(`${rt.healthUrl}/readyz/source/operator-metrics`);
    expect(one.status).toBe(503);
    const excluded = await get(`${rt.healthUrl}/readyz?verbose&exclude=source/operator-metrics`);
    expect(excluded.body).not.toMatch(/^\[-\]source/m);
    const debug = JSON.parse((await get(`${rt.healthUrl}/debug/status`)).body);
    expect(debug.sources[0]).toMatchObject({ name: "operator-metrics", up: false, reason: "other" });
  });
});
