/**
 * Where the event loop stays busy for long: the exporter with the 50k workload (sources and checks), scraped by
 * one scraper without pause, profiled for a window; every stretch of the main thread busy for longer than the
 * threshold is attributed to the code that started it (the outermost frame of this project, else of a package),
 * and the stretches are summed per cause. These stretches are what the tails of scrape latency and event-loop
 * delay are made of.
 *
 *   node --import tsx bench/stalls.ts [--window 60] [--threshold 5] [--warmup 20] [--out FILE] [--node-args "FLAGS"]
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { launchExporter, waitComplete } from "./exporter.ts";
import { log } from "./log.ts";
import type { CpuProfile } from "./profile.ts";
import { httpGet, installCleanup, sleep, stopAll } from "./servers.ts";
import { SCALES, startUpstreams, type Upstreams } from "./workload.ts";
import { runWrk } from "./wrk.ts";

export interface Stall {
  startMs: number;
  durationMs: number;
  cause: string;
}

type Node = CpuProfile["nodes"][number] & { children?: number[] };

/** `function file:line` of a frame, the file relative to the project or package. */
function frameName(n: Node): string {
  const url = n.callFrame.url.replace(/^.*\/(dist|src|bench|test)\//, "$1/").replace(/^.*node_modules\//, "");
  return `${n.callFrame.functionName || "(anonymous)"} ${url}:${n.callFrame.lineNumber + 1}`;
}

const isProject = (url: string) => /\/(dist|src)\//.test(url) && !url.includes("node_modules");
const isPackage = (url: string) => url.includes("node_modules/");

/**
 * Busy stretches of the main thread longer than `thresholdMs`: consecutive non-idle samples (a gap shorter than
 * `joinMs` of idle does not end a stretch: the loop did not get round to anything else in it).
 */
export function findStalls(profile: CpuProfile, thresholdMs: number, joinMs = 0.5): Stall[] {
  const nodes = profile.nodes as Node[];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const causeCache = new Map<number, string>();
  const causeOf = (id: number): string => {
    const cached = causeCache.get(id);
    if (cached !== undefined) return cached;
    const path: Node[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) path.unshift(byId.get(cur) as Node);
    const project = path.find((n) => isProject(n.callFrame.url));
    const pkg = path.find((n) => isPackage(n.callFrame.url));
    const leaf = path.at(-1) as Node;
    const cause = project ? frameName(project) : pkg ? frameName(pkg) : frameName(leaf);
    causeCache.set(id, cause);
    return cause;
  };
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const stalls: Stall[] = [];
  let t = 0;
  let current: { start: number; end: number; causes: Map<string, number> } | undefined;
  const close = () => {
    if (current && current.end - current.start >= thresholdMs) {
      const [cause] = [...current.causes].sort((a, b) => b[1] - a[1])[0] ?? ["?"];
      stalls.push({ startMs: current.start, durationMs: current.end - current.start, cause });
    }
    current = undefined;
  };
  let idleSince: number | undefined;
  for (let i = 0; i < samples.length; i++) {
    const dt = (deltas[i] ?? 0) / 1000;
    t += dt;
    const node = byId.get(samples[i] as number) as Node;
    const name = node.callFrame.functionName;
    if (name === "(idle)" || name === "(program)") {
      idleSince ??= t - dt;
      if (current && t - idleSince > joinMs) close();
      continue;
    }
    idleSince = undefined;
    // GC and the like are charged to the stretch they interrupt.
    const cause = name.startsWith("(") ? name : causeOf(node.id);
    current ??= { start: t - dt, end: t, causes: new Map() };
    current.end = t;
    current.causes.set(cause, (current.causes.get(cause) ?? 0) + dt);
  }
  close();
  return stalls;
}

export function summarizeStalls(stalls: readonly Stall[], windowMs: number): string {
  const byCause = new Map<string, { count: number; totalMs: number; maxMs: number }>();
  for (const s of stalls) {
    const c = byCause.get(s.cause) ?? { count: 0, totalMs: 0, maxMs: 0 };
    c.count++;
    c.totalMs += s.durationMs;
    c.maxMs = Math.max(c.maxMs, s.durationMs);
    byCause.set(s.cause, c);
  }
  const rows = [...byCause].sort((a, b) => b[1].totalMs - a[1].totalMs);
  const lines = [`${stalls.length} stretches in ${(windowMs / 1000).toFixed(0)} s, ${stalls.reduce((n, s) => n + s.durationMs, 0).toFixed(0)} ms in all`];
  lines.push("  count  total ms  max ms  started by");
  for (const [cause, c] of rows.slice(0, 25)) lines.push(`  ${String(c.count).padStart(5)}  ${c.totalMs.toFixed(1).padStart(8)}  ${c.maxMs.toFixed(1).padStart(6)}  ${cause}`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      window: { type: "string", default: "60" },
      threshold: { type: "string", default: "5" },
      warmup: { type: "string", default: "20" },
      out: { type: "string" },
      "node-args": { type: "string" },
    },
  });
  const windowS = Number(values.window);
  let up: Upstreams | undefined;
  installCleanup(async () => {
    await stopAll();
    await up?.close();
  });
  try {
    up = await startUpstreams(SCALES["50k"]);
    // --node-args replaces the image entrypoint's node flags ("" for none): V8's heap settings move the collections.
    const nodeArgs = values["node-args"]?.split(" ").filter(Boolean);
    const ex = await launchExporter(up, "stalls", true, nodeArgs === undefined ? {} : { nodeArgs });
    await waitComplete(ex, true, 180_000);
    log(`complete; warming up ${values.warmup} s, then ${windowS} s of one scraper while profiling`);
    await sleep(Number(values.warmup) * 1000);
    const wrk = runWrk({ url: ex.metricsUrl, connections: 1, threads: 1, gzip: false, durationS: windowS + 2 });
    const answer = await httpGet(`${ex.healthUrl}/debug/pprof/profile?seconds=${windowS}`, {}, (windowS + 60) * 1000);
    const load = await wrk;
    if (answer.status !== 200) throw new Error(`profile: status ${answer.status}`);
    if (values.out) writeFileSync(values.out, answer.body);
    const profile = JSON.parse(answer.body.toString("utf8")) as CpuProfile;
    log(`scrapes: p50 ${load.p50Ms} ms, p99 ${load.p99Ms} ms, max ${load.maxMs} ms, ${load.requestsPerSecond} req/s`);
    console.log(summarizeStalls(findStalls(profile, Number(values.threshold)), windowS * 1000));
  } finally {
    await stopAll();
    await up?.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
