import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { OwnedSeries } from "../../src/metrics/series.ts";
import { METRICS } from "../../src/metrics/catalogue.ts";
import { Histogram as PromHistogram, Registry } from "prom-client";
import { OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE } from "../../src/metrics/registry.ts";
import { inBothFormats } from "../../src/metrics/text-format.ts";
import { eventually, get, httpServer, startRuntime, type TestRuntime, type TestServer } from "../helpers.ts";
import { request } from "undici";
import { openMetricsViolations } from "./openmetrics-abnf.ts";

const runtimes: TestRuntime[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.runtime.stop();
  for (const s of servers.splice(0)) await s.close();
});

const bodyOf = (e: { parts: readonly Buffer[] }) => Buffer.concat(e.parts);

describe("cached exposition", () => {
  it("renders a family once per change, not once per scrape, and not at all when values are set to what they were", async () => {
    const registry = new MetricRegistry({ cluster: "c1" }, { processMetrics: false });
    await registry.render(false);
    const family = METRICS.tailscaleDeviceOnline.name;
    const before = registry.renderCount(family);
    for (let i = 0; i < 5; i++) await registry.exposition(false, false);
    expect(registry.renderCount(family)).toBe(before);
    const series = new OwnedSeries(registry.handles.tailscaleDeviceOnline, METRICS.tailscaleDeviceOnline.labels);
    const devices = Array.from({ length: 1000 }, (_, i) => ({ labels: { device: `d${i}`, hostname: `h${i}` }, value: i % 2 }));
    series.replace(devices);
    const text = await registry.render(false);
    expect(registry.renderCount(family)).toBe(before + 1);
    expect(text).toContain('tailscale_device_online{device="d999",hostname="h999",cluster="c1"} 1');
    for (let i = 0; i < 5; i++) await registry.exposition(true, true);
    expect(registry.renderCount(family)).toBe(before + 1);
    // The next poll reports the same world: nothing to render.
    series.replace(devices);
    await registry.render(false);
    expect(registry.renderCount(family)).toBe(before + 1);
    // Other families were not rendered again for this one's sake.
    expect(registry.renderCount(METRICS.talosServiceUp.name)).toBe(1);
  });

  it("gathers changes that come faster than rendering may run into one rendering", async () => {
    // A cost factor so high that every rendering is followed by the longest wait: 300 ms.
    const registry = new MetricRegistry({}, { processMetrics: false, maxRenderIntervalMs: 300, renderCostFactor: 1e9 });
    await registry.render(false);
    const name = METRICS.healthCheckDuration.name;
    const rendered = registry.renderCount(name);
    const scraped = async () => bodyOf(await registry.exposition(false, false)).toString("utf8");
    await new Promise((r) => setTimeout(r, 350));
    registry.handles.healthCheckDuration.observe({ check: "a" }, 0.004);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    // The first change after a quiet spell is served at once.
    expect(await scraped()).toContain('health_check_duration_seconds_count{check="a"} 1');
    for (let i = 0; i < 50; i++) registry.handles.healthCheckDuration.observe({ check: "a" }, 0.004);
    await new Promise((r) => setTimeout(r, 20));
    expect(await scraped()).toContain('health_check_duration_seconds_count{check="a"} 1\n');
    await new Promise((r) => setTimeout(r, 400));
    expect(await scraped()).toContain('health_check_duration_seconds_count{check="a"} 51\n');
    expect(registry.renderCount(name)).toBe(rendered + 2);
    registry.close();
  });

  it("serves the same exposition gzipped, as gzip members any reader joins, and OpenMetrics with one # EOF", async () => {
    const registry = new MetricRegistry({}, { processMetrics: false });
    registry.handles.talosServiceUp.set({ node: "n1", service: "etcd" }, 1);
    registry.handles.healthCheckSuccess.inc({ check: "api" });
    registry.handles.healthCheckDuration.observe({ check: "api" }, 0.2);
    await registry.render(false);
    const plain = bodyOf(await registry.exposition(false, false));
    const zipped = await registry.exposition(false, true);
    expect(zipped.gzipped).toBe(true);
    expect(zipped.length).toBe(bodyOf(zipped).length);
    expect(gunzipSync(bodyOf(zipped)).equals(plain)).toBe(true);
    const om = bodyOf(await registry.exposition(true, false)).toString();
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(om.trimEnd().endsWith("# EOF")).toBe(true);
    expect(om).toContain("# TYPE health_check_success counter");
    expect(om).toContain('health_check_success_total{check="api"} 1');
    expect(om).toContain('health_check_duration_seconds_bucket{check="api",le="0.25"} 1');
    expect(om).toContain('health_check_duration_seconds_bucket{check="api",le="0.1"} 0');
    expect(gunzipSync(bodyOf(await registry.exposition(true, true))).toString()).toBe(om);
    expect(await registry.render(false)).toContain('health_check_success_total{check="api"} 1');
    expect(await registry.render(false)).toContain("# TYPE health_check_success_total counter");
  });

  it("answers Accept-Encoding: gzip with a gzip body over HTTP", async () => {
    const rt = await startRuntime({});
    runtimes.push(rt);
    const res = await request(`${rt.metricsUrl}/metrics`, { headers: { "accept-encoding": "gzip, deflate" } });
    expect(res.headers["content-encoding"]).toBe("gzip");
    expect(res.headers.vary).toBe("Accept, Accept-Encoding");
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(gunzipSync(body).toString()).toContain("# TYPE sidecar_ready gauge");
    const refused = await request(`${rt.metricsUrl}/metrics`, { headers: { "accept-encoding": "gzip;q=0" } });
    expect(refused.headers["content-encoding"]).toBeUndefined();
    await refused.body.dump();
    expect((await get(`${rt.metricsUrl}/metrics`)).headers["content-encoding"]).toBeUndefined();
  });
});

