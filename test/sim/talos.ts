// A stand-in for a Talos node's apid endpoint: the machine API subset in protos/, served
// over gRPC with mutual TLS from an in-memory cluster model that tests mutate at will.
//
// Node targeting follows apid:
//   - "nodes" metadata (several values, or comma-separated ones): one reply message per
//     listed node, each with metadata.hostname set to the name as the client sent it.
//     A node that fails (unknown, unreachable, no etcd on a worker) still yields a
//     message, with only metadata.hostname and metadata.error set.
//   - "node" metadata (single value) or none at all: the call is answered by one node
//     (the named one, or the endpoint = first node in the model), and a failure on
//     that node fails the whole call with its gRPC status, as one-to-one proxying does.
//     Unlike real Talos, which leaves metadata unset there, the message still carries
//     metadata.hostname so tests can tell which node answered.

import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { stringify } from "yaml";
import { createCA, issueCert, type CertKey } from "./pki.ts";

export const PROTOS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../protos");

/** proto-loader options the sim uses; clients may pick their own, the wire is the same. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  includeDirs: [PROTOS_DIR],
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export function loadMachineProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync("machine/machine.proto", PROTO_LOADER_OPTIONS);
}

export const RPC_NAMES = ["Version", "ServiceList", "EtcdMemberList", "EtcdStatus"] as const;
export type RpcName = (typeof RPC_NAMES)[number];

export const TALOS_API_PORT = 50000;

// ---------------------------------------------------------------------------------------
// Cluster model

/** Service states as machined reports them in ServiceInfo.state. */
export type ServiceState =
  | "Initialized"
  | "Preparing"
  | "Waiting"
  | "Starting"
  | "Running"
  | "Stopping"
  | "Finished"
  | "Failed"
  | "Skipped";

export type SimService = {
  id: string;
  state: ServiceState;
  /** undefined: the service has no health check (reported as health.unknown). */
  healthy: boolean | undefined;
  /** Health check message; defaults to a plausible one for the health value. */
  lastMessage?: string;
};

export type SimEtcdStatus = {
  /** etcd member ID, decimal uint64. */
  memberId: string;
  dbSize: number;
  dbSizeInUse: number;
  /** Member ID of the leader this member sees, decimal uint64 ("0" = no leader). */
  leader: string;
  raftIndex: number;
  raftTerm: number;
  /** Defaults to raftIndex. */
  raftAppliedIndex?: number;
  /** etcd alarms / errors, e.g. "etcdserver: mvcc: database space exceeded". */
  errors: string[];
  protocolVersion?: string;
  isLearner?: boolean;
};

export type SimNode = {
  /** How clients target the node (IP or name); echoed in metadata.hostname. */
  name: string;
  /** Machine hostname, used as the etcd member name. Defaults to `name`. */
  hostname?: string;
  /** Talos version tag, e.g. "v1.9.5". */
  version: string;
  arch: string;
  controlPlane: boolean;
  /** false: apid cannot dial the node, like an unknown node. Defaults to true. */
  reachable?: boolean;
  services: SimService[];
  /** Local etcd member status; a control plane node without it has etcd down. */
  etcd?: SimEtcdStatus;
};

export type SimEtcdMember = {
  /** Decimal uint64. */
  id: string;
  hostname: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner?: boolean;
};

export type ClusterModel = {
  /** The first node is the endpoint: it answers calls carrying no node targeting. */
  nodes: SimNode[];
  /** The cluster-wide etcd member list any control plane node returns. */
  etcdMembers: SimEtcdMember[];
};

const DEFAULT_TALOS_VERSION = "v1.9.5";
const DEFAULT_ETCD_VERSION = "3.5.17";

function controlPlaneServices(): SimService[] {
  return [
    { id: "apid", state: "Running", healthy: true },
    { id: "containerd", state: "Running", healthy: true },
    { id: "cri", state: "Running", healthy: true },
    { id: "dashboard", state: "Running", healthy: undefined },
    { id: "etcd", state: "Running", healthy: true },
    { id: "kubelet", state: "Running", healthy: true },
    { id: "machined", state: "Running", healthy: true },
    { id: "trustd", state: "Running", healthy: true },
    { id: "udevd", state: "Running", healthy: true },
  ];
}

function workerServices(): SimService[] {
  return controlPlaneServices().filter((s) => s.id !== "etcd" && s.id !== "trustd");
}

