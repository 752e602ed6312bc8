/**
 * A pattern's worker thread (see match.ts): matches one job's inputs off the event loop, posts whether each
 * matched, and exits. The main thread ends it when the job's deadline passes first.
 */
import { parentPort, workerData } from "node:worker_threads";
import { compilePattern } from "./pattern.ts";

export interface PatternJob {
  source: string;
  inputs: string[];
}

const port = parentPort;
if (!port) throw new Error("patterns/worker.ts runs as a worker thread, started by patterns/match.ts");
const { source, inputs } = workerData as PatternJob;
const pattern = compilePattern(source);
port.postMessage(inputs.map((input) => pattern.test(input)));
