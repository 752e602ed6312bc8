/** The results of one run: their shape, the issue's targets judged against them, and BENCHMARKS.md. */
import type { ProfileSummary } from "./profile.ts";
import type { RenderComparison } from "./render.ts";
import type { WrkResult } from "./wrk.ts";

export const SERVERS = ["exporter", "static", "prom-client", "node_exporter"] as const;
export type ServerName = (typeof SERVERS)[number];
export const LOADS = ["c1-plain", "c1-gzip", "c10-plain", "c10-gzip"] as const;
export type LoadName = (typeof LOADS)[number];

export const SERVER_TITLES: Record<ServerName, string> = {
  exporter: "this exporter",
  static: "static buffer (Node)",
  "prom-client": "prom-client registry.metrics()",
  node_exporter: "node_exporter 1.5 textfile",
};

export interface LoadRun {
  wrk: WrkResult;
  /** CPU seconds the server spent during the run. */
  cpuSeconds: number;
  cpuMsPerRequest: number;
  rssMiB: number;
  peakRssMiB: number;
}

export interface ServerResult {
  available: boolean;
  /** Why a peer did not run (not installed). */
  note?: string;
  series: number;
  plainBytes: number;
  /** Whether it answered a gzip-accepting scrape with gzip, and how large that was. */
  gzipServed: boolean;
  gzipBytes: number;
  runs: Partial<Record<LoadName, LoadRun>>;
  /** VmRSS after all its runs. */
  rssMiB: number;
}

export interface ProbeCost {
  probes: number;
  cpuSeconds: number;
  percentOfOneCore: number;
  cpuSecondsPer1000: number;
}

export interface GrowthPoint {
  scale: string;
  series: number;
  bytes: number;
  p50Ms: number;
  p99Ms: number;
  rssMiB: number;
  /** Why the point has no latency: the exporter did not complete at this scale. */
  note?: string;
}

export interface Results {
  date: string;
  machine: { cpu: string; cores: number; memoryGiB: number; kernel: string; node: string; loadAverageAtStart: string; loadAverageAtEnd: string };
  tools: Record<string, string>;
  settings: { c1DurationS: number; c10DurationS: number; growthDurationS: number; checksWindowS: number; quick: boolean; scrapeThread?: boolean };
  workload: {
    talosNodes: number;
    talosServicesPerNode: number;
    managedClusters: number;
    machinesPerCluster: number;
    gatewayObjects: number;
    tailscaleDevices: number;
    customResources: number;
    httpChecks: number;
    checkIntervalS: number;
    series: number;
    bytes: number;
    gzipBytes: number;
    largestFamilies: [string, number][];
  };
  servers: Record<ServerName, ServerResult>;
  checks: {
    windowS: number;
    exporter: ProbeCost & { mainThreadCpuSeconds: number; otherThreadsCpuSeconds: number };
    blackbox: (ProbeCost & { failed: number }) | undefined;
    /** The checks-only exporter's CPU profile right after the window. */
    profile: ProfileSummary | undefined;
    /** The full 50k exporter over the same window: sources polling, 1,000 checks, series upkeep, one slow scrape every 2 s. */
    fullExporter: { cpuSeconds: number; percentOfOneCore: number };
  };
  memory: { exporterAfterWarmupMiB: number; exporterAfterLoadMiB: number; exporterPeakMiB: number };
  slowSource: { baselineP50Ms: number; baselineP99Ms: number; slowP50Ms: number; slowP99Ms: number; slowPollsSeen: number; sourceUpAfter: boolean; sourceError: string | null } | undefined;
  /** The exporter's CPU profile during one-scraper load. */
  profile: ProfileSummary | undefined;
  /** prom-client's registry.metrics() against the catalogue families, on the captured series. */
  rendering?: RenderComparison | undefined;
  coldStart: { compiledMs: number[]; compiledNoConfigMs: number[]; tsxMs: number[] };
  eventLoop: { p99Ms: number[] };
  growth: GrowthPoint[];
  targets: TargetRow[];
}

export interface TargetRow {
  what: string;
  target: string;
  measured: string;
  compared: string;
  ratio: string;
  met: boolean | undefined;
}

// ---------------------------------------------------------------------------------------------------------------

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

