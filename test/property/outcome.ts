import { expect } from "vitest";
import { FAILURE_REASONS, UpstreamError } from "../../src/errors.ts";

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error };

/** A thrown value must be an Error that says what went wrong; an UpstreamError must carry a known reason. */
export function expectClearError(thrown: unknown): asserts thrown is Error {
  expect(thrown).toBeInstanceOf(Error);
  const err = thrown as Error;
  expect(typeof err.message).toBe("string");
  expect(err.message.trim().length).toBeGreaterThan(0);
  if (err instanceof UpstreamError) expect(FAILURE_REASONS).toContain(err.reason);
}

/** Runs a decoder: its result, or the clear error it threw. Anything else fails the property. */
export function outcome<T>(decode: () => T): Outcome<T> {
  try {
    return { ok: true, value: decode() };
  } catch (err) {
    expectClearError(err);
    return { ok: false, error: err };
  }
}

export async function outcomeAsync<T>(decode: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await decode() };
  } catch (err) {
    expectClearError(err);
    return { ok: false, error: err };
  }
}

/** A decoder that failed on input from an upstream must say so as an UpstreamError, for the `reason` label. */
export function expectUpstreamError<T>(result: Outcome<T>, reasons: readonly string[] = FAILURE_REASONS): void {
  if (result.ok) return;
  expect(result.error).toBeInstanceOf(UpstreamError);
  expect(reasons).toContain((result.error as UpstreamError).reason);
}
