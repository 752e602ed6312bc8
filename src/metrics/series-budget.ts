import { Budget, type BudgetOptions } from "./budget.ts";

/** limits.seriesPerSource when nothing says otherwise. */
export const DEFAULT_SERIES_PER_SOURCE = 10_000;

export interface SeriesBudgetOptions extends Omit<BudgetOptions, "limit"> {
  limit?: number;
}

/**
 * How many series one source may export, shared by every family it owns, so one runaway upstream (a tailnet
 * with a million devices, a CRD stampede) cannot exhaust the exporter's memory. Series already exported keep
 * their room; a new one gets room only while the source is under its limit, and room frees up when series go.
 */
export class SeriesBudget extends Budget {
  constructor(opts: SeriesBudgetOptions) {
    super(
      { ...opts, limit: opts.limit ?? DEFAULT_SERIES_PER_SOURCE },
      "series limit reached: new series are dropped (raise limits.seriesPerSource if this source really has that many objects)",
    );
    // Exported from the start, so rate() has a zero to begin from.
    this.start();
  }

  /** Counts new series of `family` that found no room, and warns about it at most once a minute. */
  drop(count: number, family: string): void {
    this.count(count, {}, { family });
  }
}
