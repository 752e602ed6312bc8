/**
 * The two ways to render the exposition, measured on the same captured series: prom-client's `registry.metrics()`
 * and the catalogue families of src/metrics/families.ts. Each is loaded with every series of the capture
 * (histogram _bucket, _sum and _count samples as gauges of those names in both, so both render the same lines),
 * then timed rendering everything, and rendering again after 1 % of the largest family's series changed —
 * prom-client renders every family for that, the families render only the one that changed. Heap is read after a
 * forced GC. Run in a child process of its own (`node --expose-gc --import tsx bench/render.ts <exposition
 * file>`); prints one JSON line.
 */
import { readFileSync } from "node:fs";
import { Counter as PromCounter, Gauge as PromGauge } from "prom-client";
import { Counter, Gauge, type MetricFamily } from "../src/metrics/families.ts";
import { parseExposition, type ParsedFamily, type ParsedSample } from "./exposition.ts";
import { loadPromClientRegistry } from "./prom-client-registry.ts";

export interface RenderComparison {
  series: number;
  runs: number;
  promClient: RenderFigures;
  families: RenderFigures;
}

export interface RenderFigures {
  /** Median ms to render every series. */
  fullMs: number;
  /** Median ms to bring the exposition up to date after 1 % of the largest family's series changed. */
  afterChangeMs: number;
  /** Heap used by the loaded series, MiB (after a forced GC, over the heap before loading). */
  heapMiB: number;
}

const RUNS = 15;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function heapMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1048576;
}

function labelNames(samples: ParsedSample[]): string[] {
  const names = new Set<string>();
  for (const s of samples) for (const n of Object.keys(s.labels)) names.add(n);
  return [...names];
}

/** The same split as the prom-client loader: each sample name of a histogram becomes a gauge family. */
function loadFamilies(parsed: ParsedFamily[]): MetricFamily[] {
  const out: MetricFamily[] = [];
  for (const family of parsed) {
    if (family.samples.length === 0) continue;
    if (family.type === "counter") {
      const counter = new Counter({ name: family.name, help: family.help || family.name, labelNames: labelNames(family.samples) });
      for (const s of family.samples) counter.inc(s.labels, s.value);
      out.push(counter);
      continue;
    }
    const byName = new Map<string, ParsedSample[]>();
    for (const s of family.samples) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    for (const [name, samples] of byName) {
      const gauge = new Gauge({ name, help: family.help || name, labelNames: labelNames(samples) });
      for (const s of samples) gauge.set(s.labels, s.value);
      out.push(gauge);
    }
  }
  return out;
}

function renderAll(families: MetricFamily[]): number {
  let bytes = 0;
  for (const f of families) bytes += Buffer.byteLength(f.header(false)) + f.renderSamples().length;
  return bytes;
}

async function timed(work: () => unknown): Promise<number> {
  const began = performance.now();
  await work();
  return performance.now() - began;
}

export async function compareRendering(text: string): Promise<RenderComparison> {
  const parsed = parseExposition(text);
  const series = parsed.reduce((n, f) => n + f.samples.length, 0);
  const largest = [...parsed].filter((f) => f.type === "gauge").sort((a, b) => b.samples.length - a.samples.length)[0];
  if (!largest) throw new Error("no gauge family in the exposition");
  const changed = largest.samples.slice(0, Math.max(1, Math.round(largest.samples.length / 100)));
  let flip = 0;

  const heapBefore = heapMiB();
  const registry = loadPromClientRegistry(text);
  const promHeap = heapMiB() - heapBefore;
  const promGauge = registry.getSingleMetric(largest.name) as PromGauge | PromCounter | undefined;
  if (!(promGauge instanceof PromGauge)) throw new Error(`${largest.name} is not a gauge in the prom-client registry`);
  const promFull: number[] = [];
  const promAfter: number[] = [];
  for (let i = 0; i < RUNS; i++) promFull.push(await timed(() => registry.metrics()));
  for (let i = 0; i < RUNS; i++) {
    flip++;
    for (const s of changed) promGauge.set(s.labels, s.value + flip);
    promAfter.push(await timed(() => registry.metrics()));
  }
  registry.clear();

  const heapBetween = heapMiB();
  const families = loadFamilies(parsed);
  const ourHeap = heapMiB() - heapBetween;
  const ourGauge = families.find((f) => f.name === largest.name);
  if (!(ourGauge instanceof Gauge)) throw new Error(`${largest.name} is not a gauge among the families`);
  const ourFull: number[] = [];
  const ourAfter: number[] = [];
  for (let i = 0; i < RUNS; i++) ourFull.push(await timed(() => renderAll(families)));
  for (let i = 0; i < RUNS; i++) {
    flip++;
    for (const s of changed) ourGauge.set(s.labels, s.value + flip);
    ourAfter.push(await timed(() => families.filter((f) => f.dirty).map((f) => f.takeChunks().filter((c) => c.dirty).map((c) => f.renderChunk(c)))));
  }

  return {
    series,
    runs: RUNS,
    promClient: { fullMs: median(promFull), afterChangeMs: median(promAfter), heapMiB: promHeap },
    families: { fullMs: median(ourFull), afterChangeMs: median(ourAfter), heapMiB: ourHeap },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: render.ts <exposition file>");
  console.log(JSON.stringify(await compareRendering(readFileSync(file, "utf8"))));
}
