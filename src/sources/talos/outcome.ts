import type { PollOutcome } from "../types.ts";
import type { TalosSnapshot } from "./decode.ts";
import type { TalosSeriesSet } from "./series.ts";

export interface OutcomeContext {
  /** The endpoint that answered. */
  endpoint: string;
  context?: string;
  cluster: string;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * What is wrong in the cluster although the poll worked: etcd members reporting errors or alarms, control plane
 * services not up, control planes whose etcd cannot be queried or that do not answer at all.
 */
export function findProblems(snapshot: TalosSnapshot, state: TalosSeriesSet): string[] {
  const problems: string[] = [];
  for (const report of snapshot.nodes) {
    const role = state.nodes.get(report.node)?.role ?? report.role;
    if (report.etcd && report.etcd.errors.length > 0) problems.push(`${report.node}: etcd reports ${report.etcd.errors.join(", ")}`);
    if (role !== "controlplane") continue;
    if (!report.answered) {
      problems.push(`${report.node}: control plane not answering`);
      continue;
    }
    for (const s of report.services ?? []) {
      if (s.up) continue;
      const health = s.health === "unhealthy" ? `, health check failing${s.message ? `: ${s.message}` : ""}` : "";
      problems.push(`${report.node}: service ${s.id} is ${s.state}${health}`);
    }
    if (!report.etcd && report.errors.EtcdStatus) problems.push(`${report.node}: etcd status failed: ${report.errors.EtcdStatus}`);
  }
  const hasControlPlane = [...state.nodes.values()].some((n) => n.role === "controlplane");
  if (hasControlPlane && !snapshot.members) problems.push("no control plane could list the etcd members");
  return problems;
}

/** The one-line detail, the verdict and the /debug/status facts of a good poll. Holds no credentials. */
export function summarize(snapshot: TalosSnapshot, state: TalosSeriesSet, ctx: OutcomeContext): PollOutcome {
  const problems = findProblems(snapshot, state);
  const controlPlanes = [...state.nodes.values()].filter((n) => n.role === "controlplane").length;
  const silent = snapshot.nodes.filter((n) => !n.answered).length;
  const memberTotal = snapshot.members?.length ?? state.memberCount[0]?.value;
  const healthyMembers = snapshot.nodes.filter((n) => n.etcd && n.etcd.errors.length === 0).length;

  let detail = `${plural(snapshot.nodes.length, "node")}, ${plural(controlPlanes, "control plane")}`;
  detail += memberTotal === undefined ? ", etcd members unknown" : `, etcd ${healthyMembers}/${memberTotal} members`;
  if (silent > 0) detail += `, ${silent} not answering`;
  if (problems.length > 0) detail += `; ${problems[0]}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ""}`;

  const nodes: Record<string, unknown> = {};
  for (const report of snapshot.nodes) {
    nodes[report.node] = {
      role: state.nodes.get(report.node)?.role ?? report.role,
      answered: report.answered,
      version: report.version?.tag ?? null,
      arch: report.version?.arch ?? null,
      ...(report.etcd && { etcdMemberId: report.etcd.memberId, etcdLeader: report.etcd.leader === report.etcd.memberId }),
      ...(Object.keys(report.errors).length > 0 && { errors: report.errors }),
    };
  }
  return {
    healthy: problems.length === 0,
    detail,
    debug: {
      endpoint: ctx.endpoint,
      context: ctx.context ?? null,
      cluster: ctx.cluster,
      etcdMembers: snapshot.members?.map((m) => m.hostname) ?? null,
      nodes,
      problems,
    },
  };
}
