// The fault matrix as data: the columns (faults), the rows (upstream kinds, each with its simulator, a fault
// proxy in front where the simulator cannot misbehave on its own, and the exporter config that points at them)
// and, per cell, how to start and end the fault and how the failure must be classified.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { stringify } from "yaml";
import type { FailureReason } from "../../src/errors.ts";
import { loadProto } from "../../src/grpc/protos.ts";
import { httpServer, type TestServer } from "../helpers.ts";
import { startFaultProxy, type FaultProxy, type ProxyCert, type ProxyFault } from "../sim/fault-proxy.ts";
import { seedOperatorResources } from "../sim/kube-fixtures.ts";
import { startKubeApiSim, type Fault as KubeFault, type KubeApiSim } from "../sim/kube-api.ts";
import { createCA, issueCert, type CertKey } from "../sim/pki.ts";
import { startS3Sim, type S3Sim } from "../sim/s3.ts";
import { startTailscaleSim, type TailscaleSim } from "../sim/tailscale.ts";
import { startTalosSim, talosconfigYaml, type TalosSim } from "../sim/talos.ts";

/** Every source and check polls this often, with this timeout, so a cell takes a second or three. */
export const INTERVAL = "500ms";
export const TIMEOUT = "400ms";

export const COLUMNS = [
  { id: "hang", title: "hang", about: "the connection never completes (TCP or TLS handshake unanswered)" },
  { id: "noHeaders", title: "no headers", about: "accepted, the request read, no response headers ever" },
  { id: "drip", title: "drip", about: "response headers, then the body at one byte a second" },
  { id: "http500", title: "500", about: "HTTP 500 (gRPC: INTERNAL)" },
  { id: "retryAfter", title: "429+RA", about: "429 with Retry-After: 1" },
  { id: "http429", title: "429", about: "429 without Retry-After (gRPC: RESOURCE_EXHAUSTED)" },
  { id: "denied", title: "401/403", about: "401, then 403 (gRPC: UNAUTHENTICATED, then PERMISSION_DENIED)" },
  { id: "badJson", title: "bad JSON", about: "a 200 whose JSON is cut in half (S3: its XML)" },
  { id: "pbGarbage", title: "pb garbage", about: "reply bytes that are not the message" },
  { id: "pbTruncated", title: "pb cut", about: "a valid reply cut inside a field" },
  { id: "huge", title: "> cap", about: "a body larger than the cap; the client must stop reading" },
  { id: "wrongCa", title: "wrong CA", about: "certificate from a CA the client does not trust" },
  { id: "expired", title: "expired", about: "certificate past its notAfter" },
  { id: "wrongHost", title: "wrong host", about: "certificate for another name" },
  { id: "dns", title: "DNS", about: "a .invalid host name" },
  { id: "reset", title: "reset", about: "connection reset in the middle of the body" },
  { id: "watchEnd", title: "watch ends", about: "the watch stream ends without an error" },
  { id: "recovery", title: "down/up", about: "the upstream goes away (refused) and comes back on the same port" },
] as const;

export type ColumnId = (typeof COLUMNS)[number]["id"];

/** How one cell injects its fault and what it must see. */
export interface CellFault {
  /** The reason label the failure must carry; "none" when the fault is not a failure at all. */
  expect: FailureReason | "none";
  /** Each step injects (a variant of) the fault; the cell waits for a new classified failure after each. */
  steps: (() => Promise<void>)[];
  clear(): Promise<void>;
  /** Inject before the exporter starts (for faults only a list at start meets). */
  atStart?: boolean;
  /** The exporter config for this cell differs from the row's (a host name that does not resolve). */
  config?: Record<string, unknown>;
  /** Further evidence the fault did what it should; returns what is wrong, if anything. */
  verify?: () => string | undefined;
  /** Why "recovers on its own" cannot be shown for this cell. */
  noRecovery?: string;
  /** Reasons besides `expect` the cell may see, and only because the proxy cut live connections to inject it. */
  alsoAllowed?: FailureReason[];
  /** Bytes one connection may have taken of an oversized body before the client stopped reading. */
  readLimit?: { bytes: () => number; atMost: number; total: number };
  /**
   * The upstream asked for this pause (Retry-After); whoever was told (an informer, by its path; a polled source)
   * must not ask again sooner. `limited` marks the requests that were answered 429, when the upstream knows.
   */
  retryAfter?: { ms: number; requests: () => { at: number; who: string; limited?: boolean }[] };
}

export type Subject = { kind: "source"; name: string } | { kind: "check"; name: string };

export interface Row {
  id: string;
  title: string;
  subject: Subject;
  config: Record<string, unknown>;
  cells: Partial<Record<ColumnId, CellFault>>;
  notApplicable: Partial<Record<ColumnId, string>>;
  close(): Promise<void>;
}

