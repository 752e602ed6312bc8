import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterEach, describe, expect, it } from "vitest";
import { createLogging } from "../src/log.ts";
import { loadConfig } from "../src/config/load.ts";
import { ConfigReloader } from "../src/reload.ts";
import { Runtime } from "../src/runtime.ts";
import { checksWithBadTimeouts, runCli, stopCli, writeConfig, type CliRun } from "./cli-process.ts";
import { LogCapture, eventually, get, httpServer, type TestServer } from "./helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PORTS = { metrics: { port: 0 }, health: { port: 0 }, grpcHealth: { port: 0 }, server: { address: "127.0.0.1", shutdownDelay: "0s", shutdownGracePeriod: "1s" } };

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

/** The shipped liveness probe's timeoutSeconds: a /healthz that answers within it never fails a probe. */
const LIVENESS_TIMEOUT_MS = 5_000;

/** Replaces the file with a FIFO that nothing writes to; the cleanup gives any reader left waiting on it an end. */
function replaceWithFifo(file: string): void {
  unlinkSync(file);
  execFileSync("mkfifo", [file]);
  cleanups.push(() => {
    try {
      closeSync(openSync(file, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader waits on it (ENXIO), or it is gone.
    }
  });
}

describe("configuration reload of a file it must not take", () => {
  const kept = { name: "kept", type: "tcp", address: "127.0.0.1:1" };

  async function startCli(): Promise<{ run: CliRun; file: string; health: string; metrics: string }> {
    const file = writeConfig({ ...PORTS, logging: { level: "info" }, healthChecks: { dependencies: [kept] } });
    const run = runCli(["--config", file]);
    cleanups.push(async () => void (await stopCli(run)));
    const started = await eventually(() => run.stdout().split("\n").find((l) => l.includes("sidecar-exporter started")), 15_000);
    const { health, metrics } = JSON.parse(started) as { health: string; metrics: string };
    return { run, file, health: `http://${health}`, metrics: `http://${metrics}` };
  }

  function rejections(run: CliRun): { errors: string[]; moreErrors?: number }[] {
    return run
      .stdout()
      .split("\n")
      .filter((l) => l.includes("configuration reload rejected"))
      .map((l) => JSON.parse(l) as { errors: string[]; moreErrors?: number });
  }

  /** Polls /healthz until `done` holds; the longest any answer took. */
  async function worstHealthzUntil(health: string, done: () => boolean): Promise<number> {
    const deadline = Date.now() + 30_000;
    let worst = 0;
    while (!done()) {
      if (Date.now() > deadline) throw new Error("the reload did not end within 30s");
      const started = Date.now();
      expect((await get(`${health}/healthz`)).status).toBe(200);
      worst = Math.max(worst, Date.now() - started);
    }
    return worst;
  }

  it("rejects thousands of errors and a file over the limit, logging the first errors and a count, /healthz answering meanwhile", async () => {
    const { run, file, health, metrics } = await startCli();
    writeFileSync(file, checksWithBadTimeouts(9_000));
    run.child.kill("SIGHUP");
    const manyErrors = () => rejections(run).find((r) => r.moreErrors !== undefined);
    expect(await worstHealthzUntil(health, () => manyErrors() !== undefined)).toBeLessThan(LIVENESS_TIMEOUT_MS);
    expect(manyErrors()?.errors).toHaveLength(20);
    expect(manyErrors()?.moreErrors).toBe(8_980);

    // 51,000 errors in 5 MB: refused before a byte is parsed.
    writeFileSync(file, checksWithBadTimeouts(51_000));
    run.child.kill("SIGHUP");
    const tooLarge = () => rejections(run).find((r) => r.errors[0]?.includes("over the limit of 1048576 bytes"));
    expect(await worstHealthzUntil(health, () => tooLarge() !== undefined)).toBeLessThan(LIVENESS_TIMEOUT_MS);
    expect(tooLarge()?.errors).toHaveLength(1);

    expect((await get(`${health}/health/kept`)).status).not.toBe(404);
    expect((await get(`${metrics}/metrics`)).body).toMatch(/^sidecar_config_reload_total\{result="success"\} 0$/m);
  });

  it("refuses a FIFO on SIGHUP, keeping the running configuration", async () => {
    const { run, file, health } = await startCli();
    replaceWithFifo(file);
    run.child.kill("SIGHUP");
    const refused = await eventually(() => rejections(run).find((r) => r.errors[0]?.includes("FIFO")), 10_000);
    expect(refused.errors[0]).toBe(`${file}: the config file is a FIFO (named pipe), not a regular file; pass the path of a YAML file with --config or SIDECAR_CONFIG`);
    expect((await get(`${health}/healthz`)).status).toBe(200);
    expect((await get(`${health}/health/kept`)).status).not.toBe(404);
  });

  it("refuses a FIFO seen by the file watch without waiting on it, and applies the file that replaces it", async () => {
    const file = writeConfig({ ...PORTS, healthChecks: { dependencies: [kept] } });
    const { runtime, logs } = await start(file);
    replaceWithFifo(file);
    await eventually(() => logs.text.includes("configuration reload rejected") && logs.text.includes("is a FIFO (named pipe)"), 10_000);
    expect(logs.text).toContain('"trigger":"file changed"');
    expect(runtime.config.checks.map((c) => c.name)).toEqual(["kept"]);

    unlinkSync(file);
    writeFileSync(file, stringify({ ...PORTS, healthChecks: { dependencies: [kept, { ...kept, name: "added" }] } }));
    await eventually(() => runtime.config.checks.length === 2, 10_000);
  });
});
