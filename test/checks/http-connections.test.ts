import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CheckEngine } from "../../src/checks/engine.ts";
import { leasePool } from "../../src/checks/http-pool.ts";
import { createLogging } from "../../src/log.ts";
import { CheckStore } from "../../src/state/checks.ts";
import { LogCapture, configFrom, eventually, httpServer, type TestServer } from "../helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function engineFor(checks: Record<string, unknown>[]) {
  const config = configFrom({ healthChecks: { dependencies: checks } });
  const engine = new CheckEngine(new CheckStore(), { logger: createLogging(config.logging, new LogCapture()).root, sources: { sourceStatus: () => undefined } }, undefined);
  for (const spec of config.checks) engine.add(spec);
  cleanups.push(() => engine.stop());
  return engine;
}

/** A server that counts the connections it accepted and knows which are still open. */
async function countingServer(handler: Parameters<typeof httpServer>[0]): Promise<TestServer & { accepted: () => number; open: () => number }> {
  const s = await httpServer(handler);
  cleanups.push(() => s.close());
  const sockets = new Set<Socket>();
  let accepted = 0;
  s.server.on("connection", (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return Object.assign(s, { accepted: () => accepted, open: () => sockets.size });
}

describe("http check connections", () => {
  it("shares keep-alive connections among the checks of one origin, run after run", async () => {
    const s = await countingServer((_req, res) => res.end("ok"));
    const engine = engineFor(["a", "b", "c", "d"].map((name) => ({ name, type: "http", url: `${s.url}/${name}` })));
    for (const name of ["a", "b", "c", "d"]) {
      await engine.runOnce(name);
      // Checks run apart from each other; back to back, undici would not hand a socket it has not yet seen idle.
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(s.accepted()).toBe(1);
    const results = await engine.runAllOnce();
    expect(results.every((r) => r.result?.ok)).toBe(true);
    const afterConcurrent = s.accepted();
    await new Promise((r) => setTimeout(r, 10));
    await engine.runAllOnce();
    expect(s.accepted()).toBe(afterConcurrent);
  });

  it("closes an origin's connections when the last check using them stops", async () => {
    const s = await countingServer((_req, res) => res.end("ok"));
    const engine = engineFor([
      { name: "a", type: "http", url: `${s.url}/a` },
      { name: "b", type: "http", url: `${s.url}/b` },
    ]);
    await engine.runOnce("a");
    await engine.remove("a");
    expect((await engine.runOnce("b"))?.ok).toBe(true);
    expect(s.open()).toBe(1);
    await engine.remove("b");
    await eventually(() => s.open() === 0);
  });

  it("passes on the status without reading a large body it does not need", async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    let finished = false;
    const s = await countingServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024, 97);
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        finished = true;
        res.end();
      };
      pump();
    });
    const engine = engineFor([{ name: "big", type: "http", url: s.url }]);
    expect(await engine.runOnce("big")).toMatchObject({ ok: true, message: "status 200" });
    await eventually(() => s.open() === 0);
    expect(finished).toBe(false);
    expect(written).toBeLessThan(total);
  });

  it("passes on the status when the connection breaks in the middle of a body it does not read", async () => {
    const s = await countingServer((req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write("partial", () => req.socket.destroy());
    });
    const engine = engineFor([{ name: "cut", type: "http", url: s.url }]);
    expect(await engine.runOnce("cut")).toMatchObject({ ok: true, message: "status 200" });
  });

  it("fails a body it must match when the connection breaks in the middle of it", async () => {
    const s = await countingServer((req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write('{"status":"ok"', () => req.socket.destroy());
    });
    const engine = engineFor([{ name: "cut", type: "http", url: s.url, bodyMatch: "ok" }]);
    expect(await engine.runOnce("cut")).toMatchObject({ ok: false, reason: "connection" });
  });
});

describe("http check pools", () => {
  it("hands out one pool per origin, TLS settings and timeout, and closes it with its last lease", async () => {
    const a1 = leasePool("http://127.0.0.1:1", {}, 1_000);
    const a2 = leasePool("http://127.0.0.1:1", {}, 1_000);
    const other = leasePool("http://127.0.0.1:2", {}, 1_000);
    const slower = leasePool("http://127.0.0.1:1", {}, 2_000);
    const insecure = leasePool("http://127.0.0.1:1", { insecureSkipVerify: true }, 1_000);
    expect(a2.agent).toBe(a1.agent);
    for (const l of [other, slower, insecure]) expect(l.agent).not.toBe(a1.agent);
    await a1.release();
    await a1.release(); // a second release of the same lease changes nothing
    expect(a2.agent.destroyed).toBe(false);
    await a2.release();
    expect(a2.agent.destroyed).toBe(true);
    await Promise.all([other.release(), slower.release(), insecure.release()]);
    const fresh = leasePool("http://127.0.0.1:1", {}, 1_000);
    expect(fresh.agent).not.toBe(a1.agent);
    await fresh.release();
  });
});
