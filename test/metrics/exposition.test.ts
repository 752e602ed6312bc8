import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { OwnedSeries } from "../../src/metrics/series.ts";
import { METRICS } from "../../src/metrics/catalogue.ts";
import { get, startRuntime, type TestRuntime } from "../helpers.ts";
import { request } from "undici";

const runtimes: TestRuntime[] = [];
afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.runtime.stop();
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
    expect(res.headers.vary).toBe("Accept-Encoding");
    const body = Buffer.from(await res.body.arrayBuffer());
    expect(gunzipSync(body).toString()).toContain("# TYPE sidecar_ready gauge");
    const refused = await request(`${rt.metricsUrl}/metrics`, { headers: { "accept-encoding": "gzip;q=0" } });
    expect(refused.headers["content-encoding"]).toBeUndefined();
    await refused.body.dump();
    expect((await get(`${rt.metricsUrl}/metrics`)).headers["content-encoding"]).toBeUndefined();
  });
});
