import { errorMessage, type Logger } from "../log.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import { runWithTimeout } from "../timeout.ts";
import { activate, finish, startSpan } from "../tracing/spans.ts";
import { RetryAfterError, SourceHealth } from "./health.ts";
import type { PollDriver, Source, SourceStatus } from "./types.ts";

export interface PollSchedule {
  intervalMs: number;
  timeoutMs: number;
}

const MAX_START_JITTER_MS = 1_000;
const INTERVAL_JITTER = 0.05;
/** Failing sources back off, doubling, up to this (or the interval, if longer): slow, never silent. */
const MAX_BACKOFF_MS = 5 * 60_000;

/**
 * Delay before the next poll: the interval after a success; after failures, doubling from the interval up to
 * the cap, and never sooner than an upstream's Retry-After.
 */
export function nextDelayMs(schedule: PollSchedule, consecutiveFailures: number, retryAfterMs?: number): number {
  const { intervalMs } = schedule;
  if (consecutiveFailures === 0) return intervalMs;
  const backoff = Math.min(intervalMs * 2 ** (consecutiveFailures - 1), Math.max(intervalMs, MAX_BACKOFF_MS));
  return Math.max(backoff, retryAfterMs ?? 0);
}

/** A source that polls its upstream on a timer, never overlapping itself, each poll cut off at the timeout. */
export class PolledSource implements Source {
  readonly #health: SourceHealth;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #stopped = false;
  #generation = 0;
  #lifetime = new AbortController();

  constructor(
    readonly name: string,
    private readonly schedule: PollSchedule,
    private readonly driver: PollDriver,
    metrics: MetricHandles,
    private readonly logger: Logger,
  ) {
    this.#health = new SourceHealth(name, metrics, logger);
  }

  start(): void {
    this.#stopped = false;
    this.#generation++;
    this.#lifetime = new AbortController();
    this.#schedule(Math.random() * Math.min(MAX_START_JITTER_MS, this.schedule.intervalMs * 0.1));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    // A timer chain from before a stop must not survive a start that follows it, nor a poll under way go on.
    this.#generation++;
    this.#lifetime.abort(new Error(`source ${this.name} stopped`));
    clearTimeout(this.#timer);
    await this.driver.close().catch((err: unknown) => this.logger.debug({ err, source: this.name }, "source close failed"));
  }

  get firstResult(): Promise<void> {
    return this.#health.firstResult;
  }

  async refresh(): Promise<void> {
    await this.pollOnce();
  }

  status(): SourceStatus {
    return this.#health.status();
  }

  debug(): Record<string, unknown> {
    return { ...this.#health.debug(), intervalSeconds: this.schedule.intervalMs / 1000, timeoutSeconds: this.schedule.timeoutMs / 1000 };
  }

  /** One poll now; resolves when it has been recorded. Skipped (false) while an earlier poll still runs. */
  async pollOnce(): Promise<{ ok: boolean; retryAfterMs?: number } | undefined> {
    if (this.#inFlight) return undefined;
    const started = performance.now();
    const span = startSpan(`poll ${this.name}`, { "source.name": this.name });
    const run = runWithTimeout((signal) => activate(span, () => this.driver.poll(signal)), this.schedule.timeoutMs, this.#lifetime.signal);
    const inFlight = run.settled.finally(() => {
      if (this.#inFlight === inFlight) this.#inFlight = undefined;
    });
    this.#inFlight = inFlight;
    try {
      const outcome = await run.result;
      this.#health.success(performance.now() - started, outcome);
      finish(span, "source", { ok: true });
      return { ok: true };
    } catch (err) {
      if (this.#stopped) {
        // Cut off by stop(): not an upstream failure, nothing to record.
        finish(span, "source", { ok: false, reason: "other", message: "stopped" });
        return { ok: false };
      }
      const reason = this.#health.failure(err, performance.now() - started);
      finish(span, "source", { ok: false, reason, message: errorMessage(err) });
      return { ok: false, ...(err instanceof RetryAfterError && err.retryAfterMs !== undefined && { retryAfterMs: err.retryAfterMs }) };
    }
  }

  #schedule(delayMs: number, generation = this.#generation): void {
    if (this.#stopped || generation !== this.#generation) return;
    this.#timer = setTimeout(() => void this.#tick(generation), delayMs);
  }

  async #tick(generation: number): Promise<void> {
    const startedAt = Date.now();
    const result = await this.pollOnce();
    if (generation !== this.#generation) return;
    const base = nextDelayMs(this.schedule, this.#health.consecutiveFailures, result?.retryAfterMs);
    const jitter = (Math.random() * 2 - 1) * INTERVAL_JITTER * this.schedule.intervalMs;
    // Retry-After counts from the answer that carried it, not from the start of the poll that got it.
    this.#schedule(Math.max(0, base - (Date.now() - startedAt) + jitter, result?.retryAfterMs ?? 0), generation);
  }
}
