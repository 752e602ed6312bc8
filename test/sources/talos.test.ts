import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { createLogging } from "../../src/log.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import type { TalosSourceConfig } from "../../src/sources/config.ts";
import { PolledSource } from "../../src/sources/poller.ts";
import { reasonForGrpcError } from "../../src/sources/talos/client.ts";
import { buildSeries } from "../../src/sources/talos/series.ts";
import { createTalosSource, TalosDriver, type TalosSourceSettings } from "../../src/sources/talos/source.ts";
import { loadTalosconfig, parseTalosconfig } from "../../src/sources/talos/talosconfig.ts";
import { endpointHost, normalizeEndpoint } from "../../src/sources/talos/target.ts";
import { createCA, issueCert, type CertKey } from "../sim/pki.ts";
import { defaultClusterModel, startTalosSim, talosconfigYaml, type TalosSim } from "../sim/talos.ts";
import { LogCapture, configFrom } from "../helpers.ts";

type Labels = Record<string, string>;
type Row = { name: string; labels: Labels; value: number };

/** Parses the Prometheus text exposition into rows, so assertions do not depend on label order. */
function rows(text: string, name: string): Row[] {
  const out: Row[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Labels = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name, labels, value: Number(m[3]) });
  }
  return out;
}

function value(text: string, name: string, labels: Labels): number | undefined {
  return rows(text, name).find((r) => Object.entries(labels).every(([k, v]) => r.labels[k] === v))?.value;
}

type ContextOverrides = { endpoints?: string[]; nodes?: string[]; ca?: string; crt?: string; key?: string };

let sim: TalosSim;
let dir: string;
let otherCa: CertKey;
let foreignClient: CertKey;

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** Writes the sim's talosconfig, with some entries of its context replaced. */
async function writeTalosconfig(file: string, overrides: ContextOverrides = {}, contextName = "talos-sim"): Promise<string> {
  const doc = parse(talosconfigYaml(sim, contextName)) as { contexts: Record<string, Record<string, unknown>> };
  Object.assign(doc.contexts[contextName] ?? {}, overrides);
  const path = join(dir, file);
  await writeFile(path, stringify(doc));
  return path;
}

interface Harness {
  source: PolledSource;
  registry: MetricRegistry;
  logs: LogCapture;
  text(): Promise<string>;
  poll(): Promise<boolean>;
}

const running: PolledSource[] = [];

function harness(config: Partial<TalosSourceConfig> & { timeoutMs?: number }): Harness {
  const registry = new MetricRegistry({}, { processMetrics: false });
  const logs = new LogCapture();
  const logger = createLogging(configFrom({ logging: { level: "debug" } }).logging, logs).root;
  const settings: TalosSourceSettings = { enabled: true, intervalMs: 60_000, timeoutMs: 5_000, ...config };
  const source = createTalosSource(settings, { logger, metrics: registry }) as PolledSource;
  running.push(source);
  return {
    source,
    registry,
    logs,
    text: () => registry.render(false),
    poll: async () => (await source.pollOnce())?.ok ?? false,
  };
}

beforeAll(async () => {
  sim = await startTalosSim();
  dir = await mkdtemp(join(tmpdir(), "talos-source-"));
  otherCa = await createCA("not-the-talos-ca");
  foreignClient = await issueCert(otherCa, { commonName: "intruder", organizations: ["os:admin"], client: true });
});

afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  sim.setFault({ kind: "none" });
  Object.assign(sim.model, defaultClusterModel());
  sim.resetCalls();
});

