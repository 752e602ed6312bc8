/**
 * Runs a configured pattern over untrusted input (a response body, a listing's keys) without holding the event
 * loop. Linear time is not enough on its own: a large compiled pattern over a body of a mebibyte is still seconds of
 * work. So matching runs here in slices of at most INLINE_STEPS engine steps, with a turn of the event loop between
 * slices, and an input that costs more than one slice is matched on a worker thread, which is ended when the
 * caller's signal fires (a check's timeout, a poll's budget).
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { newWorker } from "../worker-modules.ts";
import type { Pattern } from "./pattern.ts";
import type { PatternJob } from "./worker.ts";

/** Steps matched on the event loop before it is handed back; bench/patterns.ts measures what the costliest slice takes. */
export const INLINE_STEPS = 1 << 15;

/** An upper bound on the engine steps of matching an input: its length times the program's size. */
export function matchCost(pattern: Pattern, input: string): number {
  return input.length * pattern.programSize;
}

/** Whether the pattern matches each input, in order. Rejects with the signal's reason once it fires. */
export async function matchEach(pattern: Pattern, inputs: readonly string[], signal: AbortSignal): Promise<boolean[]> {
  const matched = new Array<boolean>(inputs.length).fill(false);
  const costly: number[] = [];
  let steps = 0;
  for (const [i, input] of inputs.entries()) {
    const cost = matchCost(pattern, input);
    if (cost > INLINE_STEPS) {
      costly.push(i);
      continue;
    }
    if (steps + cost > INLINE_STEPS) {
      await nextTurn();
      signal.throwIfAborted();
      steps = 0;
    }
    steps += cost;
    matched[i] = pattern.test(input);
  }
  if (costly.length > 0) {
    const answers = await matchOnWorker({ source: pattern.source, inputs: costly.map((i) => inputs[i] ?? "") }, signal);
    for (const [k, i] of costly.entries()) matched[i] = answers[k] === true;
  }
  return matched;
}

/** Whether the pattern matches anywhere in the input. */
export async function matches(pattern: Pattern, input: string, signal: AbortSignal): Promise<boolean> {
  const [matched] = await matchEach(pattern, [input], signal);
  return matched === true;
}

/** One worker thread for one job: it compiles the pattern, matches, answers and exits, or is ended at the signal. */
function matchOnWorker(job: PatternJob, signal: AbortSignal): Promise<boolean[]> {
  signal.throwIfAborted();
  return new Promise<boolean[]>((resolve, reject) => {
    const worker = newWorker("pattern-worker", { workerData: job, name: "pattern" });
    // A match still running must not keep the process from exiting.
    worker.unref();
    let settled = false;
    const settle = (done: () => void) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", abort);
      done();
    };
    const abort = () => {
      void worker.terminate();
      settle(() => reject(signal.reason));
    };
    signal.addEventListener("abort", abort, { once: true });
    worker.once("message", (answers: boolean[]) => settle(() => resolve(answers)));
    worker.on("error", (err) => settle(() => reject(err)));
    worker.once("exit", (code) => settle(() => reject(new Error(`the pattern's worker thread exited with code ${code} before answering`))));
  });
}
