import { connect, type Socket } from "node:net";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { listen, type Listening } from "../../src/serve/listen.ts";
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
  it("uses a 10 s header timeout and a 30 s request timeout by default", async () => {
    const server = await listen("test", new Hono(), "127.0.0.1", 0, "test.port");
    cleanups.push(() => server.close(0));
    expect(server.server.headersTimeout).toBe(10_000);
    expect(server.server.requestTimeout).toBe(30_000);
    expect(server.server.keepAliveTimeout).toBe(65_000);
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

describe("connection cap", () => {
  /** A connection that made one request and stays open (keep-alive), holding a slot. */
  async function holdConnection(address: string): Promise<RawClient> {
    const client = await rawClient(address);
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await eventually(() => statusOf(client.received()) === 200 || statusOf(client.received()) === 404);
    return client;
  }

  it("closes connections beyond limits.maxConnections, and /healthz answers again once a slot frees", async () => {
    const rt = await runtimeWith({ maxConnections: 3 });
    const health = rt.healthUrl.replace("http://", "");
    const held = [await holdConnection(health), await holdConnection(health), await holdConnection(health)];

    const refused = await rawClient(health);
    refused.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await closedWithin(refused, 5_000);
    expect(refused.received()).toBe("");

    // The metrics server has its own cap: a full health server does not block scrapes, nor the other way round.
    const metrics = rt.metricsUrl.replace("http://", "");
    const scrapers = [await holdConnection(metrics), await holdConnection(metrics), await holdConnection(metrics)];
    const extraScrape = await rawClient(metrics);
    extraScrape.socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    await closedWithin(extraScrape, 5_000);
    expect(extraScrape.received()).toBe("");
    for (const s of scrapers) s.socket.destroy();

    held[0]?.socket.destroy();
    const res = await eventually(async () => {
      const client = await rawClient(health);
      client.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      await client.closed;
      return statusOf(client.received()) === 200 ? client.received() : undefined;
    });
    expect(res).toMatch(/\r\n\r\nok$/);
  });
});