afterAll(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

const CONTROL_PLANES = ["10.5.0.2", "10.5.0.3", "10.5.0.4"];
const WORKERS = ["10.5.0.5", "10.5.0.6"];
const ALL_NODES = [...CONTROL_PLANES, ...WORKERS];

describe("talos source: a healthy cluster", () => {
  it("exports every family with the values the nodes report", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("happy.yaml") });
    expect(await h.poll()).toBe(true);
    const text = await h.text();

    expect(rows(text, "talos_node_info").map((r) => r.labels).sort((a, b) => (a.node ?? "").localeCompare(b.node ?? ""))).toEqual(
      ALL_NODES.map((node) => ({ node, version: "v1.9.5", arch: "amd64" })),
    );
    expect(rows(text, "talos_node_info").every((r) => r.value === 1)).toBe(true);

    // Control planes run etcd and trustd, workers do not; the dashboard has no health check and still counts as up.
    for (const node of CONTROL_PLANES) {
      expect(value(text, "talos_service_up", { node, service: "etcd" })).toBe(1);
      expect(value(text, "talos_service_up", { node, service: "dashboard" })).toBe(1);
    }
    for (const node of WORKERS) {
      expect(value(text, "talos_service_up", { node, service: "kubelet" })).toBe(1);
      expect(value(text, "talos_service_up", { node, service: "etcd" })).toBeUndefined();
    }
    expect(rows(text, "talos_service_up")).toHaveLength(3 * 9 + 2 * 7);

    expect(rows(text, "talos_etcd_member_count")).toEqual([{ name: "talos_etcd_member_count", labels: { cluster: "talos-sim" }, value: 3 }]);
    expect(CONTROL_PLANES.map((node) => value(text, "talos_etcd_db_size_bytes", { node }))).toEqual([20_484_096, 20_488_192, 20_492_288]);
    expect(CONTROL_PLANES.map((node) => value(text, "talos_etcd_leader", { node }))).toEqual([1, 0, 0]);
    expect(rows(text, "talos_etcd_leader")).toHaveLength(3);
    expect(rows(text, "talos_etcd_alarm")).toEqual([]);

    for (const op of ["Version", "ServiceList", "EtcdMemberList", "EtcdStatus"]) {
      expect(value(text, "talos_operator_talos_api_calls_total", { operation: op, result: "success" })).toBe(1);
      expect(value(text, "talos_operator_talos_api_call_duration_seconds_count", { operation: op })).toBe(1);
    }
    expect(sim.calls).toEqual({ Version: 1, ServiceList: 1, EtcdMemberList: 1, EtcdStatus: 1 });

    expect(h.source.status()).toMatchObject({ up: true, healthy: true, detail: "5 nodes, 3 control planes, etcd 3/3 members" });
    const debug = h.source.debug();
    expect(debug).toMatchObject({ endpoint: sim.address, context: "talos-sim", cluster: "talos-sim", problems: [] });
    expect((debug.nodes as Record<string, unknown>)["10.5.0.5"]).toMatchObject({ role: "worker", answered: true, version: "v1.9.5" });
    expect((debug.nodes as Record<string, unknown>)["10.5.0.2"]).toMatchObject({ role: "controlplane", etcdLeader: true });
  });

  it("targets the nodes through the `nodes` metadata, and only those", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("nodes.yaml") });
    expect(await h.poll()).toBe(true);
    expect(sim.lastNodes).toEqual(ALL_NODES);
    expect(sim.lastNode).toBeUndefined();

    const picked = harness({ talosconfig: await writeTalosconfig("nodes2.yaml"), nodes: ["10.5.0.3", "10.5.0.6"] });
    expect(await picked.poll()).toBe(true);
    expect(sim.lastNodes).toEqual(["10.5.0.3", "10.5.0.6"]);
    expect(rows(await picked.text(), "talos_node_info").map((r) => r.labels.node)).toEqual(["10.5.0.3", "10.5.0.6"]);
  });

  it("sends one `nodes` header field per node on the wire, as talosctl's client.WithNodes does", async () => {
    // Node's HTTP/2 server joins repeated header fields into one value, so the sim cannot tell; a raw server can.
    const ca = await createCA("raw-h2-ca");
    const serverCert = await issueCert(ca, { commonName: "raw", ipAddresses: ["127.0.0.1"], server: true });
    const seen: string[][] = [];
    const server = http2.createSecureServer({ cert: serverCert.certPem, key: serverCert.keyPem });
    server.on("stream", (stream: http2.ServerHttp2Stream, _headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      const nodes: string[] = [];
      for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i] === "nodes") nodes.push(rawHeaders[i + 1] as string);
      seen.push(nodes);
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "14", "grpc-message": "raw" }, { endStream: true });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const h = harness({ talosconfig: await writeTalosconfig("raw.yaml", { endpoints: [address], ca: b64(ca.certPem) }) });
      expect(await h.poll()).toBe(false);
      expect(seen).toEqual([ALL_NODES]);
      expect(h.source.status().error).toMatch(/UNAVAILABLE: raw$/);
      await h.source.stop();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("compares uint64 member IDs exactly when deciding the leader", async () => {
    // Both IDs round to the same double: a numeric comparison would make both nodes leader.
    const [cp1, , cp3] = sim.model.nodes;
    if (!cp1?.etcd || !cp3?.etcd) throw new Error("default model has etcd on the control planes");
    cp3.etcd.memberId = "16306225063722117379";
    cp1.etcd.memberId = "16306225063722117380";
    for (const n of sim.model.nodes) if (n.etcd) n.etcd.leader = "16306225063722117379";
    const h = harness({ talosconfig: await writeTalosconfig("uint64.yaml") });
    expect(await h.poll()).toBe(true);
    const text = await h.text();
    expect(value(text, "talos_etcd_leader", { node: "10.5.0.2" })).toBe(0);
    expect(value(text, "talos_etcd_leader", { node: "10.5.0.4" })).toBe(1);
  });

  it("works with explicit endpoints and PEM files, and labels the member count with the configured cluster", async () => {
    const caFile = join(dir, "ca.pem");
    const certFile = join(dir, "client.pem");
    const keyFile = join(dir, "client-key.pem");
    await writeFile(caFile, sim.ca.certPem);
    await writeFile(certFile, sim.clientCert.certPem);
    await writeFile(keyFile, sim.clientCert.keyPem);
    const h = harness({ endpoints: [sim.address], nodes: CONTROL_PLANES, caFile, certFile, keyFile, cluster: "prod" });
    expect(await h.poll()).toBe(true);
    const text = await h.text();
    expect(value(text, "talos_etcd_member_count", { cluster: "prod" })).toBe(3);
    expect(rows(text, "talos_node_info")).toHaveLength(3);
    expect(sim.lastNodes).toEqual(CONTROL_PLANES);
    expect(h.source.status()).toMatchObject({ up: true, detail: "3 nodes, 3 control planes, etcd 3/3 members" });
  });

  it("falls back to the next endpoint when the first cannot be reached, and keeps using the one that worked", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("fallback.yaml", { endpoints: ["127.0.0.1:1", sim.address] }) });
    expect(await h.poll()).toBe(true);
    expect(h.source.debug()).toMatchObject({ endpoint: sim.address });
    const text = await h.text();
    expect(value(text, "talos_operator_talos_api_calls_total", { operation: "Version", result: "error" })).toBe(1);
    expect(value(text, "talos_operator_talos_api_calls_total", { operation: "Version", result: "success" })).toBe(1);
    expect(await h.poll()).toBe(true);
    // The dead endpoint is not tried again while the other works.
    expect(value(await h.text(), "talos_operator_talos_api_calls_total", { operation: "Version", result: "error" })).toBe(1);
  });
});

