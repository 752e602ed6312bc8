import type { Sample } from "../../metrics/series.ts";
import type { NodeReport, NodeRole, TalosSnapshot } from "./decode.ts";

/** The gauge families this source owns, by their key in the metric catalogue. */
export const TALOS_FAMILIES = ["talosNodeInfo", "talosServiceUp", "talosEtcdMemberCount", "talosEtcdDbSize", "talosEtcdLeader", "talosEtcdAlarm"] as const;
export type TalosFamily = (typeof TALOS_FAMILIES)[number];

type NodeFamily = Exclude<TalosFamily, "talosEtcdMemberCount">;

/** Everything exported about one node, kept so that a node that stops answering keeps its last series. */
export interface NodeSeries {
  role: NodeRole;
  samples: Record<NodeFamily, Sample[]>;
}

export interface TalosSeriesSet {
  nodes: Map<string, NodeSeries>;
  memberCount: Sample[];
}

function fresh(report: NodeReport, previousRole: NodeRole | undefined): NodeSeries {
  const { node } = report;
  const etcd = report.etcd;
  return {
    role: report.role !== "unknown" ? report.role : (previousRole ?? "unknown"),
    samples: {
      talosNodeInfo: report.version ? [{ labels: { node, version: report.version.tag, arch: report.version.arch }, value: 1 }] : [],
      talosServiceUp: (report.services ?? []).map((s) => ({ labels: { node, service: s.id }, value: s.up ? 1 : 0 })),
      talosEtcdDbSize: etcd ? [{ labels: { node }, value: etcd.dbSizeBytes }] : [],
      talosEtcdLeader: etcd ? [{ labels: { node }, value: etcd.leader === etcd.memberId ? 1 : 0 }] : [],
      talosEtcdAlarm: etcd ? [...new Set(etcd.errors)].map((alarm) => ({ labels: { node, alarm }, value: 1 })) : [],
    },
  };
}

const EMPTY: NodeSeries["samples"] = { talosNodeInfo: [], talosServiceUp: [], talosEtcdDbSize: [], talosEtcdLeader: [], talosEtcdAlarm: [] };

/**
 * The series of one good poll. A node that answered is exported as it answered now (a part it could not report,
 * such as the etcd status of a control plane whose etcd is down, is absent). A node that did not answer keeps
 * what the previous poll exported for it. Nodes no longer targeted are gone.
 */
export function buildSeries(snapshot: TalosSnapshot, cluster: string, previous?: TalosSeriesSet): TalosSeriesSet {
  const nodes = new Map<string, NodeSeries>();
  for (const report of snapshot.nodes) {
    const before = previous?.nodes.get(report.node);
    nodes.set(report.node, report.answered ? fresh(report, before?.role) : (before ?? { role: "unknown", samples: EMPTY }));
  }
  const memberCount = snapshot.members
    ? [{ labels: { cluster }, value: snapshot.members.length }]
    : // No control plane could list the members this time; the last count is the best estimate.
      (previous?.memberCount ?? []);
  return { nodes, memberCount };
}

/** The complete sample set of each family, for OwnedSeries.replace. */
export function familySamples(set: TalosSeriesSet): Record<TalosFamily, Sample[]> {
  const out: Record<TalosFamily, Sample[]> = {
    talosNodeInfo: [],
    talosServiceUp: [],
    talosEtcdMemberCount: set.memberCount,
    talosEtcdDbSize: [],
    talosEtcdLeader: [],
    talosEtcdAlarm: [],
  };
  for (const { samples } of set.nodes.values()) {
    for (const family of Object.keys(samples) as NodeFamily[]) out[family].push(...samples[family]);
  }
  return out;
}
