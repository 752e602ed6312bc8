/**
 * What the health server answers while the rest of the process is still being loaded and started: it listens
 * first (liveness depends on the process only), so readiness and guarded paths must not answer as if everything
 * behind them were there already.
 */
import type { HealthReport } from "./health/aggregate.ts";
import { HealthModel } from "./health/model.ts";
import type { Guard } from "./serve/secure/guard.ts";

export const STARTUP_ITEM = "startup";

/** The health model, failing readiness with a "startup" item until started() is called. */
export class StartupHealthModel extends HealthModel {
  #starting = true;

  override readiness(exclude?: ReadonlySet<string>): HealthReport {
    const report = super.readiness(exclude);
    if (!this.#starting || exclude?.has(STARTUP_ITEM)) return report;
    const item = { name: STARTUP_ITEM, ok: false, reason: "servers, sources and checks are still being set up" };
    return { ok: false, items: [item, ...report.items] };
  }

  /** Every server listens and every source and check is in place: readiness is the checks' verdict from now on. */
  started(): void {
    if (!this.#starting) return;
    this.#starting = false;
    this.emit("change");
  }
}

/** A guard that is known only once secure serving is set up; requests it sees before then wait for it. */
export interface PendingGuard {
  guard: Guard;
  /** Hands over the real guard; undefined lets every request through. */
  settle(guard: Guard | undefined): void;
}

export function pendingGuard(): PendingGuard {
  let settle: (guard: Guard | undefined) => void = () => undefined;
  const ready = new Promise<Guard | undefined>((resolve) => (settle = resolve));
  return {
    guard: async (c, next) => {
      const guard = await ready;
      if (guard) return guard(c, next);
      await next();
    },
    settle: (guard) => settle(guard),
  };
}
