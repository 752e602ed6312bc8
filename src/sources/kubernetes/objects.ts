/**
 * Readers for Kubernetes objects as they arrive on the wire: untyped JSON whose every field may be missing or
 * of the wrong type. Nothing here throws; an unreadable field reads as undefined.
 */
export type Json = Record<string, unknown>;

export function asObject(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

export function asString(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Distinct values `shared` keeps at most; past that it starts over, so churn cannot grow it without bound. */
const SHARED_MAX = 10_000;
const sharedValues = new Map<string, string>();

/**
 * The one copy kept of a value that many objects repeat: a namespace, a state, the name of an owner or a parent.
 * JSON.parse makes a new string for every occurrence, and a view keeps its strings for as long as the object
 * exists, so without this a namespace of a thousand objects is held a thousand times.
 */
export function shared(value: string): string {
  const known = sharedValues.get(value);
  if (known !== undefined) return known;
  if (sharedValues.size >= SHARED_MAX) sharedValues.clear();
  sharedValues.set(value, value);
  return value;
}

/** `shared`, passing undefined through. */
function sharedOrUndefined(value: string | undefined): string | undefined {
  return value === undefined ? undefined : shared(value);
}

export interface OwnerRef {
  kind: string;
  name: string;
}

export interface ObjectMeta {
  name: string;
  /** "" for cluster-scoped objects. */
  namespace: string;
  /** The object's identity; falls back to namespace/name for objects that carry no uid. */
  key: string;
  uid: string | undefined;
  resourceVersion: string | undefined;
  creationTimestamp: string | undefined;
  labels: Record<string, string>;
  ownerReferences: OwnerRef[];
}

/** The metadata every view needs; undefined when the object has no name, which no stored object lacks. */
export function metaOf(obj: Json): ObjectMeta | undefined {
  const meta = asObject(obj.metadata);
  const name = asString(meta?.name);
  if (!meta || name === undefined) return undefined;
  const namespace = shared(asString(meta.namespace) ?? "");
  const uid = asString(meta.uid);
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(asObject(meta.labels) ?? {})) if (typeof v === "string") labels[k] = v;
  const ownerReferences: OwnerRef[] = [];
  for (const raw of asArray(meta.ownerReferences)) {
    const ref = asObject(raw);
    const kind = asString(ref?.kind);
    const refName = asString(ref?.name);
    if (kind !== undefined && refName !== undefined) ownerReferences.push({ kind, name: shared(refName) });
  }
  return {
    name,
    namespace,
    key: uid ?? `${namespace}/${name}`,
    uid,
    resourceVersion: asString(meta.resourceVersion),
    creationTimestamp: asString(meta.creationTimestamp),
    labels,
    ownerReferences,
  };
}

export function ownerOfKind(meta: ObjectMeta, kind: string): string | undefined {
  return meta.ownerReferences.find((r) => r.kind === kind)?.name;
}

export interface Condition {
  type: string;
  status: string;
  reason: string | undefined;
  lastTransitionTime: string | undefined;
}

/** status.conditions in the metav1.Condition shape; malformed entries are skipped. */
export function conditionsOf(obj: Json): Condition[] {
  const out: Condition[] = [];
  for (const raw of asArray(asObject(obj.status)?.conditions)) {
    const c = asObject(raw);
    const type = asString(c?.type);
    const status = asString(c?.status);
    if (!c || type === undefined || status === undefined) continue;
    out.push({ type, status, reason: asString(c.reason), lastTransitionTime: asString(c.lastTransitionTime) });
  }
  return out;
}

export function condition(conditions: Condition[], type: string): Condition | undefined {
  return conditions.find((c) => c.type === type);
}

export function isTrue(conditions: Condition[], type: string): boolean {
  return condition(conditions, type)?.status === "True";
}

export interface Readiness {
  ready: boolean;
  /** The value of the `status` label. */
  status: string;
}

/**
 * Readiness from conditions alone: the Ready condition when the object has one, else Available. An object with
 * neither (typically one its controller has not reconciled yet) is not ready.
 */
export function readinessFromConditions(conditions: Condition[]): Readiness {
  const c = condition(conditions, "Ready") ?? condition(conditions, "Available");
  const ready = c?.status === "True";
  return { ready, status: ready ? "Ready" : "NotReady" };
}

/** status.<field> as a non-empty string. */
export function statusString(obj: Json, field: string): string | undefined {
  return sharedOrUndefined(asString(asObject(obj.status)?.[field]));
}

export function specOf(obj: Json): Json {
  return asObject(obj.spec) ?? {};
}

/** A reference field such as spec.controlPlaneRef: its name and, when given, namespace. */
export function refOf(value: unknown): { name: string; namespace: string | undefined } | undefined {
  const ref = asObject(value);
  const name = asString(ref?.name);
  return name === undefined ? undefined : { name: shared(name), namespace: sharedOrUndefined(asString(ref?.namespace)) };
}

/** Seconds since the epoch for an RFC 3339 timestamp; undefined when absent or unreadable. */
export function epochSeconds(timestamp: string | undefined): number | undefined {
  if (timestamp === undefined) return undefined;
  const ms = Date.parse(timestamp);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}
