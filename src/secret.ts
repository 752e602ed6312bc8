import { inspect } from "node:util";

export const REDACTED = "[REDACTED]";

/**
 * Every secret value the process has seen, so that text leaving the process (log lines, error messages, /debug
 * output) can be scrubbed even when a secret reached it by a path nobody anticipated. Values from the
 * configuration and the credentials it names are kept for the life of the process; tokens that rotate are kept
 * in `rotating`, most recently seen last.
 */
const known = new Set<string>();
const rotating = new Set<string>();

/** Secrets shorter than this are not scrubbed by value: replacing "a" everywhere would mangle every line. */
const MIN_SCRUB_LENGTH = 6;

/**
 * Projected service-account tokens, bearer token files and OAuth access tokens rotate for as long as the process
 * runs, each rotation a new value, and every scrub looks for every value remembered. Beyond this many rotating
 * values the least recently seen are forgotten: one in use is seen again at each use (read again, or revealed),
 * so what is forgotten is what nothing uses any more — a token rotated out, expired.
 */
export const MAX_ROTATING_SECRETS = 1_024;

/** Remembers a value for scrubbing; `rotating` for tokens that are replaced while the process runs. */
export function rememberSecret(value: string, opts: { rotating?: boolean } = {}): void {
  const v = value.trim();
  if (v.length < MIN_SCRUB_LENGTH || known.has(v)) return;
  if (!opts.rotating) {
    rotating.delete(v);
    known.add(v);
    return;
  }
  // Deleted and added again, so the set's order stays least recently seen first.
  rotating.delete(v);
  rotating.add(v);
  if (rotating.size > MAX_ROTATING_SECRETS) rotating.delete(rotating.values().next().value as string);
}

/** Replaces every known secret value in `text` with [REDACTED]. */
export function scrub(text: string): string {
  if (known.size === 0 && rotating.size === 0) return text;
  let out = text;
  for (const values of [known, rotating]) {
    for (const s of values) {
      if (out.includes(s)) out = out.split(s).join(REDACTED);
    }
  }
  return out;
}

/**
 * A value whose string, JSON and inspect forms are redacted, so printing it by accident prints nothing
 * sensitive. `reveal()` is the one deliberate way to read it.
 */
export class Secret {
  readonly #value: string;
  readonly #rotating: boolean;

  /** `rotating`: a token that is replaced while the process runs (see MAX_ROTATING_SECRETS). */
  constructor(value: string, opts: { rotating?: boolean } = {}) {
    this.#value = value;
    this.#rotating = opts.rotating ?? false;
    rememberSecret(value, opts);
  }

  reveal(): string {
    // A rotating token in use is seen again at each use, so it is never the one forgotten.
    if (this.#rotating) rememberSecret(this.#value, { rotating: true });
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
