/**
 * `npm run soak -- --minutes 10`: runs the exporter against the demo's simulators while everything it watches keeps
 * changing — custom resources created, changed and deleted, tailnet devices coming and going, Talos services and
 * etcd alarms flapping, an HTTP check whose target alternates 200/500 — and while /metrics and the probes are
 * scraped all the time. Every minute it prints the exporter's RSS, V8 heap in use and active handles; at the end
 * it compares the last minute with the first minute after warm-up and exits 1 when any grew by more than 5 %.
 * Samples are taken every 5 s, each right after a full garbage collection the soak asks the exporter for; RSS is
 * compared by the minutes' medians, heap and handles by their lowest values.
 * Not part of CI: it takes as long as it is told to.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { request } from "undici";
import { parse, stringify } from "yaml";
import type { KubeObject } from "../test/sim/kube-api.ts";
import { startDemoEnvironment } from "./demo.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SAMPLE_EVERY_MS = 5_000;
/**
 * Loaded into the exporter for the soak only: SIGUSR2 runs a full garbage collection, so every sample measures
 * what is still referenced rather than where the collector happens to be in its cycle.
 */
const GC_ON_SIGNAL = `data:text/javascript,${encodeURIComponent('process.on("SIGUSR2", () => globalThis.gc?.());')}`;
const MINUTE_MS = 60_000;
const TALOS_API = "talos.alperen.cloud/v1alpha1";

interface Options {
  minutes: number;
  /** Allowed growth, in %, of each figure from the first minute after warm-up to the last. */
  maxGrowthPercent: number;
}

function options(): Options {
  const { values } = parseArgs({ options: { minutes: { type: "string", default: "10" }, "max-growth": { type: "string", default: "5" } } });
  const minutes = Number(values.minutes);
  const maxGrowthPercent = Number(values["max-growth"]);
  if (!Number.isInteger(minutes) || minutes < 3) throw new Error("--minutes must be a whole number, at least 3 (one minute of warm-up, then two to compare)");
  if (!Number.isFinite(maxGrowthPercent) || maxGrowthPercent < 0) throw new Error("--max-growth must be a percentage");
  return { minutes, maxGrowthPercent };
}

/** The parts of the demo's config the soak changes. */
interface DemoConfig {
  sources: Record<string, Record<string, unknown>>;
  healthChecks: { dependencies: Record<string, unknown>[] };
  logging: Record<string, unknown>;
}

interface Sample {
  atMs: number;
  rssBytes: number;
  heapUsedBytes: number;
  handles: number;
}

function lowest(values: number[]): number {
  return values.length === 0 ? Number.NaN : Math.min(...values);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? Number.NaN : sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  return kb === undefined ? Number.NaN : Number(kb) * 1024;
}

/** Sum of every series of one family in an exposition (one series, or one per label set such as handle type). */
function familySum(text: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    found = true;
  }
  return found ? sum : Number.NaN;
}

async function fetchText(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await request(url, { headers, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await res.body.text();
  return { status: res.statusCode, text };
}

/** Runs `step` every `everyMs` until stopped; a step never overlaps the previous one. */
function loop(everyMs: number, step: (i: number) => Promise<void> | void): { stop(): Promise<void> } {
  let stopped = false;
  let i = 0;
  const done = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        await step(i++);
      } catch {
        // Counted by the step itself where it matters; a churn step that fails is simply retried next time.
      }
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - started))));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
    },
  };
}

