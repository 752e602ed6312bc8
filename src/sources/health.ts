import { classifyError, FAILURE_REASONS, type FailureReason, UpstreamError } from "../errors.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import type { PollOutcome, SourceStatus } from "./types.ts";

/**
 * The freshness of one source: sidecar_source_* series, the state `source` checks read, and transition logs.
 * Shared by polled and watch-driven sources so both report the same way.
 */
export class SourceHealth {
  #up = false;
  #lastSuccessAt: number | undefined;
  #lastAttemptAt: number | undefined;
  #error: string | undefined;
  #reason: FailureReason | undefined;
  #outcome: PollOutcome = {};
  #consecutiveFailures = 0;
  #settle: () => void = () => undefined;
  /** Resolves once the source has finished its first poll (or list), whether it worked or not. */
  readonly firstResult = new Promise<void>((resolve) => (this.#settle = resolve));

  constructor(
    readonly name: string,
    private readonly metrics: MetricHandles,
    private readonly logger: Logger,
  ) {
    metrics.sourceUp.set({ source: name }, 0);
    // Every reason starts at 0, so rate() works from the first error and "no errors" is a value, not an absence.
    for (const reason of FAILURE_REASONS) metrics.sourceErrors.inc({ source: name, reason }, 0);
  }

  success(durationMs: number, outcome: PollOutcome = {}): void {
    const wasUp = this.#up;
    this.#up = true;
    this.#lastSuccessAt = this.#lastAttemptAt = Date.now();
    this.#error = this.#reason = undefined;
    this.#outcome = outcome;
    this.#consecutiveFailures = 0;
    this.metrics.sourceUp.set({ source: this.name }, 1);
    this.metrics.sourceLastSuccess.set({ source: this.name }, this.#lastSuccessAt / 1000);
    this.metrics.sourcePollDuration.observe({ source: this.name }, durationMs / 1000);
    for (const reason of outcome.partialFailures ?? []) this.metrics.sourceErrors.inc({ source: this.name, reason });
    if (!wasUp) this.logger.info({ source: this.name, detail: outcome.detail }, "source up");
    this.#settle();
  }

  failure(err: unknown, durationMs: number): FailureReason {
    const reason = classifyError(err);
    const wasUp = this.#up;
    this.#up = false;
    this.#lastAttemptAt = Date.now();
    this.#error = errorMessage(err);
    this.#reason = reason;
    this.#consecutiveFailures++;
    this.metrics.sourceUp.set({ source: this.name }, 0);
    this.metrics.sourceErrors.inc({ source: this.name, reason });
    this.metrics.sourcePollDuration.observe({ source: this.name }, durationMs / 1000);
    const fields = { source: this.name, reason, err: this.#error, failures: this.#consecutiveFailures };
    if (wasUp || this.#consecutiveFailures === 1) this.logger.warn(fields, "source down");
    else this.logger.debug(fields, "source still down");
    this.#settle();
    return reason;
  }

  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }

  status(): SourceStatus {
    return {
      up: this.#up,
      ...(this.#lastSuccessAt !== undefined && { lastSuccessAt: this.#lastSuccessAt }),
      ...(this.#error !== undefined && { error: this.#error }),
      ...(this.#outcome.healthy !== undefined && { healthy: this.#outcome.healthy }),
      ...(this.#outcome.detail !== undefined && { detail: this.#outcome.detail }),
    };
  }

  debug(): Record<string, unknown> {
    const now = Date.now();
    return {
      name: this.name,
      up: this.#up,
      healthy: this.#outcome.healthy ?? null,
      detail: this.#outcome.detail ?? null,
      lastSuccessAt: this.#lastSuccessAt ? new Date(this.#lastSuccessAt).toISOString() : null,
      ageSeconds: this.#lastSuccessAt ? Math.round((now - this.#lastSuccessAt) / 100) / 10 : null,
      lastAttemptAt: this.#lastAttemptAt ? new Date(this.#lastAttemptAt).toISOString() : null,
      error: this.#error ?? null,
      reason: this.#reason ?? null,
      consecutiveFailures: this.#consecutiveFailures,
      ...this.#outcome.debug,
    };
  }
}

/** The delay an upstream asked for (429 Retry-After), carried on the error that reported it. */
export class RetryAfterError extends UpstreamError {
  constructor(
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message, "rate_limited");
  }
}
