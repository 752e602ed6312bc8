import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, get, httpServer, startRuntime, type TestRuntime, type TestServer } from "../helpers.ts";

let upstream: TestServer;
let rt: TestRuntime;
let hangs: TestServer;
let upstreamHealthy = true;

beforeAll(async () => {
  upstream = await httpServer((req, res) => {
    res.statusCode = req.url === "/down" || !upstreamHealthy ? 503 : 200;
    res.end("ok");
  });
  hangs = await httpServer(() => undefined);
  rt = await startRuntime({
    metrics: { custom: { labels: { cluster: "test", region: "lab" } } },
    healthChecks: {
      custom: [{ name: "service-registry", endpoint: "/health/registry", interval: "1m", timeout: "1s" }],
      dependencies: [
        { name: "api", type: "http", url: `${upstream.url}/up`, critical: true, interval: "200ms", timeout: "190ms" },
        { name: "cache", type: "http", url: `${upstream.url}/up`, critical: true, interval: "1m", timeout: "1s", headers: { Authorization: "Bearer planted-debug-secret" } },
        { name: "optional", type: "http", url: `${upstream.url}/down`, interval: "1m", timeout: "1s" },
        { name: "hanging", type: "http", url: hangs.url, interval: "10s", timeout: "3s" },
      ],
    },
  });
  await eventually(() => rt.runtime.store.views().filter((v) => v.spec.name !== "hanging").every((v) => v.status !== "pending"));
});

afterAll(async () => {
  await rt.runtime.stop();
  await upstream.close();
  await hangs.close();
});

describe("health server", () => {
  it("answers liveness on /healthz and /livez whatever the checks say", async () => {
    for (const path of ["/healthz", "/livez"]) {
      expect(await get(`${rt.healthUrl}${path}`)).toMatchObject({ status: 200, body: "ok" });
    }
    const verbose = await get(`${rt.healthUrl}/livez?verbose`);
    expect(verbose.body).toBe("[+]ping ok\nlivez check passed\n");
  });

  it("aggregates only critical checks in /readyz, kube-apiserver style", async () => {
    const terse = await get(`${rt.healthUrl}/readyz`);
    expect(terse).toMatchObject({ status: 200, body: "ok" });
    const verbose = await get(`${rt.healthUrl}/readyz?verbose`);
    expect(verbose.status).toBe(200);
    expect(verbose.body).toBe("[+]shutdown ok\n[+]api ok\n[+]cache ok\nreadyz check passed\n");
    expect(verbose.body).not.toContain("optional");
  });

  it("fails /readyz when a critical check fails, lists why, and ?exclude skips it", async () => {
    upstreamHealthy = false;
    try {
      await eventually(async () => (await get(`${rt.healthUrl}/readyz`)).status === 503);
      const failed = await get(`${rt.healthUrl}/readyz`);
      expect(failed.body).toContain("[-]api failed: unexpected status 503\n");
      expect(failed.body).toMatch(/readyz check failed\n$/);
      const excluded = await get(`${rt.healthUrl}/readyz?verbose&exclude=api`);
      expect(excluded.status).toBe(200);
      expect(excluded.body).toBe("[+]shutdown ok\n[+]cache ok\n[+]api excluded: ok\nreadyz check passed\n");
      const single = await get(`${rt.healthUrl}/readyz/api`);
      expect(single).toMatchObject({ status: 503, body: "[-]api failed: unexpected status 503\n" });
    } finally {
      upstreamHealthy = true;
    }
    await eventually(async () => (await get(`${rt.healthUrl}/readyz`)).status === 200);
  });

  it("answers /readyz/<check> for one check and 404 for an unknown one", async () => {
    expect(await get(`${rt.healthUrl}/readyz/cache`)).toMatchObject({ status: 200, body: "ok" });
    expect(await get(`${rt.healthUrl}/readyz/cache?verbose`)).toMatchObject({ status: 200, body: "[+]cache ok\n" });
    expect((await get(`${rt.healthUrl}/readyz/optional`)).status).toBe(503);
    const unknown = await get(`${rt.healthUrl}/readyz/nope`);
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: 'no check named "nope"' });
  });

  it("serves each check's endpoint as JSON, 200 when passing and 503 otherwise", async () => {
    const pass = await get(`${rt.healthUrl}/health/api`);
    expect(pass.status).toBe(200);
    expect(pass.headers["content-type"]).toMatch(/application\/json/);
    const body = JSON.parse(pass.body);
    expect(body).toMatchObject({ name: "api", type: "http", critical: true, status: "pass", error: null });
    expect(typeof body.durationMs).toBe("number");
    expect(Date.parse(body.checkedAt)).toBeGreaterThan(Date.now() - 60_000);

    const custom = await get(`${rt.healthUrl}/health/registry`);
    expect(custom.status).toBe(503);
    expect(JSON.parse(custom.body)).toMatchObject({ name: "service-registry", status: "fail", error: expect.stringMatching(/^source not configured/) });
    expect((await get(`${rt.healthUrl}/health/service-registry`)).status).toBe(503);
    expect((await get(`${rt.healthUrl}/health/optional`)).status).toBe(503);
  });

  it("shows every check and its age in /debug/status without secrets", async () => {
    const res = await get(`${rt.healthUrl}/debug/status`);
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ ready: true, shuttingDown: false });
    expect(body.checks.map((c: { name: string }) => c.name)).toEqual(["service-registry", "api", "cache", "optional", "hanging"]);
    const api = body.checks.find((c: { name: string }) => c.name === "api");
    expect(api).toMatchObject({ status: "pass", target: `GET ${upstream.url}/up`, intervalSeconds: 0.2 });
    expect(api.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(res.body).not.toContain("planted-debug-secret");
  });

  it("answers HEAD wherever GET works, and unknown paths with a JSON 404", async () => {
    for (const path of ["/healthz", "/livez", "/readyz", "/readyz/api", "/health/api", "/debug/status", "/"]) {
      const res = await get(`${rt.healthUrl}${path}`, {}, "HEAD");
      expect(res.status, path).toBe(200);
      expect(res.body).toBe("");
    }
    const missing = await get(`${rt.healthUrl}/nope`);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ error: "not found", path: "/nope" });
    expect(JSON.parse(missing.body).endpoints).toContain("/readyz");
  });
});

