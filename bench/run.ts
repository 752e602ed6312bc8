/**
 * `npm run bench`: this exporter side by side with the servers it replaces, on the same 50,000-series exposition,
 * on this machine, in one run. Writes BENCHMARKS.md and bench/results.json and prints the targets table. Not a test:
 * it exits 0 whether or not the targets are met, and non-zero only when it could not measure.
 *
 *   node --import tsx bench/run.ts [--quick] [--scales 5k,200k] [--scrape-thread] [--write]
 *
 * --quick shortens every run (for trying the benchmark out; it then writes nothing unless --write is given).
 * --scales names the growth report's scales besides 50k, which always runs ("" for none).
 * --scrape-thread measures the exporter serving /metrics from its scrape thread (metrics.scrapeThread: true), and
 * writes BENCHMARKS-scrape-thread.md and bench/results-scrape-thread.json instead.
 * --render only rewrites BENCHMARKS.md from bench/results.json (after a change to the report's wording).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { stringify } from "yaml";
import { coldStartPhase } from "./cold-start.ts";
import { compileExporter, type CompiledExporter } from "./compiled.ts";
import { driveBlackbox, SlowScraper } from "./drivers.ts";
import { launchExporter, profileOf, sourceState, waitComplete, type RunningExporter } from "./exporter.ts";
import { countSeries } from "./exposition.ts";
import { log } from "./log.ts";
import { cpuSeconds, during, rssMiB, threadCpuSeconds } from "./measure.ts";
import {
  consoleTable,
  judge,
  LOADS,
  markdown,
  SERVERS,
  type GrowthPoint,
  type LoadName,
  type LoadRun,
  type Results,
  type ServerName,
  type ServerResult,
} from "./report.ts";
import type { RenderComparison } from "./render.ts";
import { freePort, httpGet, installCleanup, ROOT, sleep, spawnProc, startBlackbox, startNodeExporter, startNodePeer, stopAll, waitForHttp, type Proc } from "./servers.ts";
import { findTools, loadAverage, type Tools } from "./tools.ts";
import { CHECK_INTERVAL_S, SCALES, startUpstreams, type Scale, type Upstreams } from "./workload.ts";
import { runWrk } from "./wrk.ts";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    write: { type: "boolean", default: false },
    scales: { type: "string", default: "5k,200k" },
    render: { type: "boolean", default: false },
    "scrape-thread": { type: "boolean", default: false },
  },
});
const QUICK = flags.quick ?? false;
/** --scrape-thread: the exporter measured serves /metrics from its scrape thread (metrics.scrapeThread). */
const SCRAPE_THREAD = flags["scrape-thread"] ?? false;
const EXPORTER_ENV = SCRAPE_THREAD ? { env: { SIDECAR_METRICS_SCRAPE_THREAD: "true" } } : {};
const WRITE = !QUICK || (flags.write ?? false);
const C1_S = QUICK ? 4 : 15;
const C10_S = QUICK ? 3 : 8;
const CHECKS_WINDOW_S = QUICK ? 15 : 60;
const WARMUP_S = QUICK ? 5 : 10;
const COLD_RUNS = QUICK ? 2 : 5;
/** One-scraper runs at the other scales of the growth report. */
const GROWTH_S = QUICK ? 4 : 10;
/** A run with the scrape thread is written beside the default one, not over it. */
const RESULTS_FILE = join(ROOT, "bench", SCRAPE_THREAD ? "results-scrape-thread.json" : "results.json");
const BENCHMARKS_FILE = join(ROOT, SCRAPE_THREAD ? "BENCHMARKS-scrape-thread.md" : "BENCHMARKS.md");
const GROWTH_SCALES = (flags.scales ?? "").split(",").filter((s): s is "5k" | "200k" => s === "5k" || s === "200k");

const closers = new Set<() => Promise<void>>();
async function cleanup(): Promise<void> {
  await stopAll();
  await Promise.allSettled([...closers].map((c) => c()));
  closers.clear();
}

// ---------------------------------------------------------------------------------------------------------------
// Load runs

const LOAD_SHAPES: Record<LoadName, { connections: number; threads: number; gzip: boolean; durationS: number }> = {
  "c1-plain": { connections: 1, threads: 1, gzip: false, durationS: C1_S },
  "c1-gzip": { connections: 1, threads: 1, gzip: true, durationS: C1_S },
  "c10-plain": { connections: 10, threads: 2, gzip: false, durationS: C10_S },
  "c10-gzip": { connections: 10, threads: 2, gzip: true, durationS: C10_S },
};

