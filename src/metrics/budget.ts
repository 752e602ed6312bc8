import type { Counter } from "./families.ts";
import type { Logger } from "../log.ts";

/** What finds no room is logged at most this often per budget, however much of it there is. */
const WARN_EVERY_MS = 60_000;

export interface BudgetOptions {
  source: string;
  limit: number;
  /** The counter of what found no room; its labels are `source` and whatever `count` adds. */
  dropped: Counter;
  logger: Logger;
  now?: () => number;
}

/**
 * How many things (series, objects) one source may hold, so one runaway upstream cannot exhaust the exporter's
 * memory. Things already held keep their room; a new one gets room only while the source is under its limit,
 * and room frees up when things go. What finds no room is counted, with a warning at most once a minute.
 */
export class Budget {
  readonly source: string;
  readonly limit: number;
  readonly #dropped: Counter;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #warning: string;
  #used = 0;
  #lastWarning = -Infinity;
  /** Drops not yet reported in a log line. */
  #unreported = 0;

  /** `warning` is the log message, which says what to raise if the source really holds that much. */
  constructor(opts: BudgetOptions, warning: string) {
    this.source = opts.source;
    this.limit = opts.limit;
    this.#dropped = opts.dropped;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#warning = warning;
  }

  get used(): number {
    return this.#used;
  }

  /** Takes room for one new thing; false when the source is at its limit. */
  take(): boolean {
    return this.takeAll(1);
  }

  /** Takes room for `count` new things that stand or fall together; false, taking nothing, when they do not all fit. */
  takeAll(count: number): boolean {
    if (this.#used + count > this.limit) return false;
    this.#used += count;
    return true;
  }

  /** Gives back the room of things no longer held. */
  release(count: number): void {
    this.#used = Math.max(0, this.#used - count);
  }

  /** Gives back all room (whatever held it was dropped). */
  clear(): void {
    this.#used = 0;
  }

  /** Makes the drop counter exist at zero under `labels`, so rate() has a zero to begin from. */
  protected start(labels: Record<string, string> = {}): void {
    this.#dropped.inc({ source: this.source, ...labels }, 0);
  }

  /** Counts `count` things that found no room under `labels`, and warns about it at most once a minute. */
  protected count(count: number, labels: Record<string, string>, fields: Record<string, unknown>): void {
    if (count <= 0) return;
    this.#dropped.inc({ source: this.source, ...labels }, count);
    this.#unreported += count;
    const now = this.#now();
    if (now - this.#lastWarning < WARN_EVERY_MS) return;
    this.#lastWarning = now;
    this.#logger.warn({ source: this.source, limit: this.limit, ...fields, dropped: this.#unreported }, this.#warning);
    this.#unreported = 0;
  }
}
