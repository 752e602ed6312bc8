/**
 * What the HTTP checks alone cost: an exporter with N HTTP checks (no sources) against 10 local keep-alive HTTP
 * services, run as the benchmark runs it (compiled, logging at warn), measured in CPU seconds of its process
 * (all threads, from /proc) over a window after a warm-up. One JSON line per window: probes, CPU seconds (and
 * how much of it the main thread and the other threads took), CPU seconds per 1,000 probes and % of one core.
 *
 *   node --import tsx bench/checks.ts [--checks 1000] [--interval 15] [--warmup 30] [--window 60] [--runs 1]
 *                                     [--profile 0] [--profile-out FILE]
 *
 * --runs measures the same exporter that many windows in a row. --profile N then takes an N-second CPU profile
 * through /debug/pprof/profile and prints where the main thread's time went; --profile-out keeps the
 * .cpuprofile for DevTools. The first minute or so of a process still compiles and settles its heap: compare
 * windows from the same point of a run, and repeat them, on a machine others share.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { waitComplete, type RunningExporter } from "./exporter.ts";
import { log } from "./log.ts";
import { cpuSeconds, threadCpuSeconds } from "./measure.ts";
import { summarizeProfile, type CpuProfile } from "./profile.ts";
import { freePorts, httpGet, installCleanup, sleep, startExporter, stopAll, waitForHttp } from "./servers.ts";
import { startCheckTargets } from "./workload.ts";

const { values: flags } = parseArgs({
  options: {
    checks: { type: "string", default: "1000" },
    interval: { type: "string", default: "15" },
    warmup: { type: "string", default: "30" },
    window: { type: "string", default: "60" },
    profile: { type: "string", default: "0" },
    runs: { type: "string", default: "1" },
    "profile-out": { type: "string" },
  },
});
const CHECKS = Number(flags.checks);
const INTERVAL_S = Number(flags.interval);
const WARMUP_S = Number(flags.warmup);
const WINDOW_S = Number(flags.window);
const PROFILE_S = Number(flags.profile);
const RUNS = Number(flags.runs);
const PROFILE_OUT = flags["profile-out"];
const FROM = "checks-bench";

/** A configuration with only the HTTP checks: no sources, logging at warn, the profiler reachable. */
function writeConfig(dir: string, urls: string[], ports: { metrics: number; health: number; grpc: number }): string {
  const config = {
    metrics: { port: ports.metrics },
    health: { port: ports.health },
    grpcHealth: { port: ports.grpc },
    server: { address: "127.0.0.1", shutdownDelay: "0s", shutdownGracePeriod: "1s" },
    sources: {},
    healthChecks: {
      dependencies: urls.map((url, i) => ({ name: `svc-${String(i).padStart(5, "0")}`, type: "http", url: `${url}&from=${FROM}`, interval: `${INTERVAL_S}s`, timeout: "5s" })),
    },
    debug: { pprof: { enabled: true, maxProfileSeconds: 120 } },
    logging: { level: "warn", format: "json" },
  };
  const file = join(dir, "checks.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

/** A CPU profile of the exporter, summarized on stdout and kept whole in --profile-out for DevTools. */
async function profile(ex: RunningExporter): Promise<void> {
  log(`CPU profile over ${PROFILE_S} s`);
  const before = threadCpuSeconds(ex.proc.pid).main;
  const answer = await httpGet(`${ex.healthUrl}/debug/pprof/profile?seconds=${PROFILE_S}`, {}, (PROFILE_S + 60) * 1000);
  const mainThreadCpuMs = Math.round((threadCpuSeconds(ex.proc.pid).main - before) * 1000);
  if (answer.status !== 200) throw new Error(`profile: status ${answer.status}: ${answer.body.toString("utf8").slice(0, 200)}`);
  if (PROFILE_OUT) writeFileSync(PROFILE_OUT, answer.body);
  const summary = summarizeProfile(JSON.parse(answer.body.toString("utf8")) as CpuProfile, 25);
  const out = (l: { selfMs: number; percent: number; name: string }) => process.stdout.write(`  ${String(l.selfMs).padStart(6)} ms ${String(l.percent).padStart(5)} %  ${l.name}\n`);
  process.stdout.write(`profile: samples busy ${summary.busyMs} ms of ${summary.durationMs} ms; main thread CPU ${mainThreadCpuMs} ms\n`);
  summary.areas.forEach(out);
  summary.functions.forEach(out);
}

async function main(): Promise<void> {
  installCleanup(stopAll);
  const dir = mkdtempSync(join(tmpdir(), "checks-bench-"));
  const targets = await startCheckTargets(CHECKS);
  const [metrics = 0, health = 0, grpc = 0] = await freePorts(3);
  const proc = startExporter("checks-only", writeConfig(dir, targets.urls, { metrics, health, grpc }), {});
  const ex: RunningExporter = { proc, ports: { metrics, health, grpc }, metricsUrl: `http://127.0.0.1:${metrics}/metrics`, healthUrl: `http://127.0.0.1:${health}` };
  try {
    await waitForHttp(`${ex.healthUrl}/healthz`, proc, 60_000);
    await waitComplete(ex, false, 120_000);
    log(`${CHECKS} checks every ${INTERVAL_S} s: warming up ${WARMUP_S} s`);
    await sleep(WARMUP_S * 1000);
    for (let run = 1; run <= RUNS; run++) {
      const before = { cpu: cpuSeconds(proc.pid), threads: threadCpuSeconds(proc.pid), probes: targets.served(FROM) };
      const started = performance.now();
      await sleep(WINDOW_S * 1000);
      const windowS = (performance.now() - started) / 1000;
      const cpu = cpuSeconds(proc.pid) - before.cpu;
      const threads = threadCpuSeconds(proc.pid);
      const probes = targets.served(FROM) - before.probes;
      const line = {
        run,
        windowS: Math.round(windowS * 10) / 10,
        probes,
        cpuSeconds: Math.round(cpu * 100) / 100,
        mainThread: Math.round((threads.main - before.threads.main) * 100) / 100,
        otherThreads: Math.round((threads.others - before.threads.others) * 100) / 100,
        cpuSecondsPer1000Probes: Math.round((cpu / probes) * 1000 * 1000) / 1000,
        percentOfOneCore: Math.round((cpu / windowS) * 100 * 100) / 100,
      };
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    if (PROFILE_S > 0) await profile(ex);
  } finally {
    await proc.stop();
    await targets.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
