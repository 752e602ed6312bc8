import type { CheckSpec } from "../config/types.ts";
import { classifyError } from "../errors.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import type { CheckResult, CheckStore } from "../state/checks.ts";
import { runWithTimeout, TimeoutError } from "../timeout.ts";
import { activate, finish, startSpan } from "../tracing/spans.ts";
import { createProber } from "./index.ts";
import type { ProbeContext, ProbeOutcome, Prober } from "./types.ts";

/** First runs are spread over up to this long so a restart does not fire every check in the same tick. */
const MAX_START_JITTER_MS = 1_000;
/** Each later run moves by up to ± this share of the interval, so checks drift apart instead of aligning. */
const INTERVAL_JITTER = 0.05;

/** Runs one check on its own timer: never two runs at once, each cut off at the timeout. */
class CheckRunner {
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<unknown> | undefined;
  #stopped = false;

  constructor(
    readonly spec: CheckSpec,
    private readonly prober: Prober,
    private readonly store: CheckStore,
    private readonly metrics: MetricHandles | undefined,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.#schedule(Math.random() * Math.min(MAX_START_JITTER_MS, this.spec.intervalMs * 0.1));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.prober.close().catch(() => undefined);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), delayMs);
  }

  async #tick(): Promise<void> {
    const startedAt = Date.now();
    await this.runOnce();
    const jitter = (Math.random() * 2 - 1) * INTERVAL_JITTER * this.spec.intervalMs;
    this.#schedule(Math.max(0, this.spec.intervalMs - (Date.now() - startedAt) + jitter));
  }

  /**
   * Runs the check once and records the result. When the previous run is still going (its probe ignored the
   * abort), the run is skipped and counted instead of piling up a second one.
   */
  async runOnce(): Promise<CheckResult | undefined> {
    const { spec } = this;
    if (this.#inFlight) {
      this.metrics?.healthCheckSkipped.inc({ check: spec.name });
      this.logger.warn({ check: spec.name }, "check skipped: its previous run has not finished");
      return undefined;
    }
    const started = performance.now();
    const span = startSpan(`check ${spec.name}`, { "check.name": spec.name, "check.type": spec.type, "check.critical": spec.critical });
    const run = runWithTimeout((signal) => activate(span, () => this.prober.probe(signal)), spec.timeoutMs);
    const inFlight = run.settled.finally(() => {
      if (this.#inFlight === inFlight) this.#inFlight = undefined;
    });
    this.#inFlight = inFlight;
    let outcome: ProbeOutcome;
    try {
      outcome = await run.result;
    } catch (err) {
      outcome = { ok: false, reason: err instanceof TimeoutError ? "timeout" : classifyError(err), message: errorMessage(err) };
    }
    finish(span, "check", outcome);
    const durationMs = performance.now() - started;
    const result: CheckResult = {
      ok: outcome.ok,
      checkedAt: Date.now(),
      durationMs: Math.round(durationMs * 1000) / 1000,
      ...(outcome.message !== undefined && { message: outcome.message }),
      ...(outcome.reason !== undefined && { reason: outcome.reason }),
    };
    this.#report(result);
    return result;
  }

  #report(result: CheckResult): void {
    const { name } = this.spec;
    const before = this.store.view(name)?.result?.ok;
    this.store.record(name, result);
    if (this.metrics) {
      this.metrics.healthCheckDuration.observe({ check: name }, result.durationMs / 1000);
      (result.ok ? this.metrics.healthCheckSuccess : this.metrics.healthCheckFailure).inc({ check: name });
      this.metrics.healthCheckLastRun.set({ check: name }, result.checkedAt / 1000);
    }
    const fields = { check: name, durationMs: result.durationMs, reason: result.reason, detail: result.message };
    if (before !== result.ok) {
      if (result.ok) this.logger.info(fields, "check passing");
      else this.logger.warn(fields, "check failing");
    } else {
      this.logger.debug(fields, "check ran");
    }
  }
}

/** Owns one runner per configured check. */
export class CheckEngine {
  readonly #runners = new Map<string, CheckRunner>();

  constructor(
    private readonly store: CheckStore,
    private readonly ctx: ProbeContext,
    private readonly metrics: MetricHandles | undefined,
    private readonly proberFor: (spec: CheckSpec, ctx: ProbeContext) => Prober = createProber,
  ) {}

  add(spec: CheckSpec): void {
    this.store.register(spec);
    this.#runners.set(spec.name, new CheckRunner(spec, this.proberFor(spec, this.ctx), this.store, this.metrics, this.ctx.logger));
    this.metrics?.healthCheckInfo.set({ check: spec.name, type: spec.type, critical: String(spec.critical) }, 1);
    // Counters start at 0 so that "never failed" is a value and rate() sees the first failure.
    this.metrics?.healthCheckSuccess.inc({ check: spec.name }, 0);
    this.metrics?.healthCheckFailure.inc({ check: spec.name }, 0);
  }

  /** Stops a check and forgets it: its state, endpoint answer and series go with it. */
  async remove(name: string): Promise<void> {
    const runner = this.#runners.get(name);
    if (!runner) return;
    this.#runners.delete(name);
    await runner.stop();
    this.store.unregister(name);
    if (this.metrics) {
      const m = this.metrics;
      for (const family of [m.healthCheckUp, m.healthCheckSuccess, m.healthCheckFailure, m.healthCheckLastRun, m.healthCheckSkipped, m.healthCheckDuration]) {
        family.remove({ check: name });
      }
      m.healthCheckInfo.remove({ check: name, type: runner.spec.type, critical: String(runner.spec.critical) });
    }
  }

  /** The configured checks, in order. */
  specs(): CheckSpec[] {
    return [...this.#runners.values()].map((r) => r.spec);
  }

  /** Starts one check added after start(). */
  startOne(name: string): void {
    this.#runners.get(name)?.start();
  }

  start(): void {
    for (const runner of this.#runners.values()) runner.start();
  }

  /** Runs every check once, concurrently, and returns the results in configuration order. */
  async runAllOnce(): Promise<{ spec: CheckSpec; result: CheckResult | undefined }[]> {
    const runners = [...this.#runners.values()];
    const results = await Promise.all(runners.map((r) => r.runOnce()));
    return runners.map((r, i) => ({ spec: r.spec, result: results[i] }));
  }

  runOnce(name: string): Promise<CheckResult | undefined> {
    const runner = this.#runners.get(name);
    if (!runner) throw new Error(`no check named ${name}`);
    return runner.runOnce();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#runners.values()].map((r) => r.stop()));
  }
}
