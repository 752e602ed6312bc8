import { once } from "node:events";
import type { AddressInfo } from "node:net";
import * as tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createCA, issueCert, type CertKey } from "./pki.ts";
import {
  defaultClusterModel,
  loadMachineProto,
  startTalosSim,
  talosconfigYaml,
  type RpcName,
  type TalosSim,
} from "./talos.ts";

// Decoded shapes as proto-loader (longs: String, defaults: true) hands them out.
type Metadata = { hostname: string; error: string };
type VersionReply = {
  messages: { metadata: Metadata | null; version: { tag: string; arch: string } | null }[];
};
type ServiceListReply = {
  messages: {
    metadata: Metadata | null;
    services: { id: string; state: string; health: { unknown: boolean; healthy: boolean } | null }[];
  }[];
};
type EtcdMemberListReply = {
  messages: {
    metadata: Metadata | null;
    legacyMembers: string[];
    members: { id: string; hostname: string; peerUrls: string[]; clientUrls: string[]; isLearner: boolean }[];
  }[];
};
type EtcdStatusReply = {
  messages: {
    metadata: Metadata | null;
    memberStatus: { memberId: string; leader: string; dbSize: string; raftTerm: string; errors: string[] } | null;
  }[];
};

const service = loadMachineProto()["machine.MachineService"] as grpc.ServiceDefinition;

type CallOptions = {
  /** Sent as one "nodes" metadata value each, like talosctl's client.WithNodes. */
  nodes?: string[];
  /** Sent as a single comma-separated "nodes" value. */
  nodesJoined?: string;
  node?: string;
  deadlineMs?: number;
  request?: object;
};

function unary<T>(client: grpc.Client, rpc: RpcName, opts: CallOptions = {}): Promise<T> {
  const def = service[rpc];
  if (!def) throw new Error(`no method ${rpc}`);
  const md = new grpc.Metadata();
  for (const n of opts.nodes ?? []) md.add("nodes", n);
  if (opts.nodesJoined !== undefined) md.set("nodes", opts.nodesJoined);
  if (opts.node !== undefined) md.set("node", opts.node);
  const callOpts: grpc.CallOptions = {
    deadline: new Date(Date.now() + (opts.deadlineMs ?? 5_000)),
  };
  return new Promise<T>((resolve, reject) => {
    client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      opts.request ?? {},
      md,
      callOpts,
      (err, value) => (err ? reject(err) : resolve(value as T)),
    );
  });
}

async function expectGrpcError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("call succeeded, expected a gRPC error");
}

