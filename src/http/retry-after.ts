/** An upstream's Retry-After is honoured up to this; a larger value would silence a source for too long. */
export const MAX_RETRY_AFTER_MS = 60 * 60_000;

/**
 * Retry-After as milliseconds from `now`: delta-seconds or an HTTP date. Undefined when absent or unreadable,
 * which leaves the poller to its own backoff.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!v) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  return Number.isNaN(ms) ? undefined : Math.min(Math.max(0, ms), MAX_RETRY_AFTER_MS);
}
