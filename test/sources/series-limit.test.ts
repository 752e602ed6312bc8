import { afterEach, describe, expect, it } from "vitest";
import { eventually, get, startRuntime, type TestRuntime } from "../helpers.ts";
import { startTailscaleSim, type TailscaleSim } from "../sim/tailscale.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEVICES = 2_000;
const LIMIT = 500;
/** Each simulated device has all four per-device series (online, key expiry, update available, authorized). */
const PER_DEVICE = 4;

async function setup(): Promise<{ sim: TailscaleSim; rt: TestRuntime }> {
  const sim = await startTailscaleSim({ devices: Array.from({ length: DEVICES }, () => ({})) });
  cleanups.push(() => sim.close());
  process.env.SERIES_LIMIT_TEST_KEY = sim.apiKey;
  const rt = await startRuntime({
    limits: { seriesPerSource: LIMIT },
    // Polled by hand after the first poll, so each step below sees exactly one more poll.
    sources: { tailscale: { baseUrl: sim.url, apiKey: { env: "SERIES_LIMIT_TEST_KEY" }, interval: "1h", timeout: "10s" } },
  });
  cleanups.push(() => rt.runtime.stop());
  await rt.runtime.sources.get("tailscale")?.firstResult;
  return { sim, rt };
}

async function scrape(rt: TestRuntime): Promise<{ tailscale: string[]; dropped: number }> {
  // A family changed twice in quick succession is rendered again after a pause (see CachedExposition); the poll
  // just made must be on this scrape.
  await rt.runtime.metrics.flush();
  const { status, body } = await get(`${rt.metricsUrl}/metrics`);
  expect(status).toBe(200);
  const lines = body.split("\n");
  const droppedLine = lines.find((l) => l.startsWith('sidecar_series_dropped_total{source="tailscale"}'));
  return { tailscale: lines.filter((l) => l.startsWith("tailscale_")), dropped: Number(droppedLine?.split(" ").at(-1)) };
}

const warnings = (rt: TestRuntime) => rt.logs.records().filter((r) => String(r.msg).startsWith("series limit reached"));

describe("per-source series limit", () => {
  it("exports exactly limits.seriesPerSource series of a source, counts the rest and warns once", async () => {
    const { sim, rt } = await setup();
    const produced = DEVICES * PER_DEVICE + 1; // + tailscale_devices_total{os="linux"}

    const first = await scrape(rt);
    expect(first.tailscale).toHaveLength(LIMIT);
    expect(first.dropped).toBe(produced - LIMIT);
    expect(rt.runtime.sources.sourceStatus("tailscale")?.up).toBe(true);
    expect(warnings(rt)).toHaveLength(1);
    expect(warnings(rt)[0]).toMatchObject({ level: "warn", source: "tailscale", limit: LIMIT });

    // A series already exported keeps updating at the limit.
    const kept = first.tailscale.find((l) => l.startsWith("tailscale_device_online{"));
    const device = kept?.match(/device="([^"]+)"/)?.[1];
    expect(device).toBeDefined();
    const simDevice = sim.devices.find((d) => d.name === device);
    expect(simDevice).toBeDefined();
    if (simDevice) sim.setOnline(simDevice.id, false, new Date(Date.now() - 3_600_000));

    await rt.runtime.sources.get("tailscale")?.refresh();
    const second = await scrape(rt);
    expect(second.tailscale).toHaveLength(LIMIT);
    expect(second.tailscale.find((l) => l.startsWith(`tailscale_device_online{device="${device}"`))).toMatch(/ 0$/);
    expect(second.dropped).toBe(2 * (produced - LIMIT));
    // Drops go on every poll; the log does not.
    expect(warnings(rt)).toHaveLength(1);
    expect((await get(`${rt.healthUrl}/healthz`)).status).toBe(200);

    // Once devices go, their room is free again and every remaining series is exported.
    sim.devices = sim.devices.slice(0, 50);
    await rt.runtime.sources.get("tailscale")?.refresh();
    const third = await eventually(async () => {
      const s = await scrape(rt);
      return s.tailscale.length === 50 * PER_DEVICE + 1 ? s : undefined;
    });
    expect(third.dropped).toBe(second.dropped);
  });
});
