import * as z from "zod";
import { patternProblem } from "../patterns/pattern.ts";
import { parseDuration } from "./duration.ts";
import { redactUrlCredentials, REDACTED } from "../secret.ts";
import { SecretUrl } from "../secret-url.ts";
import { markField } from "./fields.ts";

/** Renders a user's value the way they wrote it, for error messages. */
export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === undefined) return "nothing";
  return JSON.stringify(value) ?? String(value);
}

/** A duration such as "15s"; the output is milliseconds. */
export const duration = () =>
  z.unknown().transform((value, ctx) => {
    const ms = typeof value === "string" ? parseDuration(value) : undefined;
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `${show(typeof value === "number" ? String(value) : value)} is not a duration, use e.g. "5s", "1m30s" or "7d"` });
      return z.NEVER;
    }
    return ms;
  });

/** The longest delay a Node.js timer keeps (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration that drives a timer (an interval, a timeout), so no longer than a timer can wait. */
export const timerDuration = () =>
  duration().pipe(
    z.number().max(MAX_TIMER_MS, { error: (iss) => `${show(formatDays(iss.input as number))} is longer than a timer can wait, use at most "24d"` }),
  );

function formatDays(ms: number): string {
  return `${Math.round((ms / 86_400_000) * 10) / 10}d`;
}

/** A TCP port; strings are accepted because environment overrides arrive as strings. */
export const port = () =>
  z.unknown().transform((value, ctx) => {
    const n = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!Number.isInteger(n) || n < 0 || n > 65_535) {
      ctx.addIssue({ code: "custom", message: `${show(value)} is not a port, use a whole number from 0 to 65535` });
      return z.NEVER;
    }
    return n;
  });

export const bool = () =>
  z.unknown().transform((value, ctx) => {
    if (typeof value === "boolean") return value;
    const v = typeof value === "string" ? value.trim().toLowerCase() : undefined;
    if (v === "true") return true;
    if (v === "false") return false;
    ctx.addIssue({ code: "custom", message: `${show(value)} is not a boolean, use true or false` });
    return z.NEVER;
  });

/** An HTTP path served by this process. */
export const httpPath = () =>
  z.string().refine((p) => /^\/[A-Za-z0-9._~/-]*$/.test(p), {
    error: (iss) => `${show(iss.input)} is not a path, use one that starts with "/" such as "/health/registry"`,
  });

export const enumOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: (iss) => `${show(iss.input)} is not one of: ${values.join(", ")}` });

/** "host:port" with a numeric port; IPv6 literals go in brackets. */
export const hostPort = () =>
  z.string().refine((a) => /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(a) && Number(a.slice(a.lastIndexOf(":") + 1)) <= 65_535, {
    error: (iss) => `${show(iss.input)} is not an address, use host:port such as "localhost:5005"`,
  });

/**
 * A pattern in RE2 syntax, compiled by the engine that will run it, so one it cannot run is a config error naming
 * the field, not a failure later.
 */
export const pattern = () =>
  z.string().superRefine((source, ctx) => {
    const problem = patternProblem(source);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: `${show(source)} is not a pattern this exporter can run: ${problem}` });
  });

/** The path of a file that holds credentials (a token, a private key, a kubeconfig). */
export const credentialFile = () => markField(z.string(), "secret-file");

/**
 * A URL this process sends requests to, as a SecretUrl: its printed forms never show the credentials its user
 * info or query may carry, and neither do the messages about a URL that cannot be used.
 */
export const httpUrl = () =>
  markField(
    z.string().transform((value, ctx) => {
      let url: SecretUrl;
      try {
        url = new SecretUrl(value);
      } catch {
        // Not parsed, so where its user info ends is a guess: everything up to the last "@" before the path goes.
        const shown = redactUrlCredentials(value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, `$1${REDACTED}@`));
        ctx.addIssue({ code: "custom", message: `${show(shown)} is not a URL, use e.g. "https://example.internal/healthz"` });
        return z.NEVER;
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        ctx.addIssue({ code: "custom", message: `${show(url.protocol)} is not supported, use http: or https:` });
        return z.NEVER;
      }
      return url;
    }),
    "url",
  );
