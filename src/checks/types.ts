import type { CheckSpec } from "../config/types.ts";
import type { FailureReason } from "../errors.ts";
import type { Logger } from "../log.ts";

/** What one run of a check found. */
export interface ProbeOutcome {
  ok: boolean;
  /** Why it failed, or a short note on success (e.g. "200 OK"). Never contains a secret. */
  message?: string;
  reason?: FailureReason;
}

/** The latest known state of a source, as `source` checks read it. */
export interface SourceStatus {
  up: boolean;
  lastSuccessAt?: number;
  error?: string;
  /** A source may add its own verdict on top of "up", e.g. "devices offline". */
  healthy?: boolean;
  detail?: string;
}

export interface SourceStatusReader {
  sourceStatus(name: string): SourceStatus | undefined;
}

export interface ProbeContext {
  logger: Logger;
  sources: SourceStatusReader;
}

/**
 * Every check type is one file exporting one factory of this shape. The probe must honour `signal`; the engine
 * also cuts it off at the timeout, so a probe that ignores the signal still cannot hold a check hostage.
 */
export interface Prober {
  probe(signal: AbortSignal): Promise<ProbeOutcome>;
  /** Releases sockets and channels the prober keeps between runs. */
  close(): Promise<void>;
}

export type ProberFactory<S extends CheckSpec> = (spec: S, ctx: ProbeContext) => Prober;
