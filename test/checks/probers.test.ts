import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CheckEngine } from "../../src/checks/engine.ts";
import type { SourceStatus } from "../../src/checks/types.ts";
import { createLogging } from "../../src/log.ts";
import { CheckStore } from "../../src/state/checks.ts";
import { LogCapture, configFrom, httpServer, startRuntime, type TestRuntime, type TestServer } from "../helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function engineFor(checks: Record<string, unknown>[], sources: Record<string, SourceStatus> = {}) {
  const config = configFrom({ healthChecks: { dependencies: checks } });
  const store = new CheckStore();
  const logs = new LogCapture();
  const engine = new CheckEngine(store, { logger: createLogging(config.logging, logs).root, sources: { sourceStatus: (n) => sources[n] } }, undefined);
  for (const spec of config.checks) engine.add(spec);
  cleanups.push(() => engine.stop());
  return { engine, store, logs };
}

async function serve(handler: Parameters<typeof httpServer>[0]): Promise<TestServer> {
  const s = await httpServer(handler);
  cleanups.push(() => s.close());
  return s;
}

describe("http check", () => {
  it("passes on an expected status and fails on another, with the reason", async () => {
    const s = await serve((req, res) => {
      res.statusCode = req.url === "/ok" ? 200 : req.url === "/gone" ? 404 : 503;
      res.end("x");
    });
    const { engine } = engineFor([
      { name: "ok", type: "http", url: `${s.url}/ok` },
      { name: "down", type: "http", url: `${s.url}/down` },
      { name: "gone", type: "http", url: `${s.url}/gone` },
      { name: "gone-expected", type: "http", url: `${s.url}/gone`, expectedStatus: [404, "2xx"] },
    ]);
    const results = Object.fromEntries((await engine.runAllOnce()).map((r) => [r.spec.name, r.result]));
    expect(results.ok).toMatchObject({ ok: true, message: "status 200" });
    expect(results.down).toMatchObject({ ok: false, message: "unexpected status 503", reason: "unhealthy" });
    expect(results.gone).toMatchObject({ ok: false, reason: "not_found" });
    expect(results["gone-expected"]?.ok).toBe(true);
  });

  it("matches the body, sends the method and headers, and reads the bearer token file on every run", async () => {
    const s = await serve((req, res) => {
      res.end(req.headers.authorization === "Bearer token-one" && req.headers["x-probe"] === "yes" ? '{"status":"healthy"}' : "nope");
    });
    const dir = mkdtempSync(join(tmpdir(), "token-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "token-one\n");
    const { engine } = engineFor([
      { name: "body", type: "http", url: s.url, method: "POST", bodyMatch: '"status":"healthy"', headers: { "X-Probe": "yes" }, bearerTokenFile: tokenFile },
    ]);
    expect((await engine.runOnce("body"))?.ok).toBe(true);
    expect(s.requests[0]?.method).toBe("POST");
    writeFileSync(tokenFile, "token-two\n");
    const second = await engine.runOnce("body");
    expect(second).toMatchObject({ ok: false, reason: "unhealthy" });
    expect(second?.message).toMatch(/body does not match/);
  });

  it("fails a body larger than the cap without reading it all", async () => {
    const s = await serve((_req, res) => res.end("a".repeat(200_000)));
    const { engine } = engineFor([{ name: "big", type: "http", url: s.url, bodyMatch: "b", maxBodyBytes: 1024 }]);
    const big = await engine.runOnce("big");
    expect(big).toMatchObject({ ok: false, reason: "decode" });
    expect(big?.message).toMatch(/: response is larger than 1024 bytes$/);
  });

  it("fails at its timeout against a server that never answers", async () => {
    const s = await serve(() => undefined);
    const { engine } = engineFor([{ name: "hang", type: "http", url: s.url, timeout: "300ms", interval: "1s" }]);
    const started = Date.now();
    const result = await engine.runOnce("hang");
    const took = Date.now() - started;
    expect(result).toMatchObject({ ok: false, reason: "timeout", message: "timed out after 300ms" });
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2_000);
  });

  it("classifies a refused connection and an unreadable token file", async () => {
    const { engine } = engineFor([
      { name: "refused", type: "http", url: "http://127.0.0.1:1/" },
      { name: "no-token", type: "http", url: "http://127.0.0.1:1/", bearerTokenFile: "/nonexistent/token" },
    ]);
    const [refused, noToken] = await engine.runAllOnce();
    expect(refused?.result).toMatchObject({ ok: false, reason: "connection" });
    expect(noToken?.result).toMatchObject({ ok: false, reason: "unauthorized" });
    expect(noToken?.result?.message).toMatch(/cannot read bearerTokenFile \/nonexistent\/token: ENOENT/);
  });
});

describe("tcp check", () => {
  it("passes when the port accepts and fails when it refuses", async () => {
    const server = createServer((sock) => sock.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const { engine } = engineFor([
      { name: "open", type: "tcp", address: `127.0.0.1:${port}` },
      { name: "closed", type: "tcp", address: "127.0.0.1:1" },
    ]);
    const [open, closed] = await engine.runAllOnce();
    expect(open?.result).toMatchObject({ ok: true, message: "connected" });
    expect(closed?.result).toMatchObject({ ok: false, reason: "connection" });
  });
});

describe("grpc check", () => {
  let target: TestRuntime;

  it("asks grpc.health.v1 Check for a service and reads SERVING / NOT_SERVING / NOT_FOUND", async () => {
    const s = await serve((req, res) => {
      res.statusCode = req.url === "/up" ? 200 : 500;
      res.end();
    });
    target = await startRuntime({
      healthChecks: {
        dependencies: [
          { name: "up", type: "http", url: `${s.url}/up`, interval: "1s", timeout: "500ms" },
          { name: "down", type: "http", url: `${s.url}/down`, interval: "1s", timeout: "500ms" },
        ],
      },
    });
    cleanups.push(() => target.runtime.stop());
    await target.runtime.engine.runAllOnce();
    const { engine } = engineFor([
      { name: "serving", type: "grpc", address: target.grpcAddress, service: "up" },
      { name: "not-serving", type: "grpc", address: target.grpcAddress, service: "down" },
      { name: "unknown", type: "grpc", address: target.grpcAddress, service: "nope" },
      { name: "nobody", type: "grpc", address: "127.0.0.1:1", timeout: "1s" },
    ]);
    const r = Object.fromEntries((await engine.runAllOnce()).map((x) => [x.spec.name, x.result]));
    expect(r.serving).toMatchObject({ ok: true, message: "SERVING" });
    expect(r["not-serving"]).toMatchObject({ ok: false, reason: "unhealthy", message: "status NOT_SERVING" });
    expect(r.unknown).toMatchObject({ ok: false, reason: "not_found" });
    expect(r.nobody?.ok).toBe(false);
    expect(["connection", "timeout"]).toContain(r.nobody?.reason);
  });
});

describe("source check", () => {
  it("reads the source's latest state", async () => {
    const { engine } = engineFor(
      [
        { name: "up", type: "source", source: "tailscale" },
        { name: "down", type: "source", source: "talos" },
        { name: "unhealthy", type: "source", source: "kubernetes" },
        { name: "missing", type: "source", source: "backups" },
      ],
      {
        tailscale: { up: true, detail: "6 devices online" },
        talos: { up: false, error: "connection refused" },
        kubernetes: { up: true, healthy: false, detail: "2 of 3 clusters not ready" },
      },
    );
    const r = Object.fromEntries((await engine.runAllOnce()).map((x) => [x.spec.name, x.result]));
    expect(r.up).toMatchObject({ ok: true, message: "6 devices online" });
    expect(r.down).toMatchObject({ ok: false, message: "source talos is down: connection refused" });
    expect(r.unhealthy).toMatchObject({ ok: false, message: "2 of 3 clusters not ready" });
    expect(r.missing).toMatchObject({ ok: false, reason: "not_found" });
    expect(r.missing?.message).toMatch(/^source not configured/);
  });
});
