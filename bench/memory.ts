/**
 * Where the exporter's memory goes with the 50,000-series workload: it starts the simulators and the compiled
 * exporter, waits until every source and check is complete, lets it run (and be scraped) for a warm-up, then
 * prints RSS, the V8 heap and what the heap holds, by constructor, from a heap snapshot.
 *
 *   node --import tsx bench/memory.ts [--scale 50k] [--warmup 60] [--only talos,kubernetes] [--no-checks] [--env NAME=VALUE] [--node-flag=FLAG | --no-image-flags] [--snapshot FILE]
 *
 * --only keeps the named sources (talos, kubernetes, tailscale, backups); --no-checks drops the HTTP checks; together
 * they tell each part's share. --env NAME=VALUE (repeatable) sets the exporter's environment, e.g.
 * --env NODE_OPTIONS=--max-semi-space-size=1 to try V8 flags. The exporter runs with the flags of the image's
 * ENTRYPOINT; --node-flag=FLAG (repeatable) runs it with the given ones instead, --no-image-flags with none.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { imageNodeFlags } from "./compiled.ts";
import { launchExporter, waitComplete } from "./exporter.ts";
import { countSeries } from "./exposition.ts";
import { retainedByConstructor, selfSizeByConstructor, type HeapRow, type HeapSnapshot } from "./heap.ts";
import { log } from "./log.ts";
import { cpuSeconds } from "./measure.ts";
import { installCleanup, httpGet, sleep, stopAll } from "./servers.ts";
import { SCALES, startUpstreams, type Upstreams } from "./workload.ts";

const { values: flags } = parseArgs({
  options: {
    scale: { type: "string", default: "50k" },
    warmup: { type: "string", default: "60" },
    only: { type: "string" },
    "no-checks": { type: "boolean", default: false },
    snapshot: { type: "string" },
    env: { type: "string", multiple: true, default: [] },
    "node-flag": { type: "string", multiple: true, default: [] },
    "no-image-flags": { type: "boolean", default: false },
  },
});

/** VmRSS, RssAnon and RssFile of a process, MiB. */
function rss(pid: number): Record<string, number> {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) / 1024;
  return { VmRSS: kb("VmRSS"), RssAnon: kb("RssAnon"), RssFile: kb("RssFile"), VmHWM: kb("VmHWM") };
}

/** The nodejs_* memory gauges of the exporter's own /metrics, MiB. */
function nodeMemory(exposition: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of exposition.matchAll(/^nodejs_(heap_size_used_bytes|heap_size_total_bytes|external_memory_bytes|heap_space_size_used_bytes\{space="(\w+)"\})(?:\{[^}]*\})? (\S+)$/gm)) {
    const value = Number(m[3]) / 1048576;
    if (value >= 0.5) out[m[2] ? `heap space ${m[2]}` : (m[1] ?? "")] = value;
  }
  return out;
}

/** The exporter's node flags: the image entrypoint's, unless --node-flag or --no-image-flags say otherwise. */
function nodeFlags(): string[] {
  const given = flags["node-flag"] ?? [];
  return given.length > 0 || flags["no-image-flags"] ? given : imageNodeFlags();
}

/** The workload's configuration, narrowed to some sources and with or without the HTTP checks. */
function narrow(file: string, only: string[] | undefined, checks: boolean): void {
  const doc = parse(readFileSync(file, "utf8")) as { sources?: Record<string, unknown>; healthChecks: { dependencies: { type: string; source?: string; name: string }[]; custom: unknown[] } };
  if (only && doc.sources) {
    doc.sources = Object.fromEntries(Object.entries(doc.sources).filter(([name]) => only.includes(name)));
    doc.healthChecks.custom = [];
    doc.healthChecks.dependencies = doc.healthChecks.dependencies.filter((d) => d.type === "http");
  }
  if (!checks) doc.healthChecks.dependencies = doc.healthChecks.dependencies.filter((d) => d.type !== "http");
  writeFileSync(file, stringify(doc));
}

async function main(): Promise<void> {
  let up: Upstreams | undefined;
  installCleanup(async () => {
    await stopAll();
    await up?.close();
  });
  const scale = SCALES[flags.scale as keyof typeof SCALES];
  if (!scale) throw new Error(`--scale: one of ${Object.keys(SCALES).join(", ")}`);
  log(`${scale.name}: starting simulators`);
  up = await startUpstreams(scale);
  try {
    const only = flags.only?.split(",").filter(Boolean);
    const env = Object.fromEntries((flags.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
    const ex = await launchExporter(up, "memory", true, { editConfig: (file) => narrow(file, only, !flags["no-checks"]), env, nodeArgs: nodeFlags() });
    const started = Date.now();
    const body = await waitComplete(ex, only === undefined || only.length > 0, 180_000);
    log(`complete after ${((Date.now() - started) / 1000).toFixed(0)} s: ${countSeries(body)} series; RSS ${rss(ex.proc.pid).VmRSS?.toFixed(0)} MiB`);
    // Scraped as Prometheus would, every 15 s, while the checks and polls keep running; RSS read every second,
    // since a single reading lands anywhere between two collections.
    const warmupS = Number(flags.warmup);
    const samples: number[] = [];
    const cpuBefore = cpuSeconds(ex.proc.pid);
    const sampler = setInterval(() => samples.push(rss(ex.proc.pid).VmRSS ?? Number.NaN), 1_000);
    for (let t = 0; t < warmupS; t += 15) {
      await sleep(Math.min(15, warmupS - t) * 1000);
      await httpGet(ex.metricsUrl, { "accept-encoding": "gzip" }, 60_000);
      log(`  warm-up ${Math.min(t + 15, warmupS)} s: RSS ${rss(ex.proc.pid).VmRSS?.toFixed(0)} MiB`);
    }
    clearInterval(sampler);
    const cpuShare = ((cpuSeconds(ex.proc.pid) - cpuBefore) / warmupS) * 100;
    const sorted = [...samples].sort((a, b) => a - b);
    const memory = { ...rss(ex.proc.pid), "warm-up median": sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, "warm-up max": sorted.at(-1) ?? Number.NaN };
    const exposition = (await httpGet(ex.metricsUrl, {}, 60_000)).body.toString("utf8");
    const heap = nodeMemory(exposition);
    const snapshotBody = (await httpGet(`${ex.healthUrl}/debug/pprof/heap`, {}, 120_000)).body;
    if (flags.snapshot) writeFileSync(flags.snapshot, snapshotBody);
    const snapshot = JSON.parse(snapshotBody.toString("utf8")) as HeapSnapshot;
    const fmt = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v.toFixed(1)} MiB`).join(", ");
    const table = (rows: HeapRow[]) => rows.map((r) => `  ${r.mib.toFixed(2).padStart(8)} MiB ${String(r.count).padStart(9)}  ${r.what}\n`).join("");
    process.stdout.write(`RSS after warm-up: ${fmt(memory)}\nCPU over the warm-up: ${cpuShare.toFixed(1)}% of a core\nV8: ${fmt(heap)}\n`);
    process.stdout.write(`heap by constructor, self size:\n${table(selfSizeByConstructor(snapshot, 20))}`);
    process.stdout.write(`heap by constructor, retained size:\n${table(retainedByConstructor(snapshot, 30))}`);
    await ex.proc.stop();
  } finally {
    await stopAll();
    await up.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
