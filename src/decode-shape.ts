import type * as z from "zod";
import { UpstreamError } from "./errors.ts";

/**
 * An upstream answer read through its schema. One that does not fit is a decode failure naming the first misfit by
 * its place and the type expected there, never by the value found: answers can carry secrets (a TokenReview echoes
 * the token it was asked about).
 */
export function decodeShape<T>(schema: z.ZodType<T>, doc: unknown, what: string): T {
  const result = schema.safeParse(doc);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue ? ` at ${issue.path.join(".") || "top level"}: ${issue.message}` : "";
  throw new UpstreamError(`${what} has an unexpected shape${where}`, "decode");
}