const fmtMiB = (m: number | undefined) => (m === undefined || !Number.isFinite(m) ? "—" : `${m.toFixed(0)} MiB`);
const fmtRatio = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "—");
const fmtInt = (n: number) => n.toLocaleString("en-US");
const fmtBytes = (b: number) => (b >= 1024 * 1024 ? `${(b / 1024 / 1024).toFixed(2)} MiB` : `${(b / 1024).toFixed(0)} KiB`);

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function run(r: Results, server: ServerName, load: LoadName): LoadRun | undefined {
  return r.servers[server].runs[load];
}

function peers(r: Results, load: LoadName, pick: (run: LoadRun) => number, fmt: (n: number) => string): string {
  return (["static", "prom-client", "node_exporter"] as const)
    .map((s) => {
      const x = run(r, s, load);
      return `${s} ${x ? fmt(pick(x)) : "—"}`;
    })
    .join("; ");
}

/** Growth between the smallest and largest scale as an exponent: 1 is linear, below 1 better than linear. */
export function growthExponent(points: GrowthPoint[], pick: (p: GrowthPoint) => number): number {
  const measured = points.filter((p) => p.note === undefined);
  const first = measured[0];
  const last = measured[measured.length - 1];
  if (!first || !last || first === last) return Number.NaN;
  return Math.log(pick(last) / pick(first)) / Math.log(last.series / first.series);
}