const lagReadings: number[] = [];

async function loadRun(pid: number, url: string, load: LoadName, readLag: boolean, durationS = LOAD_SHAPES[load].durationS): Promise<LoadRun> {
  const scraper = new SlowScraper(url, readLag);
  let m;
  try {
    m = await during(pid, () => runWrk({ url, ...LOAD_SHAPES[load], durationS }));
  } finally {
    lagReadings.push(...scraper.stop());
  }
  return { wrk: m.result, cpuSeconds: m.cpuSeconds, cpuMsPerRequest: (m.cpuSeconds * 1000) / m.result.requests, rssMiB: m.rssMiB, peakRssMiB: m.peakRssMiB };
}

async function describeServer(url: string): Promise<Pick<ServerResult, "series" | "plainBytes" | "gzipServed" | "gzipBytes">> {
  const plain = await httpGet(url, {}, 60_000);
  const gz = await httpGet(url, { "accept-encoding": "gzip" }, 60_000);
  return { series: countSeries(plain.body.toString("utf8")), plainBytes: plain.body.length, gzipServed: gz.headers["content-encoding"] === "gzip", gzipBytes: gz.body.length };
}

async function benchServer(name: ServerName, proc: Proc, url: string, readLag: boolean): Promise<ServerResult> {
  const described = await describeServer(url);
  const runs: ServerResult["runs"] = {};
  for (const load of LOADS) {
    log(`${name}: wrk ${load}`);
    runs[load] = await loadRun(proc.pid, url, load, readLag);
    const r = runs[load];
    log(`  p50 ${r.wrk.p50Ms.toFixed(2)} ms, p99 ${r.wrk.p99Ms.toFixed(2)} ms, ${r.wrk.requestsPerSecond.toFixed(1)} req/s, ${r.cpuMsPerRequest.toFixed(2)} CPU-ms/req, RSS ${r.rssMiB.toFixed(0)} MiB`);
    await sleep(1_000);
  }
  return { available: true, ...described, runs, rssMiB: rssMiB(proc.pid) };
}

function unavailable(note: string): ServerResult {
  return { available: false, note, series: 0, plainBytes: 0, gzipServed: false, gzipBytes: 0, runs: {}, rssMiB: Number.NaN };
}

// ---------------------------------------------------------------------------------------------------------------
// Phases

function largestFamilies(body: string): [string, number][] {
  const counts = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = (line.split(/[{ ]/)[0] ?? "").replace(/_(bucket|sum|count)$/, "");
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 6);
}

