import type { Counter } from "./families.ts";
import type { Logger } from "../log.ts";

/** limits.seriesPerSource when nothing says otherwise. */
export const DEFAULT_SERIES_PER_SOURCE = 10_000;

/** Drops are logged at most this often per source, however many series are refused. */
const WARN_EVERY_MS = 60_000;

export interface SeriesBudgetOptions {
  source: string;
  limit?: number;
  /** sidecar_series_dropped_total{source}. */
  dropped: Counter;
  logger: Logger;
  now?: () => number;
}

/**
 * How many series one source may export, shared by every family it owns, so one runaway upstream (a tailnet
 * with a million devices, a CRD stampede) cannot exhaust the exporter's memory. Series already exported keep
 * their room; a new one gets room only while the source is under its limit, and room frees up when series go.
 */
export class SeriesBudget {
  readonly source: string;
  readonly limit: number;
  readonly #dropped: Counter;
  readonly #logger: Logger;
  readonly #now: () => number;
  #used = 0;
  #lastWarning = -Infinity;
  /** Drops not yet reported in a log line. */
  #unreported = 0;

  constructor(opts: SeriesBudgetOptions) {
    this.source = opts.source;
    this.limit = opts.limit ?? DEFAULT_SERIES_PER_SOURCE;
    this.#dropped = opts.dropped;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
    // Exported from the start, so rate() has a zero to begin from.
    this.#dropped.inc({ source: this.source }, 0);
  }

  get used(): number {
    return this.#used;
  }

  /** Takes room for one new series; false when the source is at its limit. */
  take(): boolean {
    return this.takeAll(1);
  }

  /** Takes room for `count` new series that stand or fall together; false, taking nothing, when they do not all fit. */
  takeAll(count: number): boolean {
    if (this.#used + count > this.limit) return false;
    this.#used += count;
    return true;
  }

  /** Gives back the room of series that are no longer exported. */
  release(count: number): void {
    this.#used = Math.max(0, this.#used - count);
  }

  /** Counts new series of `family` that found no room, and warns about it at most once a minute. */
  drop(count: number, family: string): void {
    if (count <= 0) return;
    this.#dropped.inc({ source: this.source }, count);
    this.#unreported += count;
    const now = this.#now();
    if (now - this.#lastWarning < WARN_EVERY_MS) return;
    this.#lastWarning = now;
    this.#logger.warn(
      { source: this.source, limit: this.limit, family, dropped: this.#unreported },
      "series limit reached: new series are dropped (raise limits.seriesPerSource if this source really has that many objects)",
    );
    this.#unreported = 0;
  }
}
