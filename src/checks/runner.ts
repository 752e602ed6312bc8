import type { CheckSpec } from "../config/types.ts";
import { classifyError } from "../errors.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import type { CheckResult, CheckStore } from "../state/checks.ts";
import { TimeoutError } from "../timeout.ts";
import { activate, finish, startSpan, tracingOn } from "../tracing/spans.ts";
import type { Job, Schedule } from "./schedule.ts";
import type { ProbeOutcome, Prober } from "./types.ts";

/** First runs are spread over up to this long so a restart does not fire every check in the same tick. */
const MAX_START_JITTER_MS = 1_000;
/** Each later run moves by up to ± this share of the interval, so checks drift apart instead of aligning. */
const INTERVAL_JITTER = 0.05;
/**
 * The second run comes between half an interval and one and a half after the first: checks that started together
 * (a thousand within the first second) then run spread evenly over their interval from the second round on, not
 * as a burst every interval that small jitter would take hundreds of rounds to dissolve. 1.5 intervals stays well
 * inside the 2 × interval + timeout after which a result counts as stale.
 */
const SECOND_RUN_SPREAD = [0.5, 1.5] as const;
/**
 * A run may start this share of its interval early (at most MAX_EARLY_MS) to share a timer wake-up with another
 * check's: far inside the jitter above, so nothing a check promises moves.
 */
const EARLY_SHARE = 0.01;
const MAX_EARLY_MS = 100;

/** How a probe that threw or ran out of time is recorded. */
function failure(err: unknown): ProbeOutcome {
  return { ok: false, reason: err instanceof TimeoutError ? "timeout" : classifyError(err), message: errorMessage(err) };
}

function logFields(check: string, result: CheckResult) {
  return { check, durationMs: result.durationMs, reason: result.reason, detail: result.message };
}

/** Runs one check on the engine's schedule: never two runs at once, each cut off at the timeout. */
export class CheckRunner implements Job {
  dueAt = 0;
  slot = -1;
  readonly earlyMs: number;
  #running = false;
  #stopped = false;
  #firstRound = true;
  /** The latest result. Each run overwrites it: the store keeps this one object per check, not one per run. */
  #result: CheckResult | undefined;
  /** The labels of this check's series, made once. */
  readonly #labels: { check: string };
  readonly #probe = (signal: AbortSignal): Promise<ProbeOutcome> => this.prober.probe(signal);

  constructor(
    readonly spec: CheckSpec,
    private readonly prober: Prober,
    private readonly store: CheckStore,
    private readonly metrics: MetricHandles | undefined,
    private readonly logger: Logger,
    private readonly schedule: Schedule,
  ) {
    this.#labels = { check: spec.name };
    this.earlyMs = Math.min(MAX_EARLY_MS, spec.intervalMs * EARLY_SHARE);
  }

  start(): void {
    this.schedule.after(this, Math.random() * Math.min(MAX_START_JITTER_MS, this.spec.intervalMs * 0.1));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.schedule.cancel(this);
    await this.prober.close().catch(() => undefined);
  }

  run(): void {
    void this.#tick();
  }

  async #tick(): Promise<void> {
    const startedAt = performance.now();
    await this.runOnce();
    if (this.#stopped) return;
    const { intervalMs } = this.spec;
    let next: number;
    if (this.#firstRound) {
      this.#firstRound = false;
      const [from, to] = SECOND_RUN_SPREAD;
      next = intervalMs * (from + Math.random() * (to - from));
    } else {
      next = intervalMs + (Math.random() * 2 - 1) * INTERVAL_JITTER * intervalMs;
    }
    this.schedule.after(this, Math.max(0, next - (performance.now() - startedAt)));
  }

  /**
   * Runs the check once and records the result. When the previous run is still going (its probe ignored the
   * abort), the run is skipped and counted instead of piling up a second one.
   */
  async runOnce(): Promise<CheckResult | undefined> {
    if (this.#running) {
      this.metrics?.healthCheckSkipped.inc(this.#labels);
      this.logger.warn({ check: this.spec.name }, "check skipped: its previous run has not finished");
      return undefined;
    }
    const started = performance.now();
    const outcome = tracingOn() ? await this.#tracedRun() : await this.#run(this.#probe);
    return this.#report(outcome, performance.now() - started);
  }

  async #tracedRun(): Promise<ProbeOutcome> {
    const { spec } = this;
    const span = startSpan(`check ${spec.name}`, { "check.name": spec.name, "check.type": spec.type, "check.critical": spec.critical });
    const outcome = await this.#run((signal) => activate(span, () => this.prober.probe(signal)));
    finish(span, "check", outcome);
    return outcome;
  }

  /**
   * One probe with an AbortSignal that fires at the timeout; the run is cut loose at that moment even if the probe
   * ignores the signal, but the check counts as running until the probe itself settles.
   */
  #run(probe: (signal: AbortSignal) => Promise<ProbeOutcome>): Promise<ProbeOutcome> {
    this.#running = true;
    const { timeoutMs } = this.spec;
    const controller = new AbortController();
    return new Promise<ProbeOutcome>((resolve) => {
      let cutOff = false;
      const deadline = setTimeout(() => {
        cutOff = true;
        const err = new TimeoutError(timeoutMs);
        controller.abort(err);
        resolve(failure(err));
      }, timeoutMs);
      const settle = (outcome: ProbeOutcome): void => {
        this.#running = false;
        if (cutOff) return;
        clearTimeout(deadline);
        resolve(outcome);
      };
      let work: Promise<ProbeOutcome>;
      try {
        work = probe(controller.signal);
      } catch (err) {
        work = Promise.reject(err);
      }
      work.then(settle, (err: unknown) => settle(failure(err)));
    });
  }

  #report(outcome: ProbeOutcome, durationMs: number): CheckResult {
    const { name } = this.spec;
    const before = this.#result?.ok;
    const result = (this.#result ??= { ok: false, checkedAt: 0, durationMs: 0, message: undefined, reason: undefined });
    result.ok = outcome.ok;
    result.checkedAt = Date.now();
    result.durationMs = Math.round(durationMs * 1000) / 1000;
    result.message = outcome.message;
    result.reason = outcome.reason;
    this.store.record(name, result);
    if (this.metrics) {
      const labels = this.#labels;
      this.metrics.healthCheckDuration.observe(labels, result.durationMs / 1000);
      (result.ok ? this.metrics.healthCheckSuccess : this.metrics.healthCheckFailure).inc(labels);
      this.metrics.healthCheckLastRun.set(labels, result.checkedAt / 1000);
    }
    if (before !== result.ok) {
      if (result.ok) this.logger.info(logFields(name, result), "check passing");
      else this.logger.warn(logFields(name, result), "check failing");
    } else if (this.logger.isLevelEnabled("debug")) {
      // Checked first: the fields of a line nobody logs are not worth making on every run.
      this.logger.debug(logFields(name, result), "check ran");
    }
    return result;
  }
}
