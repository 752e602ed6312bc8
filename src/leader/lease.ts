import { UpstreamError } from "../errors.ts";
import { asObject, asString } from "../sources/kubernetes/objects.ts";

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

function count(value: unknown): number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 ? value : 0;
}

/** Reads a Lease object; a body that is not one is a decode failure, never a throw of another kind. */
export function decodeLease(text: string, what: string): StoredLease {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UpstreamError(`${what}: the answer is not JSON`, "decode");
  }
  const obj = asObject(doc);
  const metadata = asObject(obj?.metadata);
  const resourceVersion = asString(metadata?.resourceVersion);
  if (!obj || obj.kind !== "Lease" || !metadata || resourceVersion === undefined) {
    throw new UpstreamError(`${what}: the answer is not a Lease with a resourceVersion`, "decode");
  }
  const spec = asObject(obj.spec) ?? {};
  const acquireTime = asString(spec.acquireTime);
  const renewTime = asString(spec.renewTime);
  const record: LeaseRecord = {
    holderIdentity: asString(spec.holderIdentity) ?? "",
    leaseDurationSeconds: count(spec.leaseDurationSeconds),
    ...(acquireTime !== undefined && { acquireTime }),
    ...(renewTime !== undefined && { renewTime }),
    leaseTransitions: count(spec.leaseTransitions),
  };
  return { record, resourceVersion, metadata };
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