async function checksPhase(up: Upstreams, main: RunningExporter, tools: Tools): Promise<Results["checks"]> {
  log(`checks: an exporter with only the ${up.scale.httpChecks} HTTP checks${tools.blackbox ? ", and blackbox_exporter driven at the same rate" : ""}`);
  const checksOnly = await launchExporter(up, "checks-only", false);
  await waitComplete(checksOnly, false, 60_000);
  let blackbox: Proc | undefined;
  let blackboxUrl = "";
  if (tools.blackbox) {
    const config = join(up.dir, "blackbox.yml");
    writeFileSync(config, stringify({ modules: { http_2xx: { prober: "http", timeout: "5s", http: { preferred_ip_protocol: "ip4" } } } }));
    const port = await freePort();
    blackbox = startBlackbox(tools.blackbox, config, port);
    blackboxUrl = `http://127.0.0.1:${port}`;
    try {
      await waitForHttp(`${blackboxUrl}/`, blackbox, 15_000);
    } catch (err) {
      log(`blackbox_exporter did not start, its column stays empty: ${err instanceof Error ? err.message : String(err)}`);
      await blackbox.stop();
      blackbox = undefined;
    }
  }
  const targets = up.targets.urls.map((u) => `${u}&from=blackbox`);
  const drive = (durationS: number) =>
    blackbox ? driveBlackbox({ blackbox: blackboxUrl, module: "http_2xx", targets, intervalS: CHECK_INTERVAL_S, durationS }) : sleep(durationS * 1000).then(() => undefined);

  await Promise.all([drive(WARMUP_S), sleep(WARMUP_S * 1000)]);
  log(`checks: measuring ${CHECKS_WINDOW_S} s`);
  const scraper = new SlowScraper(main.metricsUrl, true);
  const before = {
    checks: cpuSeconds(checksOnly.proc.pid),
    threads: threadCpuSeconds(checksOnly.proc.pid),
    main: cpuSeconds(main.proc.pid),
    blackbox: blackbox ? cpuSeconds(blackbox.pid) : 0,
    probes: up.targets.served("checks-only"),
  };
  const started = performance.now();
  const [probeRun] = await Promise.all([drive(CHECKS_WINDOW_S), sleep(CHECKS_WINDOW_S * 1000)]);
  const windowS = (performance.now() - started) / 1000;
  const checksCpu = cpuSeconds(checksOnly.proc.pid) - before.checks;
  const threads = threadCpuSeconds(checksOnly.proc.pid);
  const mainCpu = cpuSeconds(main.proc.pid) - before.main;
  const blackboxCpu = blackbox ? cpuSeconds(blackbox.pid) - before.blackbox : 0;
  const probes = up.targets.served("checks-only") - before.probes;
  lagReadings.push(...scraper.stop());
  await blackbox?.stop();
  const profile = await profileOf(checksOnly, C10_S, false);
  await checksOnly.proc.stop();
  const cost = (cpu: number, n: number) => ({ probes: n, cpuSeconds: cpu, percentOfOneCore: (cpu / windowS) * 100, cpuSecondsPer1000: (cpu / n) * 1000 });
  const result: Results["checks"] = {
    windowS: Math.round(windowS),
    exporter: { ...cost(checksCpu, probes), mainThreadCpuSeconds: threads.main - before.threads.main, otherThreadsCpuSeconds: threads.others - before.threads.others },
    blackbox: probeRun ? { ...cost(blackboxCpu, probeRun.sent), failed: probeRun.failed } : undefined,
    fullExporter: { cpuSeconds: mainCpu, percentOfOneCore: (mainCpu / windowS) * 100 },
    profile,
  };
  log(
    `  exporter ${probes} probes, ${checksCpu.toFixed(2)} CPU-s (${result.exporter.percentOfOneCore.toFixed(2)} %)` +
      (result.blackbox ? `; blackbox ${result.blackbox.probes} probes (${result.blackbox.failed} failed), ${blackboxCpu.toFixed(2)} CPU-s` : ""),
  );
  return result;
}

async function slowSourcePhase(up: Upstreams, main: RunningExporter, baseline: LoadRun): Promise<Results["slowSource"]> {
  log("slow source: the Tailscale API now answers after 10 s");
  const faultedBefore = up.tailscale.counters.faulted;
  up.tailscale.setFault({ kind: "delay", ms: 10_000 });
  const deadline = Date.now() + 20_000;
  while (up.tailscale.counters.faulted === faultedBefore && Date.now() < deadline) await sleep(100);
  const slow = await loadRun(main.proc.pid, main.metricsUrl, "c1-plain", true);
  const slowPollsSeen = up.tailscale.counters.faulted - faultedBefore;
  const state = await sourceState(main, "tailscale");
  up.tailscale.setFault({ kind: "none" });
  log(`  p99 ${slow.wrk.p99Ms.toFixed(2)} ms with, ${baseline.wrk.p99Ms.toFixed(2)} ms without; ${slowPollsSeen} slow polls`);
  return {
    baselineP50Ms: baseline.wrk.p50Ms,
    baselineP99Ms: baseline.wrk.p99Ms,
    slowP50Ms: slow.wrk.p50Ms,
    slowP99Ms: slow.wrk.p99Ms,
    slowPollsSeen,
    sourceUpAfter: state.up,
    sourceError: state.error,
  };
}

