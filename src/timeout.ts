import { formatDuration } from "./config/duration.ts";

export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`timed out after ${formatDuration(ms)}`);
    this.name = "TimeoutError";
  }
}

export interface TimedRun<T> {
  /** Settles with the work's outcome, or rejects with TimeoutError at the deadline, whichever is first. */
  result: Promise<T>;
  /** Resolves when the work itself has settled, even if that is after the deadline (work that ignores its signal). */
  settled: Promise<void>;
}

/**
 * Runs `work` with an AbortSignal that fires at `timeoutMs`, and cuts the caller loose at that moment even if
 * the work does not honour the signal. `settled` lets the caller refuse to start again while such work lingers.
 */
export function runWithTimeout<T>(work: (signal: AbortSignal) => Promise<T>, timeoutMs: number, outer?: AbortSignal): TimedRun<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new TimeoutError(timeoutMs)), timeoutMs);
  // Stopping the owner (e.g. a source losing leadership) cuts the run off too.
  const onOuterAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener("abort", onOuterAbort, { once: true });
  let running: Promise<T>;
  try {
    running = work(controller.signal);
  } catch (err) {
    running = Promise.reject(err);
  }
  const settled = running.then(
    () => undefined,
    () => undefined,
  );
  const result = new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(controller.signal.reason);
    controller.signal.addEventListener("abort", onAbort, { once: true });
    running.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuterAbort);
      controller.signal.removeEventListener("abort", onAbort);
    });
  });
  return { result, settled };
}