const OPENMETRICS_1 = "application/openmetrics-text;version=1.0.0";
/** What Prometheus 2 and 3 send by default. */
const PROMETHEUS_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROMETHEUS_3 =
  "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
/** An Accept header, and the Content-Type it must be answered with (or 406). */
const NEGOTIATED: [string | undefined, string | 406][] = [
  [undefined, TEXT_CONTENT_TYPE],
  ["*/*", TEXT_CONTENT_TYPE],
  [OPENMETRICS_1, OPENMETRICS_CONTENT_TYPE],
  ["application/openmetrics-text", OPENMETRICS_CONTENT_TYPE],
  [PROMETHEUS_2, OPENMETRICS_CONTENT_TYPE],
  [PROMETHEUS_3, OPENMETRICS_CONTENT_TYPE],
  // Weights decide, not the mere mention of OpenMetrics.
  ["application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.9", TEXT_CONTENT_TYPE],
  ["text/plain;version=0.0.4;q=0.3, application/openmetrics-text;version=1.0.0;q=0.6", OPENMETRICS_CONTENT_TYPE],
  // q=0 is "not acceptable", even beside a wildcard that would match.
  ["application/openmetrics-text; version=1.0.0; q=0, */*", TEXT_CONTENT_TYPE],
  ["text/plain;q=0, application/openmetrics-text;q=0.2", OPENMETRICS_CONTENT_TYPE],
  ["text/plain;q=0", 406],
  ["*/*;q=0", 406],
  // A version of OpenMetrics this exporter does not write is not offered: the default answers.
  ["application/openmetrics-text;version=2.0.0", TEXT_CONTENT_TYPE],
  ["application/openmetrics-text;version=0.0.1", TEXT_CONTENT_TYPE],
  ["application/json", TEXT_CONTENT_TYPE],
];

async function negotiatedBy(metricsUrl: string): Promise<Record<string, string | number>> {
  const answers: Record<string, string | number> = {};
  for (const [accept] of NEGOTIATED) {
    const res = await request(`${metricsUrl}/metrics`, { headers: accept === undefined ? {} : { accept } });
    const body = await res.body.text();
    const type = String(res.headers["content-type"]);
    // The body is the one the Content-Type names.
    if (type === OPENMETRICS_CONTENT_TYPE) expect(body.endsWith("# EOF\n")).toBe(true);
    if (type === TEXT_CONTENT_TYPE) expect(body).not.toContain("# EOF");
    answers[String(accept)] = res.statusCode === 406 ? 406 : type;
  }
  return answers;
}

const expectedNegotiation = Object.fromEntries(NEGOTIATED.map(([accept, answer]) => [String(accept), answer]));

describe("format negotiation over HTTP", () => {
  it("picks the format by the Accept header's weights, refuses only what q=0 rules out, and says it varies by Accept", async () => {
    const rt = await startRuntime({});
    runtimes.push(rt);
    expect(await negotiatedBy(rt.metricsUrl)).toEqual(expectedNegotiation);
    const refused = await get(`${rt.metricsUrl}/metrics`, { accept: "text/plain;q=0" });
    expect(JSON.parse(refused.body).error).toContain("application/openmetrics-text; version=1.0.0");
    expect((await get(`${rt.metricsUrl}/metrics`)).headers.vary).toBe("Accept, Accept-Encoding");
  });

  it("the scrape thread negotiates the same way", async () => {
    const rt = await startRuntime({ metrics: { scrapeThread: true } });
    runtimes.push(rt);
    expect(await negotiatedBy(rt.metricsUrl)).toEqual(expectedNegotiation);
  });
});

