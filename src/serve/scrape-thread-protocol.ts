import type { DropReason } from "./connection-cap.ts";
import type { MirrorUpdate } from "./exposition-mirror.ts";
import type { ScrapeFormat } from "./metrics-server.ts";

/** What the scrape thread is started with (its workerData). */
export interface ScrapeThreadOptions {
  host: string;
  port: number;
  path: string;
  /** The setting that names the port, for the error when it cannot be bound. */
  configKey: string;
  maxConnections?: number;
}

/** Main thread → scrape thread. */
export type ToScrapeThread = { type: "update"; update: MirrorUpdate } | { type: "close"; graceMs: number };

/** Scrape thread → main thread. */
export type ToMain =
  | { type: "listening"; address: string; port: number }
  /** It cannot serve: the port cannot be bound, or an update could not be applied. */
  | { type: "failed"; message: string }
  /** Durations of the scrapes answered since the last report, in seconds. */
  | { type: "scrapes"; durations: [ScrapeFormat, number][] }
  /** Connections closed to stay within maxConnections since the last report. */
  | { type: "dropped"; counts: [DropReason, number][] };
