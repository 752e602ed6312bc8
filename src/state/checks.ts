import { EventEmitter } from "node:events";
import type { CheckSpec } from "../config/types.ts";
import type { FailureReason } from "../errors.ts";

/** One finished run of a check. */
export interface CheckResult {
  ok: boolean;
  /** Epoch milliseconds when the run finished. */
  checkedAt: number;
  durationMs: number;
  message?: string;
  reason?: FailureReason;
}

/**
 * pending: never ran yet; pass/fail: the latest result; stale: the latest result is older than
 * 2 × interval + timeout, so it no longer says anything about now and counts as failing.
 */
export type CheckStatus = "pending" | "pass" | "fail" | "stale";

export interface CheckView {
  spec: CheckSpec;
  status: CheckStatus;
  result: CheckResult | undefined;
  /** How long ago the latest result was taken, in milliseconds. */
  ageMs: number | undefined;
}

export function staleAfterMs(spec: CheckSpec): number {
  return 2 * spec.intervalMs + spec.timeoutMs;
}

export function statusOf(spec: CheckSpec, result: CheckResult | undefined, now: number, staleAfter = staleAfterMs(spec)): CheckStatus {
  if (!result) return "pending";
  if (now - result.checkedAt > staleAfter) return "stale";
  return result.ok ? "pass" : "fail";
}

interface Entry {
  spec: CheckSpec;
  /** staleAfterMs(spec), worked out once: the sweep asks it of every check every second. */
  staleAfterMs: number;
  result: CheckResult | undefined;
  lastStatus: CheckStatus;
}

/**
 * The latest result of every check. The engine is the only writer; servers and metrics only read.
 * Emits "change" (name, status) whenever a check's status changes, including to stale with no new run.
 */
export class CheckStore extends EventEmitter<{ change: [name: string, status: CheckStatus] }> {
  readonly #entries = new Map<string, Entry>();
  #sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly now: () => number = Date.now) {
    super();
  }

  register(spec: CheckSpec): void {
    this.#entries.set(spec.name, { spec, staleAfterMs: staleAfterMs(spec), result: undefined, lastStatus: "pending" });
  }

  unregister(name: string): void {
    if (this.#entries.delete(name)) this.emit("change", name, "pending");
  }

  record(name: string, result: CheckResult): void {
    const entry = this.#entries.get(name);
    if (!entry) return;
    entry.result = result;
    this.#update(name, entry);
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  view(name: string): CheckView | undefined {
    const entry = this.#entries.get(name);
    if (!entry) return undefined;
    const now = this.now();
    return {
      spec: entry.spec,
      status: statusOf(entry.spec, entry.result, now, entry.staleAfterMs),
      result: entry.result,
      ageMs: entry.result ? Math.max(0, now - entry.result.checkedAt) : undefined,
    };
  }

  views(): CheckView[] {
    return [...this.#entries.keys()].map((name) => this.view(name) as CheckView);
  }

  /** Re-evaluates staleness once a second so watchers see a check go stale even when it stops reporting. */
  startSweeping(everyMs = 1_000): void {
    this.#sweeper ??= setInterval(() => {
      const now = this.now();
      for (const [name, entry] of this.#entries) this.#update(name, entry, now);
    }, everyMs).unref();
  }

  stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #update(name: string, entry: Entry, now = this.now()): void {
    const status = statusOf(entry.spec, entry.result, now, entry.staleAfterMs);
    if (status !== entry.lastStatus) {
      entry.lastStatus = status;
      this.emit("change", name, status);
    }
  }
}