/**
 * Three control plane nodes (10.5.0.2-4, etcd leader on the first) and two workers
 * (10.5.0.5-6), all healthy, on Talos v1.9.x amd64. Returns a fresh copy every call.
 */
export function defaultClusterModel(): ClusterModel {
  // Fixed IDs, one above 2^63 so uint64 handling gets exercised.
  const memberIds = ["10276657743932975437", "4077931553093449617", "16306225063722117379"];
  const leader = memberIds[0] ?? "0";
  const controlPlanes = [1, 2, 3].map((i): SimNode => {
    const ip = `10.5.0.${i + 1}`;
    return {
      name: ip,
      hostname: `talos-cp-${i}`,
      version: DEFAULT_TALOS_VERSION,
      arch: "amd64",
      controlPlane: true,
      services: controlPlaneServices(),
      etcd: {
        memberId: memberIds[i - 1] ?? "0",
        dbSize: 20_480_000 + i * 4096,
        dbSizeInUse: 12_288_000 + i * 4096,
        leader,
        raftIndex: 184_467,
        raftTerm: 4,
        raftAppliedIndex: 184_467,
        errors: [],
        protocolVersion: DEFAULT_ETCD_VERSION,
        isLearner: false,
      },
    };
  });
  const workers = [1, 2].map(
    (i): SimNode => ({
      name: `10.5.0.${i + 4}`,
      hostname: `talos-worker-${i}`,
      version: DEFAULT_TALOS_VERSION,
      arch: "amd64",
      controlPlane: false,
      services: workerServices(),
    }),
  );
  const etcdMembers = controlPlanes.map(
    (n): SimEtcdMember => ({
      id: n.etcd?.memberId ?? "0",
      hostname: n.hostname ?? n.name,
      peerUrls: [`https://${n.name}:2380`],
      clientUrls: [`https://${n.name}:2379`],
      isLearner: false,
    }),
  );
  return { nodes: [...controlPlanes, ...workers], etcdMembers };
}

// ---------------------------------------------------------------------------------------
// Wire shapes (proto-loader object form, camelCase field names)

type Metadata = { hostname?: string; error?: string };
type Timestamp = { seconds: number; nanos: number };

type PerNodeMessage = { metadata?: Metadata } & Record<string, unknown>;
type Reply = { messages: PerNodeMessage[] };

/** A failure on one node, rendered the way apid renders an upstream error. */
class NodeFailure {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {}

  /** Go's status error text, which apid copies into metadata.error. */
  get text(): string {
    return `rpc error: code = ${GO_CODE_NAMES[this.code]} desc = ${this.details}`;
  }
}

// grpc-go spells codes in CamelCase in error strings; grpc.status uses UPPER_SNAKE.
const GO_CODE_NAMES: Record<grpc.status, string> = {
  [grpc.status.OK]: "OK",
  [grpc.status.CANCELLED]: "Canceled",
  [grpc.status.UNKNOWN]: "Unknown",
  [grpc.status.INVALID_ARGUMENT]: "InvalidArgument",
  [grpc.status.DEADLINE_EXCEEDED]: "DeadlineExceeded",
  [grpc.status.NOT_FOUND]: "NotFound",
  [grpc.status.ALREADY_EXISTS]: "AlreadyExists",
  [grpc.status.PERMISSION_DENIED]: "PermissionDenied",
  [grpc.status.RESOURCE_EXHAUSTED]: "ResourceExhausted",
  [grpc.status.FAILED_PRECONDITION]: "FailedPrecondition",
  [grpc.status.ABORTED]: "Aborted",
  [grpc.status.OUT_OF_RANGE]: "OutOfRange",
  [grpc.status.UNIMPLEMENTED]: "Unimplemented",
  [grpc.status.INTERNAL]: "Internal",
  [grpc.status.UNAVAILABLE]: "Unavailable",
  [grpc.status.DATA_LOSS]: "DataLoss",
  [grpc.status.UNAUTHENTICATED]: "Unauthenticated",
};

function unreachable(target: string): NodeFailure {
  const dial = /^[0-9.]+$|:/.test(target)
    ? `dial tcp ${target.includes(":") ? `[${target}]` : target}:${TALOS_API_PORT}: connect: no route to host`
    : `dial tcp: lookup ${target}: no such host`;
  return new NodeFailure(
    grpc.status.UNAVAILABLE,
    `connection error: desc = "transport: Error while dialing: ${dial}"`,
  );
}

