import { get as httpGet } from "node:http";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { HealthCheckResponse } from "../src/grpc/protos.ts";
import { runCli, stopCli, writeConfig, type CliRun } from "./cli-process.ts";
import { eventually, freePort, get, healthClient } from "./helpers.ts";

const runs: CliRun[] = [];
afterEach(async () => {
  for (const run of runs.splice(0)) await stopCli(run);
});

function start(doc: Record<string, unknown>): CliRun {
  const run = runCli(["--config", writeConfig({ metrics: { port: 0 }, grpcHealth: { port: 0 }, logging: { level: "info" }, ...doc })]);
  runs.push(run);
  return run;
}

interface LogLine {
  msg: string;
  /** Milliseconds since the epoch, from the line's ISO time. */
  at: number;
  [key: string]: unknown;
}

function logLines(run: CliRun): LogLine[] {
  return run
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => {
      const line = JSON.parse(l) as { msg: string; time: string };
      return { ...line, at: Date.parse(line.time) };
    });
}

function logged(run: CliRun, msg: string): LogLine | undefined {
  return logLines(run).find((l) => l.msg.startsWith(msg));
}

/** True once a TCP connection to the port opens: the first moment a server listens there. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A GET on a connection of its own, so a closed listener cannot hide behind a kept-alive socket. */
function getOnNewConnection(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

function grpcStatus(address: string): Promise<string> {
  const client = healthClient(address);
  return new Promise<string>((resolve, reject) =>
    client.Check({ service: "" }, (err, res: HealthCheckResponse) => (err ? reject(err) : resolve(res.status))),
  ).finally(() => client.close());
}

// Sent while the process is still starting: the moment the health port accepts a connection (before anything else
// is loaded), and the moment it first answers /healthz.
const MOMENTS = {
  "the health port first accepts": (port: number) => eventually(() => accepts(port), 20_000, 2),
  "/healthz first answers": (port: number) =>
    eventually(async () => (await get(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, 20_000, 2),
};

describe("signals while the exporter starts", () => {
  for (const [moment, reached] of Object.entries(MOMENTS)) {
    it(`SIGTERM when ${moment} shuts down cleanly, without the shutdown delay`, async () => {
      const port = await freePort();
      const run = start({ health: { port }, server: { address: "127.0.0.1", shutdownDelay: "1m" } });
      await reached(port);
      const before = run.stdout();
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
      // The signal came while starting; the exporter started, then stopped in order.
      expect(before).not.toContain("sidecar-exporter started");
      expect(logged(run, "shutting down")?.msg).toBe("shutting down: readiness is now failing, draining servers");
      expect(logged(run, "shutdown complete")).toBeDefined();
      expect(await accepts(port)).toBe(false);
    });

    it(`SIGHUP when ${moment}, sent three times, is one reload once the configuration is applied`, async () => {
      const port = await freePort();
      const run = start({ health: { port }, server: { address: "127.0.0.1", shutdownDelay: "0s" } });
      await reached(port);
      const before = run.stdout();
      for (let i = 0; i < 3; i++) run.child.kill("SIGHUP");
      await eventually(() => {
        if (run.child.signalCode !== null) throw new Error(`the process was ended by ${run.child.signalCode}`);
        return logged(run, "configuration reloaded");
      }, 15_000);
      expect(before).not.toContain("sidecar-exporter started");
      const messages = logLines(run).map((l) => l.msg);
      expect(messages.filter((m) => m === "configuration reloaded")).toHaveLength(1);
      expect(messages.indexOf("configuration reloaded")).toBeGreaterThan(messages.indexOf("sidecar-exporter started"));
      expect(logged(run, "configuration reloaded")).toMatchObject({ trigger: "SIGHUP" });
      const metrics = (await get(`http://${String(logged(run, "sidecar-exporter started")?.metrics)}/metrics`)).body;
      expect(metrics).toMatch(/^sidecar_config_reload_total\{result="success"\} 1$/m);
      expect((await get(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(run.child.exitCode).toBeNull();
    });
  }
});

describe("the shutdown delay", () => {
  async function started(doc: Record<string, unknown>) {
    const run = start({ health: { port: 0 }, ...doc });
    const line = await eventually(() => logged(run, "sidecar-exporter started"), 20_000);
    const { health, grpc } = line as unknown as { health: string; grpc: string };
    return { run, readyz: `http://${health}/readyz`, healthz: `http://${health}/healthz`, grpc };
  }

  it("on SIGTERM answers readiness 503 (gRPC NOT_SERVING) on new connections, liveness 200, for the delay, then exits 0", async () => {
    const { run, readyz, healthz, grpc } = await started({ server: { address: "127.0.0.1", shutdownDelay: "2s", shutdownGracePeriod: "1s" } });
    expect((await getOnNewConnection(readyz)).status).toBe(200);
    run.child.kill("SIGTERM");
    const notReady = await eventually(async () => {
      const answer = await getOnNewConnection(readyz);
      return answer.status === 503 ? { ...answer, at: Date.now() } : undefined;
    }, 10_000);
    expect(notReady.body).toContain("[-]shutdown failed: process is shutting down");
    expect(await getOnNewConnection(healthz)).toEqual({ status: 200, body: "ok" });
    expect(await grpcStatus(grpc)).toBe("NOT_SERVING");
    expect(await run.exited).toBe(0);

    const begun = logged(run, "shutting down");
    const delayOver = logged(run, "shutdown delay over");
    expect(begun).toMatchObject({ signal: "SIGTERM", delayMs: 2_000 });
    // Timers never fire early; the log's clock counts whole milliseconds.
    expect((delayOver?.at ?? 0) - (begun?.at ?? 0)).toBeGreaterThanOrEqual(1_990);
    expect(notReady.at).toBeLessThanOrEqual(delayOver?.at ?? 0);
    expect(logged(run, "shutdown complete")).toBeDefined();
  });

  it("ends the delay at a second signal, and exits 0", async () => {
    const { run, readyz } = await started({ server: { address: "127.0.0.1", shutdownDelay: "1m", shutdownGracePeriod: "1s" } });
    run.child.kill("SIGTERM");
    await eventually(async () => (await getOnNewConnection(readyz)).status === 503, 10_000);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(logged(run, "second signal: ending the shutdown delay now")).toBeDefined();
    expect(logged(run, "shutdown complete")).toBeDefined();
  });

  it("is skipped on SIGINT, as from Ctrl-C at a terminal", async () => {
    const { run } = await started({ server: { address: "127.0.0.1", shutdownDelay: "1m", shutdownGracePeriod: "1s" } });
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(0);
    expect(logged(run, "shutting down")).toMatchObject({ signal: "SIGINT", msg: "shutting down: readiness is now failing, draining servers" });
  });
});
