import type { Gauge } from "prom-client";

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
 * good series stay exported.
 */
export class OwnedSeries {
  #current = new Map<string, Labels>();

  constructor(
    private readonly gauge: Gauge<string>,
    private readonly labelNames: readonly string[],
  ) {}

  replace(samples: Iterable<Sample>): void {
    const next = new Map<string, Labels>();
    for (const { labels, value } of samples) {
      next.set(keyOf(labels, this.labelNames), labels);
      this.gauge.set(labels, value);
    }
    for (const [key, labels] of this.#current) if (!next.has(key)) this.gauge.remove(labels);
    this.#current = next;
  }

  /** Removes every series this owner set, e.g. when the source is removed. */
  clear(): void {
    this.replace([]);
  }

  get size(): number {
    return this.#current.size;
  }
}
