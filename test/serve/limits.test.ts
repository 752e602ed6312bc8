import type { ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import type { HttpBindings } from "@hono/node-server";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import type { DropReason } from "../../src/serve/connection-cap.ts";
import { listen, type Listening, type ServerLimits } from "../../src/serve/listen.ts";
import { noBodyOnGet } from "../../src/serve/no-body.ts";
import { eventually, get, startRuntime, type TestRuntime } from "../helpers.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A raw TCP client: what it received, and whether and when the server closed the connection. */
interface RawClient {
  socket: Socket;
  received(): string;
  closed: Promise<{ atMs: number; error?: string }>;
}

async function rawClient(address: string): Promise<RawClient> {
  const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
  const socket = connect(port, host);
  cleanups.push(() => void socket.destroy());
  let data = "";
  let error: string | undefined;
  const opened = Date.now();
  socket.on("data", (chunk: Buffer) => (data += chunk.toString("latin1")));
  socket.on("error", (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  const closed = new Promise<{ atMs: number; error?: string }>((resolve) =>
    socket.once("close", () => resolve({ atMs: Date.now() - opened, ...(error !== undefined && { error }) })),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, received: () => data, closed };
}

/** The close, or a failure after `ms`: a server that keeps the connection open fails the test quickly. */
function closedWithin(client: RawClient, ms: number): Promise<{ atMs: number; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`connection still open after ${ms}ms; received ${JSON.stringify(client.received())}`)), ms)));
  return Promise.race([client.closed, late]).finally(() => clearTimeout(timer));
}

function statusOf(response: string): number | undefined {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(response);
  return m ? Number(m[1]) : undefined;
}

async function runtimeWith(limits: Record<string, unknown> = {}): Promise<TestRuntime> {
  const rt = await startRuntime({ limits, logging: { level: "warn" } });
  cleanups.push(() => rt.runtime.stop());
  return rt;
}

describe("HTTP server timeouts", () => {
  it("uses a 10 s header timeout, a 30 s request timeout and a 5 s idle timeout by default", async () => {
    const server = await listen("test", new Hono(), "127.0.0.1", 0, "test.port");
    cleanups.push(() => server.close(0));
    expect(server.server.headersTimeout).toBe(10_000);
    expect(server.server.requestTimeout).toBe(30_000);
    expect(server.server.keepAliveTimeout).toBe(5_000);
  });

  it("cuts off a slowloris client that sends its headers one byte at a time", async () => {
    const app = new Hono().get("/healthz", (c) => c.text("ok"));
    const server: Listening = await listen("test", app, "127.0.0.1", 0, "test.port", undefined, {
      headersTimeoutMs: 1_000,
      requestTimeoutMs: 2_000,
      timeoutCheckIntervalMs: 100,
    });
    cleanups.push(() => server.close(0));
    const client = await rawClient(server.address);
    const head = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + "a".repeat(200) + "\r\n\r\n";
    let sent = 0;
    let done = false;
    void client.closed.then(() => (done = true));
    // One byte every 100 ms: the whole head would take over 20 s.
    while (!done && sent < head.length) {
      client.socket.write(head[sent++] ?? "");
      await sleep(100);
    }
    const { atMs } = await closedWithin(client, 8_000);
    expect(sent).toBeLessThan(head.length);
    expect(atMs).toBeGreaterThanOrEqual(900);
    expect(atMs).toBeLessThan(6_000);
    // Node answers 408 before closing, or just closes; either way no 200.
    expect(statusOf(client.received()) ?? 408).toBe(408);
  });

  it("answers normally within the timeouts", async () => {
    const app = new Hono().get("/healthz", (c) => c.text("ok"));
    const server = await listen("test", app, "127.0.0.1", 0, "test.port", undefined, { headersTimeoutMs: 1_000, timeoutCheckIntervalMs: 100 });
    cleanups.push(() => server.close(0));
    const res = await get(`http://${server.address}/healthz`);
    expect(res).toMatchObject({ status: 200, body: "ok" });
  });
});

