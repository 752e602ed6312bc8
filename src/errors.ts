import { scrub } from "./secret.ts";

/**
 * The small fixed set of reasons an upstream call can fail for. They become the `reason` label, so the set is
 * closed: anything unrecognised is "other".
 */
export const FAILURE_REASONS = [
  "timeout",
  "unauthorized",
  "not_found",
  "rate_limited",
  "tls",
  "connection",
  "decode",
  "unhealthy",
  "other",
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** An error that already knows its reason, thrown by the code that understood the failure. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly reason: FailureReason,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "UpstreamError";
  }
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_TLS|ERR_SSL|ERR_OSSL|HOSTNAME_MISMATCH|ERR_TLS_CERT_ALTNAME)/;
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "ERR_STREAM_PREMATURE_CLOSE",
]);
const TIMEOUT_CODES = new Set(["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ABORT_ERR"]);

/** Maps an HTTP status to a reason; undefined for statuses that are not failures by themselves. */
export function reasonForStatus(status: number): FailureReason | undefined {
  if (status === 401 || status === 403) return "unauthorized";
  if (status === 404 || status === 410) return "not_found";
  if (status === 429) return "rate_limited";
  if (status >= 400) return "other";
  return undefined;
}

export function classifyError(err: unknown): FailureReason {
  if (err instanceof UpstreamError) return err.reason;
  if (!(err instanceof Error)) return "other";
  if (err.name === "TimeoutError" || err.name === "AbortError") return "timeout";
  const code = String((err as NodeJS.ErrnoException).code ?? "");
  if (TIMEOUT_CODES.has(code)) return "timeout";
  if (TLS_CODES.test(code) || /certificate|SSL routines|TLS/i.test(err.message)) return "tls";
  if (CONNECTION_CODES.has(code)) return "connection";
  if (err instanceof SyntaxError) return "decode";
  if (err.cause !== undefined && err.cause !== err) return classifyError(err.cause);
  return "other";
}

/** Turns any thrown value into a one-line message that is safe to log or show. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    const code = (err as NodeJS.ErrnoException).code;
    const text = err.message || code || err.name;
    return scrub(cause && !text.includes(cause.slice(2)) ? text + cause : text);
  }
  return scrub(String(err));
}
