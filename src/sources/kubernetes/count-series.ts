import type { Labels, OwnedSeries } from "../../metrics/series.ts";

/** The series of one count (a total, a number of ready machines): its labels, made once, and its value. */
export interface CountSeries {
  readonly labels: Labels;
  /** The value its series has; undefined while it has none. */
  written: number | undefined;
}

/**
 * Writes the series of the counts that may have changed and empties `dirty`: `value` says what each count is,
 * or undefined for one that is no more, whose series is removed before `gone` is told. A count that is what its
 * series already says writes nothing.
 */
export function writeCounts<C extends CountSeries>(series: OwnedSeries, dirty: Set<C>, value: (c: C) => number | undefined, gone: (c: C) => void): void {
  for (const c of dirty) {
    const n = value(c);
    if (n === undefined) {
      if (c.written !== undefined) series.delete(c.labels);
      c.written = undefined;
      gone(c);
    } else if (c.written !== n) {
      series.set(c.labels, n);
      c.written = n;
    }
  }
  dirty.clear();
}
