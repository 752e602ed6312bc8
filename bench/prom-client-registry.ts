/**
 * A prom-client Registry loaded with the series of a captured exposition. Counters and gauges are loaded as what
 * they are; a histogram's _bucket, _sum and _count samples as gauges of those names, which renders the same
 * number of lines of the same shape, since only the cost of rendering is compared.
 */
import { Counter, Gauge, Registry } from "prom-client";
import { parseExposition, type ParsedSample } from "./exposition.ts";

function labelNames(samples: ParsedSample[]): string[] {
  const names = new Set<string>();
  for (const s of samples) for (const n of Object.keys(s.labels)) names.add(n);
  return [...names];
}

/** A prom-client Registry holding the series of an exposition (see the header for how histograms are loaded). */
export function loadPromClientRegistry(text: string): Registry {
  const registry = new Registry();
  for (const family of parseExposition(text)) {
    // prom-client renders a label-less metric nobody set as 0: a family without samples would add a series.
    if (family.samples.length === 0) continue;
    if (family.type === "counter") {
      const counter = new Counter({ name: family.name, help: family.help || family.name, labelNames: labelNames(family.samples), registers: [registry] });
      for (const s of family.samples) counter.inc(s.labels, s.value);
      continue;
    }
    // Gauges, untyped families, and each sample name of a histogram or summary.
    const byName = new Map<string, ParsedSample[]>();
    for (const s of family.samples) {
      const list = byName.get(s.name);
      if (list) list.push(s);
      else byName.set(s.name, [s]);
    }
    for (const [name, samples] of byName) {
      const gauge = new Gauge({ name, help: family.help || name, labelNames: labelNames(samples), registers: [registry] });
      for (const s of samples) gauge.set(s.labels, s.value);
    }
  }
  return registry;
}