function toTimestamp(d: Date): Timestamp {
  const ms = d.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

function defaultHealthMessage(svc: SimService): string {
  if (svc.healthy === undefined) return "";
  return svc.healthy ? "Health check successful" : "Health check failed";
}

// ---------------------------------------------------------------------------------------
// Faults

export type Fault =
  | { kind: "none" }
  | { kind: "delay"; ms: number }
  /** Never answer; only the client's deadline (or close()) ends the call. */
  | { kind: "hang" }
  | { kind: "status"; code: grpc.status; details: string }
  /** Reply bytes that do not decode as the response message. */
  | { kind: "garbage" }
  /** A valid encoding of the reply, cut short inside a field. */
  | { kind: "truncated" };

/** Replaces the reply on the wire; interpreted by the sim's responseSerialize. */
class WireOverride {
  constructor(
    readonly kind: "garbage" | "truncated",
    readonly reply: Reply,
  ) {}
}

// Field 1, wire type LEN, declared length 2^32-1, then ASCII: the length runs past the
// end of the buffer and the bytes after it carry invalid wire types.
const GARBAGE = Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from("not a protobuf")]);

/** Offsets at which top-level fields of `buf` start (and its end). */
function topLevelFieldBoundaries(buf: Buffer): Set<number> {
  const bounds = new Set<number>([0]);
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = buf[pos++];
      if (b === undefined) throw new RangeError("varint past end");
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
      shift += 7;
    }
  };
  while (pos < buf.length) {
    const wireType = varint() % 8;
    if (wireType === 0) {
      varint();
    } else if (wireType === 1) {
      pos += 8;
    } else if (wireType === 2) {
      // Read the length first: `pos += varint()` would add to the pre-read position.
      const length = varint();
      pos += length;
    } else if (wireType === 5) {
      pos += 4;
    } else {
      throw new RangeError(`unexpected wire type ${wireType}`);
    }
    bounds.add(pos);
  }
  return bounds;
}

function truncate(full: Buffer): Buffer {
  let cut = Math.floor(full.length / 2);
  // Cutting exactly between two top-level fields would leave a shorter but valid
  // message. Field starts are at least two bytes apart, so one byte back is inside one.
  if (topLevelFieldBoundaries(full).has(cut)) cut -= 1;
  return full.subarray(0, Math.max(cut, 0));
}

// ---------------------------------------------------------------------------------------
// The sim

export type CallCounts = Record<RpcName, number>;

export type TalosSim = {
  /** "127.0.0.1:PORT" */
  address: string;
  port: number;
  /** CA that signed both the server and the client certificate. */
  ca: CertKey;
  /** Client certificate (role os:admin) the sim accepts. */
  clientCert: CertKey;
  /** Live model; mutate it to change what the next call returns. */
  model: ClusterModel;
  /**
   * Sets the fault for one RPC, or with no `rpc` for every RPC (dropping per-RPC
   * settings). `{ kind: "none" }` without `rpc` restores normal service.
   */
  setFault(fault: Fault, rpc?: RpcName): void;
  /** Calls received per RPC, faulted ones included. */
  calls: CallCounts;
  /** "nodes" metadata of the last call after splitting on commas; undefined if absent. */
  readonly lastNodes: string[] | undefined;
  /** "nodes" metadata values of the last call exactly as received. */
  readonly lastNodesRaw: string[] | undefined;
  /** "node" metadata of the last call; undefined if absent. */
  readonly lastNode: string | undefined;
  resetCalls(): void;
  close(): Promise<void>;
};

export type TalosSimOptions = {
  /** Initial model; defaults to defaultClusterModel(). */
  model?: ClusterModel;
  /** Initial fault for every RPC; defaults to none. */
  fault?: Fault;
  /** Reuse a CA (e.g. to share trust between sims); a fresh one is made otherwise. */
  ca?: CertKey;
};

function metadataStrings(md: grpc.Metadata, key: string): string[] {
  return md.get(key).map((v) => (typeof v === "string" ? v : v.toString("utf8")));
}

