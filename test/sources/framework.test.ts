import { afterEach, describe, expect, it } from "vitest";
import { UpstreamError } from "../../src/errors.ts";
import { createLogging } from "../../src/log.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { OwnedSeries } from "../../src/metrics/series.ts";
import { RetryAfterError } from "../../src/sources/health.ts";
import { PolledSource, nextDelayMs } from "../../src/sources/poller.ts";
import { SourceRegistry } from "../../src/sources/registry.ts";
import type { PollDriver } from "../../src/sources/types.ts";
import { LogCapture, configFrom } from "../helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function polled(driver: PollDriver, intervalMs = 100, timeoutMs = 50) {
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const logs = new LogCapture();
  const logger = createLogging(configFrom({ logging: { level: "debug" } }).logging, logs).root;
  const source = new PolledSource("talos", { intervalMs, timeoutMs }, driver, metrics.handles, logger);
  stops.push(() => source.stop());
  return { source, metrics, logs };
}

describe("poll schedule", () => {
  it("waits the interval after success, doubles after failures up to a cap, and honours Retry-After", () => {
    const s = { intervalMs: 10_000, timeoutMs: 5_000 };
    expect(nextDelayMs(s, 0)).toBe(10_000);
    expect(nextDelayMs(s, 1)).toBe(10_000);
    expect(nextDelayMs(s, 2)).toBe(20_000);
    expect(nextDelayMs(s, 3)).toBe(40_000);
    expect(nextDelayMs(s, 20)).toBe(300_000);
    expect(nextDelayMs(s, 1, 90_000)).toBe(90_000);
    expect(nextDelayMs({ intervalMs: 600_000, timeoutMs: 1 }, 5)).toBe(600_000);
  });
});

describe("polled source", () => {
  it("reports up, last success and duration, then errors by reason, keeping the last detail", async () => {
    let fail: Error | undefined;
    const { source, metrics } = polled({
      poll: async () => {
        if (fail) throw fail;
        return { detail: "3 nodes", healthy: true };
      },
      close: async () => undefined,
    });
    expect((await source.pollOnce())?.ok).toBe(true);
    expect(source.status()).toMatchObject({ up: true, detail: "3 nodes", healthy: true });
    fail = new UpstreamError("denied", "unauthorized");
    await source.pollOnce();
    fail = new RetryAfterError("slow down", 30_000);
    const limited = await source.pollOnce();
    expect(limited).toEqual({ ok: false, retryAfterMs: 30_000 });
    const text = await metrics.render(false);
    expect(text).toMatch(/^sidecar_source_up\{source="talos"\} 0$/m);
    expect(text).toMatch(/^sidecar_source_errors_total\{source="talos",reason="unauthorized"\} 1$/m);
    expect(text).toMatch(/^sidecar_source_errors_total\{source="talos",reason="rate_limited"\} 1$/m);
    expect(text).toMatch(/^sidecar_source_last_success_timestamp_seconds\{source="talos"\} \d{10}/m);
    expect(text).toMatch(/^sidecar_source_poll_duration_seconds_count\{source="talos"\} 3$/m);
    expect(source.status()).toMatchObject({ up: false, error: "slow down" });
    expect(source.debug()).toMatchObject({ name: "talos", up: false, consecutiveFailures: 2, reason: "rate_limited" });
  });

  it("cuts a poll off at its timeout and never runs two at once", async () => {
    let running = 0;
    let max = 0;
    const { source } = polled(
      {
        // Ignores the abort on purpose.
        poll: async () => {
          running++;
          max = Math.max(max, running);
          await sleep(200);
          running--;
          return {};
        },
        close: async () => undefined,
      },
      60,
      30,
    );
    source.start();
    await sleep(700);
    expect(max).toBe(1);
    expect(source.status()).toMatchObject({ up: false, error: "timed out after 30ms" });
  });
});

describe("owned series", () => {
  it("sets the new set before removing what is gone, and leaves other owners alone", async () => {
    const metrics = new MetricRegistry({}, { processMetrics: false });
    const gauge = metrics.handles.talosServiceUp;
    const mine = new OwnedSeries(gauge, ["node", "service"]);
    gauge.set({ node: "other", service: "kept" }, 1);
    mine.replace([
      { labels: { node: "a", service: "etcd" }, value: 1 },
      { labels: { node: "b", service: "etcd" }, value: 0 },
    ]);
    mine.replace([{ labels: { node: "a", service: "etcd" }, value: 0 }]);
    const text = await metrics.render(false);
    expect(text).toMatch(/^talos_service_up\{node="a",service="etcd"\} 0$/m);
    expect(text).not.toContain('node="b"');
    expect(text).toContain('node="other",service="kept"');
    expect(mine.size).toBe(1);
  });
});

describe("source registry", () => {
  it("answers status by name and undefined for sources that are not configured", async () => {
    const { source } = polled({ poll: async () => ({ detail: "ok" }), close: async () => undefined });
    const registry = new SourceRegistry([source]);
    await source.refresh();
    expect(registry.sourceStatus("talos")).toMatchObject({ up: true });
    expect(registry.sourceStatus("tailscale")).toBeUndefined();
    expect(registry.backupTarget("x")).toBeUndefined();
    expect(registry.debug()[0]).toMatchObject({ name: "talos", up: true, intervalSeconds: 0.1 });
  });
});