/** HELP with a double quote, a backslash and a line break, in the text format's own escaping. */
const OPERATOR_METRICS = String.raw`# HELP op_requests_total Requests by "kind", from C:\\temp\nand a second line.
# TYPE op_requests_total counter
op_requests_total{kind="a"} 3
# HELP op_latency_seconds Latency.
# TYPE op_latency_seconds histogram
op_latency_seconds_bucket{le="0.5"} 1
op_latency_seconds_bucket{le="1"} 2
op_latency_seconds_bucket{le="1e+06"} 2
op_latency_seconds_bucket{le="+Inf"} 2
op_latency_seconds_sum 1.2
op_latency_seconds_count 2
# HELP op_rpc_seconds RPC latency.
# TYPE op_rpc_seconds summary
op_rpc_seconds{quantile="0.5"} 0.1
op_rpc_seconds{quantile="1"} 0.3
op_rpc_seconds_sum 0.4
op_rpc_seconds_count 2
`;

describe("HELP text and bucket bounds in each format", () => {
  it("escapes HELP as each format asks, writes bounds and quantiles canonically, and the OpenMetrics scrape fits the ABNF", async () => {
    const operator = await httpServer((_req, res) => res.end(OPERATOR_METRICS));
    servers.push(operator);
    const rt = await startRuntime({ sources: { operatorMetrics: { url: `${operator.url}/metrics`, interval: "200ms", timeout: "150ms" } } });
    runtimes.push(rt);
    rt.runtime.metrics.handles.healthCheckDuration.observe({ check: "api" }, 0.7);
    await eventually(async () => (await get(`${rt.metricsUrl}/metrics`)).body.includes("op_requests_total"));
    await rt.runtime.metrics.flush();
    const text = (await get(`${rt.metricsUrl}/metrics`)).body;
    const om = (await get(`${rt.metricsUrl}/metrics`, { accept: OPENMETRICS_1 })).body;

    // Text format: backslash and line feed escaped, the double quote as it is.
    expect(text).toContain(String.raw`# HELP op_requests_total Requests by "kind", from C:\\temp\nand a second line.` + "\n");
    // OpenMetrics: an escaped-string, so the double quote is escaped too.
    expect(om).toContain(String.raw`# HELP op_requests Requests by \"kind\", from C:\\temp\nand a second line.` + "\n");

    // Bounds and quantiles in the form OpenMetrics asks for, the same in both formats: one series whichever is scraped.
    for (const body of [text, om]) {
      expect(body).toContain('op_latency_seconds_bucket{le="0.5"} 1');
      expect(body).toContain('op_latency_seconds_bucket{le="1.0"} 2');
      expect(body).toContain('op_latency_seconds_bucket{le="1e+06"} 2');
      expect(body).toContain('op_latency_seconds_bucket{le="+Inf"} 2');
      expect(body).toContain('op_rpc_seconds{quantile="1.0"} 0.3');
      expect(body).toContain('health_check_duration_seconds_bucket{check="api",le="0.5"} 0');
      expect(body).toContain('health_check_duration_seconds_bucket{check="api",le="1.0"} 1');
      expect(body).toContain('health_check_duration_seconds_bucket{check="api",le="10.0"} 1');
      expect(body).toContain('health_check_duration_seconds_bucket{check="api",le="+Inf"} 1');
      expect(body).not.toMatch(/le="\d+"/);
    }
    expect(openMetricsViolations(om)).toEqual([]);
  });
});

describe("process metrics", () => {
  it("are written anew by the same writer: prom-client's bounds come out canonical in both formats", async () => {
    const registry = new Registry();
    const histogram = new PromHistogram({ name: "gc_like_seconds", help: 'A "quoted" help', buckets: [0.001, 1, 5], registers: [registry] });
    histogram.observe(0.5);
    const raw = await registry.metrics();
    expect(raw).toContain('le="1"');
    const forms = inBothFormats(raw);
    for (const body of [forms.text, forms.openMetrics]) {
      expect(body).toContain('gc_like_seconds_bucket{le="0.001"} 0');
      expect(body).toContain('gc_like_seconds_bucket{le="1.0"} 1');
      expect(body).toContain('gc_like_seconds_bucket{le="5.0"} 1');
    }
    expect(forms.text).toContain('# HELP gc_like_seconds A "quoted" help\n');
    expect(forms.openMetrics).toContain('# HELP gc_like_seconds A \\"quoted\\" help\n');
    expect(openMetricsViolations(`${forms.openMetrics}# EOF\n`)).toEqual([]);
  });
});