describe("no body on GET and HEAD", () => {
  const cases = [
    { name: "GET with Content-Length", request: "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" },
    { name: "GET chunked", request: "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" },
    { name: "HEAD with Content-Length", request: "HEAD /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" },
  ];

  for (const { name, request } of cases) {
    it(`${name}: 400 at once, without waiting for the body, and the connection is closed`, async () => {
      const rt = await runtimeWith();
      for (const base of [rt.healthUrl, rt.metricsUrl]) {
        const client = await rawClient(base.replace("http://", ""));
        const path = base === rt.metricsUrl ? request.replace(/\/(healthz|readyz)/, "/metrics") : request;
        // The body is announced but never sent: only an answer that does not read it can arrive.
        client.socket.write(path);
        await closedWithin(client, 5_000);
        const response = client.received();
        expect(statusOf(response)).toBe(400);
        expect(response.toLowerCase()).toContain("content-type: application/json");
        if (!request.startsWith("HEAD")) expect(response).toContain("take no body");
      }
    });
  }

  it("accepts Content-Length: 0 on GET, and bodies on other methods reach their routes", async () => {
    const rt = await runtimeWith();
    const client = await rawClient(rt.healthUrl.replace("http://", ""));
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    await client.closed;
    expect(statusOf(client.received())).toBe(200);
    expect(client.received()).toMatch(/\r\n\r\nok$/);

    const app = new Hono();
    app.use(noBodyOnGet);
    app.post("/echo", async (c) => c.text(await c.req.text()));
    const server = await listen("test", app, "127.0.0.1", 0, "test.port");
    cleanups.push(() => server.close(0));
    const res = await fetch(`http://${server.address}/echo`, { method: "POST", body: "hello" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
  });
});

/** A connection that made one request and stays open (keep-alive), holding a slot. */
async function holdConnection(address: string, path = "/healthz"): Promise<RawClient> {
  const client = await rawClient(address);
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await eventually(() => statusOf(client.received()) !== undefined);
  return client;
}

/** A slowloris client: the start of a request head, then one byte of a header every `everyMs`, never the end. */
async function slowloris(address: string, everyMs = 200): Promise<RawClient> {
  const client = await rawClient(address);
  client.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  const drip = setInterval(() => client.socket.write("a"), everyMs);
  void client.closed.then(() => clearInterval(drip));
  cleanups.push(() => clearInterval(drip));
  return client;
}

/** A fresh connection asking `path` once, as the kubelet does: the status, and how long the answer took. */
async function probe(address: string, path: string): Promise<{ status: number | undefined; ms: number }> {
  const began = performance.now();
  const client = await rawClient(address);
  client.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  await closedWithin(client, 10_000);
  return { status: statusOf(client.received()), ms: performance.now() - began };
}

/** The probe answers 200 within two seconds, at the first attempt. */
async function expectProbeAnswered(address: string, path: string): Promise<void> {
  const { status, ms } = await probe(address, path);
  expect(status, `${path} on ${address}`).toBe(200);
  expect(ms, `${path} answered after ${Math.round(ms)} ms`).toBeLessThan(2_000);
}

const hostOf = (url: string) => url.replace(/^https?:\/\//, "");

/** sidecar_connections_dropped_total of one server and reason, as the main thread's registry has it. */
async function dropped(rt: TestRuntime, server: string, reason: string): Promise<number> {
  const text = await rt.runtime.metrics.render(false);
  const m = new RegExp(`^sidecar_connections_dropped_total\\{server="${server}",reason="${reason}"\\} (\\d+)$`, "m").exec(text);
  return Number(m?.[1] ?? Number.NaN);
}

/** A runtime that is ready; asked on connections that close after the answer, so none is left open. */
async function readyRuntime(limits: Record<string, unknown>, doc: Record<string, unknown> = {}): Promise<TestRuntime> {
  const rt = await startRuntime({ limits, logging: { level: "warn" }, ...doc });
  cleanups.push(() => rt.runtime.stop());
  await eventually(async () => (await probe(hostOf(rt.healthUrl), "/readyz")).status === 200);
  return rt;
}

describe("connection cap: probes get through", () => {
  it("a cap's worth of idle keep-alive connections gives way to a probe, the oldest first, on both ports", async () => {
    const rt = await readyRuntime({ maxConnections: 16 });
    const health = hostOf(rt.healthUrl);
    const held: RawClient[] = [];
    for (let i = 0; i < 16; i++) held.push(await holdConnection(health));
    await expectProbeAnswered(health, "/healthz");
    await expectProbeAnswered(health, "/readyz");
    // The connections idle the longest gave way: the first probe's, and the second's unless the first had left.
    const gone = await eventually(async () => {
      const closed = held.filter((c) => c.socket.destroyed).length;
      return closed > 0 && closed === (await dropped(rt, "health", "idle")) ? closed : undefined;
    });
    expect(gone).toBeLessThanOrEqual(2);
    expect(held.slice(0, gone).every((c) => c.socket.destroyed)).toBe(true);
    expect(held.slice(gone).every((c) => !c.socket.destroyed)).toBe(true);
    expect(await dropped(rt, "health", "refused")).toBe(0);

    const metrics = hostOf(rt.metricsUrl);
    for (let i = 0; i < 16; i++) await holdConnection(metrics, "/metrics");
    await expectProbeAnswered(metrics, "/metrics");
    await eventually(async () => (await dropped(rt, "metrics", "idle")) === 1);
  });

  it("slowloris clients filling the cap, and more of them than it holds, do not keep probes out", async () => {
    const rt = await readyRuntime({ maxConnections: 16 });
    const health = hostOf(rt.healthUrl);
    const clients: RawClient[] = [];
    for (let i = 0; i < 48; i++) clients.push(await slowloris(health));
    // The cap holds: the 32 that came last made room by closing the 32 waiting the longest.
    await eventually(() => clients.filter((c) => c.socket.destroyed).length === 32);
    expect(clients.slice(32).every((c) => !c.socket.destroyed)).toBe(true);
    for (let i = 0; i < 3; i++) {
      await expectProbeAnswered(health, "/healthz");
      await expectProbeAnswered(health, "/readyz");
    }
    // One more at least: the first probe found the cap full.
    await eventually(async () => (await dropped(rt, "health", "stalled")) >= 33);
  });

  it("at the default cap, with idle and slowloris connections by the hundred", async () => {
    const rt = await readyRuntime({});
    const health = hostOf(rt.healthUrl);
    const opened = await Promise.all(Array.from({ length: 256 }, () => holdConnection(health)));
    opened.push(...(await Promise.all(Array.from({ length: 300 }, () => slowloris(health, 300)))));
    await eventually(() => opened.filter((c) => c.socket.destroyed).length >= 300, 10_000);
    await expectProbeAnswered(health, "/healthz");
    await expectProbeAnswered(health, "/readyz");
  });

  it("the scrape thread's metrics server makes room the same way, and reports what it closed", async () => {
    const rt = await readyRuntime({ maxConnections: 4 }, { metrics: { scrapeThread: true } });
    const metrics = hostOf(rt.metricsUrl);
    for (let i = 0; i < 4; i++) await holdConnection(metrics, "/metrics");
    await expectProbeAnswered(metrics, "/metrics");
    await eventually(async () => (await dropped(rt, "metrics", "idle")) === 1);
  });
});

describe("connection cap: which connection gives way", () => {
  /**
   * A server whose /hang requests stay unanswered until release(), and whose /big answer is larger than sockets
   * take; `responses` are the answers it has begun.
   */
  async function capped(limits: ServerLimits) {
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const responses: ServerResponse[] = [];
    const app = new Hono<{ Bindings: HttpBindings }>()
      .get("/healthz", (c) => c.text("ok"))
      .get("/hang", async (c) => {
        responses.push(c.env.outgoing);
        await hung;
        return c.text("late");
      })
      .get("/big", (c) => {
        responses.push(c.env.outgoing);
        return c.body(new Uint8Array(32 * 1024 * 1024));
      });
    const server = await listen("test", app as unknown as Hono, "127.0.0.1", 0, "test.port", undefined, limits);
    cleanups.push(() => server.close(0));
    const drops: DropReason[] = [];
    server.connections.onDrop((reason, count) => drops.push(...Array<DropReason>(count).fill(reason)));
    return { server, release, drops, responses };
  }

  it("refuses a new connection only while every connection has a request being answered", async () => {
    const { server, release, drops, responses } = await capped({ maxConnections: 3 });
    const busy: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await rawClient(server.address);
      client.socket.write("GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
      busy.push(client);
    }
    await eventually(() => responses.length === 3);
    const refused = await rawClient(server.address);
    await closedWithin(refused, 5_000);
    expect(refused.received()).toBe("");
    expect(drops).toEqual(["refused"]);
    expect(busy.every((c) => !c.socket.destroyed)).toBe(true);

    release();
    await eventually(() => busy.every((c) => statusOf(c.received()) === 200));
    // Answered, they are idle keep-alive connections now, and give way.
    await expectProbeAnswered(server.address, "/healthz");
    expect(drops).toEqual(["refused", "idle"]);
  });

  it("closes a connection whose client does not read its answer to make room", async () => {
    const { server, drops, responses } = await capped({ maxConnections: 2 });
    const unread: RawClient[] = [];
    for (let i = 0; i < 2; i++) {
      const client = await rawClient(server.address);
      client.socket.pause();
      client.socket.write("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
      unread.push(client);
    }
    // Written to the end by the server, not taken by the clients.
    await eventually(() => responses.length === 2 && responses.every((r) => r.writableEnded && !r.writableFinished));
    await expectProbeAnswered(server.address, "/healthz");
    expect(drops).toEqual(["stalled"]);
    // The one that asked first gave way; the other answer is still being held for its client.
    await eventually(() => responses[0]?.closed);
    expect(responses[1]?.closed).toBe(false);
  });

  it("closes a connection that never sends a byte, and an idle keep-alive one, after the idle timeout", async () => {
    const { server, drops } = await capped({ idleTimeoutMs: 300 });
    const silent = await rawClient(server.address);
    const kept = await holdConnection(server.address);
    const [silentClosed, keptClosed] = await Promise.all([closedWithin(silent, 5_000), closedWithin(kept, 5_000)]);
    expect(silentClosed.atMs).toBeGreaterThanOrEqual(250);
    expect(keptClosed.atMs).toBeGreaterThanOrEqual(250);
    expect(drops).toEqual([]);
  });
});
