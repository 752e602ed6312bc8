import type { BackupTargetState } from "../../checks/types.ts";
import { FAILURE_REASONS, UpstreamError } from "../../errors.ts";
import type { Logger } from "../../log.ts";
import { METRICS } from "../../metrics/catalogue.ts";
import type { MetricHandles } from "../../metrics/registry.ts";
import { OwnedSeries, type Sample } from "../../metrics/series.ts";
import { compilePattern } from "../../patterns/pattern.ts";
import { SeriesBudget } from "../../metrics/series-budget.ts";
import { RetryAfterError } from "../health.ts";
import { type BackupsSourceConfig, type BackupTargetConfig, type Schedule, SOURCE_NAMES } from "../config.ts";
import type { PollDriver, PollOutcome } from "../types.ts";
import { FilesystemLister } from "./fs.ts";
import { S3Lister } from "./s3.ts";
import { BackupTarget } from "./target.ts";
import type { BackupLister } from "./types.ts";

/**
 * Each target gets this share of the poll's timeout, so one hanging target fails on its own and the poll
 * still finishes, with the others' results, before the poller cuts it off.
 */
const TARGET_BUDGET_SHARE = 0.9;

export type ListerFactory = (target: BackupTargetConfig, timeoutMs: number) => BackupLister;

export const defaultListerFor: ListerFactory = (target, timeoutMs) => (target.type === "s3" ? new S3Lister(target, timeoutMs) : new FilesystemLister(target));

/** Coarse age for one-line summaries: "42s", "17m", "3h", "2d". */
export function roughAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * Polls every backup target concurrently. A target that fails keeps its last good series and state; the poll
 * fails only when every target failed. The source stays up while some target answers, since their series are
 * fresh, but each target that fails is counted in sidecar_source_errors_total, turns the source unhealthy, and
 * shows in its own etcd_backup_target_* series.
 */
export class BackupsDriver implements PollDriver {
  readonly #targets: BackupTarget[];
  readonly #budgetMs: number;
  readonly #last: OwnedSeries;
  readonly #size: OwnedSeries;
  readonly #objects: OwnedSeries;
  readonly #age: OwnedSeries;
  readonly #verified: OwnedSeries;
  readonly #metrics: MetricHandles;

  constructor(
    config: BackupsSourceConfig & Schedule,
    metrics: MetricHandles,
    logger: Logger,
    listerFor: ListerFactory = defaultListerFor,
    seriesLimit?: number,
  ) {
    const match = config.match === undefined ? undefined : compilePattern(config.match);
    const log = logger.child({ source: SOURCE_NAMES.backups });
    // As for checks: two intervals and a timeout without a good listing, and a target's data is stale.
    const staleAfterMs = 2 * config.intervalMs + config.timeoutMs;
    this.#targets = config.targets.map((t) => new BackupTarget(t, listerFor(t, config.timeoutMs), match, log, staleAfterMs));
    this.#metrics = metrics;
    for (const { name: target } of this.#targets) {
      metrics.backupTargetUp.set({ target }, 0);
      // Every reason starts at 0, so rate() works from the first error and "no errors" is a value.
      for (const reason of FAILURE_REASONS) metrics.backupTargetErrors.inc({ target, reason }, 0);
    }
    this.#budgetMs = Math.max(1, Math.floor(config.timeoutMs * TARGET_BUDGET_SHARE));
    const seriesBudget = new SeriesBudget({ source: SOURCE_NAMES.backups, limit: seriesLimit, dropped: metrics.seriesDropped, logger });
    this.#last = new OwnedSeries(metrics.backupLastTimestamp, METRICS.backupLastTimestamp.labels, seriesBudget);
    this.#size = new OwnedSeries(metrics.backupSize, METRICS.backupSize.labels, seriesBudget);
    this.#objects = new OwnedSeries(metrics.backupObjects, METRICS.backupObjects.labels, seriesBudget);
    this.#age = new OwnedSeries(metrics.backupAge, METRICS.backupAge.labels, seriesBudget);
    this.#verified = new OwnedSeries(metrics.backupVerified, METRICS.backupVerified.labels, seriesBudget);
  }

