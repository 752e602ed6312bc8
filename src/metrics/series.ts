import type { Gauge } from "./families.ts";
import type { SeriesBudget } from "./series-budget.ts";

export type Labels = Record<string, string>;
export interface Sample {
  labels: Labels;
  value: number;
}

/**
 * The series of one gauge family that one owner (a source) is responsible for, kept either whole or one at a time.
 *
 * Whole: `replace` installs the complete current set in one synchronous step (scrapes read a rendering, never a
 * family half way through). A failed poll simply does not call `replace`, and the last good series stay exported.
 *
 * One at a time: `set` and `delete`, for an owner that follows changes as they happen and knows which series each
 * one touches.
 *
 * With a budget, a series not exported yet is set only while the budget has room; series already exported always
 * keep theirs, and a series that goes gives its room back. A series refused by `replace` is counted as dropped on
 * every replace that reports it; one refused by `set` is counted once and waits, and `admitWaiting` exports it when
 * room has come free.
 *
 * Series are keyed by the gauge's own key (Gauge.keyOf), which is handed back to it: one key per label set, made
 * once per update.
 */
export class OwnedSeries {
  /**
   * The exported series, by key, each with the latest replace() that reported it. Kept across polls rather than
   * rebuilt: a source that reports ten thousand series a poll, nearly all of them known, then allocates only for
   * what is new.
   */
  readonly #current = new Map<string, number>();
  /** Series set() found no room for, by key, oldest first. */
  readonly #waiting = new Map<string, Sample>();
  #poll = 0;

  /** `labelNames` are those the owner's samples carry; checked against the family's, whose key serves both. */
  constructor(
    private readonly gauge: Gauge,
    labelNames: readonly string[],
    private readonly budget?: SeriesBudget,
  ) {
    if (labelNames.join() !== gauge.labelNames.join()) {
      throw new Error(`series of ${gauge.name} labelled ${labelNames.join(", ")}, but its labels are ${gauge.labelNames.join(", ")}`);
    }
  }

  replace(samples: Iterable<Sample>): void {
    const poll = ++this.#poll;
    this.#waiting.clear();
    const fresh = new Map<string, Sample>();
    for (const sample of samples) {
      const key = this.gauge.keyOf(sample.labels);
      if (this.#current.has(key)) {
        this.#current.set(key, poll);
        this.gauge.setKey(key, sample.labels, sample.value);
      } else {
        fresh.set(key, sample);
      }
    }
    // The room of series that are going is given back before new ones take theirs, so an owner at its limit
    // that swaps one object for another keeps exporting the new one.
    let gone = 0;
    for (const [key, seen] of this.#current) {
      if (seen === poll) continue;
      this.gauge.removeKey(key);
      this.#current.delete(key);
      gone++;
    }
    this.budget?.release(gone);
    let dropped = 0;
    for (const [key, { labels, value }] of fresh) if (!this.#admit(key, labels, value, poll)) dropped++;
    if (dropped > 0) this.budget?.drop(dropped, this.gauge.name);
  }

  /** Sets one series, exporting it if there is room; without room it waits (see the class). */
  set(labels: Labels, value: number): void {
    const key = this.gauge.keyOf(labels);
    if (this.#current.has(key)) {
      this.gauge.setKey(key, labels, value);
      return;
    }
    if (this.#admit(key, labels, value)) {
      this.#waiting.delete(key);
      return;
    }
    const waiting = this.#waiting.get(key);
    if (waiting) waiting.value = value;
    else {
      this.#waiting.set(key, { labels, value });
      this.budget?.drop(1, this.gauge.name);
    }
  }

  /** Removes one series (or stops it waiting), giving its room back. */
  delete(labels: Labels): void {
    const key = this.gauge.keyOf(labels);
    if (this.#waiting.delete(key) || !this.#current.delete(key)) return;
    this.gauge.removeKey(key);
    this.budget?.release(1);
  }

  /** How many series wait for room. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Exports waiting series, oldest first, while the budget has room. */
  admitWaiting(): void {
    for (const [key, { labels, value }] of this.#waiting) {
      if (!this.#admit(key, labels, value)) return;
      this.#waiting.delete(key);
    }
  }

  /** Exports a series not exported yet, if the budget has room for it; false when it has none. */
  #admit(key: string, labels: Labels, value: number, poll = this.#poll): boolean {
    if (this.budget && !this.budget.take()) return false;
    this.#current.set(key, poll);
    this.gauge.setKey(key, labels, value);
    return true;
  }

  /** Removes every series this owner set, e.g. when the source is removed. */
  clear(): void {
    this.replace([]);
  }

  get size(): number {
    return this.#current.size;
  }
}
