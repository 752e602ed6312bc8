import type { CheckSpec } from "../config/types.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import type { CheckResult, CheckStore } from "../state/checks.ts";
import { createProber } from "./index.ts";
import { CheckRunner } from "./runner.ts";
import { Schedule } from "./schedule.ts";
import type { ProbeContext, Prober } from "./types.ts";

/** Owns one runner per configured check. */
export class CheckEngine {
  readonly #runners = new Map<string, CheckRunner>();
  readonly #schedule = new Schedule();

  constructor(
    private readonly store: CheckStore,
    private readonly ctx: ProbeContext,
    private readonly metrics: MetricHandles | undefined,
    private readonly proberFor: (spec: CheckSpec, ctx: ProbeContext) => Prober = createProber,
  ) {}

  add(spec: CheckSpec): void {
    this.store.register(spec);
    this.#runners.set(spec.name, new CheckRunner(spec, this.proberFor(spec, this.ctx), this.store, this.metrics, this.ctx.logger, this.#schedule));
    this.metrics?.healthCheckInfo.set({ check: spec.name, type: spec.type, critical: String(spec.critical) }, 1);
    // Counters start at 0 so that "never failed" is a value and rate() sees the first failure.
    this.metrics?.healthCheckSuccess.inc({ check: spec.name }, 0);
    this.metrics?.healthCheckFailure.inc({ check: spec.name }, 0);
    // A new check is pending, so not up, until its first result changes that.
    this.metrics?.healthCheckUp.set({ check: spec.name }, 0);
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
