import type { Gauge } from "./families.ts";
import type { SeriesBudget } from "./series-budget.ts";

export type Labels = Record<string, string>;
export interface Sample {
  labels: Labels;
  value: number;
}

function keyOf(labels: Labels, names: readonly string[]): string {
  let key = labels[names[0] ?? ""] ?? "";
  for (let i = 1; i < names.length; i++) key += `\u0000${labels[names[i] as string] ?? ""}`;
  return key;
}

interface Owned {
  readonly labels: Labels;
  /** The latest replace() that reported this series. */
  seen: number;
}

/**
 * The series of one gauge family that one owner (a source) is responsible for. `replace` installs the complete
 * current set in one synchronous step (scrapes read a rendering, never a family half way through). A failed poll
 * simply does not call `replace`, and the last good series stay exported. With a budget, a series not exported
 * yet is set only while the budget has room; series already exported always keep theirs.
 */
export class OwnedSeries {
  /**
   * Kept across polls and marked with the poll that last saw each series, rather than rebuilt: a source that
   * reports ten thousand series a poll, nearly all of them known, then allocates only for what is new.
   */
  readonly #current = new Map<string, Owned>();
  #poll = 0;

  constructor(
    private readonly gauge: Gauge,
    private readonly labelNames: readonly string[],
    private readonly budget?: SeriesBudget,
  ) {}

  replace(samples: Iterable<Sample>): void {
    const poll = ++this.#poll;
    const fresh = new Map<string, Sample>();
    for (const sample of samples) {
      const key = keyOf(sample.labels, this.labelNames);
      const owned = this.#current.get(key);
      if (owned) {
        owned.seen = poll;
        this.gauge.set(sample.labels, sample.value);
      } else {
        fresh.set(key, sample);
      }
    }
    // The room of series that are going is given back before new ones take theirs, so an owner at its limit
    // that swaps one object for another keeps exporting the new one.
    let gone = 0;
    for (const [key, owned] of this.#current) {
      if (owned.seen === poll) continue;
      this.gauge.remove(owned.labels);
      this.#current.delete(key);
      gone++;
    }
    this.budget?.release(gone);
    let dropped = 0;
    for (const [key, { labels, value }] of fresh) {
      if (this.budget && !this.budget.take()) {
        dropped++;
        continue;
      }
      this.#current.set(key, { labels, seen: poll });
      this.gauge.set(labels, value);
    }
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
