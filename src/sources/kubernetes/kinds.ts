import type { KubernetesSourceConfig } from "../config.ts";
import type { Json, ObjectMeta } from "./objects.ts";
import { TAILSCALE_KINDS } from "./tailscale-kinds.ts";
import { TALOS_KINDS } from "./talos-kinds.ts";

export type Family = "talos" | "tailscale";

/** How a TalosEtcdBackup counts in talos_operator_etcd_backup_*. */
export interface BackupView {
  /** Set once the backup reached a terminal state. */
  outcome: "success" | "failed" | undefined;
  /** The `name` label: the schedule that created it, else its control plane, else the object itself. */
  seriesName: string;
  /** From the object's own timestamps, when they allow it. */
  durationSeconds: number | undefined;
}

/** What the exporter keeps of one object: only the facts its series need, never the whole object. */
export interface ResourceView {
  kind: string;
  family: Family;
  /** "" for cluster-scoped kinds. */
  namespace: string;
  name: string;
  uid: string;
  ready: boolean;
  /** The `status` label. */
  status: string;
  /** TalosCluster: the control plane and worker it names in its spec. */
  refs?: { controlPlane: string | undefined; worker: string | undefined };
  /** TalosControlPlane, TalosWorker, TalosMachine: the TalosCluster named by an owner reference. */
  ownerCluster?: string;
  /** TalosWorker: its control plane. TalosMachine: the control plane or worker it belongs to. */
  parent?: { kind: "TalosControlPlane" | "TalosWorker"; name: string; namespace: string };
  backup?: BackupView;
  /** Tailscale gateway kinds: the VIP services the object declares. */
  services?: string[];
}

/**
 * A view with every field present, in one order: all views then share one hidden class. Built by spreading
 * optional fields onto a base object instead, each view got a hidden class of its own, which cost more memory
 * than the views' contents.
 */
export function resourceView(v: ResourceView): ResourceView {
  return {
    kind: v.kind,
    family: v.family,
    namespace: v.namespace,
    name: v.name,
    uid: v.uid,
    ready: v.ready,
    status: v.status,
    refs: v.refs,
    ownerCluster: v.ownerCluster,
    parent: v.parent,
    backup: v.backup,
    services: v.services,
  };
}

/**
 * Whether two views of one object say the same: then nothing the exporter derives from it changed, and the
 * stored view can stay (a re-list or a status write the exporter does not read leaves everything as it was).
 */
export function sameView(a: ResourceView, b: ResourceView): boolean {
  return (
    a.kind === b.kind &&
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.uid === b.uid &&
    a.ready === b.ready &&
    a.status === b.status &&
    sameLinks(a, b) &&
    a.backup?.outcome === b.backup?.outcome &&
    a.backup?.seriesName === b.backup?.seriesName &&
    a.backup?.durationSeconds === b.backup?.durationSeconds &&
    sameList(a.services, b.services)
  );
}

/** Whether two views tie their object to the same others: owner cluster, parent and the refs of a cluster. */
export function sameLinks(a: ResourceView, b: ResourceView): boolean {
  return (
    a.ownerCluster === b.ownerCluster &&
    a.parent?.kind === b.parent?.kind &&
    a.parent?.name === b.parent?.name &&
    a.parent?.namespace === b.parent?.namespace &&
    a.refs?.controlPlane === b.refs?.controlPlane &&
    a.refs?.worker === b.refs?.worker
  );
}

/** The same names in the same order (or both absent). */
export function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export interface KindDef {
  kind: string;
  plural: string;
  namespaced: boolean;
  family: Family;
  view(obj: Json, meta: ObjectMeta): ResourceView;
}

/** A kind served at a group and version, as the config asks for it. */
export interface WatchedKind extends KindDef {
  group: string;
  version: string;
}

/** The kinds to watch: those of every enabled operator, at the group and version the config names. */
export function watchedKinds(config: Pick<KubernetesSourceConfig, "talos" | "tailscale">): WatchedKind[] {
  const out: WatchedKind[] = [];
  if (config.talos.enabled) out.push(...TALOS_KINDS.map((k) => ({ ...k, group: config.talos.group, version: config.talos.version })));
  if (config.tailscale.enabled) {
    out.push(...TAILSCALE_KINDS.map((k) => ({ ...k, group: config.tailscale.group, version: config.tailscale.version })));
  }
  return out;
}

const resourceTypes = new Map<string, string>();

/** The `resource_type` label: the kind in lower case, as the operator's own metrics spell it. Made once per kind. */
export function resourceType(kind: string): string {
  let type = resourceTypes.get(kind);
  if (type === undefined) {
    type = kind.toLowerCase();
    resourceTypes.set(kind, type);
  }
  return type;
}