  async poll(signal: AbortSignal): Promise<PollOutcome> {
    const answered = await Promise.all(this.#targets.map((t) => t.poll(signal, this.#budgetMs)));
    this.#recordTargets();
    if (!answered.some(Boolean)) throw this.#everyTargetFailed();
    this.#publish();
    return this.#outcome();
  }

  /** The state of one target for `backup` checks; undefined for a name that is not configured. */
  target(name: string): BackupTargetState | undefined {
    return this.#targets.find((t) => t.name === name)?.state();
  }

  debugTargets(): Record<string, unknown>[] {
    const now = Date.now();
    return this.#targets.map((t) => t.debug(now));
  }

  async close(): Promise<void> {
    await Promise.all(this.#targets.map((t) => t.close()));
    for (const s of [this.#last, this.#size, this.#objects, this.#age, this.#verified]) s.clear();
    const m = this.#metrics;
    for (const { name: target } of this.#targets) {
      m.backupTargetUp.remove({ target });
      m.backupTargetLastSuccess.remove({ target });
      for (const reason of FAILURE_REASONS) m.backupTargetErrors.remove({ target, reason });
    }
  }

  /** Each target's own freshness, after every poll, whether the poll as a whole worked or not. */
  #recordTargets(): void {
    const m = this.#metrics;
    for (const t of this.#targets) {
      const target = t.name;
      const failure = t.failure;
      m.backupTargetUp.set({ target }, failure ? 0 : 1);
      if (failure) m.backupTargetErrors.inc({ target, reason: failure.reason });
      else if (t.lastGood) m.backupTargetLastSuccess.set({ target }, t.lastGood.at / 1000);
    }
  }

  #everyTargetFailed(): Error {
    const failures = this.#targets.map((t) => t.failure ?? { reason: "other" as const, error: `backup target ${t.name} failed` });
    const reasons = new Set(failures.map((f) => f.reason));
    const reason = reasons.size === 1 ? (failures[0]?.reason ?? "other") : "other";
    const message =
      failures.length === 1 ? (failures[0]?.error ?? "") : `all ${failures.length} backup targets failed: ${failures.map((f) => f.error).join("; ")}`;
    if (reason === "rate_limited") {
      const waits = this.#targets.map((t) => t.retryAfterMs()).filter((w): w is number => w !== undefined);
      return new RetryAfterError(message, waits.length === failures.length ? Math.min(...waits) : undefined);
    }
    return new UpstreamError(message, reason);
  }

  /** Installs the series of every target from its latest good poll, whether that was this poll or an earlier one. */
  #publish(): void {
    const last: Sample[] = [];
    const objects: Sample[] = [];
    const age: Sample[] = [];
    const verified: Sample[] = [];
    // Two targets may name the same TalosEtcdBackup (a copy in S3 and on a volume); its size is the newest one's.
    const sizes = new Map<string, { sample: Sample; at: number }>();
    for (const t of this.#targets) {
      const g = t.lastGood;
      if (!g) continue;
      const target = t.name;
      objects.push({ labels: { target }, value: g.objects });
      const n = g.newest;
      if (!n) continue;
      last.push({ labels: { target }, value: n.lastModifiedMs / 1000 });
      age.push({ labels: { target }, value: Math.max(0, (g.at - n.lastModifiedMs) / 1000) });
      verified.push({ labels: { target }, value: g.verification?.verified ? 1 : 0 });
      const labels = { namespace: t.config.namespace, name: t.config.backupName ?? t.config.name };
      const key = `${labels.namespace}\u0000${labels.name}`;
      const seen = sizes.get(key);
      if (!seen || n.lastModifiedMs > seen.at) sizes.set(key, { sample: { labels, value: n.sizeBytes }, at: n.lastModifiedMs });
    }
    this.#last.replace(last);
    this.#size.replace([...sizes.values()].map((s) => s.sample));
    this.#objects.replace(objects);
    this.#age.replace(age);
    this.#verified.replace(verified);
  }

  #outcome(): PollOutcome {
    const now = Date.now();
    const unreachable = this.#targets.filter((t) => !t.reachable).map((t) => t.name);
    const reached = this.#targets.filter((t) => t.reachable);
    const empty = reached.filter((t) => !t.lastGood?.newest).map((t) => t.name);
    const unverified = reached.filter((t) => t.lastGood?.newest && !t.lastGood.verification?.verified).map((t) => t.name);
    const newestAt = Math.max(...reached.map((t) => t.lastGood?.newest?.lastModifiedMs ?? -Infinity));
    const parts = [`${plural(this.#targets.length, "target")}, ${Number.isFinite(newestAt) ? `newest ${roughAge(now - newestAt)} old` : "no backups"}`];
    if (unreachable.length) parts.push(`unreachable: ${unreachable.join(", ")}`);
    if (empty.length && Number.isFinite(newestAt)) parts.push(`no backups at: ${empty.join(", ")}`);
    if (unverified.length) parts.push(`not verified: ${unverified.join(", ")}`);
    const partialFailures = this.#targets.flatMap((t) => (t.failure ? [t.failure.reason] : []));
    return { healthy: unreachable.length === 0 && empty.length === 0 && unverified.length === 0, detail: parts.join("; "), partialFailures };
  }
}
