import type { KubeApiSim, KubeObject } from "./kube-api.ts";

/**
 * A realistic set of the two operators' custom resources: one healthy Talos cluster with a control plane, workers,
 * machines (one still provisioning) and etcd backups (one succeeded, one failed), and a Tailscale gateway with
 * its endpoints, tailnet, route policy and services. Used by the demo and by end-to-end tests.
 */
const TALOS = "talos.alperen.cloud";
const GATEWAY = "gateway.tailscale.com";
const VERSION = "v1alpha1";

const TALOS_KINDS = [
  ["TalosCluster", "talosclusters"],
  ["TalosControlPlane", "taloscontrolplanes"],
  ["TalosWorker", "talosworkers"],
  ["TalosMachine", "talosmachines"],
  ["TalosEtcdBackup", "talosetcdbackups"],
  ["TalosEtcdBackupSchedule", "talosetcdbackupschedules"],
] as const;

const GATEWAY_KINDS = [
  ["TailscaleGateway", "tailscalegateways", true],
  ["TailscaleEndpoints", "tailscaleendpoints", true],
  ["TailscaleTailnet", "tailscaletailnets", false],
  ["TailscaleRoutePolicy", "tailscaleroutepolicies", true],
  ["TailscaleService", "tailscaleservice", true],
  ["TailscaleServices", "tailscaleservices", true],
] as const;

const NS = "talos-system";

function ago(minutes: number): string {
  return new Date(Date.now() - minutes * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function cond(type: string, status: "True" | "False", minutesAgo = 5) {
  return { type, status, reason: status === "True" ? type : `Not${type}`, message: "", lastTransitionTime: ago(minutesAgo) };
}

function owner(kind: string, name: string, group = TALOS) {
  return [{ apiVersion: `${group}/${VERSION}`, kind, name, uid: `uid-${kind.toLowerCase()}-${name}`, controller: true }];
}

interface Body {
  metadata?: Record<string, unknown>;
  spec?: unknown;
  status?: unknown;
}

function talos(kind: string, name: string, body: Body): KubeObject {
  return { apiVersion: `${TALOS}/${VERSION}`, kind, spec: body.spec, status: body.status, metadata: { name, namespace: NS, ...body.metadata } };
}

function gateway(kind: string, name: string, namespace: string | undefined, body: Body): KubeObject {
  return { apiVersion: `${GATEWAY}/${VERSION}`, kind, spec: body.spec, status: body.status, metadata: { name, ...(namespace && { namespace }) } };
}

export function seedOperatorResources(sim: KubeApiSim): void {
  for (const [kind, plural] of TALOS_KINDS) sim.addResource({ group: TALOS, version: VERSION, kind, plural, namespaced: true });
  for (const [kind, plural, namespaced] of GATEWAY_KINDS) sim.addResource({ group: GATEWAY, version: VERSION, kind, plural, namespaced });

  sim.upsert(talos("TalosCluster", "production", {
    spec: { controlPlaneRef: { name: "production-cp" }, workerRef: { name: "production-workers" } },
    status: { conditions: [cond("Ready", "True")] },
  }));
  sim.upsert(talos("TalosControlPlane", "production-cp", {
    metadata: { ownerReferences: owner("TalosCluster", "production") },
    status: { state: "Ready" },
  }));
  sim.upsert(talos("TalosWorker", "production-workers", {
    metadata: { ownerReferences: owner("TalosCluster", "production") },
    spec: { controlPlaneRef: { name: "production-cp" } },
    status: { state: "Ready" },
  }));
  for (const [i, state] of ["Available", "Available", "Available"].entries()) {
    sim.upsert(talos("TalosMachine", `production-cp-${i + 1}`, {
      metadata: { ownerReferences: owner("TalosCluster", "production") },
      spec: { controlPlaneRef: { name: "production-cp" } },
      status: { state },
    }));
  }
  for (const [i, state] of ["Available", "Pending"].entries()) {
    sim.upsert(talos("TalosMachine", `production-worker-${i + 1}`, {
      metadata: { ownerReferences: owner("TalosCluster", "production") },
      spec: { workerRef: { name: "production-workers" } },
      status: { state },
    }));
  }
  sim.upsert(talos("TalosEtcdBackupSchedule", "nightly", { spec: { schedule: "0 2 * * *" }, status: { conditions: [cond("Ready", "True")] } }));
  sim.upsert(talos("TalosEtcdBackup", "nightly-20261125", {
    metadata: { ownerReferences: owner("TalosEtcdBackupSchedule", "nightly"), creationTimestamp: ago(24 * 60 + 3) },
    status: { conditions: [cond("Ready", "True", 24 * 60)] },
  }));
  sim.upsert(talos("TalosEtcdBackup", "nightly-20261126", {
    metadata: { ownerReferences: owner("TalosEtcdBackupSchedule", "nightly"), creationTimestamp: ago(62) },
    status: { conditions: [cond("Failed", "True", 60)] },
  }));

  sim.upsert(gateway("TailscaleTailnet", "company", undefined, { status: { conditions: [cond("Ready", "True")] } }));
  sim.upsert(gateway("TailscaleGateway", "edge", "gateway-system", {
    status: { conditions: [cond("Ready", "True")], services: [{ name: "svc:web" }, { name: "svc:api" }] },
  }));
  sim.upsert(gateway("TailscaleEndpoints", "web-backends", "gateway-system", { status: { conditions: [cond("Ready", "True")] } }));
  sim.upsert(gateway("TailscaleRoutePolicy", "internal-only", "gateway-system", { status: { conditions: [cond("Ready", "False")] } }));
  sim.upsert(gateway("TailscaleServices", "web", "gateway-system", { spec: { vipService: { name: "svc:web" } }, status: { conditions: [cond("Ready", "True")] } }));
  sim.upsert(gateway("TailscaleService", "metrics", "gateway-system", { spec: { vipService: { name: "svc:metrics" } }, status: { conditions: [cond("Available", "True")] } }));
}
