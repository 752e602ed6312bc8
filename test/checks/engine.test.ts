import { afterEach, describe, expect, it } from "vitest";
import { CheckEngine } from "../../src/checks/engine.ts";
import type { Prober } from "../../src/checks/types.ts";
import { createLogging } from "../../src/log.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { readiness } from "../../src/health/aggregate.ts";
import { CheckStore, type CheckStatus } from "../../src/state/checks.ts";
import { LogCapture, configFrom } from "../helpers.ts";

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function build(check: Record<string, unknown>, prober: Prober, store = new CheckStore()) {
  const config = configFrom({ healthChecks: { dependencies: [{ type: "tcp", address: "unused:1", ...check }] } });
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const logs = new LogCapture();
  const engine = new CheckEngine(store, { logger: createLogging(config.logging, logs).root, sources: { sourceStatus: () => undefined } }, metrics.handles, () => prober);
  for (const spec of config.checks) engine.add(spec);
  stops.push(() => engine.stop());
  return { engine, store, metrics, logs, spec: config.checks[0]! };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("check engine", () => {
  it("runs each check on its own interval", async () => {
    let runs = 0;
    const { engine } = build({ name: "tick", interval: "100ms", timeout: "50ms" }, {
      probe: async () => {
        runs++;
        return { ok: true };
      },
      close: async () => undefined,
    });
    engine.start();
    await sleep(1_050);
    // 100 ms ± 5 % over one second, first run within 10 ms of start: 10 or 11 runs, allowing for a slow machine.
    expect(runs).toBeGreaterThanOrEqual(7);
    expect(runs).toBeLessThanOrEqual(12);
  });

  it("spreads checks that start together over their interval from the second round on", async () => {
    const count = 60;
    const config = configFrom({
      healthChecks: { dependencies: Array.from({ length: count }, (_, i) => ({ type: "tcp", name: `c${i}`, address: "unused:1", interval: "1s", timeout: "100ms" })) },
    });
    const runs = new Map<string, number[]>();
    const t0 = performance.now();
    const engine = new CheckEngine(new CheckStore(), { logger: createLogging(config.logging, new LogCapture()).root, sources: { sourceStatus: () => undefined } }, undefined, (spec) => ({
      probe: async () => {
        runs.set(spec.name, [...(runs.get(spec.name) ?? []), performance.now() - t0]);
        return { ok: true };
      },
      close: async () => undefined,
    }));
    for (const spec of config.checks) engine.add(spec);
    stops.push(() => engine.stop());
    engine.start();
    await sleep(1_900);
    const first = [...runs.values()].map((r) => r[0]!);
    const second = [...runs.values()].filter((r) => r.length > 1).map((r) => r[1]!);
    // The first round: all within the start jitter (100 ms for a 1 s interval).
    expect(Math.max(...first) - Math.min(...first)).toBeLessThan(400);
    // The second: spread over about an interval (0.5 to 1.5 s after the first), not bunched like the first.
    expect(second.length).toBe(count);
    expect(Math.max(...second) - Math.min(...second)).toBeGreaterThan(600);
    for (const r of runs.values()) expect(r[1]! - r[0]!).toBeGreaterThanOrEqual(450);
  });

  it("never overlaps a check with itself, even when a probe ignores its timeout", async () => {
    let running = 0;
    let maxRunning = 0;
    let started = 0;
    const stubborn: Prober = {
      // Ignores the abort signal on purpose: the engine must still cut the run off and not start another.
      probe: async () => {
        started++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(450);
        running--;
        return { ok: true };
      },
      close: async () => undefined,
    };
    const { engine, store, metrics } = build({ name: "slow", interval: "100ms", timeout: "50ms" }, stubborn);
    engine.start();
    await sleep(1_300);
    expect(maxRunning).toBe(1);
    expect(started).toBeGreaterThanOrEqual(2);
    expect(store.view("slow")?.result).toMatchObject({ ok: false, reason: "timeout", message: "timed out after 50ms" });
    const skipped = metrics.handles.healthCheckSkipped.value({ check: "slow" }) ?? 0;
    expect(skipped).toBeGreaterThan(0);
  });

  it("records duration, success and failure counters and the last-run time", async () => {
    let ok = true;
    const { engine, metrics } = build({ name: "flip" }, { probe: async () => ({ ok }), close: async () => undefined });
    await engine.runOnce("flip");
    ok = false;
    await engine.runOnce("flip");
    await engine.runOnce("flip");
    const text = await metrics.render(false);
    expect(text).toMatch(/^health_check_success_total\{check="flip"\} 1$/m);
    expect(text).toMatch(/^health_check_failure_total\{check="flip"\} 2$/m);
    expect(text).toMatch(/^health_check_duration_seconds_count\{check="flip"\} 3$/m);
    expect(text).toMatch(/^health_check_last_run_timestamp_seconds\{check="flip"\} \d{10}\.?\d*$/m);
  });

  it("turns a thrown error into a classified failure", async () => {
    const { engine } = build({ name: "boom" }, {
      probe: async () => {
        throw Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:443"), { code: "ECONNREFUSED" });
      },
      close: async () => undefined,
    });
    expect(await engine.runOnce("boom")).toMatchObject({ ok: false, reason: "connection", message: "connect ECONNREFUSED 10.0.0.1:443" });
  });
});

describe("staleness", () => {
  it("counts a result older than 2 × interval + timeout as failing, and says so to watchers", async () => {
    let now = 1_000_000;
    const store = new CheckStore(() => now);
    const { engine, spec } = build({ name: "gate", interval: "1s", timeout: "500ms", critical: true }, { probe: async () => ({ ok: true }), close: async () => undefined }, store);
    const seen: CheckStatus[] = [];
    store.on("change", (_name, status) => seen.push(status));
    expect(store.view("gate")?.status).toBe("pending");
    expect(readiness(store, { shuttingDown: false }).ok).toBe(false);

    const result = await engine.runOnce("gate");
    now = result!.checkedAt;
    expect(store.view("gate")?.status).toBe("pass");
    expect(readiness(store, { shuttingDown: false }).ok).toBe(true);

    now += 2 * spec.intervalMs + spec.timeoutMs; // exactly at the limit: still fresh
    expect(store.view("gate")?.status).toBe("pass");
    now += 1;
    expect(store.view("gate")?.status).toBe("stale");
    const report = readiness(store, { shuttingDown: false });
    expect(report.ok).toBe(false);
    expect(report.items.find((i) => i.name === "gate")?.reason).toBe("stale: last result is 3s old");

    store.startSweeping(10);
    await sleep(50);
    store.stopSweeping();
    expect(seen).toEqual(["pass", "stale"]);
  });
});