async function peersPhase(body: string, tools: Tools): Promise<Pick<Results["servers"], "static" | "prom-client" | "node_exporter">> {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-bench-peers-"));
  closers.add(async () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "exposition.prom");
  writeFileSync(file, body);

  const node = async (name: "static" | "prom-client", script: string, startS: number): Promise<ServerResult> => {
    const port = await freePort();
    const proc = startNodePeer(name, script, [file, String(port)]);
    const url = `http://127.0.0.1:${port}/metrics`;
    try {
      await waitForHttp(url, proc, startS * 1000);
      return await benchServer(name, proc, url, false);
    } finally {
      await proc.stop();
    }
  };
  const out = {
    static: await node("static", "./peer-static.ts", 30),
    "prom-client": await node("prom-client", "./peer-prom-client.ts", 120),
    node_exporter: unavailable("prometheus-node-exporter not installed"),
  };
  if (tools.nodeExporter) {
    const textfiles = join(dir, "textfile");
    mkdirSync(textfiles);
    writeFileSync(join(textfiles, "bench.prom"), body);
    const port = await freePort();
    const proc = startNodeExporter(tools.nodeExporter, textfiles, port);
    const url = `http://127.0.0.1:${port}/metrics`;
    try {
      await waitForHttp(url, proc, 30_000, (a) => a.body.includes("health_check_up"));
      out.node_exporter = await benchServer("node_exporter", proc, url, false);
    } catch (err) {
      // A peer that fails leaves its column empty rather than the whole comparison.
      const note = `node_exporter failed: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`;
      log(note);
      out.node_exporter = unavailable(note);
    } finally {
      await proc.stop();
    }
  }
  return out;
}

