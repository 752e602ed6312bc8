import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { UpstreamError } from "../../src/errors.ts";
import { LeaderElector } from "../../src/leader/elector.ts";
import { electionNamespace } from "../../src/leader/gate.ts";
import { decodeLease, microTime } from "../../src/leader/lease.ts";
import { CONFLICT, type LeaseApi, LeaseClient } from "../../src/leader/lease-client.ts";
import { createLogging } from "../../src/log.ts";
import type { KubeConnection } from "../../src/sources/kubernetes/kubeconfig.ts";
import { eventually, get, httpServer, LogCapture, startRuntime, type TestRuntime, type TestServer } from "../helpers.ts";
import { type KubeApiSim, kubeconfigYaml, startKubeApiSim } from "../sim/kube-api.ts";
import { startTailscaleSim, type TailscaleSim } from "../sim/tailscale.ts";
import { SecretUrl } from "../../src/secret-url.ts";

const NAMESPACE = "ops";
const LEASE = "sidecar-exporter";
// Short, but with room for a loaded CI machine: each request may take up to a retry period.
const TIMING = { leaseDuration: "3s", renewDeadline: "2s", retryPeriod: "400ms" } as const;
const LEASE_MS = 3_000;
const RENEW_DEADLINE_MS = 2_000;
const RETRY_MS = 400;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/**
 * A TCP relay in front of the API server. `blackhole` drops every connection it has and accepts new ones
 * without ever forwarding them: requests hang, as with a partitioned node.
 */
interface FaultProxy {
  url: string;
  blackhole(): void;
  heal(): void;
}

