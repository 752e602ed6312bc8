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

describe("cached exposition", () => {
  it("renders a source's families once per change, not once per scrape", async () => {
    const registry = new MetricRegistry({ cluster: "c1" }, { processMetrics: false });
    const slice = registry.ownerSlice("tailscale");
    expect(slice).toBeDefined();
    await registry.render(false);
    const before = slice!.version;
    for (let i = 0; i < 5; i++) await registry.exposition(false, false);
    expect(slice!.version).toBe(before);
    const series = new OwnedSeries(registry.handles.tailscaleDeviceOnline, METRICS.tailscaleDeviceOnline.labels);
    series.replace(Array.from({ length: 1000 }, (_, i) => ({ labels: { device: `d${i}`, hostname: `h${i}` }, value: i % 2 })));
    const text = await registry.render(false);
    expect(slice!.version).toBe(before + 1);
    expect(text).toContain('tailscale_device_online{device="d999",hostname="h999",cluster="c1"} 1');
    for (let i = 0; i < 5; i++) await registry.exposition(true, true);
    expect(slice!.version).toBe(before + 1);
  });

  it("serves the same exposition gzipped, as gzip members any reader joins, and OpenMetrics with one # EOF", async () => {
    const registry = new MetricRegistry({}, { processMetrics: false });
    registry.handles.talosServiceUp.set({ node: "n1", service: "etcd" }, 1);
    registry.handles.healthCheckSuccess.inc({ check: "api" });
    const plain = (await registry.exposition(false, false)).body;
    const zipped = await registry.exposition(false, true);
    expect(zipped.gzipped).toBe(true);
    expect(gunzipSync(zipped.body).equals(plain)).toBe(true);
    const om = (await registry.exposition(true, false)).body.toString();
    expect(om.match(/# EOF/g)).toHaveLength(1);
    expect(om.trimEnd().endsWith("# EOF")).toBe(true);
    expect(om).toContain("# TYPE health_check_success counter");
    expect(om).toContain('health_check_success_total{check="api"} 1');
    expect(gunzipSync((await registry.exposition(true, true)).body).toString()).toBe(om);
    // An OpenMetrics rendering must not change the text format's counter names.
    expect((await registry.render(false))).toContain('health_check_success_total{check="api"} 1');
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
