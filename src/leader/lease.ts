import * as z from "zod";
import { decodeShape } from "../decode-shape.ts";
import { UpstreamError } from "../errors.ts";

/** The spec of a coordination.k8s.io/v1 Lease, as leader election reads and writes it. */
export interface LeaseRecord {
  /** "" when nobody holds the Lease (released, or never taken). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** MicroTime strings exactly as stored; never compared as clocks, only for change. */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

/** A Lease as read from the API server: its spec plus what a later update must send back. */
export interface StoredLease {
  record: LeaseRecord;
  resourceVersion: string;
  /** The object's metadata as read, returned unchanged on update so labels and owners survive. */
  metadata: Record<string, unknown>;
}

export const LEASE_API_VERSION = "coordination.k8s.io/v1";

/** metav1.MicroTime: RFC 3339 with six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** int32, as the API server stores these fields. */
const INT32_MAX = 2 ** 31 - 1;

/**
 * A Lease as the API server returns it. Fields it leaves out when empty may be missing (no holder, no duration yet);
 * a field that is present must have its type, or the answer says nothing about who holds the Lease: a holder of
 * another type read as "nobody" would let this replica take a Lease another one holds.
 */
const leaseSchema = z.object({
  kind: z.literal("Lease"),
  metadata: z.looseObject({ resourceVersion: z.string().min(1) }),
  spec: z.object({
    holderIdentity: z.string().optional(),
    leaseDurationSeconds: z.number().int().min(1).max(INT32_MAX).optional(),
    acquireTime: z.string().optional(),
    renewTime: z.string().optional(),
    leaseTransitions: z.number().int().min(0).max(INT32_MAX).optional(),
  }),
});

/** Reads a Lease object; a body that is not one is a decode failure, never a throw of another kind. */
export function decodeLease(text: string, what: string): StoredLease {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UpstreamError(`${what}: the answer is not JSON`, "decode");
  }
  const { metadata, spec } = decodeShape(leaseSchema, doc, `${what}: the Lease`);
  const record: LeaseRecord = {
    holderIdentity: spec.holderIdentity ?? "",
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    ...(spec.acquireTime !== undefined && { acquireTime: spec.acquireTime }),
    ...(spec.renewTime !== undefined && { renewTime: spec.renewTime }),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
  return { record, resourceVersion: metadata.resourceVersion, metadata };
}

/** The body of a create (no metadata yet) or an update (the stored metadata, resourceVersion included). */
export function encodeLease(name: string, namespace: string, record: LeaseRecord, metadata?: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: LEASE_API_VERSION,
    kind: "Lease",
    metadata: { ...metadata, name, namespace },
    spec: record,
  });
}

/** Whether two records are the same state; any change (a renewal, a new holder) restarts a follower's clock. */
export function sameRecord(a: LeaseRecord | undefined, b: LeaseRecord | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime &&
    a.leaseTransitions === b.leaseTransitions
  );
}
