import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { HealthCheckResponse } from "../src/grpc/protos.ts";
import { VERSION } from "../src/version.ts";
import { runCli, writeConfig } from "./cli-process.ts";
import { eventually, freePort, get, healthClient, httpServer, type TestServer } from "./helpers.ts";

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const EPHEMERAL = { metrics: { port: 0 }, health: { port: 0 }, grpcHealth: { port: 0 }, server: { address: "127.0.0.1", shutdownDelay: "0s", shutdownGracePeriod: "2s" } };

describe("command line", () => {
  it("prints the version and the help", async () => {
    const v = runCli(["--version"]);
    expect(await v.exited).toBe(0);
    expect(v.stdout().trim()).toBe(VERSION);
    const h = runCli(["--help"]);
    expect(await h.exited).toBe(0);
    expect(h.stdout()).toContain("sidecar-exporter check [--config FILE]");
  });

  it("rejects an unknown option or command with exit 2", async () => {
    const opt = runCli(["--nope"]);
    expect(await opt.exited).toBe(2);
    expect(opt.stderr()).toMatch(/Unknown option '--nope'/);
    const cmd = runCli(["frobnicate"]);
    expect(await cmd.exited).toBe(2);
    expect(cmd.stderr()).toContain('unknown command "frobnicate"');
  });

  it("exits 2 on invalid configuration, naming every bad field, before opening any port", async () => {
    const port = await freePort();
    const file = writeConfig({
      metrics: { port },
      healthChecks: { dependencies: [{ name: "x", type: "http", url: "http://a", timeout: "5" }, { name: "y", type: "tcp" }] },
      logging: { levle: "debug" },
    });
    const run = runCli(["--config", file]);
    expect(await run.exited).toBe(2);
    const err = run.stderr();
    expect(err).toContain(`invalid configuration in ${file}`);
    expect(err).toContain('healthChecks.dependencies[0].timeout: "5" is not a duration, use e.g. "5s"');
    expect(err).toContain('logging.levle: unknown key, ignored; did you mean "level"?');
    expect(run.stdout()).not.toMatch(/listening/);
    // The metrics port is still free: nothing was started.
    const probe = createServer();
    await new Promise<void>((resolve, reject) => probe.once("error", reject).listen(port, "0.0.0.0", resolve));
    await new Promise<void>((r) => probe.close(() => r()));
  });

  it("takes the config file from SIDECAR_CONFIG and prints it with secrets redacted", async () => {
    const file = writeConfig({
      healthChecks: { dependencies: [{ name: "api", type: "http", url: "http://user:planted-url-pass@a/x", headers: { Authorization: "Bearer planted-header-secret" } }] },
    });
    const run = runCli(["--print-config"], { SIDECAR_CONFIG: file, SIDECAR_METRICS_PORT: "9999" });
    expect(await run.exited).toBe(0);
    const out = run.stdout();
    expect(out).toMatch(/port: 9999/);
    expect(out).toContain('Authorization: "[REDACTED]"');
    expect(out).not.toContain("planted-url-pass");
    expect(out).not.toContain("planted-header-secret");
    expect(out).toContain("interval: 15s");
  });

  it("'check' runs every check once, prints a table and exits 0 when all pass, 1 otherwise", async () => {
    const s = await httpServer((_req, res) => res.end("ok"));
    servers.push(s);
    const good = runCli(["check", "--config", writeConfig({ healthChecks: { dependencies: [{ name: "web", type: "http", url: s.url, critical: true }] } })]);
    expect(await good.exited).toBe(0);
    expect(good.stdout()).toMatch(/^NAME\s+TYPE\s+RESULT\s+DURATION\s+DETAIL$/m);
    expect(good.stdout()).toMatch(/^web\s+http\*\s+pass\s+\d+ms\s+status 200$/m);
    const bad = runCli(["check", "--config", writeConfig({ healthChecks: { dependencies: [{ name: "web", type: "http", url: s.url }, { name: "db", type: "tcp", address: "127.0.0.1:1" }] } })]);
    expect(await bad.exited).toBe(1);
    expect(bad.stdout()).toMatch(/^db\s+tcp\s+FAIL\s+\d+ms\s+connect ECONNREFUSED 127.0.0.1:1$/m);
    expect(bad.stdout()).toContain("1/2 passed");
  });

  it("logs Node's process warnings as log lines, not bare text on stderr; a known harmless one at debug", async () => {
    // Warnings emitted once the exporter runs, as a library's would be: on SIGUSR2, sent once it has started.
    const emitter = join(mkdtempSync(join(tmpdir(), "sidecar-warning-")), "emit.mjs");
    writeFileSync(
      emitter,
      'process.on("SIGUSR2", () => { process.emitWarning("ServerName is an IP address", "DeprecationWarning", "DEP0123"); process.emitWarning("old API", "DeprecationWarning", "DEP0999"); });\n',
    );
    const run = runCli(["--config", writeConfig({ ...EPHEMERAL, logging: { level: "info" } })], { NODE_OPTIONS: `--import=${emitter}` });
    await eventually(() => run.stdout().includes("sidecar-exporter started"), 10_000);
    run.child.kill("SIGUSR2");
    const line = await eventually(() => run.stdout().split("\n").find((l) => l.includes("Node.js process warning")), 10_000);
    expect(JSON.parse(line)).toMatchObject({ level: "warn", component: "main", warning: "DeprecationWarning", code: "DEP0999", detail: "old API" });
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    // DEP0123 is grpc-js naming a Talos endpoint's IP address as the server name: below info, and never on stderr.
    expect(run.stdout()).not.toContain("DEP0123");
    expect(run.stderr()).not.toContain("DeprecationWarning");
  });

  it("on SIGTERM fails readiness, tells gRPC watchers, drains and exits 0", async () => {
    const run = runCli(["--config", writeConfig({ ...EPHEMERAL, logging: { level: "info" } })]);
    const started = await eventually(() => run.stdout().split("\n").find((l) => l.includes("sidecar-exporter started")), 10_000);
    const { health, grpc: grpcAddress } = JSON.parse(started) as { health: string; grpc: string };
    expect((await get(`http://${health}/readyz`)).status).toBe(200);

    const client = healthClient(grpcAddress);
    const stream = client.Watch({ service: "" });
    const seen: string[] = [];
    let ended = false;
    stream.on("data", (m: HealthCheckResponse) => seen.push(m.status));
    stream.on("end", () => (ended = true));
    stream.on("error", () => (ended = true));
    await eventually(() => seen.length > 0);

    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    await eventually(() => ended);
    client.close();
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    const logs = run.stdout();
    expect(logs).toContain("shutting down: readiness is now failing");
    expect(logs).toContain("shutdown complete");
  });
});