describe("talos source: per-node trouble", () => {
  it("does not fail the poll for an unknown node, and lists it with its error", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("unknown.yaml", { nodes: [...ALL_NODES, "10.9.9.9"] }) });
    expect(await h.poll()).toBe(true);
    expect(rows(await h.text(), "talos_node_info")).toHaveLength(5);
    const status = h.source.status();
    expect(status).toMatchObject({ up: true, healthy: true });
    expect(status.detail).toBe("6 nodes, 3 control planes, etcd 3/3 members, 1 not answering");
    const node = (h.source.debug().nodes as Record<string, { answered: boolean; errors: Record<string, string> }>)["10.9.9.9"];
    expect(node?.answered).toBe(false);
    expect(node?.errors.Version).toMatch(/code = Unavailable.*10\.9\.9\.9:50000/);
  });

  it("keeps the series of a node that stops answering, and fails only when no node answers", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("unreachable.yaml") });
    expect(await h.poll()).toBe(true);
    const worker = sim.model.nodes.find((n) => n.name === "10.5.0.6");
    const cp = sim.model.nodes.find((n) => n.name === "10.5.0.3");
    if (!worker || !cp) throw new Error("default model");
    worker.reachable = false;
    cp.reachable = false;
    expect(await h.poll()).toBe(true);
    const text = await h.text();
    expect(value(text, "talos_node_info", { node: "10.5.0.6" })).toBe(1);
    expect(value(text, "talos_service_up", { node: "10.5.0.6", service: "kubelet" })).toBe(1);
    expect(value(text, "talos_etcd_db_size_bytes", { node: "10.5.0.3" })).toBe(20_488_192);
    // A control plane that does not answer is a problem; a worker that does not answer is only noted.
    expect(h.source.status()).toMatchObject({ up: true, healthy: false });
    expect(h.source.status().detail).toContain("2 not answering; 10.5.0.3: control plane not answering");
    expect(h.logs.text).toMatch(/talos node not answering/);

    for (const n of sim.model.nodes) n.reachable = false;
    expect(await h.poll()).toBe(false);
    const status = h.source.status();
    expect(status.up).toBe(false);
    expect(status.error).toMatch(/^no Talos node answered through 127\.0\.0\.1:\d+: 10\.5\.0\.2: rpc error: code = Unavailable/);
    const after = await h.text();
    expect(value(after, "sidecar_source_errors_total", { source: "talos", reason: "connection" })).toBe(1);
    expect(rows(after, "talos_node_info")).toHaveLength(5);
    expect(value(after, "talos_etcd_member_count", { cluster: "talos-sim" })).toBe(3);
  });

  it("does not count the control-plane-only answers of workers as etcd alarms", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("workers.yaml", { nodes: WORKERS }) });
    expect(await h.poll()).toBe(true);
    const text = await h.text();
    expect(rows(text, "talos_etcd_alarm")).toEqual([]);
    expect(rows(text, "talos_etcd_db_size_bytes")).toEqual([]);
    expect(rows(text, "talos_etcd_member_count")).toEqual([]);
    expect(h.source.status()).toMatchObject({ up: true, healthy: true, detail: "2 nodes, 0 control planes, etcd members unknown" });
    const nodes = h.source.debug().nodes as Record<string, { role: string; errors?: unknown }>;
    expect(nodes["10.5.0.5"]).toMatchObject({ role: "worker" });
    expect(nodes["10.5.0.5"]?.errors).toBeUndefined();
  });

  it("exports etcd alarms and unhealthy control plane services, and says so", async () => {
    const cp2 = sim.model.nodes.find((n) => n.name === "10.5.0.3");
    const worker = sim.model.nodes.find((n) => n.name === "10.5.0.5");
    if (!cp2?.etcd || !worker) throw new Error("default model");
    cp2.etcd.errors = ["etcdserver: mvcc: database space exceeded", "NOSPACE"];
    const kubelet = cp2.services.find((s) => s.id === "kubelet");
    if (!kubelet) throw new Error("kubelet");
    kubelet.healthy = false;
    kubelet.lastMessage = "kubelet is not ready";
    const h = harness({ talosconfig: await writeTalosconfig("alarms.yaml") });
    expect(await h.poll()).toBe(true);
    const text = await h.text();
    expect(rows(text, "talos_etcd_alarm").map((r) => [r.labels.node, r.labels.alarm, r.value])).toEqual([
      ["10.5.0.3", "etcdserver: mvcc: database space exceeded", 1],
      ["10.5.0.3", "NOSPACE", 1],
    ]);
    expect(value(text, "talos_service_up", { node: "10.5.0.3", service: "kubelet" })).toBe(0);
    const status = h.source.status();
    expect(status.healthy).toBe(false);
    expect(status.detail).toBe("5 nodes, 3 control planes, etcd 2/3 members; 10.5.0.3: etcd reports etcdserver: mvcc: database space exceeded, NOSPACE (+1 more)");
    expect(h.source.debug().problems).toEqual([
      "10.5.0.3: etcd reports etcdserver: mvcc: database space exceeded, NOSPACE",
      "10.5.0.3: service kubelet is Running, health check failing: kubelet is not ready",
    ]);

    // Fixed: alarms disappear; a failed worker service shows in the series but does not make the cluster unhealthy.
    cp2.etcd.errors = [];
    kubelet.healthy = true;
    const workerKubelet = worker.services.find((s) => s.id === "kubelet");
    if (!workerKubelet) throw new Error("kubelet");
    workerKubelet.state = "Failed";
    expect(await h.poll()).toBe(true);
    const fixed = await h.text();
    expect(rows(fixed, "talos_etcd_alarm")).toEqual([]);
    expect(value(fixed, "talos_service_up", { node: "10.5.0.5", service: "kubelet" })).toBe(0);
    expect(h.source.status()).toMatchObject({ healthy: true });
  });

  it("asks a large cluster in calls of 50 nodes each and reports every node as one cluster", async () => {
    const model = defaultClusterModel();
    const worker = model.nodes.find((n) => n.name === "10.5.0.6")!;
    const extra = Array.from({ length: 115 }, (_, i) => ({ ...worker, name: `10.6.0.${i + 2}`, hostname: `talos-extra-${i}` }));
    Object.assign(sim.model, { ...model, nodes: [...model.nodes, ...extra] });
    const nodes = sim.model.nodes.map((n) => n.name);
    expect(nodes).toHaveLength(120);
    const h = harness({ talosconfig: await writeTalosconfig("large.yaml", { nodes }) });
    sim.resetCalls();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      expect(await h.poll()).toBe(true);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off("warning", onWarning);
    }
    // Eleven calls share one abort signal; Node would call that a listener leak.
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    expect(sim.calls).toEqual({ Version: 3, ServiceList: 3, EtcdMemberList: 3, EtcdStatus: 3 });
    const text = await h.text();
    expect(rows(text, "talos_node_info")).toHaveLength(120);
    expect(value(text, "talos_node_info", { node: "10.6.0.116" })).toBe(1);
    expect(CONTROL_PLANES.map((node) => value(text, "talos_etcd_leader", { node }))).toEqual([1, 0, 0]);
  });

  it("parses a talosconfig read again with the same bytes only once, and again once it changes", async () => {
    const file = await writeTalosconfig("cached.yaml");
    const first = await loadTalosconfig(file, "talos-sim");
    expect(await loadTalosconfig(file, "talos-sim")).toBe(first);
    await writeTalosconfig("cached.yaml", { nodes: ["10.5.0.2"] });
    const rotated = await loadTalosconfig(file, "talos-sim");
    expect(rotated).not.toBe(first);
    expect(rotated.nodes).toEqual(["10.5.0.2"]);
  });

  it("drops the series of a node removed from the cluster and from the talosconfig", async () => {
    const file = await writeTalosconfig("removal.yaml");
    const h = harness({ talosconfig: file });
    expect(await h.poll()).toBe(true);
    expect(value(await h.text(), "talos_node_info", { node: "10.5.0.6" })).toBe(1);
    sim.model.nodes = sim.model.nodes.filter((n) => n.name !== "10.5.0.6");
    await writeTalosconfig("removal.yaml", { nodes: ALL_NODES.filter((n) => n !== "10.5.0.6") });
    expect(await h.poll()).toBe(true);
    const text = await h.text();
    expect(rows(text, "talos_node_info").map((r) => r.labels.node)).not.toContain("10.5.0.6");
    expect(rows(text, "talos_service_up").filter((r) => r.labels.node === "10.5.0.6")).toEqual([]);
    expect(rows(text, "talos_node_info")).toHaveLength(4);
  });
});