export async function startTalosSim(opts: TalosSimOptions = {}): Promise<TalosSim> {
  const ca = opts.ca ?? (await createCA("talos-sim-ca"));
  const serverCert = await issueCert(ca, {
    commonName: "talos-sim",
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    server: true,
  });
  const clientCert = await issueCert(ca, {
    commonName: "sidecar-exporter-test",
    organizations: ["os:admin"],
    client: true,
  });

  const model = opts.model ?? defaultClusterModel();
  const startedAt = new Date(Date.now() - 3_600_000);

  let defaultFault: Fault = opts.fault ?? { kind: "none" };
  const rpcFaults = new Map<RpcName, Fault>();
  const calls: CallCounts = { Version: 0, ServiceList: 0, EtcdMemberList: 0, EtcdStatus: 0 };
  let lastNodes: string[] | undefined;
  let lastNodesRaw: string[] | undefined;
  let lastNode: string | undefined;

  const timers = new Set<NodeJS.Timeout>();

  const findNode = (target: string): SimNode | undefined => {
    const node = model.nodes.find((n) => n.name === target);
    return node && node.reachable !== false ? node : undefined;
  };

  // What one node's machined answers; the caller adds metadata.
  const perNode: Record<RpcName, (node: SimNode) => PerNodeMessage | NodeFailure> = {
    Version: (node) => ({
      version: {
        tag: node.version,
        sha: "a1b2c3d4e",
        built: "",
        goVersion: "go1.23.7",
        os: "linux",
        arch: node.arch,
      },
      platform: { name: "metal", mode: "metal" },
      features: { rbac: true },
    }),
    ServiceList: (node) => ({
      services: node.services.map((svc) => {
        const ts = toTimestamp(startedAt);
        const lastMessage = svc.lastMessage ?? defaultHealthMessage(svc);
        return {
          id: svc.id,
          state: svc.state,
          events: {
            events: [
              { msg: "Starting service", state: "Starting", ts },
              { msg: `Service ${svc.state.toLowerCase()}`, state: svc.state, ts },
            ],
          },
          health: {
            unknown: svc.healthy === undefined,
            healthy: svc.healthy === true,
            lastMessage,
            lastChange: ts,
          },
        };
      }),
    }),
    EtcdMemberList: (node) => {
      if (!node.controlPlane) {
        return new NodeFailure(grpc.status.UNIMPLEMENTED, "member list is only available on control plane nodes");
      }
      if (!node.etcd) {
        return new NodeFailure(grpc.status.UNKNOWN, "etcdserver: no leader");
      }
      return {
        legacyMembers: model.etcdMembers.map((m) => m.hostname),
        members: model.etcdMembers.map((m) => ({
          id: m.id,
          hostname: m.hostname,
          peerUrls: m.peerUrls,
          clientUrls: m.clientUrls,
          isLearner: m.isLearner ?? false,
        })),
      };
    },
    EtcdStatus: (node) => {
      if (!node.controlPlane) {
        return new NodeFailure(grpc.status.UNIMPLEMENTED, "etcd status is only available on control plane nodes");
      }
      const e = node.etcd;
      if (!e) {
        return new NodeFailure(grpc.status.UNKNOWN, "failed to query etcd status: context deadline exceeded");
      }
      return {
        memberStatus: {
          memberId: e.memberId,
          protocolVersion: e.protocolVersion ?? DEFAULT_ETCD_VERSION,
          dbSize: e.dbSize,
          dbSizeInUse: e.dbSizeInUse,
          leader: e.leader,
          raftIndex: e.raftIndex,
          raftTerm: e.raftTerm,
          raftAppliedIndex: e.raftAppliedIndex ?? e.raftIndex,
          errors: e.errors,
          isLearner: e.isLearner ?? false,
        },
      };
    },
  };

  const answerFor = (rpc: RpcName, target: string): PerNodeMessage | NodeFailure => {
    const node = findNode(target);
    return node ? perNode[rpc](node) : unreachable(target);
  };

  // Resolves targeting at answer time, so a delayed reply reflects the model as it is then.
  const buildReply = (rpc: RpcName, md: grpc.Metadata): Reply | NodeFailure => {
    const nodes = metadataStrings(md, "nodes")
      .flatMap((v) => v.split(","))
      .map((s) => s.trim())
      .filter((s) => s !== "");
    if (nodes.length > 0) {
      return {
        messages: nodes.map((target) => {
          const answer = answerFor(rpc, target);
          return answer instanceof NodeFailure
            ? { metadata: { hostname: target, error: answer.text } }
            : { ...answer, metadata: { hostname: target } };
        }),
      };
    }
    const single = metadataStrings(md, "node");
    if (single.length > 1) {
      return new NodeFailure(grpc.status.INVALID_ARGUMENT, "node metadata must be single-valued");
    }
    const target = single[0] ?? model.nodes[0]?.name;
    if (target === undefined) return new NodeFailure(grpc.status.UNAVAILABLE, "cluster model has no nodes");
    const answer = answerFor(rpc, target);
    if (answer instanceof NodeFailure) return answer;
    return { messages: [{ ...answer, metadata: { hostname: target } }] };
  };

  const handler =
    (rpc: RpcName): grpc.handleUnaryCall<unknown, Reply | WireOverride> =>
    (call, callback) => {
      calls[rpc] += 1;
      const raw = metadataStrings(call.metadata, "nodes");
      lastNodesRaw = raw.length > 0 ? raw : undefined;
      lastNodes = lastNodesRaw?.flatMap((v) => v.split(",")).map((s) => s.trim()).filter((s) => s !== "");
      lastNode = metadataStrings(call.metadata, "node")[0];
      const fault = rpcFaults.get(rpc) ?? defaultFault;

      const respond = (): void => {
        if (call.cancelled) return;
        const reply = buildReply(rpc, call.metadata);
        if (reply instanceof NodeFailure) {
          callback({ code: reply.code, details: reply.details });
        } else if (fault.kind === "garbage" || fault.kind === "truncated") {
          callback(null, new WireOverride(fault.kind, reply));
        } else {
          callback(null, reply);
        }
      };

      switch (fault.kind) {
        case "hang":
          // Leaving the callback uncalled keeps the stream open; forceShutdown reaps it.
          return;
        case "status":
          callback({ code: fault.code, details: fault.details });
          return;
        case "delay": {
          const timer = setTimeout(() => {
            timers.delete(timer);
            respond();
          }, fault.ms);
          timers.add(timer);
          return;
        }
        default:
          respond();
      }
    };

  // A copy of the loaded service whose response serializer understands WireOverride, so
  // faults can put arbitrary bytes on the wire while normal replies encode as usual.
  const loaded = loadMachineProto()["machine.MachineService"] as grpc.ServiceDefinition;
  const service: grpc.ServiceDefinition = {};
  const impl: grpc.UntypedServiceImplementation = {};
  for (const rpc of RPC_NAMES) {
    const def = loaded[rpc];
    if (!def) throw new Error(`machine.proto lacks MachineService/${rpc}`);
    const encode = def.responseSerialize;
    (service as Record<string, grpc.MethodDefinition<unknown, unknown>>)[rpc] = {
      ...def,
      responseSerialize: (value: unknown): Buffer => {
        if (!(value instanceof WireOverride)) return encode(value);
        if (value.kind === "garbage") return GARBAGE;
        return truncate(encode(value.reply));
      },
    };
    impl[rpc] = handler(rpc);
  }

  const server = new grpc.Server();
  server.addService(service, impl);
  const creds = grpc.ServerCredentials.createSsl(
    Buffer.from(ca.certPem),
    [{ cert_chain: Buffer.from(serverCert.certPem), private_key: Buffer.from(serverCert.keyPem) }],
    true,
  );
  const port = await new Promise<number>((resolvePort, reject) => {
    server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolvePort(p)));
  });

  let closed = false;
  return {
    address: `127.0.0.1:${port}`,
    port,
    ca,
    clientCert,
    model,
    setFault(fault: Fault, rpc?: RpcName): void {
      if (rpc) {
        rpcFaults.set(rpc, fault);
      } else {
        defaultFault = fault;
        rpcFaults.clear();
      }
    },
    calls,
    get lastNodes() {
      return lastNodes;
    },
    get lastNodesRaw() {
      return lastNodesRaw;
    },
    get lastNode() {
      return lastNode;
    },
    resetCalls(): void {
      for (const rpc of RPC_NAMES) calls[rpc] = 0;
      lastNodes = undefined;
      lastNodesRaw = undefined;
      lastNode = undefined;
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      // Hanging calls would keep a graceful shutdown waiting forever.
      server.forceShutdown();
    },
  };
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

/**
 * A talosctl client configuration (talosconfig) for the sim: the endpoint is the sim's
 * address, the default nodes are all model nodes, and ca/crt/key are base64 PEMs.
 */
export function talosconfigYaml(sim: TalosSim, contextName = "talos-sim"): string {
  return stringify({
    context: contextName,
    contexts: {
      [contextName]: {
        endpoints: [sim.address],
        nodes: sim.model.nodes.map((n) => n.name),
        ca: b64(sim.ca.certPem),
        crt: b64(sim.clientCert.certPem),
        key: b64(sim.clientCert.keyPem),
      },
    },
  });
}