/** The exporter at another scale: series, one-scraper latency and RSS; a scale it cannot complete is reported as such. */
async function growthPoint(scale: Scale, completeWithinS: number): Promise<GrowthPoint> {
  log(`growth ${scale.name}: starting simulators and the exporter`);
  const up = await startUpstreams(scale);
  closers.add(up.close);
  let ex: RunningExporter | undefined;
  try {
    ex = await launchExporter(up, `main-${scale.name}`, true, EXPORTER_ENV);
    let body: string;
    try {
      body = await waitComplete(ex, true, completeWithinS * 1000);
    } catch (err) {
      const note = `not complete within ${completeWithinS} s: ${err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err)}`;
      log(`growth ${scale.name}: ${note}`);
      return { scale: scale.name, series: Number.NaN, bytes: Number.NaN, p50Ms: Number.NaN, p99Ms: Number.NaN, rssMiB: rssMiB(ex.proc.pid), note };
    }
    const series = countSeries(body);
    log(`growth ${scale.name}: ${series} series, ${(body.length / 1024 / 1024).toFixed(1)} MiB; wrk c1-plain`);
    const r = await loadRun(ex.proc.pid, ex.metricsUrl, "c1-plain", true, GROWTH_S);
    log(`  p50 ${r.wrk.p50Ms.toFixed(2)} ms, p99 ${r.wrk.p99Ms.toFixed(2)} ms, RSS ${r.rssMiB.toFixed(0)} MiB`);
    return { scale: scale.name, series, bytes: Buffer.byteLength(body), p50Ms: r.wrk.p50Ms, p99Ms: r.wrk.p99Ms, rssMiB: r.rssMiB };
  } finally {
    await ex?.proc.stop();
    closers.delete(up.close);
    await up.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** prom-client against the catalogue families on the captured series, in a child process with a GC to call. */
async function renderingPhase(body: string): Promise<RenderComparison | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-bench-render-"));
  try {
    const file = join(dir, "exposition.prom");
    writeFileSync(file, body);
    const proc = spawnProc("render", process.execPath, ["--expose-gc", "--import", "tsx", join(ROOT, "bench", "render.ts"), file]);
    const code = await proc.exited;
    const line = proc.output().split("\n").find((l) => l.startsWith("{"));
    if (code !== 0 || !line) throw new Error(`exited ${String(code)}: ${proc.output().slice(-500)}`);
    const result = JSON.parse(line) as RenderComparison;
    log(`rendering ${result.series} series: prom-client ${result.promClient.fullMs.toFixed(1)} ms, families ${result.families.fullMs.toFixed(1)} ms; after a change ${result.promClient.afterChangeMs.toFixed(1)} ms against ${result.families.afterChangeMs.toFixed(1)} ms`);
    return result;
  } catch (err) {
    log(`rendering comparison failed: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  installCleanup(cleanup);
  const tools = findTools();
  const loadAtStart = loadAverage();
  if (Number(loadAtStart.split(" ")[0]) > 0.5 * cpus().length) log(`load average is ${loadAtStart} before the start: the numbers will carry that noise`);
  let compiled: CompiledExporter | undefined;
  try {
    compiled = compileExporter();
    const { remove } = compiled;
    closers.add(async () => remove());
  } catch (err) {
    log(`could not bundle src/ for the cold start; measuring under tsx only: ${err instanceof Error ? err.message : String(err)}`);
  }

  const scale = SCALES["50k"];
  log(`50k: starting simulators (${scale.talosNodes} Talos nodes, ${scale.tailscaleDevices} devices, ${scale.managedClusters * (scale.machinesPerCluster + 11) + scale.gatewayObjects} custom resources, ${scale.httpChecks} check targets)`);
  const up = await startUpstreams(scale);
  closers.add(up.close);
  const exp = await launchExporter(up, "main", true, EXPORTER_ENV);
  const body = await waitComplete(exp, true, 120_000);
  const series = countSeries(body);
  log(`50k: exporter complete with ${series} series, ${(body.length / 1024 / 1024).toFixed(2)} MiB`);

  const checks = await checksPhase(up, exp, tools);
  const afterWarmup = rssMiB(exp.proc.pid);
  log(`exporter RSS after warm-up ${afterWarmup.toFixed(0)} MiB`);
  const exporter = await benchServer("exporter", exp.proc, exp.metricsUrl, true);
  const baseline = exporter.runs["c1-plain"];
  const profile = await profileOf(exp, C10_S, true);
  const slowSource = baseline ? await slowSourcePhase(up, exp, baseline) : undefined;
  const afterLoad = rssMiB(exp.proc.pid);
  const peak = Math.max(...Object.values(exporter.runs).map((r) => r.peakRssMiB));
  await exp.proc.stop();

  const coldStartResult = await coldStartPhase(up, compiled?.cli, COLD_RUNS);
  closers.delete(up.close);
  await up.close();

  log("peers on the captured bytes");
  const peerResults = await peersPhase(body, tools);
  const rendering = await renderingPhase(body);

  const growth: GrowthPoint[] = [];
  const fifty: GrowthPoint | undefined = baseline && { scale: "50k", series, bytes: Buffer.byteLength(body), p50Ms: baseline.wrk.p50Ms, p99Ms: baseline.wrk.p99Ms, rssMiB: baseline.rssMiB };
  if (GROWTH_SCALES.includes("5k")) growth.push(await growthPoint(SCALES["5k"], 90));
  if (fifty) growth.push(fifty);
  if (GROWTH_SCALES.includes("200k")) growth.push(await growthPoint(SCALES["200k"], 240));

  const cpu = cpus();
  const results: Results = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpu[0]?.model.trim() ?? "unknown",
      cores: cpu.length,
      memoryGiB: totalmem() / 1024 ** 3,
      kernel: release(),
      node: process.version,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: loadAverage(),
    },
    tools: tools.versions,
    settings: { c1DurationS: C1_S, c10DurationS: C10_S, growthDurationS: GROWTH_S, checksWindowS: CHECKS_WINDOW_S, quick: QUICK, scrapeThread: SCRAPE_THREAD },
    workload: {
      talosNodes: scale.talosNodes,
      talosServicesPerNode: 9,
      managedClusters: scale.managedClusters,
      machinesPerCluster: scale.machinesPerCluster,
      gatewayObjects: scale.gatewayObjects,
      tailscaleDevices: scale.tailscaleDevices,
      customResources: up.customResources,
      httpChecks: scale.httpChecks,
      checkIntervalS: CHECK_INTERVAL_S,
      series,
      bytes: Buffer.byteLength(body),
      gzipBytes: gzipSync(body).length,
      largestFamilies: largestFamilies(body),
    },
    servers: { exporter, ...peerResults },
    checks,
    memory: { exporterAfterWarmupMiB: afterWarmup, exporterAfterLoadMiB: afterLoad, exporterPeakMiB: peak },
    slowSource,
    profile,
    rendering,
    coldStart: coldStartResult,
    eventLoop: { p99Ms: lagReadings },
    growth,
    targets: [],
  };
  results.targets = judge(results);
  for (const s of SERVERS) if (!results.servers[s].available) log(`${s}: ${results.servers[s].note ?? "not run"}`);

  if (WRITE) {
    writeFileSync(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(BENCHMARKS_FILE, markdown(results));
    log("wrote BENCHMARKS.md and bench/results.json");
  }
  process.stdout.write(`\n${consoleTable(results)}\n`);
  log("done");
}

/** BENCHMARKS.md again from the saved results, the targets judged again; nothing is measured. */
function render(): void {
  const results = JSON.parse(readFileSync(RESULTS_FILE, "utf8")) as Results;
  results.targets = judge(results);
  writeFileSync(BENCHMARKS_FILE, markdown(results));
  process.stdout.write(`${consoleTable(results)}\n`);
}

(flags.render ? Promise.resolve().then(render) : main())
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
