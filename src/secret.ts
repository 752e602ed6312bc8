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

/**
 * Replaces every known secret value in `text` with [REDACTED], and the credentials of any URL in it (see
 * redactUrlCredentials), remembered or not: a URL can reach a message by a path nobody anticipated, quoted by a
 * library's error for instance, and a short password is not scrubbed by value.
 */
export function scrub(text: string): string {
  let out = text;
  for (const values of [known, rotating]) {
    for (const s of values) {
      if (out.includes(s)) out = out.split(s).join(REDACTED);
    }
  }
  return redactUrlCredentials(out);
}

/**
 * Query (and fragment) parameters whose values are credentials by their name: token, access_token, api_key, key,
 * signature, sig, X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, password, client_secret, auth and the
 * like. A harmless parameter caught by the pattern only loses its value in what is printed.
 */
const SENSITIVE_PARAM = /token|secret|passw|pwd|key|sig|auth|credential|session|jwt|cookie/i;

export function isSensitiveParam(name: string): boolean {
  return SENSITIVE_PARAM.test(name);
}

/** "user:password" → "user:[REDACTED]"; a user name standing alone is often a token: "token" → "[REDACTED]". */
export function redactUserInfo(info: string): string {
  const colon = info.indexOf(":");
  return colon < 0 ? REDACTED : `${info.slice(0, colon)}:${REDACTED}`;
}

/**
 * The user info of a URL in text: after "://", up to an "@" before the host. Both patterns run in time linear in
 * the text: each run of characters they scan ends at a character the next match starts from.
 */
const USER_INFO = /:\/\/([^\s/?#@"\\]+)@/g;
/** One parameter of a query or fragment: "?name=value", "&name=value" or "#name=value". */
const PARAM = /([?&#])([^\s=&#?"\\]+)=([^\s&#"\\]*)/g;

/** Text with the credentials of every URL in it redacted: user info as redactUserInfo does, sensitive parameters' values. */
export function redactUrlCredentials(text: string): string {
  let out = text;
  if (out.includes("@")) out = out.replace(USER_INFO, (_match, info: string) => `://${redactUserInfo(info)}@`);
  if (out.includes("=")) out = out.replace(PARAM, (match, sep: string, name: string) => (isSensitiveParam(name) ? `${sep}${name}=${REDACTED}` : match));
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