describe("metrics server", () => {
  it("serves the text format with the custom labels on every series", async () => {
    // "api" runs every 200 ms: on a loaded machine one run may time out or come late enough to be stale, so
    // the scrape looked at is one taken while it passes.
    const res = await eventually(async () => {
      const r = await get(`${rt.metricsUrl}/metrics`);
      return /^health_check_up\{check="api",cluster="test",region="lab"\} 1$/m.test(r.body) && /^sidecar_ready\{cluster="test",region="lab"\} 1$/m.test(r.body) ? r : undefined;
    });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(res.body).toMatch(/^health_check_up\{check="api",cluster="test",region="lab"\} 1$/m);
    expect(res.body).toMatch(/^health_check_up\{check="optional",cluster="test",region="lab"\} 0$/m);
    expect(res.body).toMatch(/^sidecar_ready\{cluster="test",region="lab"\} 1$/m);
    expect(res.body).toMatch(/^health_check_info\{check="api",type="http",critical="true",cluster="test",region="lab"\} 1$/m);
    const samples = res.body.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(samples.length).toBeGreaterThan(10);
    for (const line of samples) expect(line, line).toContain('cluster="test"');
  });

  it("answers a scrape with a query, HEAD with the headers alone, and other methods through the app", async () => {
    const plain = await get(`${rt.metricsUrl}/metrics`);
    const withQuery = await get(`${rt.metricsUrl}/metrics?debug=1`);
    expect(withQuery.status).toBe(200);
    expect(withQuery.headers["content-type"]).toBe(plain.headers["content-type"]);
    expect(withQuery.body).toMatch(/^sidecar_ready\{cluster="test",region="lab"\} [01]$/m);
    const head = await get(`${rt.metricsUrl}/metrics`, {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect(Number(head.headers["content-length"])).toBeGreaterThan(1000);
    expect(head.headers.vary).toBe("Accept, Accept-Encoding");
    const post = await get(`${rt.metricsUrl}/metrics`, {}, "POST");
    expect(post.status).toBe(404);
    expect(JSON.parse(post.body)).toMatchObject({ error: "not found" });
  });

  it("serves OpenMetrics when the Accept header asks for it", async () => {
    const res = await get(`${rt.metricsUrl}/metrics`, { accept: "application/openmetrics-text;version=1.0.0,text/plain;q=0.5" });
    expect(res.headers["content-type"]).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
    expect(res.body).toMatch(/# EOF\n?$/);
    expect(res.body).toContain("# TYPE health_check_success counter");
  });

  it("answers at once while a check's upstream hangs, and that check fails at its timeout", async () => {
    const started = Date.now();
    const res = await get(`${rt.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(500);
    const hanging = await eventually(() => (rt.runtime.store.view("hanging")?.result ? rt.runtime.store.view("hanging") : undefined), 6_000);
    expect(hanging.result).toMatchObject({ ok: false, reason: "timeout", message: "timed out after 3s" });
    expect(hanging.result!.durationMs).toBeGreaterThanOrEqual(2_990);
    expect(hanging.result!.durationMs).toBeLessThan(3_500);
  });

  it("lists its endpoints on / and 404s elsewhere", async () => {
    const index = await get(`${rt.metricsUrl}/`);
    expect(JSON.parse(index.body).endpoints[0].path).toBe("/metrics");
    const missing = await get(`${rt.metricsUrl}/metricz`);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ error: "not found", endpoints: ["/metrics"] });
  });
});

describe("shutdown", () => {
  it("turns readiness to 503 at once while liveness stays 200", async () => {
    const extra = await startRuntime({});
    expect((await get(`${extra.healthUrl}/readyz`)).status).toBe(200);
    extra.runtime.model.beginShutdown();
    const ready = await get(`${extra.healthUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toContain("[-]shutdown failed: process is shutting down");
    expect((await get(`${extra.healthUrl}/healthz`)).status).toBe(200);
    await extra.runtime.stop();
  });
});
