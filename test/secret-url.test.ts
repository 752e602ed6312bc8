import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { SecretUrl } from "../src/secret-url.ts";
import { scrub } from "../src/secret.ts";
import { configFrom, eventually, get, httpServer, startRuntime, withEphemeralPorts, type TestRuntime, type TestServer } from "./helpers.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(handler: Parameters<typeof httpServer>[0]): Promise<TestServer> {
  const s = await httpServer(handler);
  cleanups.push(() => s.close());
  return s;
}

async function runtime(doc: Record<string, unknown>): Promise<TestRuntime> {
  const rt = await startRuntime(doc);
  cleanups.push(() => rt.runtime.stop());
  return rt;
}

describe("SecretUrl", () => {
  it("prints the URL with its password, a lone user name and sensitive parameters redacted, and reveals it whole", () => {
    const href =
      "https://user:pa55@host.example:8443/api/health?token=t1&access_token=t2&api_key=t3&key=t4&signature=t5&X-Amz-Signature=t6&X-Amz-Credential=t7&sig=t8&page=2#access_token=t9";
    const url = new SecretUrl(href);
    const shown =
      "https://user:[REDACTED]@host.example:8443/api/health?token=[REDACTED]&access_token=[REDACTED]&api_key=[REDACTED]&key=[REDACTED]&signature=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED]&sig=[REDACTED]&page=2#access_token=[REDACTED]";
    expect(String(url)).toBe(shown);
    expect(`${url}`).toBe(shown);
    expect(JSON.stringify({ url })).toBe(JSON.stringify({ url: shown }));
    expect(inspect({ url })).toContain(shown);
    expect(url.reveal()).toBe(href);
    expect(String(new SecretUrl("http://ghp_token1234@github.example/x"))).toBe("http://[REDACTED]@github.example/x");
    expect(String(new SecretUrl("http://host/plain?a=1"))).toBe("http://host/plain?a=1");
  });

  it("makes children below its path, keeping the query of both", () => {
    const base = new SecretUrl("http://u:p@api.example/base/?token=abc");
    const child = base.child("/v1/items?limit=5");
    expect(child.reveal()).toBe("http://u:p@api.example/base/v1/items?token=abc&limit=5");
    expect(String(child)).toBe("http://u:[REDACTED]@api.example/base/v1/items?token=[REDACTED]&limit=5");
    expect(new SecretUrl("https://k8s.example:6443").child("/api").reveal()).toBe("https://k8s.example:6443/api");
  });

  it("lets scrubbing catch its credentials, and any URL's, in text that never held the SecretUrl", () => {
    new SecretUrl("http://svc:long-password-7781@svc.example/?client_secret=remembered-9a2b");
    expect(scrub("auth failed for long-password-7781 (client remembered-9a2b)")).toBe("auth failed for [REDACTED] (client [REDACTED])");
    // Never seen as a SecretUrl, and too short to be scrubbed by value: the URL's shape gives it away.
    expect(scrub('request to "http://bob:pw@10.0.0.1/x?key=k1&page=2" failed')).toBe(
      'request to "http://bob:[REDACTED]@10.0.0.1/x?key=[REDACTED]&page=2" failed',
    );
    expect(scrub("GET https://abc@h.example/p")).toBe("GET https://[REDACTED]@h.example/p");
    expect(scrub("no url here: a@b c=d ?x=1")).toBe("no url here: a@b c=d ?x=1");
  });
});

describe("credentials in URLs, over real sockets", () => {
  it("user info is sent as Basic authentication by HTTP checks and the operator metrics source; a bearer token file wins", async () => {
    const seen: { path: string; authorization: string | undefined }[] = [];
    const upstream = await server((req, res) => {
      seen.push({ path: req.url ?? "", authorization: req.headers.authorization });
      res.end("# TYPE up gauge\nup 1\n");
    });
    const dir = mkdtempSync(join(tmpdir(), "secret-url-"));
    writeFileSync(join(dir, "token"), "file-token-4411\n");
    const withUser = (path: string) => upstream.url.replace("://", "://ops:s3cr%40t@") + path;
    await runtime({
      sources: { operatorMetrics: { url: withUser("/metrics"), interval: "200ms", timeout: "150ms" } },
      healthChecks: {
        dependencies: [
          { name: "basic", type: "http", url: withUser("/basic"), interval: "200ms", timeout: "150ms" },
          { name: "bearer", type: "http", url: withUser("/bearer"), bearerTokenFile: join(dir, "token"), interval: "200ms", timeout: "150ms" },
        ],
      },
    });
    const basic = `Basic ${Buffer.from("ops:s3cr@t").toString("base64")}`;
    await eventually(() => ["/metrics", "/basic", "/bearer"].every((p) => seen.some((s) => s.path === p)), 10_000);
    expect(seen.find((s) => s.path === "/metrics")?.authorization).toBe(basic);
    expect(seen.find((s) => s.path === "/basic")?.authorization).toBe(basic);
    expect(seen.find((s) => s.path === "/bearer")?.authorization).toBe("Bearer file-token-4411");
  });

  it("a reload that changes only a credential (a URL's password, a secret header) applies it", async () => {
    const upstream = await server((_req, res) => res.end("# TYPE up gauge\nup 1\n"));
    const doc = (password: string, header: string) =>
      withEphemeralPorts({
        sources: { operatorMetrics: { url: upstream.url.replace("://", `://ops:${password}@`), interval: "1m", timeout: "1s" } },
        healthChecks: {
          dependencies: [{ name: "api", type: "http", url: upstream.url, headers: { Authorization: `Bearer ${header}` }, interval: "1m", timeout: "1s" }],
        },
      });
    const rt = await runtime(doc("first-pass", "first-token"));
    await eventually(async () => (await get(`${rt.healthUrl}/health/api`)).status === 200, 10_000);
    const changed = await rt.runtime.applyConfig(configFrom(doc("second-pass", "second-token")));
    expect(changed.sources).toEqual(["operator-metrics"]);
    expect(changed.checks).toEqual(["~api"]);
    expect(await rt.runtime.applyConfig(configFrom(doc("second-pass", "second-token")))).toMatchObject({ checks: [], sources: [] });
  });
});