const MiB = 1024 * 1024;
const DAY_MS = 86_400_000;
const NONE: ProxyFault = { kind: "none" };

/** The runtime config every row builds on. */
function baseConfig(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    metrics: { collection: { interval: INTERVAL, timeout: TIMEOUT } },
    logging: { level: "warn" },
    ...extra,
  };
}

/** Certificates for one trust root: the good one and the three a client must refuse. */
export interface Pki {
  ca: CertKey;
  good: ProxyCert;
  wrongCa: ProxyCert;
  expired: ProxyCert;
  wrongHost: ProxyCert;
}

export async function makePki(ca: CertKey): Promise<Pki> {
  const stranger = await createCA("an unrelated CA");
  const leaf = { commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"], server: true };
  const now = Date.now();
  return {
    ca,
    good: await issueCert(ca, leaf),
    wrongCa: await issueCert(stranger, leaf),
    expired: await issueCert(ca, { ...leaf, notBefore: new Date(now - 2 * DAY_MS), notAfter: new Date(now - DAY_MS) }),
    wrongHost: await issueCert(ca, { commonName: "elsewhere.example", dnsNames: ["elsewhere.example"], server: true }),
  };
}

/** A fault the proxy injects, ended by putting the proxy back to forwarding. */
function viaProxy(proxy: FaultProxy, fault: ProxyFault, expect: FailureReason, more: Partial<CellFault> = {}): CellFault {
  return { expect, steps: [() => proxy.setFault(fault)], clear: () => proxy.setFault(NONE), ...more };
}

/**
 * The cells every row behind a proxy gets the same way. Injecting them cuts live connections, so a request in
 * flight at that moment may fail as `connection` besides the expected reason (not so for the refused port).
 */
function proxyCells(proxy: FaultProxy, pki: Pki): Partial<Record<ColumnId, CellFault>> {
  const cut: Partial<CellFault> = { alsoAllowed: ["connection"] };
  return {
    hang: viaProxy(proxy, { kind: "blackhole" }, "timeout", cut),
    wrongCa: viaProxy(proxy, { kind: "tlsCert", cert: pki.wrongCa }, "tls", cut),
    expired: viaProxy(proxy, { kind: "tlsCert", cert: pki.expired }, "tls", cut),
    wrongHost: viaProxy(proxy, { kind: "tlsCert", cert: pki.wrongHost }, "tls", cut),
    reset: viaProxy(proxy, { kind: "resetMidBody" }, "connection"),
    recovery: viaProxy(proxy, { kind: "down" }, "connection"),
  };
}

/** The exporter starts with a name that does not resolve: the fault is there from the first attempt. */
function dnsCell(config: Record<string, unknown>): CellFault {
  return {
    expect: "connection",
    atStart: true,
    steps: [async () => undefined],
    clear: async () => undefined,
    config,
    noRecovery: "a .invalid name never starts resolving, so the fault cannot end without a config change",
  };
}

async function tempDir(): Promise<{ dir: string; file(name: string, content: string): Promise<string>; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "fault-matrix-"));
  return {
    dir,
    async file(name, content) {
      const path = join(dir, name);
      await writeFile(path, content, { mode: 0o600 });
      return path;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

const HTTP_ONLY = "gRPC has no Retry-After; RESOURCE_EXHAUSTED is the 429 cell";
const NOT_JSON = "the replies are protobuf, not JSON";
const NO_PROTOBUF = "no protobuf on this wire (JSON or XML over HTTP)";
const NO_STREAM = "no long-lived stream: every poll is one request";

// ---------------------------------------------------------------------------------------------------------
// Talos: the machine API over mutual TLS, through a proxy that terminates and re-originates it.

export async function talosRow(): Promise<Row> {
  const sim = await startTalosSim();
  const pki = await makePki(sim.ca);
  const proxy = await startFaultProxy({
    upstream: { host: "127.0.0.1", port: sim.port },
    protocol: "h2",
    tls: { cert: pki.good, alpn: ["h2"] },
    upstreamTls: { ca: sim.ca.certPem, cert: sim.clientCert.certPem, key: sim.clientCert.keyPem, alpn: ["h2"] },
  });
  const files = await tempDir();
  const talosconfig = await files.file("talosconfig", talosconfigYaml({ ...sim, address: proxy.address } as TalosSim));
  const badDns = await files.file("talosconfig-dns", talosconfigYaml({ ...sim, address: `talos.invalid:${proxy.port}` } as TalosSim));
  const source = (file: string) => baseConfig({ sources: { talos: { talosconfig: file, cluster: "matrix", interval: INTERVAL, timeout: TIMEOUT } } });
  const simFault = (fault: Parameters<TalosSim["setFault"]>[0], expect: FailureReason): CellFault => ({
    expect,
    steps: [async () => sim.setFault(fault)],
    clear: async () => sim.setFault({ kind: "none" }),
  });
  const service = sim.model.nodes[0]?.services[0];
  const hugeMessage = 12 * MiB;
  return {
    id: "talos",
    title: "Talos gRPC",
    subject: { kind: "source", name: "talos" },
    config: source(talosconfig),
    cells: {
      ...proxyCells(proxy, pki),
      noHeaders: simFault({ kind: "hang" }, "timeout"),
      drip: viaProxy(proxy, { kind: "drip", bytesPerSecond: 1 }, "timeout", { alsoAllowed: ["connection"] }),
      http500: simFault({ kind: "status", code: grpc.status.INTERNAL, details: "injected server error" }, "other"),
      http429: simFault({ kind: "status", code: grpc.status.RESOURCE_EXHAUSTED, details: "too many requests" }, "rate_limited"),
      denied: {
        expect: "unauthorized",
        steps: [
          async () => sim.setFault({ kind: "status", code: grpc.status.UNAUTHENTICATED, details: "certificate not accepted" }),
          async () => sim.setFault({ kind: "status", code: grpc.status.PERMISSION_DENIED, details: "role os:reader may not call this" }),
        ],
        clear: async () => sim.setFault({ kind: "none" }),
      },
      pbGarbage: simFault({ kind: "garbage" }, "decode"),
      pbTruncated: simFault({ kind: "truncated" }, "decode"),
      huge: {
        expect: "decode",
        steps: [
          async () => {
            proxy.resetStats();
            if (service) service.lastMessage = "x".repeat(hugeMessage);
          },
        ],
        clear: async () => {
          if (service) delete service.lastMessage;
        },
        readLimit: { bytes: () => proxy.stats.mostToOneClient, atMost: hugeMessage / 2, total: hugeMessage },
      },
      dns: dnsCell(source(badDns)),
    },
    notApplicable: { retryAfter: HTTP_ONLY, badJson: NOT_JSON, watchEnd: NO_STREAM },
    async close() {
      await proxy.close();
      await sim.close();
      await files.remove();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Kubernetes: list and watch of the operators' custom resources, through a TLS-terminating proxy.

const TALOS_API = "talos.alperen.cloud/v1alpha1";
/** One object of each watched kind in kube-fixtures, touched to send every watch an event. */
const TOUCHED = [
  ["talosclusters", "production"],
  ["taloscontrolplanes", "production-cp"],
  ["talosworkers", "production-workers"],
  ["talosmachines", "production-cp-1"],
  ["talosetcdbackupschedules", "nightly"],
  ["talosetcdbackups", "nightly-20261125"],
] as const;

/** Every watch ends cleanly: nothing may fail, and every informer must have opened a new watch. */
function watchEndCell(sim: KubeApiSim): CellFault {
  const watches = () => sim.requests.filter((r) => r.query.watch === "1" || r.query.watch === "true").length;
  let before = 0;
  return {
    expect: "none",
    steps: [
      async () => {
        before = watches();
        sim.endWatches();
      },
    ],
    clear: async () => undefined,
    verify: () => (watches() - before >= TOUCHED.length ? undefined : `only ${watches() - before} watches re-opened after the streams ended`),
  };
}

function kubeconfig(server: string, caPem: string, token: string): string {
  const name = "matrix";
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster: { server, "certificate-authority-data": Buffer.from(caPem).toString("base64") } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    "current-context": name,
  });
}

export async function kubernetesRow(scope: "list" | "watch", pki: Pki): Promise<Row> {
  const token = "fault-matrix-token";
  const sim: KubeApiSim = await startKubeApiSim({ token });
  seedOperatorResources(sim);
  const simUrl = new URL(sim.url);
  const proxy = await startFaultProxy({
    upstream: { host: simUrl.hostname, port: Number(simUrl.port) },
    protocol: "http1",
    tls: { cert: pki.good, alpn: ["http/1.1"] },
  });
  const files = await tempDir();
  const good = await files.file("kubeconfig", kubeconfig(`https://${proxy.address}`, pki.ca.certPem, token));
  const badDns = await files.file("kubeconfig-dns", kubeconfig(`https://kube-api.invalid:${proxy.port}`, pki.ca.certPem, token));
  // One group (six kinds) is enough; watches are renewed every second so a watch fault is met quickly.
  const source = (file: string) =>
    baseConfig({ sources: { kubernetes: { kubeconfig: file, interval: INTERVAL, timeout: TIMEOUT, watchTimeout: "1s", tailscale: { enabled: false } } } });
  const requests = () => sim.requests.filter((r) => (scope === "watch") === (r.query.watch === "1" || r.query.watch === "true")).map((r) => ({ at: r.at, who: r.path }));

  // Each watch gets an event before it ends, so the informers re-open at once (an empty watch that ends early
  // is re-opened only after a pause).
  const renewWatches = (): void => {
    for (const [plural, name] of TOUCHED) {
      const obj = sim.get(TALOS_API, plural, "talos-system", name);
      if (obj) sim.upsert({ ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata.annotations, "matrix/touched": String(Date.now()) } } });
    }
    sim.endWatches();
  };
  // A list fault is met when the source lists, at start; a watch fault once the watches are renewed.
  const simFault = (fault: KubeFault, expect: FailureReason, more: Partial<CellFault> = {}): CellFault => ({
    expect,
    steps: [
      async () => {
        sim.setFault(fault, { only: scope });
        if (scope === "watch") renewWatches();
      },
    ],
    clear: async () => sim.setFault("none"),
    ...(scope === "list" && { atStart: true }),
    ...more,
  });
  const onProxy = (fault: ProxyFault, expect: FailureReason, more: Partial<CellFault> = {}): CellFault =>
    viaProxy(proxy, fault, expect, { ...(scope === "list" ? { atStart: true } : { alsoAllowed: ["connection"] }), ...more });
  const huge = 24 * MiB;
  return {
    id: `kube-${scope}`,
    title: `Kubernetes ${scope}`,
    subject: { kind: "source", name: "kubernetes" },
    config: source(good),
    cells: {
      hang: onProxy({ kind: "blackhole" }, "timeout"),
      noHeaders: simFault({ kind: "hang" }, "timeout"),
      drip: simFault({ kind: "drip", bytesPerSecond: 1 }, "timeout"),
      http500: simFault({ kind: "status", code: 500 }, "other"),
      retryAfter: simFault({ kind: "retryAfter", seconds: 1 }, "rate_limited", { retryAfter: { ms: 1000, requests } }),
      http429: simFault({ kind: "status", code: 429 }, "rate_limited"),
      denied: {
        ...simFault({ kind: "status", code: 401 }, "unauthorized"),
        steps: [
          async () => {
            sim.setFault({ kind: "status", code: 401 }, { only: scope });
            if (scope === "watch") renewWatches();
          },
          async () => {
            sim.setFault({ kind: "status", code: 403 }, { only: scope });
            if (scope === "watch") renewWatches();
          },
        ],
      },
      badJson: simFault({ kind: "malformed" }, "decode"),
      huge: simFault({ kind: "huge", bytes: huge }, "decode", {
        readLimit: { bytes: () => proxy.stats.mostToOneClient, atMost: huge / 2, total: huge },
        steps: [
          async () => {
            proxy.resetStats();
            sim.setFault({ kind: "huge", bytes: huge }, { only: scope });
            if (scope === "watch") renewWatches();
          },
        ],
      }),
      wrongCa: onProxy({ kind: "tlsCert", cert: pki.wrongCa }, "tls"),
      expired: onProxy({ kind: "tlsCert", cert: pki.expired }, "tls"),
      wrongHost: onProxy({ kind: "tlsCert", cert: pki.wrongHost }, "tls"),
      ...(scope === "list" && { dns: dnsCell(source(badDns)) }),
      reset: simFault({ kind: "reset" }, "connection"),
      ...(scope === "watch" && {
        watchEnd: watchEndCell(sim),
      }),
      recovery: onProxy({ kind: "down" }, "connection"),
    },
    notApplicable: {
      pbGarbage: NO_PROTOBUF,
      pbTruncated: NO_PROTOBUF,
      ...(scope === "list"
        ? { watchEnd: "a list is one response; the watch row covers a stream that ends" }
        : { dns: "list and watch share one host name, which cannot stop resolving mid-run; the list row covers it" }),
    },
    async close() {
      await proxy.close();
      await sim.close();
      await files.remove();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Tailscale API: devices list with an API key, through a TLS-terminating proxy.

export async function tailscaleRow(pki: Pki): Promise<Row> {
  const sim: TailscaleSim = await startTailscaleSim();
  const proxy = await startFaultProxy({ upstream: { host: "127.0.0.1", port: sim.port }, protocol: "http1", tls: { cert: pki.good, alpn: ["http/1.1"] } });
  const files = await tempDir();
  const apiKey = await files.file("api-key", sim.apiKey);
  const caFile = await files.file("ca.pem", pki.ca.certPem);
  const maxBodyBytes = 1 * MiB;
  const source = (baseUrl: string) =>
    baseConfig({ sources: { tailscale: { baseUrl, apiKey: { file: apiKey }, tls: { caFile }, maxBodyBytes, interval: INTERVAL, timeout: TIMEOUT } } });
  const simFault = (fault: Parameters<TailscaleSim["setFault"]>[0], expect: FailureReason, more: Partial<CellFault> = {}): CellFault => ({
    expect,
    steps: [async () => sim.setFault(fault)],
    clear: async () => sim.setFault("none"),
    ...more,
  });
  const requests = () => sim.log.filter((r) => r.path.endsWith("/devices")).map((r) => ({ at: r.at, who: "poller", limited: r.status === 429 }));
  const huge = 16 * MiB;
  return {
    id: "tailscale",
    title: "Tailscale API",
    subject: { kind: "source", name: "tailscale" },
    config: source(`https://${proxy.address}`),
    cells: {
      ...proxyCells(proxy, pki),
      noHeaders: simFault({ kind: "hang" }, "timeout"),
      drip: simFault({ kind: "drip", bytesPerSecond: 1 }, "timeout"),
      http500: simFault({ kind: "status", code: 500 }, "other"),
      retryAfter: simFault({ kind: "rateLimit", retryAfter: 1 }, "rate_limited", { retryAfter: { ms: 1000, requests } }),
      http429: simFault({ kind: "rateLimit" }, "rate_limited"),
      denied: {
        expect: "unauthorized",
        steps: [async () => sim.setFault({ kind: "status", code: 401 }), async () => sim.setFault({ kind: "status", code: 403 })],
        clear: async () => sim.setFault("none"),
      },
      badJson: simFault({ kind: "malformed" }, "decode"),
      huge: {
        expect: "decode",
        // Chunked, so only counting the bytes as they arrive can stop it.
        steps: [
          async () => {
            proxy.resetStats();
            sim.setFault({ kind: "huge", bytes: huge, chunked: true });
          },
        ],
        clear: async () => sim.setFault("none"),
        readLimit: { bytes: () => proxy.stats.mostToOneClient, atMost: maxBodyBytes + 8 * MiB, total: huge },
      },
      dns: dnsCell(source(`https://tailscale.invalid:${proxy.port}`)),
    },
    notApplicable: { pbGarbage: NO_PROTOBUF, pbTruncated: NO_PROTOBUF, watchEnd: NO_STREAM },
    async close() {
      await proxy.close();
      await sim.close();
      await files.remove();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// S3: s3rver behind the proxy, which also plays every HTTP answer s3rver cannot be made to give.

function s3Error(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>matrix</RequestId></Error>`;
}

export async function s3Row(pki: Pki): Promise<Row> {
  const sim: S3Sim = await startS3Sim();
  await sim.putSnapshot("etcd/snapshot.db", { lastModified: new Date(Date.now() - 3_600_000) });
  const proxy = await startFaultProxy({ upstream: { host: "127.0.0.1", port: sim.port }, protocol: "http1", tls: { cert: pki.good, alpn: ["http/1.1"] } });
  const files = await tempDir();
  const caFile = await files.file("ca.pem", pki.ca.certPem);
  const accessKeyId = await files.file("access-key-id", sim.accessKeyId);
  const secretAccessKey = await files.file("secret-access-key", sim.secretAccessKey);
  const source = (endpoint: string) =>
    baseConfig({
      sources: {
        backups: {
          interval: INTERVAL,
          timeout: TIMEOUT,
          targets: [{ name: "s3", type: "s3", endpoint, region: sim.region, bucket: sim.bucket, prefix: "etcd/", pathStyle: true, accessKeyId: { file: accessKeyId }, secretAccessKey: { file: secretAccessKey }, tls: { caFile } }],
        },
      },
    });
  const xml = { "content-type": "application/xml" };
  const answer = (status: number, body: string, headers: Record<string, string> = {}, expect: FailureReason, more: Partial<CellFault> = {}): CellFault =>
    viaProxy(proxy, { kind: "respond", status, body, headers: { ...xml, ...headers } }, expect, { alsoAllowed: ["connection"], ...more });
  // A ListBucketResult cut in half: well-framed HTTP, unreadable XML.
  const listing = `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${sim.bucket}</Name><Prefix>etcd/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated><Contents><Key>etcd/snapshot.db</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><Size>1024</Size></Contents></ListBucketResult>`;
  const cap = 10 * MiB;
  const huge = 64 * MiB;
  return {
    id: "s3",
    title: "S3 (s3rver)",
    subject: { kind: "source", name: "backups" },
    config: source(`https://${proxy.address}`),
    cells: {
      ...proxyCells(proxy, pki),
      noHeaders: viaProxy(proxy, { kind: "noResponse" }, "timeout", { alsoAllowed: ["connection"] }),
      drip: viaProxy(proxy, { kind: "drip", bytesPerSecond: 1 }, "timeout", { alsoAllowed: ["connection"] }),
      http500: answer(500, s3Error("InternalError", "We encountered an internal error. Please try again."), {}, "other"),
      retryAfter: answer(429, s3Error("SlowDown", "Please reduce your request rate."), { "retry-after": "1" }, "rate_limited", {
        retryAfter: { ms: 1000, requests: () => proxy.stats.acceptedAt.map((at) => ({ at, who: "poller" })) },
      }),
      http429: answer(429, s3Error("SlowDown", "Please reduce your request rate."), {}, "rate_limited"),
      denied: {
        expect: "unauthorized",
        alsoAllowed: ["connection"],
        steps: [
          () => proxy.setFault({ kind: "respond", status: 401, body: s3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."), headers: xml }),
          () => proxy.setFault({ kind: "respond", status: 403, body: s3Error("AccessDenied", "Access Denied"), headers: xml }),
        ],
        clear: () => proxy.setFault(NONE),
      },
      badJson: answer(200, listing.slice(0, Math.floor(listing.length / 2)), {}, "decode"),
      huge: viaProxy(proxy, { kind: "hugeBody", prefix: `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>`, bytes: huge, contentType: "application/xml" }, "decode", {
        alsoAllowed: ["connection"],
        readLimit: { bytes: () => proxy.stats.mostToOneClient, atMost: cap + 12 * MiB, total: huge },
        steps: [
          async () => {
            await proxy.setFault({ kind: "hugeBody", prefix: `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>`, bytes: huge, contentType: "application/xml" });
            proxy.resetStats();
          },
        ],
      }),
      dns: dnsCell(source(`https://s3.invalid:${proxy.port}`)),
    },
    notApplicable: { pbGarbage: NO_PROTOBUF, pbTruncated: NO_PROTOBUF, watchEnd: NO_STREAM },
    async close() {
      await proxy.close();
      await sim.close();
      await files.remove();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// An `http` check against a real HTTPS endpoint (a plain server behind the TLS-terminating proxy).

export async function httpCheckRow(pki: Pki): Promise<Row> {
  const target: TestServer = await httpServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok","checks":["db","cache"]}');
  });
  const proxy = await startFaultProxy({ upstream: { host: "127.0.0.1", port: target.port }, protocol: "http1", tls: { cert: pki.good, alpn: ["http/1.1"] } });
  const files = await tempDir();
  const caFile = await files.file("ca.pem", pki.ca.certPem);
  const maxBodyBytes = 64 * 1024;
  const check = (url: string) =>
    baseConfig({
      healthChecks: {
        dependencies: [{ name: "upstream-http", type: "http", url, tls: { caFile }, bodyMatch: '"status":\\s*"ok"', maxBodyBytes, interval: INTERVAL, timeout: TIMEOUT }],
      },
    });
  const answer = (status: number, expect: FailureReason, headers: Record<string, string> = {}, body = '{"message":"injected"}'): CellFault =>
    viaProxy(proxy, { kind: "respond", status, body, headers: { "content-type": "application/json", ...headers } }, expect, { alsoAllowed: ["connection"] });
  // Large enough that the kernel's loopback buffers (several MiB on their own) cannot hide a reader that never stops.
  const huge = 32 * MiB;
  const good = '{"status":"ok","checks":["db","cache"]}';
  return {
    id: "http",
    title: "http check",
    subject: { kind: "check", name: "upstream-http" },
    config: check(`https://${proxy.address}/status`),
    cells: {
      ...proxyCells(proxy, pki),
      noHeaders: viaProxy(proxy, { kind: "noResponse" }, "timeout", { alsoAllowed: ["connection"] }),
      drip: viaProxy(proxy, { kind: "drip", bytesPerSecond: 1 }, "timeout", { alsoAllowed: ["connection"] }),
      http500: answer(500, "unhealthy"),
      retryAfter: answer(429, "rate_limited", { "retry-after": "1" }),
      http429: answer(429, "rate_limited"),
      denied: {
        expect: "unauthorized",
        alsoAllowed: ["connection"],
        steps: [
          () => proxy.setFault({ kind: "respond", status: 401, body: "{}", headers: { "content-type": "application/json" } }),
          () => proxy.setFault({ kind: "respond", status: 403, body: "{}", headers: { "content-type": "application/json" } }),
        ],
        clear: () => proxy.setFault(NONE),
      },
      // The check reads the body only to match it: a cut-off document no longer says "ok".
      badJson: answer(200, "unhealthy", {}, good.slice(0, 8)),
      huge: viaProxy(proxy, { kind: "hugeBody", prefix: '{"status":"ok","padding":"', bytes: huge, contentType: "application/json" }, "decode", {
        alsoAllowed: ["connection"],
        readLimit: { bytes: () => proxy.stats.mostToOneClient, atMost: maxBodyBytes + 12 * MiB, total: huge },
        steps: [
          async () => {
            await proxy.setFault({ kind: "hugeBody", prefix: '{"status":"ok","padding":"', bytes: huge, contentType: "application/json" });
            proxy.resetStats();
          },
        ],
      }),
      dns: dnsCell(check(`https://http-target.invalid:${proxy.port}/status`)),
    },
    notApplicable: { pbGarbage: NO_PROTOBUF, pbTruncated: NO_PROTOBUF, watchEnd: NO_STREAM },
    async close() {
      await proxy.close();
      await target.close();
      await files.remove();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// A `tcp` check against a listener in a child process, whose event loop can be stalled so that its accept
// queue fills and the kernel drops new connection attempts: the only way a TCP connect hangs on loopback.

const STALLABLE_LISTENER = `
const net = require("node:net");
let server;
function up(port, done) {
  server = net.createServer((c) => c.destroy());
  server.listen({ port, host: "127.0.0.1", backlog: 1 }, () => done(server.address().port));
}
up(0, (port) => process.send({ up: port }));
process.on("disconnect", () => process.exit(0));
process.on("message", (m) => {
  if (m.stall) {
    process.send({ stalling: true });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, m.stall);
    process.send({ resumed: true });
  } else if (m.down) {
    const port = server.address().port;
    server.close();
    process.send({ down: true });
    setTimeout(() => up(port, () => process.send({ up: port })), m.down);
  }
});
`;

interface StallableListener {
  port: number;
  send(msg: Record<string, number>, reply: string): Promise<void>;
  waitFor(reply: string): Promise<void>;
  close(): Promise<void>;
}

async function startStallableListener(): Promise<StallableListener> {
  const child: ChildProcess = spawn(process.execPath, ["-e", STALLABLE_LISTENER], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const waitFor = (reply: string): Promise<void> =>
    new Promise((resolve) => {
      const on = (m: Record<string, unknown>) => {
        if (!(reply in m)) return;
        child.off("message", on);
        resolve();
      };
      child.on("message", on);
    });
  const port = await new Promise<number>((resolve) => {
    const on = (m: { up?: number }) => {
      if (m.up === undefined) return;
      child.off("message", on);
      resolve(m.up);
    };
    child.on("message", on);
  });
  return {
    port,
    waitFor,
    async send(msg, reply) {
      const done = waitFor(reply);
      child.send(msg);
      await done;
    },
    async close() {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill();
      await exited;
    },
  };
}

/** Connects until the listener's accept queue is full; returns the sockets holding it full. */
async function fillAcceptQueue(port: number): Promise<Socket[]> {
  const held: Socket[] = [];
  for (let i = 0; i < 8; i++) {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.on("error", () => undefined);
    held.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 150);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) break;
  }
  return held;
}

export async function tcpCheckRow(): Promise<Row> {
  const listener = await startStallableListener();
  const check = (address: string) =>
    baseConfig({ healthChecks: { dependencies: [{ name: "upstream-tcp", type: "tcp", address, interval: INTERVAL, timeout: TIMEOUT }] } });
  let held: Socket[] = [];
  let resumed: Promise<void> = Promise.resolve();
  const noBody = "a tcp check passes once the connection opens and reads nothing";
  return {
    id: "tcp",
    title: "tcp check",
    subject: { kind: "check", name: "upstream-tcp" },
    config: check(`127.0.0.1:${listener.port}`),
    cells: {
      hang: {
        expect: "timeout",
        steps: [
          async () => {
            resumed = listener.waitFor("resumed");
            await listener.send({ stall: 1_500 }, "stalling");
            held = await fillAcceptQueue(listener.port);
          },
        ],
        clear: async () => {
          await resumed;
          for (const s of held) s.destroy();
          held = [];
        },
      },
      dns: dnsCell(check(`tcp-target.invalid:${listener.port}`)),
      recovery: {
        expect: "connection",
        steps: [
          async () => {
            resumed = listener.waitFor("up");
            await listener.send({ down: 1_000 }, "down");
          },
        ],
        clear: async () => {
          await resumed;
        },
      },
    },
    notApplicable: {
      noHeaders: noBody,
      drip: noBody,
      http500: noBody,
      retryAfter: noBody,
      http429: noBody,
      denied: noBody,
      badJson: noBody,
      pbGarbage: noBody,
      pbTruncated: noBody,
      huge: noBody,
      wrongCa: "a tcp check does no TLS",
      expired: "a tcp check does no TLS",
      wrongHost: "a tcp check does no TLS",
      reset: "the check has its verdict at connect; a reset comes after it",
      watchEnd: NO_STREAM,
    },
    close: () => listener.close(),
  };
}

// ---------------------------------------------------------------------------------------------------------
// A `grpc` check against a grpc.health.v1 server that can misbehave, behind the TLS-terminating proxy.

type HealthMode =
  | { kind: "serving" }
  | { kind: "hang" }
  | { kind: "status"; code: grpc.status; details: string }
  | { kind: "garbage" }
  | { kind: "truncated" }
  | { kind: "huge"; bytes: number };

/** Replaces the reply on the wire; the response serializer writes it as is. */
class Wire {
  constructor(readonly bytes: Buffer) {}
}

// Field 1 declared as a length-delimited field of 2^32-1 bytes, then text: not a HealthCheckResponse.
const GARBAGE = Buffer.concat([Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.from("not a protobuf")]);
// status = SERVING is 08 01; the tag alone is a field cut short.
const TRUNCATED = Buffer.from([0x08]);

/** status = SERVING plus an unknown length-delimited field 15 of `bytes` bytes: valid, and too large. */
function hugeReply(bytes: number): Buffer {
  const length: number[] = [];
  for (let n = bytes; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      length.push(n);
      break;
    }
    length.push((n % 128) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x08, 0x01, 0x7a, ...length]), Buffer.alloc(bytes, 0x78)]);
}

async function startHealthTarget(): Promise<{ port: number; setMode(mode: HealthMode): void; close(): void }> {
  const pkg = loadProto("grpc/health/v1/health.proto") as unknown as { grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } } };
  const loaded = pkg.grpc.health.v1.Health.service;
  const check = loaded.Check as grpc.MethodDefinition<unknown, unknown>;
  const service: grpc.ServiceDefinition = {
    ...loaded,
    Check: { ...check, responseSerialize: (value: unknown) => (value instanceof Wire ? value.bytes : check.responseSerialize(value)) },
  };
  let mode: HealthMode = { kind: "serving" };
  const server = new grpc.Server();
  server.addService(service, {
    Check(_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      switch (mode.kind) {
        case "hang":
          return; // never answered; the client's deadline ends the call
        case "status":
          return callback({ code: mode.code, details: mode.details });
        case "garbage":
          return callback(null, new Wire(GARBAGE));
        case "truncated":
          return callback(null, new Wire(TRUNCATED));
        case "huge":
          return callback(null, new Wire(hugeReply(mode.bytes)));
        default:
          return callback(null, { status: "SERVING" });
      }
    },
    Watch(call: grpc.ServerWritableStream<unknown, unknown>) {
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    setMode(next) {
      mode = next;
    },
    close: () => server.forceShutdown(),
  };
}

export async function grpcCheckRow(pki: Pki): Promise<Row> {
  const target = await startHealthTarget();
  const proxy = await startFaultProxy({ upstream: { host: "127.0.0.1", port: target.port }, protocol: "h2", tls: { cert: pki.good, alpn: ["h2"] } });
  const files = await tempDir();
  const caFile = await files.file("ca.pem", pki.ca.certPem);
  const check = (address: string) =>
    baseConfig({ healthChecks: { dependencies: [{ name: "upstream-grpc", type: "grpc", address, tls: { caFile }, interval: INTERVAL, timeout: TIMEOUT }] } });
  const targetFault = (mode: HealthMode, expect: FailureReason, more: Partial<CellFault> = {}): CellFault => ({
    expect,
    steps: [async () => target.setMode(mode)],
    clear: async () => target.setMode({ kind: "serving" }),
    ...more,
  });
  const huge = 5 * MiB;
  return {
    id: "grpc",
    title: "grpc check",
    subject: { kind: "check", name: "upstream-grpc" },
    config: check(proxy.address),
    cells: {
      ...proxyCells(proxy, pki),
      noHeaders: targetFault({ kind: "hang" }, "timeout"),
      drip: viaProxy(proxy, { kind: "drip", bytesPerSecond: 1 }, "timeout", { alsoAllowed: ["connection"] }),
      http500: targetFault({ kind: "status", code: grpc.status.INTERNAL, details: "injected server error" }, "other"),
      http429: targetFault({ kind: "status", code: grpc.status.RESOURCE_EXHAUSTED, details: "too many requests" }, "rate_limited"),
      denied: {
        expect: "unauthorized",
        steps: [
          async () => target.setMode({ kind: "status", code: grpc.status.UNAUTHENTICATED, details: "no credentials" }),
          async () => target.setMode({ kind: "status", code: grpc.status.PERMISSION_DENIED, details: "not allowed" }),
        ],
        clear: async () => target.setMode({ kind: "serving" }),
      },
      pbGarbage: targetFault({ kind: "garbage" }, "decode"),
      pbTruncated: targetFault({ kind: "truncated" }, "decode"),
      huge: targetFault({ kind: "huge", bytes: huge }, "decode", {
        steps: [
          async () => {
            proxy.resetStats();
            target.setMode({ kind: "huge", bytes: huge });
          },
        ],
        readLimit: { bytes: () => proxy.stats.mostToOneClient, atMost: huge / 2, total: huge },
      }),
      dns: dnsCell(check(`grpc-target.invalid:${proxy.port}`)),
    },
    notApplicable: { retryAfter: HTTP_ONLY, badJson: NOT_JSON, watchEnd: NO_STREAM },
    async close() {
      await proxy.close();
      target.close();
      await files.remove();
    },
  };
}
