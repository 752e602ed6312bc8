import { connect as connectHttp2 } from "node:http2";
import { connect, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { HealthCheckResponse } from "../../src/grpc/protos.ts";
import type { DropReason } from "../../src/serve/connection-cap.ts";
import { startGrpcHealth, type GrpcHealthServer, type GrpcLimits } from "../../src/serve/grpc-health.ts";
import { eventually, healthClient, httpServer, startRuntime, type HealthClient, type TestRuntime, type TestServer } from "../helpers.ts";

let upstream: TestServer;
let healthy = true;
let rt: TestRuntime;

beforeAll(async () => {
  upstream = await httpServer((_req, res) => {
    res.statusCode = healthy ? 200 : 500;
    res.end();
  });
  rt = await startRuntime({
    logging: { level: "warn" },
    healthChecks: { dependencies: [{ name: "api", type: "http", url: upstream.url, critical: true, interval: "200ms", timeout: "150ms" }] },
  });
  await eventually(() => rt.runtime.model.ready());
});

afterAll(async () => {
  await rt.runtime.stop();
  await upstream.close();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  healthy = true;
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A gRPC health server of its own, on the runtime's health model, with the limits a test gives it. */
async function grpcServer(limits: GrpcLimits): Promise<{ server: GrpcHealthServer; port: number; drops: DropReason[] }> {
  const server = await startGrpcHealth(rt.runtime.model, "127.0.0.1", 0, rt.runtime.metrics.handles, rt.logging.component("server"), limits);
  cleanups.push(() => server.close(0));
  const drops: DropReason[] = [];
  server.onDrop((reason, count) => drops.push(...Array<DropReason>(count).fill(reason)));
  return { server, port: server.port, drops };
}

/** A TCP connection to the port; `bytes` are sent once it opens, then one byte every `dripMs` if given. */
function tcp(port: number, bytes = "", dripMs?: number): { socket: Socket; closed: () => boolean } {
  const socket = connect(port, "127.0.0.1");
  let closed = false;
  let drip: NodeJS.Timeout | undefined;
  socket.on("error", () => undefined);
  // Reading, so that the server's close is seen.
  socket.resume();
  socket.on("close", () => {
    closed = true;
    clearInterval(drip);
  });
  socket.on("connect", () => {
    if (bytes) socket.write(bytes);
    if (dripMs !== undefined) drip = setInterval(() => socket.write("\0"), dripMs);
  });
  cleanups.push(() => {
    clearInterval(drip);
    socket.destroy();
  });
  return { socket, closed: () => closed };
}

/** An HTTP/2 connection that opens no stream: whether the server sent it GOAWAY, and whether it is closed. */
function idleHttp2(port: number): { goaway: () => boolean; closed: () => boolean } {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  let goaway = false;
  let closed = false;
  session.on("error", () => undefined);
  session.on("goaway", () => (goaway = true));
  session.on("close", () => (closed = true));
  cleanups.push(() => void session.destroy());
  return { goaway: () => goaway, closed: () => closed };
}

/** A client on a connection of its own (grpc-js otherwise shares one between clients of the same address). */
function ownClient(port: number): HealthClient {
  const client = healthClient(`127.0.0.1:${port}`, { "grpc.use_local_subchannel_pool": 1 });
  cleanups.push(() => client.close());
  return client;
}

function check(client: HealthClient, service = ""): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res))));
}

/** A Watch of overall readiness: the statuses it received, and whether it ended. */
function watch(client: HealthClient): { seen: string[]; ended: () => boolean } {
  const stream = client.Watch({ service: "" });
  const seen: string[] = [];
  let ended = false;
  stream.on("data", (m: HealthCheckResponse) => seen.push(m.status));
  stream.on("error", () => (ended = true));
  stream.on("end", () => (ended = true));
  cleanups.push(() => stream.cancel());
  return { seen, ended: () => ended };
}

/** A Check from a new connection answers SERVING within two seconds. */
async function expectCheckAnswered(port: number): Promise<void> {
  const began = performance.now();
  expect(await check(ownClient(port))).toEqual({ status: "SERVING" });
  const ms = performance.now() - began;
  expect(ms, `Check answered after ${Math.round(ms)} ms`).toBeLessThan(2_000);
}