describe("talos source: failures", () => {
  /** A good poll, then `breakIt`, then a poll that must fail without touching the series of the good one. */
  async function failedPoll(h: Harness, breakIt: () => void) {
    expect(await h.poll()).toBe(true);
    const before = await h.text();
    breakIt();
    const started = Date.now();
    expect(await h.poll()).toBe(false);
    const elapsed = Date.now() - started;
    const after = await h.text();
    for (const family of ["talos_node_info", "talos_service_up", "talos_etcd_member_count", "talos_etcd_db_size_bytes", "talos_etcd_leader"]) {
      expect(rows(after, family)).toEqual(rows(before, family));
    }
    expect(rows(after, "talos_node_info")).toHaveLength(5);
    // Every reason is exported from the start at 0; the failure shows as the one that counted.
    const reasons = rows(after, "sidecar_source_errors_total").filter((r) => r.labels.source === "talos" && r.value > 0);
    return { elapsed, reasons: reasons.map((r) => r.labels.reason), error: h.source.status().error ?? "", text: after };
  }

  it("reports a hanging endpoint as a timeout at the configured timeout", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("hang.yaml"), timeoutMs: 500 });
    const { elapsed, reasons, error } = await failedPoll(h, () => sim.setFault({ kind: "hang" }));
    expect(reasons).toEqual(["timeout"]);
    // The poll's abort and the call's gRPC deadline fall at the same moment; either one may report it.
    expect(error).toMatch(/^(timed out after 500ms|Version via 127\.0\.0\.1:\d+: DEADLINE_EXCEEDED: .*)$/);
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(3_000);
    sim.setFault({ kind: "none" });
    expect(await h.poll()).toBe(true);
  });

  for (const kind of ["garbage", "truncated"] as const) {
    it(`reports a ${kind} reply as decode`, async () => {
      const h = harness({ talosconfig: await writeTalosconfig(`${kind}.yaml`) });
      const { reasons, error, text } = await failedPoll(h, () => sim.setFault({ kind }, "ServiceList"));
      expect(reasons).toEqual(["decode"]);
      expect(error).toMatch(/^ServiceList via 127\.0\.0\.1:\d+: INTERNAL: Response message parsing error/);
      expect(value(text, "talos_operator_talos_api_calls_total", { operation: "ServiceList", result: "error" })).toBe(1);
    });
  }

  it("reports UNAVAILABLE as connection", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("unavailable.yaml") });
    const { reasons, error } = await failedPoll(h, () =>
      sim.setFault({ kind: "status", code: grpc.status.UNAVAILABLE, details: "apid is restarting" }),
    );
    expect(reasons).toEqual(["connection"]);
    expect(error).toMatch(/^Version via 127\.0\.0\.1:\d+: UNAVAILABLE: apid is restarting$/);
  });

  it("reports a client certificate from another CA as tls, every time", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("foreign.yaml", { crt: b64(foreignClient.certPem), key: b64(foreignClient.keyPem) }) });
    expect(await h.poll()).toBe(false);
    expect(await h.poll()).toBe(false);
    const text = await h.text();
    expect(value(text, "sidecar_source_errors_total", { source: "talos", reason: "tls" })).toBe(2);
    expect(h.source.status().error).toMatch(/TLS refused .*client certificate/);
    expect(sim.calls.Version).toBe(0);
  });

  it("reports a server certificate from another CA as tls", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("wrong-ca.yaml", { ca: b64(otherCa.certPem) }) });
    expect(await h.poll()).toBe(false);
    expect(value(await h.text(), "sidecar_source_errors_total", { source: "talos", reason: "tls" })).toBe(1);
    expect(h.source.status().error).toMatch(/certificate/);
  });

  it("says which file is missing", async () => {
    const missing = join(dir, "nope", "talosconfig");
    const h = harness({ talosconfig: missing });
    expect(await h.poll()).toBe(false);
    expect(h.source.status().error).toBe(`talosconfig ${missing}: cannot read it (ENOENT); mount the talosconfig Secret there or fix sources.talos.talosconfig`);
  });

  it("says which context is missing and which exist", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("ctx.yaml"), context: "production" });
    expect(await h.poll()).toBe(false);
    expect(h.source.status().error).toMatch(/context "production" is not under "contexts"; use one of: talos-sim$/);
  });
});