/** The issue's targets, each judged against this run's numbers. */
export function judge(r: Results): TargetRow[] {
  const rows: TargetRow[] = [];
  const ex = (load: LoadName) => run(r, "exporter", load);
  const st = (load: LoadName) => run(r, "static", load);

  const p1 = ex("c1-plain");
  const s1 = st("c1-plain");
  if (p1) {
    const ratio = s1 ? p1.wrk.p99Ms / s1.wrk.p99Ms : Number.NaN;
    rows.push({
      what: `GET /metrics, ${fmtInt(r.workload.series)} series, one scraper: p99`,
      target: "≤ 5 ms and ≤ 1.5× static",
      measured: `p99 ${fmtMs(p1.wrk.p99Ms)} (p50 ${fmtMs(p1.wrk.p50Ms)})`,
      compared: peers(r, "c1-plain", (x) => x.wrk.p99Ms, fmtMs),
      ratio: `${fmtRatio(ratio)} static`,
      met: p1.wrk.p99Ms <= 5 && ratio <= 1.5,
    });
  }
  const g1 = ex("c1-gzip");
  if (g1) {
    const sg = st("c1-gzip");
    rows.push({
      what: `same, Accept-Encoding: gzip${r.servers.exporter.gzipServed ? "" : " (answered uncompressed)"}`,
      target: "p99 ≤ 3 ms",
      measured: `p99 ${fmtMs(g1.wrk.p99Ms)} (p50 ${fmtMs(g1.wrk.p50Ms)})`,
      compared: peers(r, "c1-gzip", (x) => x.wrk.p99Ms, fmtMs),
      ratio: sg ? `${fmtRatio(g1.wrk.p99Ms / sg.wrk.p99Ms)} static` : "—",
      met: g1.wrk.p99Ms <= 3,
    });
  }
  for (const load of ["c10-plain", "c10-gzip"] as const) {
    const c = ex(load);
    if (!c) continue;
    const s = st(load);
    const ratio = s ? c.wrk.requestsPerSecond / s.wrk.requestsPerSecond : Number.NaN;
    const errors = c.wrk.errors.timeout + c.wrk.errors.connect + c.wrk.errors.read + c.wrk.errors.non2xx;
    rows.push({
      what: `10 concurrent scrapers${load === "c10-gzip" ? ", gzip" : ""}: throughput, slowest request`,
      target: "≥ 0.8× static; none over 1 s",
      measured: `${c.wrk.requestsPerSecond.toFixed(0)} req/s, max ${fmtMs(c.wrk.maxMs)}${errors ? `, ${errors} errors` : ""}`,
      compared: peers(r, load, (x) => x.wrk.requestsPerSecond, (n) => `${n.toFixed(0)} req/s`),
      ratio: `${fmtRatio(ratio)} static`,
      met: ratio >= 0.8 && c.wrk.maxMs <= 1000 && errors === 0,
    });
  }
  const { exporter: ce, blackbox: bb } = r.checks;
  rows.push({
    what: `${fmtInt(r.workload.httpChecks)} HTTP checks every ${r.workload.checkIntervalS} s (${fmtInt(ce.probes)} probes in ${r.checks.windowS} s)`,
    target: "< 5 % of one core; ≤ 0.5× blackbox CPU",
    measured: `${ce.percentOfOneCore.toFixed(2)} % of a core, ${ce.cpuSecondsPer1000.toFixed(3)} CPU-s per 1,000 probes`,
    compared: bb ? `blackbox_exporter ${bb.cpuSecondsPer1000.toFixed(3)} CPU-s per 1,000 probes (${bb.percentOfOneCore.toFixed(2)} %)` : "blackbox_exporter not run",
    ratio: bb ? `${fmtRatio(ce.cpuSecondsPer1000 / bb.cpuSecondsPer1000)} blackbox` : "—",
    met: ce.percentOfOneCore < 5 && (bb ? ce.cpuSecondsPer1000 / bb.cpuSecondsPer1000 <= 0.5 : true),
  });
  const rss = Math.max(r.memory.exporterAfterWarmupMiB, r.memory.exporterAfterLoadMiB);
  rows.push({
    what: `resident memory, ${fmtInt(r.workload.series)} series and ${fmtInt(r.workload.httpChecks)} checks, after warm-up`,
    target: "≤ 80 MiB",
    measured: `${fmtMiB(rss)} (after warm-up ${fmtMiB(r.memory.exporterAfterWarmupMiB)}, after the scrape runs ${fmtMiB(r.memory.exporterAfterLoadMiB)}, peak ${fmtMiB(r.memory.exporterPeakMiB)})`,
    compared: (["static", "prom-client", "node_exporter"] as const).map((s) => `${s} ${r.servers[s].available ? fmtMiB(r.servers[s].rssMiB) : "—"}`).join("; "),
    ratio: r.servers["prom-client"].available ? `${fmtRatio(rss / r.servers["prom-client"].rssMiB)} prom-client` : "—",
    met: rss <= 80,
  });
  const compiled = r.coldStart.compiledMs.length > 0;
  const cold = median(compiled ? r.coldStart.compiledMs : r.coldStart.tsxMs);
  rows.push({
    what: `cold start to /healthz 200, ${compiled ? "compiled as the image runs it" : "under tsx (src/ could not be bundled)"}, with the ${fmtInt(r.workload.series)}-series configuration (median)`,
    target: "≤ 400 ms",
    measured: `${fmtMs(cold)} (runs ${(compiled ? r.coldStart.compiledMs : r.coldStart.tsxMs).map((m) => m.toFixed(0)).join(", ")} ms)`,
    compared: `no configuration ${fmtMs(median(r.coldStart.compiledNoConfigMs))}; under tsx (npm start) ${fmtMs(median(r.coldStart.tsxMs))}`,
    ratio: "—",
    met: cold <= 400,
  });
  const lag = r.eventLoop.p99Ms;
  const worst = lag.length > 0 ? Math.max(...lag) : Number.NaN;
  rows.push({
    what: "event-loop delay p99 while serving scrapes and running checks",
    target: "≤ 20 ms",
    measured: `worst ${fmtMs(worst)}, median ${fmtMs(median(lag))} over ${lag.length} readings`,
    compared: "nodejs_eventloop_lag_p99_seconds (prom-client's monitor, 10 ms resolution: about 10 ms is its floor) read every 2 s during every load run and the checks window",
    ratio: "—",
    met: Number.isFinite(worst) ? worst <= 20 : undefined,
  });
  if (r.slowSource) {
    const s = r.slowSource;
    rows.push({
      what: "scrape p99 while one source's upstream takes 10 s per answer",
      target: "does not move (≤ 1.25× + 1 ms)",
      measured: `p99 ${fmtMs(s.slowP99Ms)} (p50 ${fmtMs(s.slowP50Ms)}), ${s.slowPollsSeen} slow polls`,
      compared: `without: p99 ${fmtMs(s.baselineP99Ms)} (p50 ${fmtMs(s.baselineP50Ms)})`,
      ratio: `${fmtRatio(s.slowP99Ms / s.baselineP99Ms)} without`,
      met: s.slowP99Ms <= s.baselineP99Ms * 1.25 + 1,
    });
  }
  if (r.growth.length >= 2) {
    const failed = r.growth.filter((g) => g.note !== undefined);
    const latency = growthExponent(r.growth, (p) => p.p50Ms);
    const memory = growthExponent(r.growth, (p) => p.rssMiB);
    rows.push({
      what: `growth ${r.growth.map((g) => g.scale).join(" → ")} series`,
      target: "linear or better (exponent ≤ 1)",
      measured: `p50 latency ∝ series^${latency.toFixed(2)}, RSS ∝ series^${memory.toFixed(2)}`,
      compared: r.growth.map((g) => `${g.scale}: ${g.note === undefined ? `p50 ${fmtMs(g.p50Ms)}, ${fmtMiB(g.rssMiB)}` : g.note}`).join("; "),
      ratio: "—",
      met: failed.length === 0 && latency <= 1.05 && memory <= 1.05,
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------

function table(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`)].join("\n");
}

const metMark = (m: boolean | undefined) => (m === undefined ? "n/a" : m ? "met" : "**not met**");

export function targetsTable(r: Results): string {
  return table(
    ["what", "target", "this exporter", "compared with (same run)", "ratio", "met"],
    r.targets.map((t) => [t.what, t.target, t.measured, t.compared, t.ratio, metMark(t.met)]),
  );
}

function scrapeTable(r: Results): string {
  const rows: string[][] = [];
  for (const load of LOADS) {
    for (const server of SERVERS) {
      const s = r.servers[server];
      const x = s.runs[load];
      if (!x) {
        if (!s.available) rows.push([load, SERVER_TITLES[server], s.note ?? "not run", "", "", "", "", "", "", ""]);
        continue;
      }
      const e = x.wrk.errors;
      const errs = e.connect + e.read + e.write + e.timeout + e.non2xx;
      if (x.wrk.requests === 0) {
        rows.push([load, SERVER_TITLES[server], `no request finished in ${x.wrk.durationS} s`, "", "", "0", "", "", fmtMiB(x.peakRssMiB), String(errs)]);
        continue;
      }
      rows.push([
        load,
        SERVER_TITLES[server],
        fmtMs(x.wrk.p50Ms),
        fmtMs(x.wrk.p99Ms),
        fmtMs(x.wrk.maxMs),
        x.wrk.requestsPerSecond.toFixed(1),
        fmtBytes(x.wrk.bytesPerResponse),
        `${x.cpuMsPerRequest.toFixed(2)} ms`,
        fmtMiB(x.peakRssMiB),
        String(errs),
      ]);
    }
  }
  return table(["load", "server", "p50", "p99", "max", "req/s", "bytes/response", "CPU per request", "peak RSS", "errors"], rows);
}

function growthTable(r: Results): string {
  const rows = r.growth.map((g, i) => {
    if (g.note !== undefined) return [g.scale, "—", "—", g.note, "", fmtMiB(g.rssMiB), "", ""];
    const prev = r.growth[i - 1];
    const perSeries = prev ? `${(((g.rssMiB - prev.rssMiB) * 1024 * 1024) / (g.series - prev.series)).toFixed(0)} B/series` : "—";
    const perSeriesMs = prev ? `${(((g.p50Ms - prev.p50Ms) * 1000) / ((g.series - prev.series) / 1000)).toFixed(1)} µs/1k series` : "—";
    return [g.scale, fmtInt(g.series), fmtBytes(g.bytes), fmtMs(g.p50Ms), fmtMs(g.p99Ms), fmtMiB(g.rssMiB), perSeriesMs, perSeries];
  });
  return table(["scale", "series", "exposition", "p50 (1 scraper)", "p99", "RSS", "p50 added per 1k series", "RSS added per series"], rows);
}

export function markdown(r: Results): string {
  const w = r.workload;
  const c = r.checks;
  const lines = [
    "# Benchmarks",
    "",
    `Generated by \`npm run bench\` (bench/run.ts) on ${r.date}; do not edit by hand. Raw numbers: bench/results.json.`,
    "",
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB.toFixed(0)} GiB, Linux ${r.machine.kernel}; Node.js ${r.machine.node}; ` +
      `load average ${r.machine.loadAverageAtStart} at start, ${r.machine.loadAverageAtEnd} at the end. ` +
      `Tools: ${Object.entries(r.tools).map(([k, v]) => `${k} ${v}`).join(", ")}.${r.settings.quick ? " **Quick run: short durations, numbers are indicative only.**" : ""}` +
      (r.settings.scrapeThread ? " The exporter served /metrics from its scrape thread (`metrics.scrapeThread: true`)." : ""),
    "",
    "## Workload",
    "",
    `The exporter runs as its own process, compiled as the image runs it (\`node dist/cli.js\`, logging at warn), against the project's simulators: ` +
      `${fmtInt(w.talosNodes)} Talos nodes with ${w.talosServicesPerNode} services each behind one apid endpoint, ${fmtInt(w.tailscaleDevices)} Tailscale devices, ` +
      `${fmtInt(w.customResources)} custom resources in the Kubernetes API simulator (${fmtInt(w.managedClusters)} managed Talos clusters of ${w.machinesPerCluster} machines with their control planes, workers, backup schedules and a week of backups, and ${fmtInt(w.gatewayObjects)} Tailscale gateway objects), ` +
      `an S3 bucket and a directory of etcd snapshots, and ${fmtInt(w.httpChecks)} HTTP checks every ${w.checkIntervalS} s against 10 local HTTP services. ` +
      `Its /metrics then holds **${fmtInt(w.series)} series** (lines that are not comments), ${fmtBytes(w.bytes)} plain, ${fmtBytes(w.gzipBytes)} gzip'ed. ` +
      `Largest families: ${w.largestFamilies.map(([n, k]) => `${n} ${fmtInt(k)}`).join(", ")}.`,
    "",
    "The peers serve the same bytes, captured from the exporter once every source and check had reported: a Node server writing them from a Buffer " +
      "(plain, and gzip'ed once at start); prom-client's `registry.metrics()` behind a plain node:http server, its Registry loaded from the captured " +
      "exposition (counters and gauges as such; histogram _bucket/_sum/_count samples as gauges of those names, since only rendering cost is compared) and " +
      "gzip'ed per request when asked; node_exporter's textfile collector reading the bytes from `bench.prom` " +
      "(`--collector.disable-defaults --collector.textfile --web.disable-exporter-metrics`).",
    "",
    `Load: Debian \`wrk\` with \`--latency\`: one connection (\`-c1 -t1 -d${r.settings.c1DurationS}s\`, one scraper) and ten (\`-c10 -t2 -d${r.settings.c10DurationS}s\`), ` +
      "each plain and with `Accept-Encoding: gzip`. A second scraper reads /metrics every 2 s during every run (for the exporter it reads the " +
      "event-loop delay). CPU seconds are utime+stime from /proc/<pid>/stat, memory is VmRSS from /proc/<pid>/status, sampled every 250 ms.",
    "",
    "## Targets",
    "",
    targetsTable(r),
    "",
    "## Scrapes",
    "",
    `Series served: ${SERVERS.map((s) => `${s} ${r.servers[s].available ? fmtInt(r.servers[s].series) : "—"}`).join(", ")}. ` +
      `gzip answered as gzip: ${SERVERS.map((s) => `${s} ${r.servers[s].available ? (r.servers[s].gzipServed ? "yes" : "no") : "—"}`).join(", ")}.`,
    "",
    scrapeTable(r),
    "",
    "bytes/response is what wrk read divided by the requests it completed, so a run that ends in the middle of responses shows a little more than one body. " +
      "CPU per request is the server's CPU seconds over the run divided by the requests completed.",
    "",
    ...renderingSection(r.rendering),
    "## Checks",
    "",
    `Over ${c.windowS} s after a warm-up, an exporter whose only work is the ${fmtInt(w.httpChecks)} HTTP checks made ${fmtInt(c.exporter.probes)} probes with ` +
      `${c.exporter.cpuSeconds.toFixed(2)} CPU-s (${c.exporter.percentOfOneCore.toFixed(2)} % of one core, ${c.exporter.cpuSecondsPer1000.toFixed(3)} CPU-s per 1,000 probes; ` +
      `${c.exporter.mainThreadCpuSeconds.toFixed(2)} s on the event loop's thread, ${c.exporter.otherThreadsCpuSeconds.toFixed(2)} s on V8's and libuv's other threads). ` +
      (c.blackbox
        ? `blackbox_exporter, asked for the same probes at the same rate (\`/probe?module=http_2xx\` over a keep-alive pool), made ${fmtInt(c.blackbox.probes)} ` +
          `(${c.blackbox.failed} failed) with ${c.blackbox.cpuSeconds.toFixed(2)} CPU-s (${c.blackbox.cpuSecondsPer1000.toFixed(3)} per 1,000). `
        : "blackbox_exporter was not run. ") +
      `The full exporter meanwhile (sources, checks, ${fmtInt(w.series)} series) used ${c.fullExporter.cpuSeconds.toFixed(2)} CPU-s (${c.fullExporter.percentOfOneCore.toFixed(2)} % of one core).`,
    "",
    "## Growth",
    "",
    "The same workload scaled (Talos nodes, devices, custom resources and checks together, 0.1× and 4×); one scraper, plain, " +
      `${r.settings.growthDurationS} s at the other scales, the ${r.settings.c1DurationS} s run above at 50k. Latency growth is the exponent k in p50 ∝ series^k ` +
      "between the smallest and the largest scale measured (1 = linear); memory the same for RSS, which includes the process' fixed base.",
    "",
    growthTable(r),
    "",
    "## Start and slow sources",
    "",
    `Cold start, spawn to the first /healthz 200, simulators running: compiled (\`node dist/cli.js\`, src/ bundled as the image builds it) with the 50k configuration ` +
      `${r.coldStart.compiledMs.map((m) => m.toFixed(0)).join(", ")} ms; compiled with no configuration ${r.coldStart.compiledNoConfigMs.map((m) => m.toFixed(0)).join(", ")} ms; ` +
      `under tsx with the 50k configuration ${r.coldStart.tsxMs.map((m) => m.toFixed(0)).join(", ")} ms.`,
    "",
    r.slowSource
      ? `Slow source: the Tailscale API answering after 10 s (timeout 14 s, so each poll waits it out): one-scraper p50/p99 ${fmtMs(r.slowSource.slowP50Ms)} / ${fmtMs(r.slowSource.slowP99Ms)} ` +
        `against ${fmtMs(r.slowSource.baselineP50Ms)} / ${fmtMs(r.slowSource.baselineP99Ms)} without; ${r.slowSource.slowPollsSeen} slow polls during the run; after the run the source was ${r.slowSource.sourceUpAfter ? "up" : `down (${r.slowSource.sourceError ?? "no error recorded"})`}.`
      : "Slow source: not run.",
    "",
    ...profileSection(r.profile, "Where the exporter's time goes during scrapes", "of the 50k exporter while one scraper scrapes /metrics without pause"),
    ...profileSection(r.checks.profile, "Where the time of the checks goes", `of the exporter that runs only the ${fmtInt(r.workload.httpChecks)} HTTP checks, no scrapes`),
  ];
  return lines.join("\n");
}

function profileSection(p: ProfileSummary | undefined, title: string, what: string): string[] {
  if (!p) return [];
  return [
    `## ${title}`,
    "",
    `A CPU profile (\`/debug/pprof/profile\`) over ${(p.durationMs / 1000).toFixed(0)} s ${what}: ` +
      `the samples show ${(p.busyMs / 1000).toFixed(2)} s of work in ${(p.durationMs / 1000).toFixed(1)} s` +
      (p.mainThreadCpuMs === undefined ? "" : ` (the main thread's CPU time over the same span, from /proc: ${(p.mainThreadCpuMs / 1000).toFixed(2)} s)`) +
      ". Self time, as a share of what the samples show:",
    "",
    table(["area", "self time", "share"], p.areas.map((a) => [a.name, `${a.selfMs} ms`, `${a.percent} %`])),
    "",
    table(["function", "self time", "share"], p.functions.map((f) => [f.name, `${f.selfMs} ms`, `${f.percent} %`])),
    "",
  ];
}

/** The targets as a fixed-width table for the terminal. */
export function consoleTable(r: Results): string {
  const rows = r.targets.map((t) => [t.what, t.target, t.measured, t.ratio, t.met === undefined ? "n/a" : t.met ? "met" : "NOT MET"]);
  const header = ["what", "target", "this exporter", "ratio", "met"];
  const widths = header.map((h, i) => Math.min(70, Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))));
  const line = (cells: string[]) => cells.map((c, i) => (c.length > (widths[i] ?? 0) ? `${c.slice(0, (widths[i] ?? 1) - 1)}…` : c.padEnd(widths[i] ?? 0))).join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

function renderingSection(c: RenderComparison | undefined): string[] {
  if (!c) return [];
  const row = (name: string, f: RenderComparison["families"]) => `| ${name} | ${f.fullMs.toFixed(1)} ms | ${f.afterChangeMs.toFixed(1)} ms | ${f.heapMiB.toFixed(1)} MiB |`;
  return [
    "## Rendering: prom-client or the catalogue families",
    "",
    `Both loaded with the ${fmtInt(c.series)} captured series (histogram samples as gauges in both, so both write the same lines), ` +
      `median of ${c.runs} renderings each (bench/render.ts). "After a change": 1 % of the largest family's series changed, and the exposition ` +
      "brought up to date: prom-client renders every family for that, the families only the one that changed. Heap: after a forced GC, over the heap before loading.",
    "",
    "| renderer | everything | after a change | heap |",
    "|---|---|---|---|",
    row("prom-client `registry.metrics()`", c.promClient),
    row("catalogue families (kept)", c.families),
    "",
  ];
}
