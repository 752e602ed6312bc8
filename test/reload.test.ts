import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { createLogging } from "../src/log.ts";
import { loadConfig } from "../src/config/load.ts";
import { ConfigReloader } from "../src/reload.ts";
import { Runtime } from "../src/runtime.ts";
import { runCli, writeConfig } from "./cli-process.ts";
import { LogCapture, eventually, get, httpServer, type TestServer } from "./helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PORTS = { metrics: { port: 0 }, health: { port: 0 }, grpcHealth: { port: 0 }, server: { address: "127.0.0.1", shutdownGracePeriod: "1s" } };

/** A directory laid out like a mounted ConfigMap: config.yaml → ..data/config.yaml, ..data → a timestamped dir. */
function configMapDir(doc: unknown): { dir: string; file: string; swap(doc: unknown): void } {
  const dir = mkdtempSync(join(tmpdir(), "configmap-"));
  let n = 0;
  const write = (d: unknown) => {
    const version = join(dir, `..2026_11_26_${n++}`);
    mkdirSync(version);
    writeFileSync(join(version, "config.yaml"), typeof d === "string" ? d : stringify(d));
    // Kubernetes swaps the ..data symlink atomically with a rename of a new link over it.
    symlinkSync(version, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
  };
  write(doc);
  symlinkSync(join("..data", "config.yaml"), join(dir, "config.yaml"));
  return { dir, file: join(dir, "config.yaml"), swap: write };
}

async function start(file: string) {
  const loaded = await loadConfig(file, {});
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const logs = new LogCapture();
  const logging = createLogging(loaded.config.logging, logs);
  const runtime = await Runtime.start(loaded.config, { logging, processMetrics: false });
  const reloader = new ConfigReloader(file, runtime, logging.component("config"), 100);
  await reloader.start();
  cleanups.push(async () => {
    reloader.stop();
    await runtime.stop();
  });
  return { runtime, reloader, logs, healthUrl: `http://${runtime.addresses.health}` };
}

let target: TestServer;

describe("configuration reload", () => {
  it("applies a changed ConfigMap (symlink swap): checks added, removed and changed, servers kept", async () => {
    target = await httpServer((_req, res) => res.end("ok"));
    cleanups.push(() => target.close());
    const check = (name: string, interval = "200ms") => ({ name, type: "http", url: target.url, interval, timeout: "150ms" });
    const cm = configMapDir({ ...PORTS, healthChecks: { dependencies: [check("keep"), check("drop"), check("change")] } });
    const { runtime, healthUrl } = await start(cm.file);
    const addressBefore = runtime.addresses.health;
    await eventually(async () => (await get(`${healthUrl}/health/drop`)).status === 200);

    cm.swap({ ...PORTS, healthChecks: { dependencies: [check("keep"), check("change", "1s"), check("added")] } });
    await eventually(async () => (await get(`${healthUrl}/health/added`)).status === 200, 5_000);
    expect((await get(`${healthUrl}/health/drop`)).status).toBe(404);
    expect(runtime.config.checks.find((c) => c.name === "change")?.intervalMs).toBe(1_000);
    expect(runtime.addresses.health).toBe(addressBefore);
    const text = await runtime.metrics.render(false);
    expect(text).toMatch(/^sidecar_config_reload_total\{result="success"\} 1$/m);
    expect(text).not.toContain('check="drop"');
  });

  it("rejects an invalid file with field errors and keeps the running configuration", async () => {
    const cm = configMapDir({ ...PORTS, healthChecks: { dependencies: [{ name: "a", type: "tcp", address: "127.0.0.1:1" }] } });
    const { runtime, reloader, logs } = await start(cm.file);
    cm.swap({ ...PORTS, healthChecks: { dependencies: [{ name: "a", type: "tcp", address: "127.0.0.1:1", timeout: "5" }] } });
    await eventually(() => logs.text.includes("configuration reload rejected"), 5_000);
    expect(logs.text).toContain('healthChecks.dependencies[0].timeout: \\"5\\" is not a duration');
    expect(runtime.config.checks[0]?.timeoutMs).toBe(10_000);
    const text = await runtime.metrics.render(false);
    expect(text).toMatch(/^sidecar_config_reload_total\{result="failure"\} 1$/m);
    expect(await reloader.reload("test")).toBe(false);
  });

  it("reports settings that need a restart instead of dropping the servers", async () => {
    const cm = configMapDir({ ...PORTS });
    const { runtime, reloader, logs } = await start(cm.file);
    cm.swap({ ...PORTS, metrics: { port: 0, path: "/other" }, logging: { level: "debug" } });
    expect(await reloader.reload("test")).toBe(true);
    expect(runtime.config.metrics.path).toBe("/metrics");
    expect(runtime.config.logging.level).toBe("debug");
    expect(logs.text).toContain("these settings change only with a restart");
  });

  it("re-reads on SIGHUP", async () => {
    const file = writeConfig({ ...PORTS, logging: { level: "info" } });
    const run = runCli(["--config", file]);
    cleanups.push(async () => {
      run.child.kill("SIGTERM");
      await run.exited;
    });
    await eventually(() => run.stdout().includes("sidecar-exporter started"), 10_000);
    writeFileSync(file, stringify({ ...PORTS, healthChecks: { dependencies: [{ name: "late", type: "tcp", address: "127.0.0.1:1" }] } }));
    run.child.kill("SIGHUP");
    await eventually(() => run.stdout().includes("configuration reloaded"), 10_000);
    expect(run.stdout()).toContain('"trigger":"SIGHUP"');
  });
});
