import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { validateConfig } from "../src/config/load.ts";
import type { LoggingConfig } from "../src/config/types.ts";
import { createLogging, errorMessage } from "../src/log.ts";
import { MAX_ROTATING_SECRETS, Secret, rememberSecret, scrub } from "../src/secret.ts";
import { runCli, writeConfig } from "./cli-process.ts";
import { LogCapture, eventually, get, httpServer, type TestServer } from "./helpers.ts";

function logging(overrides: Record<string, unknown> = {}): LoggingConfig {
  const r = validateConfig({ logging: overrides });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config.logging;
}

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

describe("logging", () => {
  it("redacts credential fields wherever they sit in a log call", () => {
    const out = new LogCapture();
    const log = createLogging(logging(), out).root;
    log.info({ token: "tok-AAAA-1111", headers: { authorization: "Bearer hdr-BBBB-2222" }, s3: { secretAccessKey: "s3-CCCC-3333" } }, "call");
    log.info({ key: new Secret("obj-DDDD-4444") }, "secret object");
    expect(out.text).not.toMatch(/AAAA|BBBB|CCCC|DDDD/);
    expect(out.records()[0]).toMatchObject({ token: "[REDACTED]", headers: { authorization: "[REDACTED]" }, s3: { secretAccessKey: "[REDACTED]" } });
  });

  it("scrubs a known secret that reached a message by an unexpected path", () => {
    rememberSecret("planted-in-message-5555");
    const out = new LogCapture();
    const log = createLogging(logging(), out).root;
    log.error(`upstream said: bad key planted-in-message-5555`);
    log.error({ err: errorMessage(new Error("auth failed for planted-in-message-5555")) }, "failed");
    expect(out.text).not.toContain("planted-in-message-5555");
    expect(out.text).toContain("bad key [REDACTED]");
  });

  it("forgets the least recently seen rotated tokens beyond a bound, never one in use nor the configuration's", () => {
    const configured = new Secret("configured-header-7777");
    const inUse = new Secret("oauth-token-in-use-6666", { rotating: true });
    const first = "rotated-token-0000";
    rememberSecret(first, { rotating: true });
    for (let i = 1; i <= MAX_ROTATING_SECRETS; i++) {
      rememberSecret(`rotated-token-${String(i).padStart(4, "0")}`, { rotating: true });
      // A token in use is revealed at each use, and so seen again.
      if (i % 100 === 0) inUse.reveal();
    }
    expect(scrub(`old ${first}`)).toBe(`old ${first}`);
    expect(scrub(`new rotated-token-${MAX_ROTATING_SECRETS}`)).toBe("new [REDACTED]");
    expect(scrub("token oauth-token-in-use-6666")).toBe("token [REDACTED]");
    expect(scrub("header configured-header-7777")).toBe("header [REDACTED]");
    expect(configured.reveal()).toBe("configured-header-7777");
  });

  it("gives components their own level and adds the static fields", () => {
    const out = new LogCapture();
    const setup = createLogging(logging({ level: "info", components: { checks: { level: "debug" }, server: { level: "error" } }, fields: { cluster: "prod" } }), out);
    setup.component("checks").debug("checks debug");
    setup.component("server").info("server info");
    setup.component("main").debug("main debug");
    setup.component("main").info("main info");
    const msgs = out.records().map((r) => r.msg);
    expect(msgs).toEqual(["checks debug", "main info"]);
    expect(out.records()[0]).toMatchObject({ cluster: "prod", component: "checks", level: "debug" });
  });

  it("samples debug lines one in N when sampling is on", () => {
    const out = new LogCapture();
    const log = createLogging(logging({ level: "debug", sampling: { enabled: true, levels: { debug: 10 } } }), out).root;
    for (let i = 0; i < 100; i++) log.debug(`d${i}`);
    log.info("kept");
    const msgs = out.records().map((r) => r.msg);
    expect(msgs.filter((m) => String(m).startsWith("d"))).toEqual(["d0", "d10", "d20", "d30", "d40", "d50", "d60", "d70", "d80", "d90"]);
    expect(msgs).toContain("kept");
  });

  it("never prints a planted secret: logs, errors, /debug/status and /metrics of a running exporter", async () => {
    const planted = {
      header: "planted-header-7d1e9",
      token: "planted-token-3b8c2",
      password: "planted-pass-91f0a",
    };
    const target = await httpServer((req, res) => {
      // Answer 401 and echo nothing: the exporter must not add the credential to its own report.
      res.statusCode = req.headers.authorization ? 401 : 200;
      res.end("denied");
    });
    servers.push(target);
    const dir = mkdtempSync(join(tmpdir(), "secret-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, `${planted.token}\n`);
    const run = runCli([
      "--config",
      writeConfig({
        metrics: { port: 0 },
        health: { port: 0 },
        grpcHealth: { port: 0 },
        server: { address: "127.0.0.1", shutdownDelay: "0s" },
        logging: { level: "trace" },
        healthChecks: {
          dependencies: [
            { name: "with-header", type: "http", url: target.url, headers: { Authorization: `Bearer ${planted.header}` }, interval: "1s", timeout: "900ms" },
            { name: "with-token", type: "http", url: target.url, bearerTokenFile: tokenFile, interval: "1s", timeout: "900ms" },
            { name: "with-password", type: "http", url: `http://admin:${planted.password}@127.0.0.1:1/`, interval: "1s", timeout: "900ms" },
          ],
        },
      }),
    ]);
    const started = await eventually(() => run.stdout().split("\n").find((l) => l.includes("sidecar-exporter started")), 10_000);
    const { health, metrics } = JSON.parse(started) as { health: string; metrics: string };
    await eventually(
      async () => JSON.parse((await get(`http://${health}/debug/status`)).body).checks.every((c: { status: string; reason: string }) => c.status === "fail" && c.reason !== "timeout"),
      15_000,
    );
    const debug = (await get(`http://${health}/debug/status`)).body;
    const exposition = (await get(`http://${metrics}/metrics`)).body;
    const checkBody = (await get(`http://${health}/health/with-header`)).body;
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    const everything = [run.stdout(), run.stderr(), debug, exposition, checkBody].join("\n");
    expect(run.stdout()).toContain("check failing");
    expect(debug).toContain("unexpected status 401");
    for (const secret of Object.values(planted)) expect(everything).not.toContain(secret);
  });
});
