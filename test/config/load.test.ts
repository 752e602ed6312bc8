import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, validateConfig } from "../../src/config/load.ts";

const SEED = join(import.meta.dirname, "../fixtures/seed-config.yaml");

function writeTemp(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-config-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, text);
  return file;
}

describe("loading the configuration", () => {
  it("starts on safe defaults with no file at all", async () => {
    const r = await loadConfig(undefined, {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.metrics).toMatchObject({ enabled: true, port: 8080, path: "/metrics" });
    expect(r.config.health).toMatchObject({ port: 8081, livenessPath: "/healthz", readinessPath: "/readyz" });
    expect(r.config.grpcHealth.port).toBe(8082);
    expect(r.config.server.shutdownGracePeriodMs).toBe(5_000);
    expect(r.config.checks).toEqual([]);
  });

  it("loads the seed ConfigMap shape as it is, with the seed check defaults", async () => {
    const r = await loadConfig(SEED, {});
    expect(r.ok ? [] : r.errors).toEqual([]);
    if (!r.ok) return;
    expect(r.warnings).toEqual([]);
    expect(r.config.metrics.labels).toEqual({ cluster: "production", region: "us-east-1" });
    expect(r.config.metrics.collection).toEqual({ intervalMs: 15_000, timeoutMs: 10_000 });
    const byName = Object.fromEntries(r.config.checks.map((c) => [c.name, c]));
    expect(byName["extension-server-grpc"]).toMatchObject({ type: "grpc", address: "localhost:5005", service: "", endpoint: "/health/grpc", timeoutMs: 5_000, intervalMs: 15_000, critical: false });
    expect(byName["tailscale-connectivity"]).toMatchObject({ type: "source", source: "tailscale", endpoint: "/health/tailscale", intervalMs: 30_000 });
    expect(byName["service-registry"]).toMatchObject({ type: "source", source: "kubernetes", intervalMs: 60_000 });
    expect(byName["kubernetes-api"]).toMatchObject({ type: "http", timeoutMs: 5_000, intervalMs: 15_000, expectedStatus: [[200, 299]] });
    expect(String(byName["kubernetes-api"]?.type === "http" && byName["kubernetes-api"].url.reveal())).toBe("https://kubernetes.default.svc.cluster.local/healthz");
    expect(r.config.logging).toMatchObject({ level: "info", format: "json", components: { controller: { level: "info" } }, fields: { cluster: "production" }, sampling: { enabled: true, levels: { debug: 100 } } });
  });

  it("reports every error at once, each naming its field and what is allowed", () => {
    const r = validateConfig({
      metrics: { port: "eighty" },
      healthChecks: {
        dependencies: [
          { name: "kubernetes-api", type: "http", url: "https://k/healthz", timeout: "5s" },
          { name: "tailscale-api", type: "http", url: "https://t/health", timeout: "5" },
          { name: "db", type: "mysql", address: "db:3306" },
        ],
      },
      logging: { level: "loud", format: "xml" },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.errors.map((e) => `${e.path}: ${e.message}`);
    expect(lines).toContain('healthChecks.dependencies[1].timeout: "5" is not a duration, use e.g. "5s", "1m30s" or "7d"');
    expect(lines).toContain('metrics.port: "eighty" is not a port, use a whole number from 0 to 65535');
    expect(lines).toContain('healthChecks.dependencies[2].type: "mysql" is not one of: http, tcp, grpc, source, backup');
    expect(lines).toContain('logging.level: "loud" is not one of: trace, debug, info, warn, error, fatal, silent');
    expect(lines).toContain('logging.format: "xml" is not one of: json, console');
    expect(r.errors).toHaveLength(5);
  });

  it("checks the rules that join fields: required fields per type, timeouts, unique names and ports", () => {
    const r = validateConfig({
      health: { port: 9000 },
      grpcHealth: { port: 9000 },
      healthChecks: {
        custom: [{ name: "mystery" }, { name: "api", type: "http", url: "http://x" }],
        dependencies: [
          { name: "db", type: "tcp" },
          { name: "api", type: "tcp", address: "a:1" },
          { name: "slow", type: "tcp", address: "a:1", interval: "5s", timeout: "10s" },
          { name: "clash", type: "tcp", address: "a:1", endpoint: "/readyz" },
        ],
      },
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const byPath = Object.fromEntries(r.errors.map((e) => [e.path, e.message]));
    expect(byPath["healthChecks.custom[0].type"]).toMatch(/missing for check "mystery", use one of: http, tcp, grpc, source, backup/);
    expect(byPath["healthChecks.dependencies[0].address"]).toMatch(/missing: a tcp check needs it/);
    expect(byPath["healthChecks.dependencies[1].name"]).toMatch(/"api" is already used by healthChecks.custom\[1\]/);
    expect(byPath["healthChecks.dependencies[2].timeout"]).toMatch(/10s is longer than the check's interval \(5s\)/);
    expect(byPath["healthChecks.dependencies[3].endpoint"]).toMatch(/built-in path/);
    expect(byPath["grpcHealth.port"]).toMatch(/9000 is already used by health.port/);
  });

  it("takes http and https URLs only", () => {
    const r = validateConfig({ healthChecks: { custom: [{ name: "api", type: "http", url: "ftp://x" }] } });
    expect(r.ok ? [] : r.errors).toEqual([{ path: "healthChecks.custom[0].url", message: '"ftp:" is not supported, use http: or https:' }]);
  });

  it("reports a YAML warning (an unknown tag) as a config warning with its line, and still loads", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "cfg-")), "c.yaml");
    writeFileSync(file, "metrics:\n  port: !custom 9100\n");
    const r = await loadConfig(file, {});
    expect(r.ok).toBe(true);
    expect(r.warnings).toContainEqual({ path: `${file}:2:9`, message: expect.stringMatching(/^YAML: .*!custom/) });
  });

  it("refuses intervals and timeouts longer than a timer can wait, but not ages", () => {
    const v = validateConfig({
      healthChecks: { dependencies: [{ name: "slow", type: "tcp", address: "db:5432", interval: "30d", timeout: "5s" }] },
      sources: { tailscale: { interval: "25d" } },
    });
    expect(v.ok).toBe(false);
    const errors = v.ok ? [] : v.errors;
    expect(errors).toContainEqual({ path: "healthChecks.dependencies[0].interval", message: '"30d" is longer than a timer can wait, use at most "24d"' });
    expect(errors).toContainEqual({ path: "sources.tailscale.interval", message: '"25d" is longer than a timer can wait, use at most "24d"' });
    expect(validateConfig({ healthChecks: { dependencies: [{ name: "daily", type: "tcp", address: "db:5432", interval: "24d" }] } }).ok).toBe(true);
  });

  it("warns about unknown keys with a suggestion, and still loads", () => {
    const r = validateConfig({
      metrics: { prot: 9100, colection: { interval: "5s" } },
      helth: {},
      healthChecks: { dependencies: [{ name: "x", type: "tcp", address: "a:1", timout: "1s" }] },
      totallyUnrelated: 1,
    });
    expect(r.ok).toBe(true);
    const lines = r.warnings.map((w) => `${w.path}: ${w.message}`);
    expect(lines).toContain('metrics.prot: unknown key, ignored; did you mean "port"?');
    expect(lines).toContain('metrics.colection: unknown key, ignored; did you mean "collection"?');
    expect(lines).toContain('helth: unknown key, ignored; did you mean "health"?');
    expect(lines).toContain('healthChecks.dependencies[0].timout: unknown key, ignored; did you mean "timeout"?');
    expect(lines).toContain("totallyUnrelated: unknown key, ignored");
  });

  it("warns about fields a check type does not use", () => {
    const r = validateConfig({ healthChecks: { dependencies: [{ name: "x", type: "tcp", address: "a:1", url: "http://a" }] } });
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([{ path: "healthChecks.dependencies[0].url", message: "ignored: tcp checks do not use it" }]);
  });

  it("applies environment overrides and names the variable in errors", async () => {
    const ok = await loadConfig(SEED, { SIDECAR_METRICS_PORT: "9100", SIDECAR_LOG_LEVEL: "debug" });
    expect(ok.ok && ok.config.metrics.port).toBe(9100);
    expect(ok.ok && ok.config.logging.level).toBe("debug");
    const bad = await loadConfig(SEED, { SIDECAR_HEALTH_PORT: "99999" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors[0]).toEqual({ path: "health.port (from SIDECAR_HEALTH_PORT)", message: '"99999" is not a port, use a whole number from 0 to 65535' });
  });

  it("explains a missing file and a YAML syntax error with its line", async () => {
    const missing = await loadConfig("/nonexistent/config.yaml", {});
    expect(missing.ok).toBe(false);
    if (!missing.ok) expect(missing.errors[0]?.message).toMatch(/no such file/);
    const file = writeTemp("metrics:\n  port: 8080\n   path: /x\n");
    const broken = await loadConfig(file, {});
    expect(broken.ok).toBe(false);
    if (!broken.ok) {
      expect(broken.errors[0]?.path).toMatch(new RegExp(`${file}:[23]:\\d+`));
      expect(broken.errors[0]?.message).toMatch(/not valid YAML/);
    }
    const list = await loadConfig(writeTemp("- a\n- b\n"), {});
    expect(!list.ok && list.errors[0]?.message).toMatch(/top level must be a mapping/);
  });

  it("keeps header credentials out of the printed config", () => {
    const r = validateConfig({
      healthChecks: { dependencies: [{ name: "x", type: "http", url: "http://a", headers: { Authorization: "Bearer planted-secret-123", "X-Trace": "yes" } }] },
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const printed = JSON.stringify(r.config);
    expect(printed).not.toContain("planted-secret-123");
    expect(printed).toContain('"X-Trace":"yes"');
  });
});