async function main(): Promise<number> {
  const opts = options();
  const demo = await startDemoEnvironment({ metrics: 0, health: 0, grpc: 0 }, "2s");
  const { kube, tailscale, talos } = demo.sims;

  // A check target that alternates between passing and failing on every request.
  let flips = 0;
  const flapping = createServer((_req, res) => {
    res.statusCode = flips++ % 2 === 0 ? 200 : 500;
    res.end(res.statusCode === 200 ? "ok" : "failing");
  });
  await new Promise<void>((resolve) => flapping.listen(0, "127.0.0.1", resolve));
  const flappingUrl = `http://127.0.0.1:${(flapping.address() as AddressInfo).port}/health`;

  // Faster polling than the demo's defaults, so ten minutes see many polls of every source.
  const config = parse(readFileSync(demo.configFile, "utf8")) as DemoConfig;
  for (const source of ["talos", "tailscale", "backups", "operatorMetrics"]) config.sources[source] = { ...config.sources[source], interval: "2s" };
  config.sources.kubernetes = { ...config.sources.kubernetes, interval: "5s" };
  config.healthChecks.dependencies.push({ name: "flapping", type: "http", url: flappingUrl, interval: "1s", timeout: "500ms" });
  config.logging = { level: "info", format: "json" };
  const configFile = join(demo.configFile, "..", "soak.yaml");
  writeFileSync(configFile, stringify(config));

  const child = spawn(process.execPath, ["--expose-gc", "--import", GC_ON_SIGNAL, "--import", "tsx", join(ROOT, "src/cli.ts"), "--config", configFile], {
    cwd: ROOT,
    env: { ...process.env, ...demo.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("the exporter did not start");
  // The log is read for the start line and counted; the rest is dropped, or the pipe would fill and stall the child.
  const recent: string[] = [];
  const logCounts = { warn: 0, error: 0 };
  let started: ((addresses: { metrics: string; health: string }) => void) | undefined;
  const addresses = new Promise<{ metrics: string; health: string }>((resolve) => (started = resolve));
  let partial = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      recent.push(line);
      if (recent.length > 40) recent.shift();
      if (line.includes('"level":"warn"') || line.includes('"level":40')) logCounts.warn++;
      if (line.includes('"level":"error"') || line.includes('"level":50')) logCounts.error++;
      if (line.includes("sidecar-exporter started")) started?.(JSON.parse(line) as { metrics: string; health: string });
    }
  });
  child.stderr.on("data", (chunk: Buffer) => recent.push(chunk.toString("utf8")));
  let exited = false;
  const exit = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      exited = true;
      resolve(code);
    }),
  );

  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the exporter did not start:\n${recent.join("\n")}`)), 60_000).unref());
  const early = exit.then((code) => Promise.reject(new Error(`the exporter exited with code ${code} before it started:\n${recent.join("\n")}`)));
  const { metrics, health } = await Promise.race([addresses, timeout, early]);
  const metricsUrl = `http://${metrics}/metrics`;
  const healthUrl = `http://${health}`;
  process.stdout.write(`exporter pid ${pid}: metrics ${metricsUrl}, health ${healthUrl}; soaking for ${opts.minutes} minutes (first minute is warm-up)\n`);

  // --- Churn ---------------------------------------------------------------------------------------------------
  const counts = { kube: 0, devices: 0, talos: 0, scrapes: 0, probes: 0, failedRequests: 0 };
  const machine = (name: string, state: string): KubeObject => ({
    apiVersion: TALOS_API,
    kind: "TalosMachine",
    metadata: { name, namespace: "talos-system", ownerReferences: [{ apiVersion: TALOS_API, kind: "TalosCluster", name: "production", uid: "uid-taloscluster-production", controller: true }] },
    spec: { workerRef: { name: "production-workers" } },
    status: { state },
  });
  const kubeChurn = loop(300, (i) => {
    kube.upsert(machine(`churn-${i % 40}`, i % 3 === 0 ? "Pending" : "Available"));
    if (i % 2 === 0) kube.delete(TALOS_API, "talosmachines", "talos-system", `churn-${(i + 20) % 40}`);
    counts.kube++;
  });
  const churned: string[] = [];
  let deviceSeq = 0;
  const deviceChurn = loop(700, () => {
    const d = tailscale.addDevice({ hostname: `churn-${deviceSeq++}`, os: ["linux", "windows", "macOS"][deviceSeq % 3] as string, tags: deviceSeq % 2 ? ["tag:k8s"] : [] });
    churned.push(d.id);
    while (churned.length > 25) tailscale.removeDevice(churned.shift() as string);
    counts.devices++;
  });
  const talosChurn = loop(1_000, (i) => {
    const nodes = talos.model.nodes;
    const node = nodes[i % nodes.length];
    const service = node?.services[i % (node.services.length || 1)];
    if (service) service.state = service.state === "Running" ? "Failed" : "Running";
    const cp = nodes[0]?.etcd;
    if (cp) {
      cp.dbSize += 4096;
      cp.errors = i % 5 === 0 ? ["NOSPACE"] : [];
    }
    if (nodes[4]) nodes[4].version = i % 2 ? "v1.9.5" : "v1.9.6";
    counts.talos++;
  });

  // --- Constant scrapes ------------------------------------------------------------------------------------------
  const accepts = [{}, { accept: "application/openmetrics-text; version=1.0.0" }, { "accept-encoding": "gzip" }];
  const scraper = loop(100, async (i) => {
    try {
      const res = await request(metricsUrl, { headers: accepts[i % accepts.length] ?? {} });
      await res.body.dump();
      if (res.statusCode !== 200) counts.failedRequests++;
      counts.scrapes++;
    } catch {
      counts.failedRequests++;
    }
  });
  const probePaths = ["/readyz", "/readyz?verbose", "/healthz", "/debug/status", "/health/flapping"];
  const prober = loop(100, async (i) => {
    try {
      const res = await request(`${healthUrl}${probePaths[i % probePaths.length]}`);
      await res.body.dump();
      counts.probes++;
    } catch {
      counts.failedRequests++;
    }
  });

  // --- Measuring -------------------------------------------------------------------------------------------------
  const samples: Sample[] = [];
  const begin = Date.now();
  let interrupted = false;
  process.once("SIGINT", () => (interrupted = true));
  // Per minute: RSS, the median of its samples; heap and handles, the lowest. Each sample follows a full collection,
  // but what was allocated since and the scrapes in flight come and go; a leak raises the floor they leave.
  const header = "minute      RSS         heap used   handles   scrapes  probes  failed  warn/error logs";
  process.stdout.write(`${header}\n`);
  for (let minute = 1; minute <= opts.minutes && !interrupted && !exited; minute++) {
    const end = begin + minute * MINUTE_MS;
    while (Date.now() < end && !interrupted && !exited) {
      await new Promise((r) => setTimeout(r, Math.min(SAMPLE_EVERY_MS, end - Date.now())));
      try {
        child.kill("SIGUSR2");
        await new Promise((r) => setTimeout(r, 100));
        const { text } = await fetchText(metricsUrl);
        samples.push({ atMs: Date.now() - begin, rssBytes: rssOf(pid), heapUsedBytes: familySum(text, "nodejs_heap_size_used_bytes"), handles: familySum(text, "nodejs_active_handles") });
      } catch (err) {
        counts.failedRequests++;
        if (exited) break;
        process.stderr.write(`sample failed: ${(err as Error).message}\n`);
      }
    }
    const inMinute = samples.filter((s) => s.atMs > (minute - 1) * MINUTE_MS && s.atMs <= minute * MINUTE_MS);
    process.stdout.write(
      `${String(minute).padEnd(12)}${mib(median(inMinute.map((s) => s.rssBytes))).padEnd(12)}${mib(lowest(inMinute.map((s) => s.heapUsedBytes))).padEnd(12)}` +
        `${String(lowest(inMinute.map((s) => s.handles))).padEnd(10)}${String(counts.scrapes).padEnd(9)}${String(counts.probes).padEnd(8)}${String(counts.failedRequests).padEnd(8)}${logCounts.warn}/${logCounts.error}\n`,
    );
  }

  await Promise.all([kubeChurn.stop(), deviceChurn.stop(), talosChurn.stop(), scraper.stop(), prober.stop()]);
  // Ctrl-C reaches the exporter too; only an exit nobody asked for is a crash.
  const crashed = exited && !interrupted;
  if (!exited) child.kill("SIGTERM");
  const code = await exit;
  flapping.close();
  await demo.close();
  process.stdout.write(`churn: ${counts.kube} custom resource changes, ${counts.devices} devices added, ${counts.talos} Talos model changes, ${flips} flapping check answers\n`);
  if (crashed) {
    process.stderr.write(`the exporter exited early (code ${code}):\n${recent.join("\n")}\n`);
    return 1;
  }

  // --- Verdict ---------------------------------------------------------------------------------------------------
  const minutesRun = Math.floor((samples.at(-1)?.atMs ?? 0) / MINUTE_MS + 0.5);
  const window = (m: number) => samples.filter((s) => s.atMs > (m - 1) * MINUTE_MS && s.atMs <= m * MINUTE_MS);
  const baseline = window(2);
  const last = window(Math.max(3, minutesRun));
  if (baseline.length === 0 || last.length === 0 || minutesRun < 3) {
    process.stderr.write("not enough samples after warm-up to compare (run at least 3 minutes)\n");
    return 1;
  }
  let failed = false;
  process.stdout.write(`growth from minute 2 to minute ${Math.max(3, minutesRun)} (${baseline.length} and ${last.length} samples; limit ${opts.maxGrowthPercent} %):\n`);
  for (const [label, pick, summary, show] of [
    ["RSS", (s: Sample) => s.rssBytes, median, mib],
    ["heap used", (s: Sample) => s.heapUsedBytes, lowest, mib],
    ["handles", (s: Sample) => s.handles, lowest, String],
  ] as const) {
    const from = summary(baseline.map(pick));
    const to = summary(last.map(pick));
    const growth = ((to - from) / from) * 100;
    const bad = !Number.isFinite(growth) || growth > opts.maxGrowthPercent;
    failed ||= bad;
    process.stdout.write(`  ${label.padEnd(10)} ${show(from)} → ${show(to)}: ${growth >= 0 ? "+" : ""}${growth.toFixed(1)} %${bad ? "  FAIL" : ""}\n`);
  }
  if (counts.failedRequests > 0) process.stdout.write(`  ${counts.failedRequests} scrape or probe requests failed\n`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
