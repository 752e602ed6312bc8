import type { Gauge } from "./families.ts";
import type { SeriesBudget } from "./series-budget.ts";

export type Labels = Record<string, string>;
export interface Sample {
  labels: Labels;
  value: number;
}

function keyOf(labels: Labels, names: readonly string[]): string {
  return names.map((n) => labels[n] ?? "").join("\u0000");
}

/**
 * The series of one gauge family that one owner (a source) is responsible for. `replace` installs the complete
 * current set: new and changed series are set first, then series that are no longer there are removed, so a
 * scrape in between never sees a half-empty family. A failed poll simply does not call `replace`, and the last
 * good series stay exported. With a budget, a series not exported yet is set only while the budget has room;
 * series already exported always keep theirs.
 */
export class OwnedSeries {
  #current = new Map<string, Labels>();

  constructor(
    private readonly gauge: Gauge,
    private readonly labelNames: readonly string[],
    private readonly budget?: SeriesBudget,
  ) {}

  replace(samples: Iterable<Sample>): void {
    const incoming = new Map<string, Sample>();
    for (const sample of samples) incoming.set(keyOf(sample.labels, this.labelNames), sample);
    // The room of series that are going is given back first, so an owner at its limit that swaps one object
    // for another keeps exporting the new one.
    let gone = 0;
    for (const key of this.#current.keys()) if (!incoming.has(key)) gone++;
    this.budget?.release(gone);
    const next = new Map<string, Labels>();
    let dropped = 0;
    for (const [key, { labels, value }] of incoming) {
      if (this.budget && !this.#current.has(key) && !this.budget.take()) {
        dropped++;
        continue;
      }
      next.set(key, labels);
      this.gauge.set(labels, value);
    }
    for (const [key, labels] of this.#current) if (!incoming.has(key)) this.gauge.remove(labels);
    this.#current = next;
    if (dropped > 0) this.budget?.drop(dropped, this.gauge.name);
  }

  /** Removes every series this owner set, e.g. when the source is removed. */
  clear(): void {
    this.replace([]);
  }

  get size(): number {
    return this.#current.size;
  }
}