describe("talos sim", () => {
  let sim: TalosSim;
  const clients: grpc.Client[] = [];

  const client = (withClientCert = true): grpc.Client => {
    const ca = Buffer.from(sim.ca.certPem);
    const creds = withClientCert
      ? grpc.credentials.createSsl(ca, Buffer.from(sim.clientCert.keyPem), Buffer.from(sim.clientCert.certPem))
      : grpc.credentials.createSsl(ca);
    const c = new grpc.Client(sim.address, creds);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    sim = await startTalosSim();
  });

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    sim.setFault({ kind: "none" });
    Object.assign(sim.model, defaultClusterModel());
    sim.resetCalls();
  });

  afterAll(async () => {
    await sim.close();
  });

  it("listens on 127.0.0.1 with an ephemeral port", () => {
    expect(sim.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(sim.address).toBe(`127.0.0.1:${sim.port}`);
  });

  it("answers Version once per targeted node, with hostnames", async () => {
    const worker = sim.model.nodes[3];
    if (!worker) throw new Error("default model has a worker at index 3");
    worker.version = "v1.9.4";
    const reply = await unary<VersionReply>(client(), "Version", { nodes: ["10.5.0.2", "10.5.0.5"] });
    expect(reply.messages.map((m) => [m.metadata?.hostname, m.version?.tag, m.metadata?.error])).toEqual([
      ["10.5.0.2", "v1.9.5", ""],
      ["10.5.0.5", "v1.9.4", ""],
    ]);
    expect(sim.lastNodes).toEqual(["10.5.0.2", "10.5.0.5"]);
    expect(sim.calls.Version).toBe(1);
  });

  it("accepts a comma-separated nodes value", async () => {
    const reply = await unary<VersionReply>(client(), "Version", { nodesJoined: "10.5.0.3,10.5.0.4" });
    expect(reply.messages.map((m) => m.metadata?.hostname)).toEqual(["10.5.0.3", "10.5.0.4"]);
    expect(sim.lastNodesRaw).toEqual(["10.5.0.3,10.5.0.4"]);
    expect(sim.lastNodes).toEqual(["10.5.0.3", "10.5.0.4"]);
  });

  it("answers for the endpoint node when no node is targeted", async () => {
    const reply = await unary<VersionReply>(client(), "Version");
    expect(reply.messages).toHaveLength(1);
    expect(reply.messages[0]?.metadata?.hostname).toBe("10.5.0.2");
    expect(reply.messages[0]?.version?.arch).toBe("amd64");
    expect(sim.lastNodes).toBeUndefined();
  });

  it("reports an unknown or unreachable node in metadata.error", async () => {
    const down = sim.model.nodes[4];
    if (!down) throw new Error("default model has five nodes");
    down.reachable = false;
    const reply = await unary<VersionReply>(client(), "Version", { nodes: ["10.5.0.2", "10.9.9.9", "10.5.0.6"] });
    const [ok, unknown, unreachable] = reply.messages;
    expect(ok?.metadata?.error).toBe("");
    expect(unknown?.metadata?.hostname).toBe("10.9.9.9");
    expect(unknown?.metadata?.error).toMatch(/^rpc error: code = Unavailable desc = .*10\.9\.9\.9:50000/);
    expect(unknown?.version).toBeNull();
    expect(unreachable?.metadata?.error).toMatch(/code = Unavailable/);
  });

  it("fails a single-node call on an unknown node with its status", async () => {
    const err = await expectGrpcError(unary(client(), "Version", { node: "10.9.9.9" }));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(sim.lastNode).toBe("10.9.9.9");
  });

  it("lists services with state and health", async () => {
    const cp = sim.model.nodes[0];
    const kubelet = cp?.services.find((s) => s.id === "kubelet");
    if (!kubelet) throw new Error("default control plane runs kubelet");
    kubelet.state = "Failed";
    kubelet.healthy = false;
    const reply = await unary<ServiceListReply>(client(), "ServiceList", { nodes: ["10.5.0.2", "10.5.0.5"] });
    const [cpMsg, workerMsg] = reply.messages;
    const byId = new Map(cpMsg?.services.map((s) => [s.id, s]));
    expect(byId.get("etcd")).toMatchObject({ state: "Running", health: { healthy: true, unknown: false } });
    expect(byId.get("kubelet")).toMatchObject({ state: "Failed", health: { healthy: false, unknown: false } });
    expect(byId.get("dashboard")).toMatchObject({ state: "Running", health: { unknown: true } });
    expect(workerMsg?.metadata?.hostname).toBe("10.5.0.5");
    expect(workerMsg?.services.map((s) => s.id)).not.toContain("etcd");
    expect(workerMsg?.services.map((s) => s.id)).toContain("kubelet");
  });

  it("lists etcd members with uint64 ids intact", async () => {
    const reply = await unary<EtcdMemberListReply>(client(), "EtcdMemberList", {
      nodes: ["10.5.0.2"],
      request: { queryLocal: false },
    });
    const members = reply.messages[0]?.members ?? [];
    expect(members.map((m) => m.hostname)).toEqual(["talos-cp-1", "talos-cp-2", "talos-cp-3"]);
    // Above 2^63: a JS number would have lost the low bits.
    expect(members.map((m) => m.id)).toContain("16306225063722117379");
    expect(members[0]?.peerUrls).toEqual(["https://10.5.0.2:2380"]);
    expect(reply.messages[0]?.legacyMembers).toEqual(["talos-cp-1", "talos-cp-2", "talos-cp-3"]);
  });

  it("answers EtcdStatus on control planes and sets metadata.error on workers", async () => {
    const reply = await unary<EtcdStatusReply>(client(), "EtcdStatus", { nodes: ["10.5.0.2", "10.5.0.5"] });
    const [cp, worker] = reply.messages;
    expect(cp?.metadata?.error).toBe("");
    expect(cp?.memberStatus).toMatchObject({
      memberId: "10276657743932975437",
      leader: "10276657743932975437",
      raftTerm: "4",
      errors: [],
    });
    expect(worker?.metadata?.hostname).toBe("10.5.0.5");
    expect(worker?.metadata?.error).toBe(
      "rpc error: code = Unimplemented desc = etcd status is only available on control plane nodes",
    );
    expect(worker?.memberStatus).toBeNull();
  });

  it("refuses a client without a client certificate", async () => {
    const err = await expectGrpcError(unary(client(false), "Version"));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(sim.calls.Version).toBe(0);
  });

  it("surfaces an injected status", async () => {
    sim.setFault({ kind: "status", code: grpc.status.UNAVAILABLE, details: "apid is restarting" });
    const err = await expectGrpcError(unary(client(), "Version", { nodes: ["10.5.0.2"] }));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toBe("apid is restarting");
    expect(sim.calls.Version).toBe(1);
    expect(sim.lastNodes).toEqual(["10.5.0.2"]);
  });

  it("scopes a per-RPC fault to that RPC", async () => {
    sim.setFault({ kind: "status", code: grpc.status.INTERNAL, details: "boom" }, "EtcdStatus");
    const c = client();
    await expect(unary<VersionReply>(c, "Version")).resolves.toBeDefined();
    const err = await expectGrpcError(unary(c, "EtcdStatus"));
    expect(err.code).toBe(grpc.status.INTERNAL);
  });

  it("sends garbage that fails to decode on the client", async () => {
    sim.setFault({ kind: "garbage" });
    const err = await expectGrpcError(unary(client(), "Version", { nodes: ["10.5.0.2"] }));
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toMatch(/pars/i);
  });

  it("sends a truncated encoding that fails to decode on the client", async () => {
    sim.setFault({ kind: "truncated" });
    // Two equally sized messages: a naive cut at half would land between them.
    const err = await expectGrpcError(unary(client(), "Version", { nodes: ["10.5.0.3", "10.5.0.4"] }));
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).toMatch(/pars/i);
  });

  it("hangs until the client deadline", async () => {
    sim.setFault({ kind: "hang" });
    const started = Date.now();
    const err = await expectGrpcError(unary(client(), "ServiceList", { deadlineMs: 200 }));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("delays replies", async () => {
    sim.setFault({ kind: "delay", ms: 150 });
    const started = Date.now();
    const reply = await unary<VersionReply>(client(), "Version");
    expect(reply.messages).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("renders a talosconfig talosctl can read", () => {
    const cfg = parse(talosconfigYaml(sim, "sim")) as {
      context: string;
      contexts: Record<string, { endpoints: string[]; nodes: string[]; ca: string; crt: string; key: string }>;
    };
    expect(cfg.context).toBe("sim");
    const ctx = cfg.contexts.sim;
    expect(ctx?.endpoints).toEqual([sim.address]);
    expect(ctx?.nodes).toEqual(["10.5.0.2", "10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]);
    expect(Buffer.from(ctx?.ca ?? "", "base64").toString()).toBe(sim.ca.certPem);
    expect(Buffer.from(ctx?.crt ?? "", "base64").toString()).toBe(sim.clientCert.certPem);
    expect(Buffer.from(ctx?.key ?? "", "base64").toString()).toBe(sim.clientCert.keyPem);
  });
});

describe("test pki", () => {
  let ca: CertKey;

  beforeAll(async () => {
    ca = await createCA("pki-test-ca");
  });

  async function handshake(serverCert: CertKey, clientCert?: CertKey): Promise<void> {
    const server = tls.createServer({
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: ca.certPem,
      requestCert: clientCert !== undefined,
      rejectUnauthorized: clientCert !== undefined,
    });
    server.on("secureConnection", (socket) => socket.end("ok"));
    // The server side also sees the failed handshake; the client's error is the one asserted.
    server.on("tlsClientError", () => undefined);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = tls.connect({
          host: "127.0.0.1",
          port,
          servername: "localhost",
          ca: ca.certPem,
          ...(clientCert ? { cert: clientCert.certPem, key: clientCert.keyPem } : {}),
        });
        socket.on("secureConnect", () => {
          socket.end();
          resolve();
        });
        socket.on("error", reject);
      });
    } finally {
      server.close();
    }
  }

  it("issues a server certificate Node's tls accepts", async () => {
    const leaf = await issueCert(ca, { commonName: "pki-test", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], server: true });
    await expect(handshake(leaf)).resolves.toBeUndefined();
  });

  it("issues client certificates for mutual TLS", async () => {
    const leaf = await issueCert(ca, { commonName: "pki-test", dnsNames: ["localhost"], server: true });
    const clientLeaf = await issueCert(ca, { commonName: "reader", organizations: ["os:reader"], client: true });
    await expect(handshake(leaf, clientLeaf)).resolves.toBeUndefined();
  });

  it("makes an expired certificate when notAfter is in the past", async () => {
    const day = 24 * 3_600_000;
    const expired = await issueCert(ca, {
      commonName: "pki-test",
      dnsNames: ["localhost"],
      server: true,
      notBefore: new Date(Date.now() - 2 * day),
      notAfter: new Date(Date.now() - day),
    });
    await expect(handshake(expired)).rejects.toMatchObject({ code: "CERT_HAS_EXPIRED" });
  });

  it("is rejected by a client that does not trust its CA", async () => {
    const otherCa = await createCA("other-ca");
    const leaf = await issueCert(otherCa, { commonName: "pki-test", dnsNames: ["localhost"], server: true });
    await expect(handshake(leaf)).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  });
});
