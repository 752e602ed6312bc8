/**
 * The patterns a configuration supplies (an http check's bodyMatch, the backups source's match) are RE2 syntax, as
 * blackbox_exporter's are, and run on re2js, a port of RE2: no backtracking, so matching takes time linear in the
 * input and in the pattern's compiled size. What RE2 cannot run (backreferences, lookaround, possessive and atomic
 * forms) is refused when the configuration is validated, by the same engine that later runs the pattern.
 */
import { createRequire } from "node:module";
import type * as Re2 from "re2js";

/**
 * The largest compiled program accepted, in RE2 instructions. Compiling takes time and memory in proportion on the
 * thread that validates the configuration, and matching costs that much per input character; a pattern of tens of
 * instructions is usual, a repeat count in the thousands is what reaches this.
 */
export const MAX_PROGRAM_SIZE = 5_000;

let engine: typeof Re2.RE2JS | undefined;

/**
 * re2js, loaded on first use. Validation is synchronous, so it is required rather than imported; and it is not in
 * the bundle, so a start whose configuration has no pattern never reads it before the health server listens.
 */
function re2(): typeof Re2.RE2JS {
  engine ??= (createRequire(import.meta.url)("re2js") as typeof Re2).RE2JS;
  return engine;
}

/** A compiled pattern. */
export interface Pattern {
  readonly source: string;
  /** Instructions in the compiled program: what matching costs per input character, at most. */
  readonly programSize: number;
  /** True when the pattern matches anywhere in the input. */
  test(input: string): boolean;
}

/** Compiles a pattern that validation accepted; throws on one it would refuse. */
export function compilePattern(source: string): Pattern {
  const compiled = re2().compile(source);
  const programSize = compiled.programSize();
  if (programSize > MAX_PROGRAM_SIZE) throw new Error(tooLarge(programSize));
  return { source, programSize, test: (input) => compiled.test(input) };
}

/** Why the engine refuses a pattern, and what to write instead; undefined when it accepts it. */
export function patternProblem(source: string): string | undefined {
  let size: number;
  try {
    size = re2().compile(source).programSize();
  } catch (err) {
    return syntaxProblem(err);
  }
  return size > MAX_PROGRAM_SIZE ? tooLarge(size) : undefined;
}

function tooLarge(size: number): string {
  return `it compiles to ${size} instructions, more than the ${MAX_PROGRAM_SIZE} allowed; use smaller repeat counts`;
}

function syntaxProblem(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // A syntax exception names the rule (`error`) and the part of the pattern that broke it (`input`).
  const { error, input } = err as Partial<Re2.RE2JSSyntaxException>;
  if (error === undefined) return err.message;
  const at = input ? ` at ${JSON.stringify(input)}` : "";
  return `${error}${at}; ${advice(input ?? "")}`;
}

/** What to write instead of the constructs RE2 leaves out on purpose, which are what a pattern most often trips on. */
function advice(at: string): string {
  if (/^\\[1-9k]/.test(at)) return "backreferences are not supported in RE2 syntax: match the repeated text itself";
  if (/^\(\?<?[=!]/.test(at)) return "lookahead and lookbehind are not supported in RE2 syntax: match the surrounding text itself";
  if (/^(?:\(\?>|[*+?]\+|\{[\d,]*\}\+)/.test(at))
    return "possessive and atomic forms are not supported in RE2 syntax, nor needed (it never backtracks): drop the extra + or (?>…)";
  if (/^\\u/.test(at)) return "write a code point as \\x{0041}";
  return "patterns are RE2 syntax (https://github.com/google/re2/wiki/Syntax)";
}
