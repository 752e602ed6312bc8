import { type BackupView, type KindDef, type ResourceView, resourceView } from "./kinds.ts";
import {
  asObject,
  condition,
  conditionsOf,
  epochSeconds,
  isTrue,
  type Json,
  type ObjectMeta,
  ownerOfKind,
  type Readiness,
  readinessFromConditions,
  refOf,
  specOf,
  statusString,
} from "./objects.ts";

/*
 * The Talos operator's kinds (group talos.alperen.cloud). Readiness per kind, from the operator's own status
 * fields:
 * - TalosCluster: status has only conditions; ready when condition Ready (else Available) is True.
 * - TalosControlPlane: status.state; ready in Ready or Bootstrapped (Available there means "ready to bootstrap").
 * - TalosWorker: status.state; ready in Ready or Available.
 * - TalosMachine: status.state; ready in Available (what the operator sets once the node is up) or Ready.
 * - TalosEtcdBackup: Succeeded when condition Ready is True, Failed when Failed is True, else InProgress or Pending.
 * - TalosEtcdBackupSchedule: Paused when spec.paused, else Ready / Failed / NotReady from conditions.
 * Kinds with a state field fall back to conditions while the state is still empty.
 */

/** Owner reference kinds and labels the operator uses to tie objects together. */
const CLUSTER_KIND = "TalosCluster";
const SCHEDULE_KIND = "TalosEtcdBackupSchedule";
const SCHEDULE_LABELS = ["talos.alperen.cloud/backup-schedule", "talos.alperen.cloud/etcd-backup-schedule"];

type Extras = Pick<ResourceView, "refs" | "ownerCluster" | "parent" | "backup">;

function base(kind: string, meta: ObjectMeta, readiness: Readiness, extras: Extras = {}): ResourceView {
  return resourceView({
    kind,
    family: "talos",
    namespace: meta.namespace,
    name: meta.name,
    uid: meta.key,
    ready: readiness.ready,
    status: readiness.status,
    ...extras,
  });
}

/** The kind's own state string when set, ready when it is one of `readyStates`; conditions otherwise. */
function stateReadiness(obj: Json, readyStates: readonly string[]): Readiness {
  const state = statusString(obj, "state");
  if (state === undefined) return readinessFromConditions(conditionsOf(obj));
  return { ready: readyStates.includes(state), status: state };
}

function backupView(obj: Json, meta: ObjectMeta): { readiness: Readiness; backup: BackupView } {
  const conditions = conditionsOf(obj);
  const succeeded = isTrue(conditions, "Ready");
  // A failed attempt that is being retried is not final yet.
  const failed = !succeeded && isTrue(conditions, "Failed") && !isTrue(conditions, "Progressing");
  const outcome = succeeded ? "success" : failed ? "failed" : undefined;
  const status = succeeded ? "Succeeded" : failed ? "Failed" : isTrue(conditions, "Progressing") ? "InProgress" : "Pending";
  const seriesName =
    ownerOfKind(meta, SCHEDULE_KIND) ??
    SCHEDULE_LABELS.map((l) => meta.labels[l]).find((v) => v !== undefined && v !== "") ??
    refOf(specOf(obj).talosControlPlaneRef)?.name ??
    meta.name;
  return { readiness: { ready: succeeded, status }, backup: { outcome, seriesName, durationSeconds: backupDuration(obj, meta, outcome) } };
}

/**
 * The operator records no start or end time of its own: the backup starts when the object is created (the
 * operator runs it on the first reconcile) and ends at the last transition of the condition that made it final.
 * status.startTime/completionTime win if a later operator version sets them.
 */
