import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CATALOGUE } from "../src/metrics/catalogue.ts";
import { EVENT_ONLY, startDemoRun, type DemoRun } from "./demo-run.ts";
import { eventually, get, healthClient } from "./helpers.ts";

let demoRun: DemoRun;
let demo: DemoRun["demo"];
let run: DemoRun["run"];
let metricsUrl = "";
let healthUrl = "";
let grpcAddress = "";

beforeAll(async () => {
  demoRun = await startDemoRun();
  ({ demo, run, healthUrl, grpcAddress } = demoRun);
  metricsUrl = `http://${demoRun.metricsAddress}/metrics`;
}, 60_000);

afterAll(async () => {
  await demoRun?.stop();
});

function familiesWithSamples(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    names.add(line.slice(0, line.search(/[{ ]/)));
  }
  return names;
}

describe("demo", () => {
  it("populates every metric family of the catalogue", async () => {
    // As the kubelet would: one gRPC probe, and a first scrape, whose duration the next scrape reports.
    const client = healthClient(grpcAddress);
    await new Promise<void>((resolve, reject) => client.Check({ service: "" }, (err) => (err ? reject(err) : resolve())));
    client.close();
    await get(metricsUrl);
    const text = (await get(metricsUrl)).body;
    const present = familiesWithSamples(text);
    const missing = CATALOGUE.filter((m) => !EVENT_ONLY.has(m.name))
      .filter((m) => {
        const names = m.type === "histogram" ? [`${m.name}_count`] : [m.name];
        return !names.some((n) => present.has(n));
      })
      .map((m) => m.name);
    expect(missing).toEqual([]);
    expect(text).toContain("controller_runtime_reconcile_total");
  });

  it("reports every source up and is ready", async () => {
    await eventually(async () => (await get(`${healthUrl}/readyz`)).status === 200, 10_000);
    const verbose = await get(`${healthUrl}/readyz?verbose`);
    for (const s of ["talos", "kubernetes", "tailscale", "backups", "operator-metrics"]) expect(verbose.body).toContain(`[+]source/${s} ok`);
  });

  it("passes every check it configures, critical or not: a newcomer's first look shows nothing failing", async () => {
    const failing = async () => {
      const lines = (await get(metricsUrl)).body.split("\n").filter((l) => l.startsWith("health_check_up{"));
      return lines.length > 0 ? lines.filter((l) => !l.endsWith(" 1")) : ["no health_check_up series yet"];
    };
    await eventually(async () => (await failing()).length === 0, 15_000, 200).catch(() => undefined);
    expect(await failing()).toEqual([]);
  }, 30_000);

  it("never shows a credential: logs, /debug/status, check bodies and /metrics", async () => {
    const config = parse(readFileSync(demo.configFile, "utf8")) as { sources: { talos: { talosconfig: string } } };
    const talosconfig = parse(readFileSync(config.sources.talos.talosconfig, "utf8")) as { contexts: Record<string, { key: string }> };
    const talosKey = Object.values(talosconfig.contexts)[0]?.key ?? "";
    const planted = [demo.env.DEMO_TAILSCALE_API_KEY ?? "", talosKey, Buffer.from(talosKey, "base64").toString("utf8").split("\n")[1] ?? ""];
    expect(planted.every((p) => p.length > 20)).toBe(true);
    const seen = [
      run.stdout(),
      run.stderr(),
      (await get(`${healthUrl}/debug/status`)).body,
      (await get(`${healthUrl}/health/tailscale`)).body,
      (await get(`${healthUrl}/readyz?verbose`)).body,
      (await get(metricsUrl)).body,
    ].join("\n");
    for (const secret of planted) expect(seen).not.toContain(secret);
  });

  it("passes promtool check metrics, apart from the catalogue's declared seed names", async () => {
    const text = (await get(metricsUrl)).body;
    const promtool = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(promtool.error, "promtool must be installed (Debian package prometheus); .ci/run installs it").toBeUndefined();
    const excepted = CATALOGUE.filter((m) => m.lintException).map((m) => m.name);
    const problems = `${promtool.stdout}${promtool.stderr}`.split("\n").map((l) => l.trim()).filter(Boolean);
    const allowed = (p: string) => excepted.some((name) => new RegExp(`^${name} non-.* metrics should not have "_(total|count)" suffix$`).test(p));
    expect(problems.filter((p) => !allowed(p))).toEqual([]);
    // 0: clean; 3: lint problems only (all of them allowed above). 1 would be a parse error.
    expect([0, 3]).toContain(promtool.status);
  });
});
