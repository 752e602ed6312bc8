import type { BackupTargetState } from "../../checks/types.ts";
import { formatDuration } from "../../config/duration.ts";
import { classifyError, type FailureReason, UpstreamError } from "../../errors.ts";
import { errorMessage, type Logger } from "../../log.ts";
import { matchEach } from "../../patterns/match.ts";
import type { Pattern } from "../../patterns/pattern.ts";
import { RetryAfterError } from "../health.ts";
import type { BackupTargetConfig } from "../config.ts";
import type { BackupLister, BackupObject } from "./types.ts";
import { type Verification, VERIFY_HEAD_BYTES, verifySnapshotHead } from "./verify.ts";

/** What one successful poll of a target found; its series are built from this. */
export interface TargetSnapshot {
  /** Epoch ms the poll finished: ages are as of this moment. */
  at: number;
  objects: number;
  newest?: BackupObject;
  verification?: Verification;
}

/** Whether `o` is newer than `best`: by modification time, and on a tie the greater key (timestamped names sort by time). */
function isNewer(o: BackupObject, best: BackupObject | undefined): boolean {
  return !best || o.lastModifiedMs > best.lastModifiedMs || (o.lastModifiedMs === best.lastModifiedMs && o.key > best.key);
}

/**
 * One backup target: polls it within its own time budget, keeps its last good snapshot when a poll fails,
 * and verifies the newest backup once per distinct backup rather than on every poll.
 */
export class BackupTarget {
  readonly name: string;
  #good: TargetSnapshot | undefined;
  #error: string | undefined;
  #reason: FailureReason | undefined;
  #lastAttemptAt: number | undefined;
  #notBefore: number | undefined;
  #verifiedOnce: { id: string; result: Verification } | undefined;
  #failures = 0;

  constructor(
    readonly config: BackupTargetConfig,
    private readonly lister: BackupLister,
    private readonly match: Pattern | undefined,
    private readonly logger: Logger,
    /** How old the target's data may get before it no longer says anything about now. */
    private readonly staleAfterMs: number,
  ) {
    this.name = config.name;
  }

  get lastGood(): TargetSnapshot | undefined {
    return this.#good;
  }

  get reachable(): boolean {
    return this.#good !== undefined && this.#failures === 0;
  }

  get failure(): { reason: FailureReason; error: string } | undefined {
    return this.#failures > 0 ? { reason: this.#reason ?? "other", error: this.#error ?? "failed" } : undefined;
  }

  /** How long a rate-limited target still waits before it is asked again; undefined when it need not wait. */
  retryAfterMs(now = Date.now()): number | undefined {
    return this.#notBefore !== undefined && this.#notBefore > now ? this.#notBefore - now : undefined;
  }

  /** Polls the target; never throws. True when the target answered. */
  async poll(parent: AbortSignal, budgetMs: number): Promise<boolean> {
    this.#lastAttemptAt = Date.now();
    if (this.retryAfterMs() !== undefined) return false; // keeps the rate-limit failure it already has
    const budget = AbortSignal.timeout(budgetMs);
    const signal = AbortSignal.any([parent, budget]);
    try {
      // Only the count and the newest are kept, so a long listing costs no memory beyond the page being read.
      let objects = 0;
      let newest: BackupObject | undefined;
      await this.lister.list(signal, async (batch) => {
        const matched = this.match
          ? await matchEach(
              this.match,
              batch.map((o) => o.key),
              signal,
            )
          : undefined;
        const backups = matched ? batch.filter((_, i) => matched[i]) : batch;
        objects += backups.length;
        for (const o of backups) if (isNewer(o, newest)) newest = o;
      });
      const verification = newest ? await this.#verify(newest, signal) : undefined;
      this.#good = { at: Date.now(), objects, ...(newest && { newest }), ...(verification && { verification }) };
      if (this.#failures > 0) this.logger.info({ target: this.name, objects }, "backup target reachable again");
      this.#failures = 0;
      this.#error = this.#reason = this.#notBefore = undefined;
      return true;
    } catch (err) {
      const e =
        signal.aborted && !(err instanceof UpstreamError)
          ? new UpstreamError(`backup target ${JSON.stringify(this.name)}: timed out after ${formatDuration(budgetMs)}`, "timeout")
          : err;
      this.#failures++;
      this.#error = errorMessage(e);
      this.#reason = classifyError(e);
      this.#notBefore = e instanceof RetryAfterError && e.retryAfterMs !== undefined ? Date.now() + e.retryAfterMs : undefined;
      const fields = { target: this.name, reason: this.#reason, err: this.#error, failures: this.#failures };
      if (this.#failures === 1) this.logger.warn(fields, "backup target unreachable");
      else this.logger.debug(fields, "backup target still unreachable");
      return false;
    }
  }

  async #verify(newest: BackupObject, signal: AbortSignal): Promise<Verification> {
    const id = `${newest.key}\u0000${newest.sizeBytes}\u0000${newest.lastModifiedMs}`;
    if (this.#verifiedOnce?.id === id) return this.#verifiedOnce.result;
    let head: Buffer;
    try {
      head = newest.sizeBytes === 0 ? Buffer.alloc(0) : await this.lister.readHead(newest, VERIFY_HEAD_BYTES, signal);
    } catch (err) {
      // Not remembered: a read that failed says nothing about the backup, so the next poll tries again.
      return { verified: false, reason: `could not read its first bytes: ${errorMessage(err)}` };
    }
    const result = await verifySnapshotHead(head, newest.sizeBytes);
    this.#verifiedOnce = { id, result };
    if (!result.verified) this.logger.warn({ target: this.name, key: newest.key, reason: result.reason }, "newest backup is not a verifiable etcd snapshot");
    return result;
  }

  /** What `backup` checks read. Before the first poll the target is not reachable and has no backups. */
  state(): BackupTargetState {
    const g = this.#good;
    return {
      reachable: this.reachable,
      ...(this.#error !== undefined && { error: this.#error }),
      ...(g && { lastSuccessAt: g.at }),
      staleAfterMs: this.staleAfterMs,
      objects: g?.objects ?? 0,
      ...(g?.newest && { newestKey: g.newest.key, newestAt: g.newest.lastModifiedMs, sizeBytes: g.newest.sizeBytes }),
      ...(g?.verification && { verified: g.verification.verified, verifyReason: g.verification.reason }),
    };
  }

  debug(now = Date.now()): Record<string, unknown> {
    const g = this.#good;
    return {
      name: this.name,
      type: this.config.type,
      ...this.lister.describe(),
      ...(this.match && { match: this.match.source }),
      reachable: this.reachable,
      error: this.#error ?? null,
      reason: this.#reason ?? null,
      consecutiveFailures: this.#failures,
      lastAttemptAt: this.#lastAttemptAt ? new Date(this.#lastAttemptAt).toISOString() : null,
      lastSuccessAt: g ? new Date(g.at).toISOString() : null,
      dataAgeSeconds: g ? Math.round((now - g.at) / 1000) : null,
      stale: g ? now - g.at > this.staleAfterMs : null,
      objects: g?.objects ?? null,
      newestKey: g?.newest?.key ?? null,
      newestAt: g?.newest ? new Date(g.newest.lastModifiedMs).toISOString() : null,
      newestAgeSeconds: g?.newest ? Math.round((now - g.newest.lastModifiedMs) / 1000) : null,
      sizeBytes: g?.newest?.sizeBytes ?? null,
      verified: g?.verification?.verified ?? null,
      verifyReason: g?.verification?.reason ?? null,
    };
  }

  close(): Promise<void> {
    return this.lister.close();
  }
}