describe("talos source: credentials stay secret", () => {
  it("never puts key material in logs, errors or debug output", async () => {
    const keyBody = sim.clientCert.keyPem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    const keyB64 = b64(sim.clientCert.keyPem);
    const fingerprints = [keyBody.slice(10, 40), keyB64.slice(20, 60), "PLANTEDKEYMATERIAL"];

    // A key that OpenSSL rejects, a talosconfig that does not parse on the key's line, a good one, a failing one.
    const planted = b64("-----BEGIN PRIVATE KEY-----\nPLANTEDKEYMATERIALPLANTEDKEYMATERIAL\n-----END PRIVATE KEY-----\n");
    const badKey = harness({ talosconfig: await writeTalosconfig("planted.yaml", { key: planted }) });
    expect(await badKey.poll()).toBe(false);
    expect(badKey.source.status().error).toMatch(/client credentials are unusable/);

    const brokenFile = join(dir, "broken.yaml");
    await writeFile(brokenFile, `context: x\ncontexts:\n  x:\n    key: "${keyB64}\n    crt: [unclosed\n`);
    const broken = harness({ talosconfig: brokenFile });
    expect(await broken.poll()).toBe(false);
    expect(broken.source.status().error).toMatch(/^talosconfig .*broken\.yaml: not valid YAML at line \d+, column \d+/);

    const good = harness({ talosconfig: await writeTalosconfig("good.yaml") });
    expect(await good.poll()).toBe(true);
    sim.setFault({ kind: "status", code: grpc.status.UNAUTHENTICATED, details: "bad credentials" });
    expect(await good.poll()).toBe(false);
    expect(good.source.status().error).toMatch(/UNAUTHENTICATED/);
    expect(value(await good.text(), "sidecar_source_errors_total", { source: "talos", reason: "unauthorized" })).toBe(1);

    for (const h of [badKey, broken, good]) {
      const exposed = [h.logs.text, JSON.stringify(h.source.debug()), JSON.stringify(h.source.status()), await h.text()].join("\n");
      for (const f of fingerprints) expect(exposed).not.toContain(f);
      // Nothing needed scrubbing: the values never reached the output in the first place.
      expect(exposed).not.toContain("[REDACTED]");
    }
  });
});