function backupDuration(obj: Json, meta: ObjectMeta, outcome: BackupView["outcome"]): number | undefined {
  if (outcome === undefined) return undefined;
  const status = asObject(obj.status) ?? {};
  const conditions = conditionsOf(obj);
  const start = epochSeconds(typeof status.startTime === "string" ? status.startTime : meta.creationTimestamp);
  const endStamp =
    typeof status.completionTime === "string"
      ? status.completionTime
      : condition(conditions, outcome === "success" ? "Ready" : "Failed")?.lastTransitionTime;
  const end = epochSeconds(endStamp);
  if (start === undefined || end === undefined || end < start) return undefined;
  return end - start;
}

function parentOf(obj: Json, meta: ObjectMeta): ResourceView["parent"] {
  const spec = specOf(obj);
  const cp = refOf(spec.controlPlaneRef);
  if (cp) return { kind: "TalosControlPlane", name: cp.name, namespace: cp.namespace ?? meta.namespace };
  const worker = refOf(spec.workerRef);
  if (worker) return { kind: "TalosWorker", name: worker.name, namespace: worker.namespace ?? meta.namespace };
  const ownerCp = ownerOfKind(meta, "TalosControlPlane");
  if (ownerCp) return { kind: "TalosControlPlane", name: ownerCp, namespace: meta.namespace };
  const ownerWorker = ownerOfKind(meta, "TalosWorker");
  if (ownerWorker) return { kind: "TalosWorker", name: ownerWorker, namespace: meta.namespace };
  return undefined;
}

export const TALOS_KINDS: readonly KindDef[] = [
  {
    kind: "TalosCluster",
    plural: "talosclusters",
    namespaced: true,
    family: "talos",
    view: (obj, meta) => {
      const spec = specOf(obj);
      return base("TalosCluster", meta, readinessFromConditions(conditionsOf(obj)), {
        refs: { controlPlane: refOf(spec.controlPlaneRef)?.name, worker: refOf(spec.workerRef)?.name },
      });
    },
  },
  {
    kind: "TalosControlPlane",
    plural: "taloscontrolplanes",
    namespaced: true,
    family: "talos",
    view: (obj, meta) => {
      return base("TalosControlPlane", meta, stateReadiness(obj, ["Ready", "Bootstrapped"]), { ownerCluster: ownerOfKind(meta, CLUSTER_KIND) });
    },
  },
  {
    kind: "TalosWorker",
    plural: "talosworkers",
    namespaced: true,
    family: "talos",
    view: (obj, meta) => {
      const cp = refOf(specOf(obj).controlPlaneRef);
      return base("TalosWorker", meta, stateReadiness(obj, ["Ready", "Available"]), {
        ownerCluster: ownerOfKind(meta, CLUSTER_KIND),
        parent: cp && { kind: "TalosControlPlane", name: cp.name, namespace: meta.namespace },
      });
    },
  },
  {
    kind: "TalosMachine",
    plural: "talosmachines",
    namespaced: true,
    family: "talos",
    view: (obj, meta) => {
      return base("TalosMachine", meta, stateReadiness(obj, ["Available", "Ready"]), { ownerCluster: ownerOfKind(meta, CLUSTER_KIND), parent: parentOf(obj, meta) });
    },
  },
  {
    kind: "TalosEtcdBackup",
    plural: "talosetcdbackups",
    namespaced: true,
    family: "talos",
    view: (obj, meta) => {
      const { readiness, backup } = backupView(obj, meta);
      return base("TalosEtcdBackup", meta, readiness, { backup });
    },
  },
  {
    kind: "TalosEtcdBackupSchedule",
    plural: "talosetcdbackupschedules",
    namespaced: true,
    family: "talos",
    view: (obj, meta) => {
      const conditions = conditionsOf(obj);
      const readiness: Readiness =
        specOf(obj).paused === true
          ? { ready: false, status: "Paused" }
          : isTrue(conditions, "Ready")
            ? { ready: true, status: "Ready" }
            : { ready: false, status: isTrue(conditions, "Failed") ? "Failed" : "NotReady" };
      return base("TalosEtcdBackupSchedule", meta, readiness);
    },
  },
];
