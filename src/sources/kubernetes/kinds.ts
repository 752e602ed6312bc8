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

/** The `resource_type` label: the kind in lower case, as the operator's own metrics spell it. */
export function resourceType(kind: string): string {
  return kind.toLowerCase();
}