describe("talosconfig and endpoints", () => {
  const doc = (ctx: Record<string, unknown>) => stringify({ context: "a", contexts: { a: ctx } });
  const pem = b64("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");

  it("names the file and the missing key", () => {
    expect(() => parseTalosconfig(doc({ endpoints: ["10.0.0.1"], ca: pem, crt: pem }), "/etc/talos/config")).toThrow(
      /^talosconfig \/etc\/talos\/config: contexts\.a\.key is missing/,
    );
    expect(() => parseTalosconfig(doc({ endpoints: ["10.0.0.1"], ca: "not base64 pem", crt: pem, key: pem }), "f")).toThrow(
      "talosconfig f: contexts.a.ca is not a base64-encoded PEM block",
    );
    expect(() => parseTalosconfig(stringify({ contexts: { a: {} } }), "f")).toThrow(/"context" \(the current context\) is not set; set sources\.talos\.context to one of: a/);
    expect(() => parseTalosconfig("[]", "f")).toThrow(/expected a mapping/);
  });

  it("reads the current context, or the one asked for", () => {
    const text = stringify({
      context: "a",
      contexts: { a: { endpoints: ["1.1.1.1"], nodes: ["n1"], ca: pem, crt: pem, key: pem }, b: { endpoints: ["2.2.2.2"], ca: pem, crt: pem, key: pem } },
    });
    expect(parseTalosconfig(text, "f")).toMatchObject({ name: "a", endpoints: ["1.1.1.1"], nodes: ["n1"] });
    const b = parseTalosconfig(text, "f", "b");
    expect(b).toMatchObject({ name: "b", endpoints: ["2.2.2.2"], nodes: [] });
    expect(String(b.key)).toBe("[REDACTED]");
    expect(JSON.stringify(b)).not.toContain("AAAA\n-----END CERTIFICATE-----\n\"}");
  });

  it("maps gRPC status codes to failure reasons, reading the details where one code covers several causes", () => {
    const cases: [grpc.status, string, string][] = [
      [grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded", "timeout"],
      [grpc.status.UNAUTHENTICATED, "", "unauthorized"],
      [grpc.status.PERMISSION_DENIED, "not authorized", "unauthorized"],
      [grpc.status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1", "connection"],
      [grpc.status.UNAVAILABLE, "No connection established. Last error: Error: self-signed certificate in certificate chain", "tls"],
      [grpc.status.INTERNAL, "Response message parsing error: index out of range", "decode"],
      [grpc.status.INTERNAL, "boom", "other"],
      [grpc.status.RESOURCE_EXHAUSTED, "Received message larger than max (20000000 vs. 10485760)", "decode"],
      [grpc.status.RESOURCE_EXHAUSTED, "too many requests", "rate_limited"],
      [grpc.status.NOT_FOUND, "", "not_found"],
      [grpc.status.UNIMPLEMENTED, "unknown method", "other"],
    ];
    for (const [code, details, reason] of cases) expect([code, details, reasonForGrpcError(code, details)]).toEqual([code, details, reason]);
  });

  it("defaults the port to 50000 and keeps IPv6 literals intact", () => {
    expect(normalizeEndpoint("10.5.0.2")).toBe("10.5.0.2:50000");
    expect(normalizeEndpoint("cp.example.com:6000")).toBe("cp.example.com:6000");
    expect(normalizeEndpoint("https://cp.example.com")).toBe("cp.example.com:50000");
    expect(normalizeEndpoint("fd00::2")).toBe("[fd00::2]:50000");
    expect(normalizeEndpoint("[fd00::2]")).toBe("[fd00::2]:50000");
    expect(normalizeEndpoint("[fd00::2]:50001")).toBe("[fd00::2]:50001");
    expect(endpointHost("[fd00::2]:50001")).toBe("fd00::2");
    expect(endpointHost("10.5.0.2")).toBe("10.5.0.2");
  });

  it("targets the endpoints themselves when neither config nor context names nodes", async () => {
    const h = harness({ talosconfig: await writeTalosconfig("no-nodes.yaml", { nodes: [] }) });
    // The sim's endpoint is 127.0.0.1, which is no node of its model: the call goes out, the node does not answer.
    expect(await h.poll()).toBe(false);
    expect(sim.lastNodes).toEqual(["127.0.0.1"]);
    expect(h.source.status().error).toMatch(/no Talos node answered .*127\.0\.0\.1: rpc error/);
  });
});

describe("talos series", () => {
  it("keeps a silent node's last series and drops a node no longer targeted", () => {
    const node = (name: string, answered: boolean) => ({
      node: name,
      answered,
      role: "worker" as const,
      errors: {},
      ...(answered && { version: { tag: "v1.9.6", arch: "arm64" } }),
    });
    const first = buildSeries({ nodes: [node("a", true), node("b", true)] }, "c");
    const second = buildSeries({ nodes: [node("a", false), node("c", true)] }, "c", first);
    expect([...second.nodes.keys()]).toEqual(["a", "c"]);
    expect(second.nodes.get("a")).toBe(first.nodes.get("a"));
    expect(second.nodes.get("c")?.samples.talosNodeInfo).toEqual([{ labels: { node: "c", version: "v1.9.6", arch: "arm64" }, value: 1 }]);
  });

  it("clears its series when the driver closes", async () => {
    const registry = new MetricRegistry({}, { processMetrics: false });
    const logger = createLogging(configFrom({}).logging, new LogCapture()).root;
    const driver = new TalosDriver({ enabled: true, intervalMs: 60_000, timeoutMs: 5_000, talosconfig: await writeTalosconfig("close.yaml") }, registry.handles, logger);
    await driver.poll(new AbortController().signal);
    expect(rows(await registry.render(false), "talos_node_info")).toHaveLength(5);
    await driver.close();
    expect(rows(await registry.render(false), "talos_node_info")).toEqual([]);
  });
});
