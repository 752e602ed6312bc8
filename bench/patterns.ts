/**
 * What a configured pattern can cost the event loop: adversarial RE2 patterns over inputs built to defeat the
 * engine's shortcuts. Prints, for each, the CPU time of one inline slice (an input as long as INLINE_STEPS allows
 * for that pattern, compiled fresh, as a prober's first run is; the process's very first slice apart) and, with --full, of matching a whole 1 MiB body on
 * one thread (what a worker thread then spends); and the longest event-loop delay while a 1 MiB body is matched
 * through matchEach (on a worker thread). Not a test: it exits 0 whatever it measures.
 *
 *   node --import tsx bench/patterns.ts [--full] [--rounds 3]
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { INLINE_STEPS, matchEach } from "../src/patterns/match.ts";
import { compilePattern } from "../src/patterns/pattern.ts";

const MIB = 1 << 20;

const { values } = parseArgs({ options: { full: { type: "boolean", default: false }, rounds: { type: "string", default: "3" } } });
const rounds = Math.max(1, Number(values.rounds));

/** The same pseudo-random text on every run, over the given characters. */
function text(length: number, alphabet: string): string {
  let seed = 1;
  let out = "";
  for (let i = 0; i < length; i++) {
    seed = (seed * 1_103_515_245 + 12_345) & 0x7fff_ffff;
    out += alphabet[(seed >>> 8) % alphabet.length];
  }
  return out;
}

/** Patterns whose automaton has many states (so the engine's cache thrashes) or which the engine cannot skip ahead in. */
const CASES: { pattern: string; alphabet: string }[] = [
  { pattern: "x[xy]{30}[^xy]", alphabet: "xy" },
  { pattern: "x[xy]{300}[^xy]", alphabet: "xy" },
  { pattern: "x[xy]{1000}[^xy]", alphabet: "xy" },
  { pattern: "(x|y)*x(x|y){20}[^xy]", alphabet: "xy" },
  { pattern: "(?i)x[xy]{500}[^xy]", alphabet: "xy" },
  { pattern: "(?:x[xy]{200}[^xy]|y[xy]{200}[^xy]|[xy]{150}q)", alphabet: "xy" },
  { pattern: "[xy]{1000}[xy]{1000}[xy]{1000}[xy]{1000}z", alphabet: "xyz" },
  { pattern: "(\\pL|\\pN|\\pP){300}!", alphabet: "abc1.," },
  { pattern: "^(a+)+$", alphabet: "a" },
  { pattern: ".*ok.*", alphabet: "a" },
  { pattern: "(x+x+)+y", alphabet: "xz" },
];

function cpuMs(work: () => void): number {
  const before = process.cpuUsage();
  work();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

const sliceOf = (pattern: string, alphabet: string) => text(Math.min(MIB, Math.floor(INLINE_STEPS / compilePattern(pattern).programSize)), alphabet);

// The first slice the process ever matches also pays for compiling the engine's own code.
const first = CASES[0] ?? { pattern: "a", alphabet: "a" };
const firstSlice = sliceOf(first.pattern, first.alphabet);
const coldMs = cpuMs(() => compilePattern(first.pattern).test(firstSlice));

const rows: string[][] = [["pattern", "program", "slice chars", "slice ms (max)", ...(values.full ? ["1 MiB ms"] : [])]];
let worstSlice = 0;
for (const { pattern, alphabet } of CASES) {
  const size = compilePattern(pattern).programSize;
  const slice = sliceOf(pattern, alphabet);
  let sliceMs = 0;
  // Each round compiles afresh: a compiled pattern keeps the automaton states it has built, and its later runs are cheaper.
  for (let r = 0; r < rounds; r++) {
    const fresh = compilePattern(pattern);
    sliceMs = Math.max(
      sliceMs,
      cpuMs(() => fresh.test(slice)),
    );
  }
  worstSlice = Math.max(worstSlice, sliceMs);
  const row = [pattern, String(size), String(slice.length), sliceMs.toFixed(1)];
  if (values.full) {
    const body = text(MIB, alphabet);
    const fresh = compilePattern(pattern);
    row.push(cpuMs(() => fresh.test(body)).toFixed(0));
  }
  rows.push(row);
}

// A 1 MiB body through matchEach: the event loop's longest delay while a worker thread matches it.
const body = `${text(MIB, "xy")}ok`;
const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
const started = performance.now();
const workerCpuMs = await (async () => {
  const before = process.cpuUsage();
  await matchEach(compilePattern("ok$"), [body], AbortSignal.timeout(60_000));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
})();
const workerMs = performance.now() - started;
delay.disable();

const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0))) ?? [];
for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join("  "));
console.log(`\nworst inline slice: ${worstSlice.toFixed(1)} ms of CPU (INLINE_STEPS = ${INLINE_STEPS}); the process's first: ${coldMs.toFixed(1)} ms`);
console.log(
  `1 MiB body on a worker thread: ${workerMs.toFixed(0)} ms in all, ${workerCpuMs.toFixed(0)} ms of CPU over all threads, event loop delayed ${(delay.max / 1e6).toFixed(1)} ms at most`,
);