describe("gRPC health server connection limits", () => {
  it("closes connections with no stream open after the idle timeout: HTTP/2 ones with GOAWAY, and ones that never finish the preface", async () => {
    const { port, drops } = await grpcServer({ idleTimeoutMs: 300 });
    const sessions = Array.from({ length: 40 }, () => idleHttp2(port));
    const silent = Array.from({ length: 40 }, () => tcp(port));
    const halfPreface = Array.from({ length: 20 }, () => tcp(port, "PRI * HTTP/2.0\r\n"));
    await eventually(() => [...sessions, ...silent, ...halfPreface].every((c) => c.closed()), 10_000);
    expect(sessions.every((s) => s.goaway())).toBe(true);
    expect(drops).toEqual([]);
  });

  it("keeps a connection with an open Watch past the idle timeout, and the Watch goes on", async () => {
    const { port } = await grpcServer({ idleTimeoutMs: 300 });
    const watcher = watch(ownClient(port));
    await eventually(() => watcher.seen.length === 1);
    // Opened after the Watch: once it is closed, the Watch's connection has been idle-timed-out as long, and more.
    const silent = tcp(port);
    await eventually(() => silent.closed(), 10_000);
    healthy = false;
    await eventually(() => watcher.seen.length === 2);
    expect(watcher.seen).toEqual(["SERVING", "NOT_SERVING"]);
    expect(watcher.ended()).toBe(false);
  });

  it("with the port flooded by idle, silent and slow connections, a Check gets through and the cap holds", async () => {
    const { port, drops } = await grpcServer({ maxConnections: 16 });
    const idle: { closed: () => boolean }[] = [];
    for (let i = 0; i < 16; i++) {
      const client = ownClient(port);
      await check(client);
      idle.push(idleHttp2(port));
    }
    const flood = [...Array.from({ length: 40 }, () => tcp(port)), ...Array.from({ length: 40 }, () => tcp(port, "PRI * HTTP/2.0\r\n", 200))];
    const opened = [...idle, ...flood];
    // 16 clients, 16 sessions and 80 more: all but the cap's worth were closed to make room.
    await eventually(() => opened.filter((c) => c.closed()).length >= opened.length - 16, 10_000);
    for (let i = 0; i < 3; i++) await expectCheckAnswered(port);
    expect(drops.filter((d) => d === "refused")).toEqual([]);
    expect(drops.length).toBeGreaterThanOrEqual(16 + 80);
  });

  it("does not close a connection with an open Watch to make room: when every one has one, the new one is refused", async () => {
    const { port, drops } = await grpcServer({ maxConnections: 3 });
    const watchers = [watch(ownClient(port)), watch(ownClient(port)), watch(ownClient(port))];
    await eventually(() => watchers.every((w) => w.seen.length === 1));
    const refused = tcp(port);
    await eventually(() => refused.closed());
    expect(drops).toEqual(["refused"]);
    healthy = false;
    await eventually(() => watchers.every((w) => w.seen.length === 2));
    expect(watchers.every((w) => !w.ended())).toBe(true);
  });

  it("counts what it closed in sidecar_connections_dropped_total{server=\"grpc\"}", async () => {
    const capped = await startRuntime({ logging: { level: "warn" }, limits: { maxConnections: 2 } });
    cleanups.push(() => capped.runtime.stop());
    const port = Number(capped.grpcAddress.slice(capped.grpcAddress.lastIndexOf(":") + 1));
    const count = async (reason: string) => {
      const text = await capped.runtime.metrics.render(false);
      return new RegExp(`^sidecar_connections_dropped_total\\{server="grpc",reason="${reason}"\\} (\\d+)$`, "m").exec(text)?.[1];
    };
    expect(await count("refused")).toBe("0");
    const first = tcp(port);
    tcp(port);
    tcp(port);
    await eventually(() => first.closed());
    await eventually(async () => (await count("idle")) === "1");
  });
});
