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

/** What the backups source knows of one target after its latest poll. */
export interface BackupTargetState {
  /** False when the latest poll of this target failed; the other fields then describe the last good poll. */
  reachable: boolean;
  error?: string;
  /** Epoch milliseconds of the latest successful listing: what the other fields describe is this old. */
  lastSuccessAt?: number;
  /** Data older than this no longer says anything about now (2 × the source's interval + its timeout). */
  staleAfterMs: number;
  objects: number;
  newestKey?: string;
  /** Epoch milliseconds of the newest backup. */
  newestAt?: number;
  sizeBytes?: number;
  verified?: boolean;
  verifyReason?: string;
}

export interface SourceStatusReader {
  sourceStatus(name: string): SourceStatus | undefined;
  /** Undefined when no backups source is configured or it has no target of that name. */
  backupTarget?(name: string): BackupTargetState | undefined;
  /** Why a source is left to another replica (leader election), or undefined when this replica polls it. */
  standbyReason?(source: string): string | undefined;
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
