import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CATALOGUE } from "../../src/metrics/catalogue.ts";
import { EVENT_ONLY, startDemoRun, type DemoRun } from "../demo-run.ts";
import { eventually, get, healthClient, startRuntime, type TestRuntime } from "../helpers.ts";
import { kubeconfigYaml, startKubeApiSim, type KubeApiSim } from "../sim/kube-api.ts";

/**
 * The real Prometheus (Debian package) scrapes the demo exporter; its HTTP API must then report the target up and
 * every catalogue family stored.
 */
let demo: DemoRun;
let kube: KubeApiSim;
let secure: TestRuntime;
let prometheus: ChildProcess;
let promUrl = "";
let dir = "";
let promLog = "";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

interface QueryResult {
  status: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

async function query(promql: string): Promise<QueryResult["data"]["result"]> {
  const res = await get(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = JSON.parse(res.body) as QueryResult;
  if (body.status !== "success") throw new Error(`query ${promql} failed: ${res.body}`);
  return body.data.result;
}

beforeAll(async () => {
  demo = await startDemoRun();
  // One gRPC probe, as the kubelet would make, so the gRPC server families have series.
  const client = healthClient(demo.grpcAddress);
  await new Promise<void>((resolve, reject) => client.Check({ service: "" }, (err) => (err ? reject(err) : resolve())));
  client.close();
  dir = mkdtempSync(join(tmpdir(), "prometheus-e2e-"));
  // A second exporter serving /metrics over HTTPS behind TokenReview + SubjectAccessReview, as in k8s/overlays/secure.
  kube = await startKubeApiSim();
  kube.tokens.set("prometheus-sa-token-e2e", { username: "system:serviceaccount:monitoring:prometheus", groups: ["system:serviceaccounts"] });
  kube.allow("system:serviceaccount:monitoring:prometheus", "get", "/metrics");
  writeFileSync(join(dir, "kubeconfig"), kubeconfigYaml(kube));
  writeFileSync(join(dir, "token"), "prometheus-sa-token-e2e\n");
  secure = await startRuntime({ metrics: { secure: true, auth: { kubeconfig: join(dir, "kubeconfig") } } });
  const config = {
    global: { scrape_interval: "1s", evaluation_interval: "1s" },
    scrape_configs: [
      { job_name: "sidecar-exporter", static_configs: [{ targets: [demo.metricsAddress] }] },
      {
        job_name: "sidecar-exporter-secure",
        scheme: "https",
        bearer_token_file: join(dir, "token"),
        tls_config: { insecure_skip_verify: true },
        static_configs: [{ targets: [secure.runtime.addresses.metrics] }],
      },
    ],
  };
  writeFileSync(join(dir, "prometheus.yml"), stringify(config));
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prometheus = spawn(
    "prometheus",
    [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  prometheus.stdout?.on("data", (d: Buffer) => (promLog += d.toString()));
  prometheus.stderr?.on("data", (d: Buffer) => (promLog += d.toString()));
  await new Promise<void>((resolve, reject) => {
    prometheus.once("spawn", resolve);
    prometheus.once("error", (err) => reject(new Error(`cannot start prometheus (Debian package prometheus; .ci/run installs it): ${err.message}`)));
  });
  await eventually(async () => (await get(`${promUrl}/-/ready`).catch(() => ({ status: 0 }))).status === 200, 20_000, 200);
  // Two scrapes at least, so rates and the scrape's own duration have data.
  await eventually(async () => {
    const r = await query('count_over_time(up{job="sidecar-exporter"}[1m])');
    return Number(r[0]?.value[1] ?? 0) >= 2;
  }, 20_000, 250);
}, 90_000);

afterAll(async () => {
  prometheus?.kill("SIGTERM");
  if (prometheus && prometheus.exitCode === null) await new Promise((r) => prometheus.once("exit", r));
  await demo?.stop();
  await secure?.runtime.stop();
  await kube?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a real Prometheus scraping the exporter", () => {
  it("sees the target up", async () => {
    const up = await query('up{job="sidecar-exporter"}');
    expect(up).toHaveLength(1);
    expect(up[0]?.value[1], promLog).toBe("1");
  });

  it("stores every metric family of the catalogue", async () => {
    const stored = new Set((await query('group by (__name__) ({job="sidecar-exporter"})')).map((r) => r.metric.__name__));
    const missing = CATALOGUE.filter((m) => !EVENT_ONLY.has(m.name))
      .filter((m) => !stored.has(m.type === "histogram" ? `${m.name}_count` : m.name))
      .map((m) => m.name);
    expect(missing).toEqual([]);
    // The operator's own families arrive through the same target.
    expect(stored.has("controller_runtime_reconcile_total")).toBe(true);
  });

  it("scrapes the secure endpoint over HTTPS with a bearer token file", async () => {
    await eventually(async () => (await query('up{job="sidecar-exporter-secure"}'))[0]?.value[1] === "1", 15_000, 250);
    const stored = await query('sidecar_build_info{job="sidecar-exporter-secure"}');
    expect(stored).toHaveLength(1);
    expect(kube.counts.tokenReviews).toBeGreaterThanOrEqual(1);
  });

  it("keeps the custom labels on what it stores", async () => {
    const ready = await query('sidecar_ready{job="sidecar-exporter"}');
    expect(ready[0]?.metric).toMatchObject({ cluster: "demo", region: "local" });
  });
});
