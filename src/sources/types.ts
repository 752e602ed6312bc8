import type { SourceStatus } from "../checks/types.ts";
import type { FailureReason } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { MetricRegistry } from "../metrics/registry.ts";

export type { SourceStatus };

export interface SourceContext {
  logger: Logger;
  metrics: MetricRegistry;
  /** limits.seriesPerSource: the series one source may export across all its families (default 10,000). */
  seriesLimit?: number;
}

/** What one successful poll reports besides the series it set. */
export interface PollOutcome {
  /** The source's own verdict on top of "the poll worked", read by `source` checks (e.g. devices offline). */
  healthy?: boolean;
  /** One line for /readyz?verbose, `source` checks and /debug/status, e.g. "5 nodes, 3 etcd members". */
  detail?: string;
  /** Extra facts for /debug/status. Must not contain credentials. */
  debug?: Record<string, unknown>;
  /**
   * Why each part of the upstream that failed did (a backup target of several) when the poll still worked:
   * the source stays up, and each is counted in sidecar_source_errors_total so the failure is not silent.
   */
  partialFailures?: FailureReason[];
}

/**
 * One poll of an upstream. It must honour `signal` (the poller aborts it at the source's timeout), put a cap
 * on every body it reads, update only its own series, and throw (preferably an UpstreamError with a reason)
 * when the poll failed. On failure it must leave its series as they were.
 */
export interface PollDriver {
  poll(signal: AbortSignal): Promise<PollOutcome>;
  /** Releases connections and clears the driver's series. */
  close(): Promise<void>;
}

/** A running source: polled on a timer or fed by a watch. */
export interface Source {
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
  /** Brings the state up to date once, now (one poll, or one list); used by `sidecar-exporter check`. */
  refresh(): Promise<void>;
  /** Resolves once the first poll (or list) after start has finished, successful or not. */
  readonly firstResult: Promise<void>;
  status(): SourceStatus;
  /** For /debug/status; never contains credentials. */
  debug(): Record<string, unknown>;
}
