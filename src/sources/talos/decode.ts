import * as z from "zod";
import { decodeShape } from "../../decode-shape.ts";
import type { TalosRpc } from "./client.ts";

// Reply shapes as proto-loader hands them out (keepCase, defaults, longs as strings). Unknown fields are dropped.
const metadata = z.object({ hostname: z.string(), error: z.string() }).nullable();
const uint64 = z.string().regex(/^\d+$/);
const int64 = z.string().regex(/^-?\d+$/);

const versionReply = z.object({
  messages: z.array(z.object({ metadata, version: z.object({ tag: z.string(), arch: z.string() }).nullable() })),
});

const serviceListReply = z.object({
  messages: z.array(
    z.object({
      metadata,
      services: z.array(
        z.object({
          id: z.string(),
          state: z.string(),
          health: z.object({ unknown: z.boolean(), healthy: z.boolean(), last_message: z.string() }).nullable(),
        }),
      ),
    }),
  ),
});

const etcdMemberListReply = z.object({
  messages: z.array(
    z.object({
      metadata,
      legacy_members: z.array(z.string()),
      members: z.array(z.object({ id: uint64, hostname: z.string(), is_learner: z.boolean() })),
    }),
  ),
});

const etcdStatusReply = z.object({
  messages: z.array(
    z.object({
      metadata,
      member_status: z
        .object({
          member_id: uint64,
          leader: uint64,
          db_size: int64,
          db_size_in_use: int64,
          errors: z.array(z.string()),
          is_learner: z.boolean(),
          protocol_version: z.string(),
        })
        .nullable(),
    }),
  ),
});

export interface ServiceReport {
  id: string;
  state: string;
  /** "unknown": the service has no health check, or it has not reported yet. */
  health: "healthy" | "unhealthy" | "unknown";
  message: string;
  /** Running, and healthy or without a health check. */
  up: boolean;
}

export interface EtcdMemberStatus {
  /** Decimal uint64, exact. */
  memberId: string;
  leader: string;
  dbSizeBytes: number;
  dbSizeInUseBytes: number;
  /** What etcd reports as wrong with this member (alarms such as NOSPACE, or errors). */
  errors: string[];
  isLearner: boolean;
  protocolVersion: string;
}

export interface EtcdMember {
  id: string;
  hostname: string;
  isLearner: boolean;
}

export type NodeRole = "controlplane" | "worker" | "unknown";

export interface NodeReport {
  /** The node as targeted, which is also how apid names it in metadata.hostname. */
  node: string;
  /** Whether the node answered Version; a node that did not is unreachable and keeps its last series. */
  answered: boolean;
  role: NodeRole;
  version?: { tag: string; arch: string };
  services?: ServiceReport[];
  etcd?: EtcdMemberStatus;
  members?: EtcdMember[];
  /** The node's own errors by RPC (metadata.error), not counting "etcd runs only on control planes". */
  errors: Partial<Record<TalosRpc, string>>;
}

export interface TalosSnapshot {
  nodes: NodeReport[];
  /** The cluster's etcd members, from the first node that listed them; undefined when none could. */
  members?: EtcdMember[];
}

export type TalosReplies = Record<TalosRpc, unknown>;

/** What apid says for etcd calls on a worker: not a failure, only a fact about the node's role. */
const NOT_A_CONTROL_PLANE = /code = Unimplemented|only available on control ?plane/i;

function parse<T>(schema: z.ZodType<T>, rpc: TalosRpc, reply: unknown): T {
  return decodeShape(schema, reply, `${rpc} reply`);
}

type PerNode<M> = { found: M; error?: undefined } | { found?: undefined; error: string };

/**
 * Pairs each targeted node with its message. apid names every message's node in metadata.hostname; a reply for a
 * single node that leaves it empty (as one-to-one proxying does) belongs to that node.
 */
function byNode<M extends { metadata: { hostname: string; error: string } | null }>(nodes: readonly string[], messages: M[]): Map<string, PerNode<M>> {
  const out = new Map<string, PerNode<M>>();
  for (const m of messages) {
    const host = m.metadata?.hostname || (nodes.length === 1 && messages.length === 1 ? nodes[0] : undefined);
    if (host === undefined || !nodes.includes(host) || out.has(host)) continue;
    const error = m.metadata?.error;
    out.set(host, error ? { error } : { found: m });
  }
  for (const node of nodes) if (!out.has(node)) out.set(node, { error: "no reply for this node" });
  return out;
}

function service(s: z.output<typeof serviceListReply>["messages"][number]["services"][number]): ServiceReport {
  // A missing health block means the same as health.unknown: nothing to say about health.
  const health = !s.health || s.health.unknown ? "unknown" : s.health.healthy ? "healthy" : "unhealthy";
  return { id: s.id, state: s.state, health, message: s.health?.last_message ?? "", up: s.state === "Running" && health !== "unhealthy" };
}

/** Turns the four replies of one poll into one report per targeted node. */
export function decodeSnapshot(nodes: readonly string[], replies: TalosReplies): TalosSnapshot {
  const version = byNode(nodes, parse(versionReply, "Version", replies.Version).messages);
  const services = byNode(nodes, parse(serviceListReply, "ServiceList", replies.ServiceList).messages);
  const members = byNode(nodes, parse(etcdMemberListReply, "EtcdMemberList", replies.EtcdMemberList).messages);
  const status = byNode(nodes, parse(etcdStatusReply, "EtcdStatus", replies.EtcdStatus).messages);

  let clusterMembers: EtcdMember[] | undefined;
  const reports = nodes.map((node): NodeReport => {
    const errors: NodeReport["errors"] = {};
    const v = version.get(node);
    const s = services.get(node);
    const m = members.get(node);
    const e = status.get(node);
    if (v?.error) errors.Version = v.error;
    if (s?.error) errors.ServiceList = s.error;
    const workerByEtcd = [m, e].some((x) => x?.error !== undefined && NOT_A_CONTROL_PLANE.test(x.error));
    if (m?.error && !NOT_A_CONTROL_PLANE.test(m.error)) errors.EtcdMemberList = m.error;
    if (e?.error && !NOT_A_CONTROL_PLANE.test(e.error)) errors.EtcdStatus = e.error;

    const report: NodeReport = { node, answered: v?.found !== undefined, role: "unknown", errors };
    const tag = v?.found?.version;
    if (tag) report.version = { tag: tag.tag, arch: tag.arch };
    if (s?.found) report.services = s.found.services.map(service);
    const ms = e?.found?.member_status;
    if (ms) {
      report.etcd = {
        memberId: ms.member_id,
        leader: ms.leader,
        dbSizeBytes: Number(ms.db_size),
        dbSizeInUseBytes: Number(ms.db_size_in_use),
        errors: ms.errors.filter((x) => x.trim() !== ""),
        isLearner: ms.is_learner,
        protocolVersion: ms.protocol_version,
      };
    }
    const list = m?.found;
    if (list) {
      // Old Talos releases fill only the deprecated list of names.
      report.members = list.members.length > 0
        ? list.members.map((x) => ({ id: x.id, hostname: x.hostname, isLearner: x.is_learner }))
        : list.legacy_members.map((name) => ({ id: "", hostname: name, isLearner: false }));
      clusterMembers ??= report.members;
    }

    const runsEtcd = report.services?.some((x) => x.id === "etcd");
    if (report.etcd || report.members || (runsEtcd && !workerByEtcd)) report.role = "controlplane";
    else if (workerByEtcd || runsEtcd === false) report.role = "worker";
    return report;
  });
  return { nodes: reports, ...(clusterMembers && { members: clusterMembers }) };
}
