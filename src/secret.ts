import { inspect } from "node:util";

export const REDACTED = "[REDACTED]";

/**
 * Every secret value the process has seen, so that text leaving the process (log lines, error messages,
 * /debug output) can be scrubbed even when a secret reached it by a path nobody anticipated.
 */
const known = new Set<string>();

/** Secrets shorter than this are not scrubbed by value: replacing "a" everywhere would mangle every line. */
const MIN_SCRUB_LENGTH = 6;

export function rememberSecret(value: string): void {
  const v = value.trim();
  if (v.length >= MIN_SCRUB_LENGTH) known.add(v);
}

/** Replaces every known secret value in `text` with [REDACTED]. */
export function scrub(text: string): string {
  if (known.size === 0) return text;
  let out = text;
  for (const s of known) {
    if (out.includes(s)) out = out.split(s).join(REDACTED);
  }
  return out;
}

/**
 * A value whose string, JSON and inspect forms are redacted, so printing it by accident prints nothing
 * sensitive. `reveal()` is the one deliberate way to read it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
    rememberSecret(value);
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