async function faultProxy(target: string): Promise<FaultProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let dropping = false;
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    if (dropping) {
      client.resume();
      return;
    }
    const upstream = new Socket();
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    upstream.connect(Number(port), hostname, () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  const dropAll = (): void => {
    for (const s of sockets) s.destroy();
  };
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        dropAll();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${address.port}`,
    blackhole: () => {
      dropping = true;
      dropAll();
    },
    heal: () => {
      dropping = false;
      dropAll();
    },
  };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "leader-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function kubeSim(): Promise<KubeApiSim> {
  const sim = await startKubeApiSim({ token: "lease-token" });
  cleanups.push(() => sim.close());
  return sim;
}

/** A kubeconfig for the sim, reached through `server` (the sim itself or a proxy in front of it). */
async function kubeconfigFile(dir: string, sim: KubeApiSim, server: string, name: string): Promise<string> {
  const path = join(dir, `${name}.kubeconfig`);
  await writeFile(path, kubeconfigYaml(sim).replace(sim.url, server));
  return path;
}

interface Replica {
  name: string;
  t: TestRuntime;
  tailscale: TailscaleSim;
  proxy: FaultProxy;
  /** The local dependency its `http` check probes. */
  local: TestServer;
}

/**
 * One exporter replica: leader election against the kube sim through its own fault proxy, a Tailscale
 * source against its own Tailscale sim (so each replica's polls are counted apart), a local `http` check and
 * the `tailscale-connectivity` source check.
 */
async function replica(sim: KubeApiSim, dir: string, name: string): Promise<Replica> {
  const proxy = await faultProxy(sim.url);
  const tailscale = await startTailscaleSim();
  cleanups.push(() => tailscale.close());
  const local = await httpServer((_req, res) => res.end("ok"));
  cleanups.push(() => local.close());
  const keyFile = join(dir, `${name}.tskey`);
  await writeFile(keyFile, tailscale.apiKey);
  const t = await startRuntime({
    logging: { level: "debug" },
    leaderElection: {
      enabled: true,
      leaseName: LEASE,
      namespace: NAMESPACE,
      identity: name,
      ...TIMING,
      kubeconfig: await kubeconfigFile(dir, sim, proxy.url, name),
    },
    sources: { tailscale: { baseUrl: tailscale.url, apiKey: { file: keyFile }, interval: "500ms", timeout: "500ms" } },
    healthChecks: {
      custom: [{ name: "tailscale-connectivity", critical: true, interval: "200ms", timeout: "200ms" }],
      dependencies: [{ name: "local-dependency", type: "http", url: local.url, critical: true, interval: "200ms", timeout: "200ms" }],
    },
  });
  cleanups.push(() => t.runtime.stop());
  return { name, t, tailscale, proxy, local };
}

async function leaderGauge(r: Replica): Promise<number> {
  const { body } = await get(`${r.t.metricsUrl}/metrics`);
  const match = /^sidecar_leader (\d+)$/m.exec(body);
  if (!match) throw new Error("sidecar_leader missing");
  return Number(match[1]);
}

function storedLease(sim: KubeApiSim): Record<string, unknown> | undefined {
  return sim.get("coordination.k8s.io/v1", "leases", NAMESPACE, LEASE)?.spec as Record<string, unknown> | undefined;
}

/** Log records with this message, from line `since` on. */
function logMessages(r: Replica, msg: string, since = 0): Record<string, unknown>[] {
  return r.t.logs.records().slice(since).filter((l) => l.msg === msg);
}

/** Devices requests a replica's Tailscale sim received within `ms` from now. */
async function pollsDuring(r: Replica, ms: number): Promise<number> {
  const before = r.tailscale.counters.deviceRequests;
  await new Promise((resolve) => setTimeout(resolve, ms));
  return r.tailscale.counters.deviceRequests - before;
}

/** Resolves once the replica's Tailscale sim has seen two more polls (the source polls every 500 ms). */
async function keepsPolling(r: Replica): Promise<void> {
  const before = r.tailscale.counters.deviceRequests;
  await eventually(() => r.tailscale.counters.deviceRequests >= before + 2, 5_000);
}

/** Health endpoints answer, and the replica is ready with its local check and the standby source check passing. */
async function servesHealth(r: Replica): Promise<void> {
  expect((await get(`${r.t.healthUrl}/healthz`)).status).toBe(200);
  // A check run cut short by a busy machine may fail once; the next one, 200 ms later, passes.
  const ready = await eventually(async () => {
    const res = await get(`${r.t.healthUrl}/readyz?verbose`);
    return res.status === 200 ? res : undefined;
  }, 3_000);
  expect(ready.body).toContain("[+]local-dependency ok");
  expect(ready.body).toContain("[+]tailscale-connectivity ok");
}

/** Two replicas; resolves once one leads, returning [leader, follower]. */
async function pair(): Promise<{ sim: KubeApiSim; leader: Replica; follower: Replica }> {
  const sim = await kubeSim();
  const dir = await tempDir();
  const [a, b] = await Promise.all([replica(sim, dir, "replica-a"), replica(sim, dir, "replica-b")]);
  const holder = await eventually(() => storedLease(sim)?.holderIdentity as string | undefined, 5_000);
  const [leader, follower] = holder === a.name ? [a, b] : [b, a];
  await eventually(async () => (await leaderGauge(leader)) === 1, 5_000);
  return { sim, leader, follower };
}

describe("leader election between two replicas", () => {
  it("elects exactly one leader; only it polls the cluster-wide source, the follower serves health and local checks", async () => {
    const { sim, leader, follower } = await pair();
    expect(await leaderGauge(follower)).toBe(0);
    // Both keep campaigning for a while: the Lease stays where it is.
    const [followerPolls] = await Promise.all([pollsDuring(follower, 2_000), keepsPolling(leader)]);
    expect(followerPolls).toBe(0);
    expect(follower.tailscale.counters.deviceRequests).toBe(0);
    expect(storedLease(sim)).toMatchObject({ holderIdentity: leader.name, leaseDurationSeconds: LEASE_MS / 1000, leaseTransitions: 0 });
    expect(await leaderGauge(leader)).toBe(1);
    expect(await leaderGauge(follower)).toBe(0);

    // The follower is ready: its local check passes and the source it leaves to the leader reads as standby.
    await eventually(async () => (await get(`${follower.t.healthUrl}/readyz`)).status === 200, 5_000);
    await servesHealth(follower);
    const debug = JSON.parse((await get(`${follower.t.healthUrl}/debug/status`)).body) as { sources: Record<string, unknown>[] };
    expect(JSON.stringify(debug)).toContain("not polled by this replica (replica-");
    await eventually(async () => (await get(`${leader.t.healthUrl}/readyz`)).status === 200, 5_000);
    await eventually(async () => /^tailscale_devices_total.* [1-9]/m.test((await get(`${leader.t.metricsUrl}/metrics`)).body), 5_000);
    expect((await get(`${follower.t.metricsUrl}/metrics`)).body).not.toMatch(/^tailscale_devices_total/m);

    // Transitions are logged once each, not per retry (a machine too busy to renew in time may make the
    // Lease change hands; every change is then logged once).
    for (const r of [leader, follower]) {
      const became = logMessages(r, "became leader").length;
      const lost = logMessages(r, "lost leadership").length;
      expect(became, r.t.logs.text).toBe(lost + ((await leaderGauge(r)) === 1 ? 1 : 0));
      const followed = logMessages(r, "following the leader").map((l) => l.holder);
      expect(followed.every((holder, i) => holder !== r.name && (i === 0 || holder !== followed[i - 1]))).toBe(true);
    }
    expect(logMessages(leader, "became leader").length).toBeGreaterThanOrEqual(1);
    expect(logMessages(follower, "following the leader").map((l) => l.holder)).toContain(leader.name);
  }, 30_000);

  it("a leader that dies without releasing is replaced within one lease duration, not sooner", async () => {
    const { sim, leader, follower } = await pair();
    const before = storedLease(sim);
    // Cut the leader off first, so its shutdown cannot hand the Lease back: as if the process was killed.
    const cutAt = performance.now();
    leader.proxy.blackhole();
    await leader.t.runtime.stop();
    await eventually(async () => (await leaderGauge(follower)) === 1, LEASE_MS + 3_000, 10);
    const tookMs = performance.now() - cutAt;
    // The follower waits out the lease from the last renewal it saw (at most one retry before the cut) ...
    expect(tookMs).toBeGreaterThanOrEqual(LEASE_MS - RETRY_MS - 100);
    // ... and takes over within one lease duration plus a retry period (and scheduling slack).
    expect(tookMs).toBeLessThan(LEASE_MS + 2 * RETRY_MS + 1_000);
    expect(storedLease(sim)).toMatchObject({ holderIdentity: follower.name, leaseTransitions: Number(before?.leaseTransitions) + 1 });
    expect(logMessages(leader, "could not release the leader lease; a successor takes over once it expires")).toHaveLength(1);
    await keepsPolling(follower);
  }, 30_000);

  it("a leader that shuts down releases the Lease: the follower takes over within about one retry period", async () => {
    const { sim, leader, follower } = await pair();
    await leader.t.runtime.stop();
    const releasedAt = performance.now();
    expect(logMessages(leader, "released the leader lease")).toHaveLength(1);
    await eventually(async () => (await leaderGauge(follower)) === 1, LEASE_MS, 10);
    const tookMs = performance.now() - releasedAt;
    expect(tookMs).toBeLessThan(RETRY_MS * 1.2 + 500);
    expect(storedLease(sim)).toMatchObject({ holderIdentity: follower.name, leaseTransitions: 1, leaseDurationSeconds: LEASE_MS / 1000 });
    await keepsPolling(follower);
    // The old leader stopped polling before it released.
    const stoppedPolls = leader.tailscale.counters.deviceRequests;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(leader.tailscale.counters.deviceRequests).toBe(stoppedPolls);
  }, 30_000);

  it("a leader that cannot reach the API server steps down within the renew deadline and stops polling, while serving health", async () => {
    const { sim, leader, follower } = await pair();
    const mark = leader.t.logs.lines.length;
    leader.proxy.blackhole();
    await eventually(async () => (await leaderGauge(leader)) === 0, RENEW_DEADLINE_MS + 2_000, 10);
    const steppedDownAt = Date.now();
    // Only the leader writes the Lease, so the last write the API server saw is its last renewal.
    const lastRenewal = sim.requests.filter((r) => r.method === "PUT" || r.method === "POST").at(-1)?.at ?? 0;
    expect(steppedDownAt - lastRenewal).toBeLessThan(RENEW_DEADLINE_MS + 400);
    const lost = logMessages(leader, "lost leadership", mark);
    expect(lost).toHaveLength(1);
    expect(String(lost[0]?.reason)).toContain("renew deadline");
    // Polling stopped (the source polls every 500 ms): after a moment for a request already under way to
    // land, nothing reaches its Tailscale sim any more.
    await new Promise((r) => setTimeout(r, 300));
    expect(await pollsDuring(leader, 1_500)).toBe(0);

    // The other replica takes over once the Lease has expired, and polls.
    await eventually(async () => (await leaderGauge(follower)) === 1, LEASE_MS + 2_000, 20);
    await keepsPolling(follower);

    // Cut off from the API server, the old leader still answers probes and runs its local checks.
    await servesHealth(leader);
    expect(logMessages(leader, "leader election: lease request failed", mark)).toHaveLength(1);

    // Back on the network it follows the new leader rather than taking the Lease back.
    leader.proxy.heal();
    await eventually(() => logMessages(leader, "following the leader").some((l) => l.holder === follower.name), 3_000);
    expect(logMessages(leader, "leader election: lease requests work again", mark)).toHaveLength(1);
    expect(await leaderGauge(leader)).toBe(0);
    expect(await pollsDuring(leader, 1_000)).toBe(0);
  }, 30_000);
});

// --- the elector alone, against the kube sim -----------------------------------------------------

function connectionTo(sim: KubeApiSim): KubeConnection {
  return {
    server: new SecretUrl(sim.url),
    tls: { insecureSkipVerify: false },
    credentials: { authorization: async () => "Bearer lease-token", invalidate: () => undefined },
    origin: "test",
  };
}

interface Harness {
  elector: LeaderElector;
  logs: LogCapture;
  gauge: number[];
  events: string[];
}

function elector(identity: string, api: () => LeaseApi, timing = { leaseDurationMs: LEASE_MS, renewDeadlineMs: RENEW_DEADLINE_MS, retryPeriodMs: RETRY_MS }): Harness {
  const logs = new LogCapture();
  const logging = createLogging({ level: "debug", format: "json", components: {}, fields: {}, sampling: { enabled: false, levels: {} } }, logs);
  const gauge: number[] = [];
  const events: string[] = [];
  const e = new LeaderElector(
    { identity, lease: `${NAMESPACE}/${LEASE}`, ...timing },
    {
      connect: async () => api(),
      startedLeading: () => events.push("started"),
      stoppedLeading: async () => {
        events.push("stopped");
      },
      gauge: { set: (v) => gauge.push(v) },
      logger: logging.component("leader"),
    },
  );
  cleanups.push(() => e.stop());
  return { elector: e, logs, gauge, events };
}

function seedLease(sim: KubeApiSim, spec: Record<string, unknown>): void {
  sim.upsert({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: LEASE, namespace: NAMESPACE }, spec });
}

describe("LeaderElector", () => {
  it("judges another holder's lease by when it saw the record change, not by the holder's clock", async () => {
    const sim = await kubeSim();
    // The holder's clock is an hour behind: by timestamps the lease expired long ago.
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    // The holder's own duration counts, not this replica's setting.
    const heldMs = 2_000;
    seedLease(sim, { holderIdentity: "other", leaseDurationSeconds: 2, acquireTime: hourAgo, renewTime: hourAgo, leaseTransitions: 4 });
    const h = elector("me", () => new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
    const started = performance.now();
    h.elector.start();
    await h.elector.firstDecision;
    expect(h.elector.leading).toBe(false);
    expect(h.elector.holder).toBe("other");

    // The holder renews (its clock still behind) for a while: each change restarts the wait.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      const stamp = new Date(Date.now() - 3_600_000 + i).toISOString();
      seedLease(sim, { holderIdentity: "other", leaseDurationSeconds: 2, acquireTime: hourAgo, renewTime: stamp, leaseTransitions: 4 });
    }
    expect(h.elector.leading).toBe(false);
    const lastChange = performance.now();
    await eventually(() => h.elector.leading, heldMs + 2_000, 10);
    const waited = performance.now() - lastChange;
    expect(performance.now() - started).toBeGreaterThan(2_400 + heldMs - 50);
    expect(waited).toBeGreaterThanOrEqual(heldMs - 50);
    expect(waited).toBeLessThan(heldMs + RETRY_MS * 1.2 + 800);
    const spec = storedLease(sim);
    expect(spec).toMatchObject({ holderIdentity: "me", leaseTransitions: 5, leaseDurationSeconds: LEASE_MS / 1000 });
    expect(spec?.acquireTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(h.gauge).toEqual([0, 1]);
    expect(h.events).toEqual(["started"]);
    expect(h.logs.records().filter((l) => l.msg === "following the leader")).toHaveLength(1);
  }, 20_000);

  it("a Lease it cannot read is never taken: a holder of another type is a decode failure, not an empty holder", async () => {
    const sim = await kubeSim();
    const fresh = { leaseDurationSeconds: 3_600, renewTime: microTime(Date.now()), leaseTransitions: 3 };
    const unreadable: Record<string, unknown>[] = [
      { ...fresh, holderIdentity: 42 },
      { ...fresh, holderIdentity: { name: "other" } },
      { ...fresh, holderIdentity: null },
      { ...fresh, holderIdentity: "other", leaseDurationSeconds: "3600" },
      { ...fresh, holderIdentity: "other", leaseTransitions: -1 },
    ];
    for (const spec of unreadable) {
      seedLease(sim, spec);
      const h = elector("me", () => new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
      h.elector.start();
      await h.elector.firstDecision;
      expect(h.elector.leading, JSON.stringify(spec)).toBe(false);
      const failure = h.logs.records().find((l) => l.msg === "leader election: lease request failed");
      expect(failure, JSON.stringify(spec)).toMatchObject({ reason: "decode" });
      expect(String(failure?.err)).toMatch(/the Lease has an unexpected shape at spec\./);
      await h.elector.stop();
      // Nothing was written over the Lease it could not read.
      expect(storedLease(sim)).toEqual(spec);
    }
    // A spec that is not an object, or none at all, says nothing either.
    for (const spec of ["held by other", null]) {
      sim.upsert({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: LEASE, namespace: NAMESPACE }, spec });
      const h = elector("me", () => new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
      h.elector.start();
      await h.elector.firstDecision;
      expect(h.elector.leading, JSON.stringify(spec)).toBe(false);
      await h.elector.stop();
    }
    // Once the Lease reads as released again, it is taken at the next round.
    seedLease(sim, { holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 3 });
    const h = elector("me", () => new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
    h.elector.start();
    await h.elector.firstDecision;
    expect(h.elector.leading).toBe(true);
  }, 20_000);

  it("takes a released lease at once and creates a missing one", async () => {
    const sim = await kubeSim();
    seedLease(sim, { holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 2 });
    const h = elector("me", () => new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
    h.elector.start();
    await h.elector.firstDecision;
    expect(h.elector.leading).toBe(true);
    expect(storedLease(sim)).toMatchObject({ holderIdentity: "me", leaseTransitions: 3 });

    sim.delete("coordination.k8s.io/v1", "leases", NAMESPACE, LEASE);
    // The renewal finds it gone, and the next round creates it.
    await eventually(() => storedLease(sim)?.holderIdentity === "me", 2_000);
    expect(storedLease(sim)).toMatchObject({ leaseTransitions: 0 });
    const posts = sim.requests.filter((r) => r.method === "POST" && r.path.endsWith("/leases"));
    expect(posts).toHaveLength(1);
    expect(h.elector.leading).toBe(true);

    await h.elector.stop();
    expect(storedLease(sim)).toMatchObject({ holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(h.events).toEqual(["started", "stopped"]);
    expect(h.gauge.at(-1)).toBe(0);
  }, 20_000);

  it("of two candidates racing for the same expired lease, the one whose update conflicts follows the winner", async () => {
    const sim = await kubeSim();
    seedLease(sim, { holderIdentity: "", leaseDurationSeconds: 1, leaseTransitions: 7 });
    // Both read before either writes: a barrier holds each update until both have read the same version.
    let reads = 0;
    let release: () => void = () => undefined;
    const bothRead = new Promise<void>((resolve) => (release = resolve));
    const conflicts: string[] = [];
    const racing = (who: string): LeaseApi => {
      const real = new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, 2_000);
      return {
        get: async (t, s) => {
          const lease = await real.get(t, s);
          if (++reads === 2) release();
          return lease;
        },
        create: (r, t, s) => real.create(r, t, s),
        update: async (current, record, t, s) => {
          await bothRead;
          const result = await real.update(current, record, t, s);
          if (result === CONFLICT) conflicts.push(who);
          return result;
        },
        close: () => real.close(),
      };
    };
    const timing = { leaseDurationMs: LEASE_MS, renewDeadlineMs: RENEW_DEADLINE_MS, retryPeriodMs: 500 };
    const a = elector("a", () => racing("a"), timing);
    const b = elector("b", () => racing("b"), timing);
    a.elector.start();
    b.elector.start();
    await Promise.all([a.elector.firstDecision, b.elector.firstDecision]);
    expect([a.elector.leading, b.elector.leading].filter(Boolean)).toHaveLength(1);
    expect(conflicts).toHaveLength(1);
    const [winner, loser] = a.elector.leading ? [a, b] : [b, a];
    // The loser read the Lease again after its conflict, so it knows the winner at once.
    expect(loser.elector.holder).toBe(winner === a ? "a" : "b");
    expect(storedLease(sim)).toMatchObject({ leaseTransitions: 8 });
  }, 20_000);

  it("creating races too: AlreadyExists makes the loser read and follow", async () => {
    const sim = await kubeSim();
    const client = (): LeaseApi => new LeaseClient(connectionTo(sim), { namespace: NAMESPACE, name: LEASE }, 2_000);
    const a = elector("a", client);
    const b = elector("b", client);
    a.elector.start();
    b.elector.start();
    await Promise.all([a.elector.firstDecision, b.elector.firstDecision]);
    await eventually(() => a.elector.leading !== b.elector.leading && a.elector.holder === b.elector.holder, 3_000);
    expect(storedLease(sim)?.holderIdentity).toBe(a.elector.leading ? "a" : "b");
  }, 20_000);

  it("an unreachable API server is logged once per outage, not per retry, and a request never outlives the retry period", async () => {
    const sim = await kubeSim();
    const proxy = await faultProxy(sim.url);
    proxy.blackhole();
    const h = elector("me", () => new LeaseClient({ ...connectionTo(sim), server: new SecretUrl(proxy.url) }, { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
    const started = performance.now();
    h.elector.start();
    await h.elector.firstDecision;
    expect(performance.now() - started).toBeLessThan(RETRY_MS + 300);
    await new Promise((r) => setTimeout(r, 2_500));
    const records = h.logs.records();
    expect(records.filter((l) => l.msg === "leader election: lease request failed")).toHaveLength(1);
    expect(records.filter((l) => l.msg === "leader election: lease request still failing").length).toBeGreaterThanOrEqual(2);
    expect(records.find((l) => l.msg === "leader election: lease request failed")?.reason).toBe("timeout");
    proxy.heal();
    await eventually(() => h.elector.leading, 2_000);
    expect(h.logs.records().filter((l) => l.msg === "leader election: lease requests work again")).toHaveLength(1);
  }, 20_000);

  it("a rejected credential is reported as unauthorized and never leads", async () => {
    const sim = await kubeSim();
    const h = elector("me", () => new LeaseClient({ ...connectionTo(sim), credentials: { authorization: async () => "Bearer wrong", invalidate: () => undefined } }, { namespace: NAMESPACE, name: LEASE }, RETRY_MS));
    h.elector.start();
    await h.elector.firstDecision;
    const failure = h.logs.records().find((l) => l.msg === "leader election: lease request failed");
    expect(failure).toMatchObject({ reason: "unauthorized" });
    expect(h.elector.leading).toBe(false);
  });
});

describe("election settings", () => {
  it("takes the namespace from the config, then POD_NAMESPACE, then the service account file", async () => {
    const dir = await tempDir();
    const file = join(dir, "namespace");
    const base = { enabled: true, leaseName: LEASE, leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };
    expect(await electionNamespace({ ...base, namespace: "cfg" }, { POD_NAMESPACE: "env" }, file)).toBe("cfg");
    expect(await electionNamespace(base, { POD_NAMESPACE: "env" }, file)).toBe("env");
    await expect(electionNamespace(base, {}, file)).rejects.toThrow(/set leaderElection\.namespace/);
    await writeFile(file, "from-file\n");
    expect(await electionNamespace(base, {}, file)).toBe("from-file");
  });
});

describe("Lease decoding", () => {
  it("reads any answer as a Lease or a decode failure, never another error", () => {
    // Mostly of the right type, so that the checks on each field are reached.
    const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: valid }, fc.anything());
    const spec = fc.record(
      { holderIdentity: mostly(fc.string()), leaseDurationSeconds: mostly(fc.integer()), renewTime: mostly(fc.string()), leaseTransitions: mostly(fc.integer()) },
      { requiredKeys: [] },
    );
    const lease = fc.record(
      { kind: fc.constantFrom("Lease", "Lease", "Status", 3), metadata: mostly(fc.record({ resourceVersion: mostly(fc.string()) })), spec: mostly(spec) },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.string(), lease.map((l) => JSON.stringify(l) ?? "")), (text) => {
        try {
          const decoded = decodeLease(text, "GET lease");
          // The holder read is the one written, or nobody only when none was written: never a misread.
          const written = (JSON.parse(text) as { spec?: { holderIdentity?: unknown } }).spec?.holderIdentity;
          expect(decoded.record.holderIdentity).toBe(written ?? "");
          expect(Number.isInteger(decoded.record.leaseTransitions) && decoded.record.leaseTransitions >= 0).toBe(true);
          expect(decoded.resourceVersion).not.toBe("");
        } catch (err) {
          expect(err).toBeInstanceOf(UpstreamError);
          expect((err as UpstreamError).reason).toBe("decode");
        }
      }),
    );
  });
});
