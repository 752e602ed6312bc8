import * as z from "zod";
import { decodeShape } from "../../decode-shape.ts";
import { UpstreamError } from "../../errors.ts";

/**
 * Readers of the API server's answers to a TokenReview and a SubjectAccessReview. Only a JSON `true` in the field
 * that decides opens the door; an answer of any other shape (a string "false", a number, a missing status, an array)
 * is a decode failure, which the authorizer answers with 503 and never caches. Fields the API server leaves out
 * when empty (Go's omitempty) may be missing; a field that is present must have its type.
 */

/** The user a TokenReview names, as sent on in the SubjectAccessReview. */
export interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export type TokenReviewAnswer = { authenticated: true; user: ReviewedUser } | { authenticated: false };

const userSchema = z.object({
  username: z.string().optional(),
  uid: z.string().optional(),
  groups: z.array(z.string()).optional(),
  extra: z.record(z.string(), z.array(z.string())).optional(),
});

const tokenReviewSchema = z.object({
  kind: z.literal("TokenReview").optional(),
  status: z.object({
    authenticated: z.boolean().optional(),
    user: userSchema.optional(),
    error: z.string().optional(),
  }),
});

const accessReviewSchema = z.object({
  kind: z.literal("SubjectAccessReview").optional(),
  status: z.object({
    allowed: z.boolean(),
    denied: z.boolean().optional(),
    reason: z.string().optional(),
    evaluationError: z.string().optional(),
  }),
});

export function readTokenReview(doc: unknown): TokenReviewAnswer {
  const { status } = decodeShape(tokenReviewSchema, doc, "the TokenReview answer");
  if (status.authenticated !== true) return { authenticated: false };
  const { username, uid, groups, extra } = status.user ?? {};
  // An authenticated token always has a user name; without one there is no one to ask the SubjectAccessReview about.
  if (!username) throw new UpstreamError("the TokenReview answer says authenticated but names no user (status.user.username)", "decode");
  return { authenticated: true, user: { username, ...(uid !== undefined && { uid }), ...(groups && { groups }), ...(extra && { extra }) } };
}

/** True only for `allowed: true` without `denied: true`; both at once is a contradiction, not an answer. */
export function readAccessReview(doc: unknown): boolean {
  const { status } = decodeShape(accessReviewSchema, doc, "the SubjectAccessReview answer");
  if (status.allowed && status.denied === true) throw new UpstreamError("the SubjectAccessReview answer is both allowed and denied", "decode");
  return status.allowed;
}
