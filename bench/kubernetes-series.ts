/**
 * What the Kubernetes source costs the main thread per change: the source runs in this process against the
 * benchmark's 15,000 custom resources (bench/workload.ts: 100 managed Talos clusters of 120 machines, 1,900
 * gateway objects), served by the Kubernetes API simulator in a child process so that its own work is not
 * counted. Measured here, per single-object watch event (a TalosMachine's state flips, awaited until its series
 * moved) and per full re-list (history compacted past every informer's version: each re-watch is answered 410
 * Expired and lists its kind again, finding the same objects):
 * - main-thread CPU (from /proc) and wall time;
 * - the longest the event loop was held up (perf_hooks' delay histogram, 1 ms resolution);
 * - garbage collections (count and time) and bytes allocated (V8's GC profiler: what the heap grew by between
 *   collections);
 * - with --profile, the self time of this project's Kubernetes source and metric store in a CPU profile.
 *
 *   node --import tsx bench/kubernetes-series.ts [--clusters 100] [--machines 120] [--gateway 1900]
 *                                                [--events 400] [--relists 5] [--profile]
 *
 * Figures of one run vary with what else the machine does; repeat a run before believing a difference.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { GCProfiler } from "node:v8";
import pino from "pino";
import { MetricRegistry } from "../src/metrics/registry.ts";
import { kubernetesSourceSchema } from "../src/sources/config.ts";
import { createKubernetesSource } from "../src/sources/kubernetes/source.ts";
import type { Source } from "../src/sources/types.ts";
import { seedOperatorResources } from "../test/sim/kube-fixtures.ts";
import { kubeconfigYaml, startKubeApiSim, type KubeObject } from "../test/sim/kube-api.ts";
import { log } from "./log.ts";
import { threadCpuSeconds } from "./measure.ts";
import { areaOf, type CpuProfile } from "./profile.ts";
import { gatewayObjects, managedCluster } from "./workload.ts";

const { values: flags } = parseArgs({
  options: {
    sim: { type: "boolean", default: false },
    clusters: { type: "string", default: "100" },
    machines: { type: "string", default: "120" },
    gateway: { type: "string", default: "1900" },
    events: { type: "string", default: "400" },
    relists: { type: "string", default: "5" },
    profile: { type: "boolean", default: false },
  },
});
const CLUSTERS = Number(flags.clusters);
const MACHINES = Number(flags.machines);
const GATEWAY = Number(flags.gateway);
const EVENTS = Number(flags.events);
const RELISTS = Number(flags.relists);
const TOKEN = "bench-kubernetes-series";
const MARKER_API = "bench.example/v1";

/** What the parent asks of the simulator. */
type Command = { op: "flip"; cluster: number; machine: number; state: string } | { op: "relist" };
type Reply = { op: "ready"; url: string; kubeconfig: string; objects: number } | { op: "done" };

// ---------------------------------------------------------------------------------------------------------------
// The simulator's side

async function runSimulator(): Promise<void> {
  const sim = await startKubeApiSim({ token: TOKEN, historyLimit: 1_000 });
  seedOperatorResources(sim);
  sim.addResource({ group: "bench.example", version: "v1", plural: "markers", kind: "Marker", namespaced: true });
  const now = Date.now();
  const machines = new Map<string, KubeObject>();
  let objects = 0;
  for (let c = 0; c < CLUSTERS; c++) {
    for (const obj of managedCluster(c, MACHINES, now)) {
      sim.upsert(obj);
      objects++;
      if (obj.kind === "TalosMachine") machines.set(`${c}/${obj.metadata.name}`, obj);
    }
  }
  for (const obj of gatewayObjects(GATEWAY, now)) {
    sim.upsert(obj);
    objects++;
  }
  const send = (reply: Reply) => process.send?.(reply);
  process.on("message", (cmd: Command) => {
    if (cmd.op === "flip") {
      const obj = machines.get(`${cmd.cluster}/${machineName(cmd.cluster, cmd.machine)}`);
      if (obj) sim.upsert({ ...obj, status: { state: cmd.state } });
    } else {
      // A change no informer watches moves the cluster-wide version past every informer's, and the history is
      // compacted up to it: each re-watch is answered 410 Expired and lists its kind again.
      sim.upsert({ apiVersion: MARKER_API, kind: "Marker", metadata: { name: "marker", namespace: "default" }, spec: { at: Date.now() } });
      sim.compactHistory();
      sim.endWatches();
    }
    send({ op: "done" });
  });
  process.on("disconnect", () => void sim.close().then(() => process.exit(0)));
  send({ op: "ready", url: sim.url, kubeconfig: kubeconfigYaml(sim, { token: TOKEN }), objects });
}

function machineName(cluster: number, machine: number): string {
  return machine < 3 ? `cluster-${cluster}-cp-${machine + 1}` : `cluster-${cluster}-worker-${machine - 2}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The measuring side

interface Simulator {
  child: ChildProcess;
  ready: Extract<Reply, { op: "ready" }>;
  ask(cmd: Command): Promise<void>;
}

async function startSimulator(): Promise<Simulator> {
  const child = fork(fileURLToPath(import.meta.url), ["--sim", ...process.argv.slice(2)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiting: (() => void)[] = [];
  const ready = await new Promise<Extract<Reply, { op: "ready" }>>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the simulator exited with ${code}`)));
    child.on("message", (reply: Reply) => {
      if (reply.op === "ready") resolve(reply);
      else waiting.shift()?.();
    });
  });
  return {
    child,
    ready,
    ask: (cmd) =>
      new Promise<void>((resolve) => {
        waiting.push(resolve);
        child.send(cmd);
      }),
  };
}

/** Main-thread CPU, GC and allocation over one stretch of work. */
class Meter {
  readonly #delay = monitorEventLoopDelay({ resolution: 1 });
  readonly #gcs: number[] = [];
  readonly #observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.#gcs.push(e.duration);
  });
  readonly #profiler = new GCProfiler();
  #cpu = 0;
  #wall = 0;
  #heapAtStart = 0;

  start(): void {
    this.#gcs.length = 0;
    this.#delay.reset();
    this.#delay.enable();
    this.#observer.observe({ entryTypes: ["gc"] });
    this.#heapAtStart = process.memoryUsage().heapUsed;
    this.#profiler.start();
    this.#cpu = threadCpuSeconds(process.pid).main;
    this.#wall = performance.now();
  }

  stop(): { cpuMs: number; wallMs: number; maxDelayMs: number; p99DelayMs: number; gcs: number; gcMs: number; allocatedBytes: number } {
    const wallMs = performance.now() - this.#wall;
    const cpuMs = (threadCpuSeconds(process.pid).main - this.#cpu) * 1000;
    const stats = this.#profiler.stop()?.statistics ?? [];
    const heapAtEnd = process.memoryUsage().heapUsed;
    this.#delay.disable();
    this.#observer.disconnect();
    // What the heap grew by between collections, plus what it grew by since the last one.
    let allocated = 0;
    let after = this.#heapAtStart;
    for (const s of stats) {
      allocated += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - after);
      after = s.afterGC.heapStatistics.usedHeapSize;
    }
    allocated += Math.max(0, heapAtEnd - after);
    return {
      cpuMs,
      wallMs,
      maxDelayMs: this.#delay.max / 1e6,
      p99DelayMs: this.#delay.percentile(99) / 1e6,
      gcs: this.#gcs.length,
      gcMs: this.#gcs.reduce((a, b) => a + b, 0),
      allocatedBytes: allocated,
    };
  }
}

/** Self time of this project's Kubernetes source and metric store, from an in-process CPU profile. */
class Profiler {
  readonly #session = new Session();

  async start(): Promise<void> {
    if (!flags.profile) return;
    this.#session.connect();
    await this.#session.post("Profiler.enable");
    await this.#session.post("Profiler.setSamplingInterval", { interval: 100 });
    await this.#session.post("Profiler.start");
  }

  async stop(): Promise<Map<string, number> | undefined> {
    if (!flags.profile) return undefined;
    const { profile } = (await this.#session.post("Profiler.stop")) as { profile: CpuProfile };
    this.#session.disconnect();
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const areas = new Map<string, number>();
    const samples = profile.samples ?? [];
    for (let i = 0; i < samples.length; i++) {
      const node = byId.get(samples[i] ?? -1);
      if (!node) continue;
      const area = areaOf(node.callFrame.url, node.callFrame.functionName);
      if (!/^src\/(sources\/kubernetes|metrics)\/|^\(garbage collector\)$/.test(area)) continue;
      areas.set(area, (areas.get(area) ?? 0) + (profile.timeDeltas?.[i] ?? 0) / 1000);
    }
    return areas;
  }
}

const ms = (n: number): string => (n < 10 ? n.toFixed(3) : n.toFixed(1));

function report(title: string, per: number, unit: string, m: ReturnType<Meter["stop"]>, areas: Map<string, number> | undefined): void {
  process.stdout.write(`${title}\n`);
  process.stdout.write(`  main-thread CPU ${ms(m.cpuMs / per)} ms per ${unit} (${ms(m.cpuMs)} ms in all, /proc has 10 ms ticks)\n`);
  process.stdout.write(`  wall ${ms(m.wallMs / per)} ms per ${unit}\n`);
  process.stdout.write(`  event-loop delay: max ${ms(m.maxDelayMs)} ms, p99 ${ms(m.p99DelayMs)} ms\n`);
  process.stdout.write(`  GC: ${m.gcs} collections, ${ms(m.gcMs)} ms (${ms(m.gcs / per)} collections, ${ms(m.gcMs / per)} ms per ${unit})\n`);
  process.stdout.write(`  allocated: ${(m.allocatedBytes / per / 1024).toFixed(1)} KiB per ${unit}\n`);
  if (areas) {
    const sorted = [...areas].sort((a, b) => b[1] - a[1]);
    for (const [area, selfMs] of sorted) process.stdout.write(`  profile self time ${ms(selfMs / per).padStart(8)} ms per ${unit}  ${area}\n`);
  }
}

async function eventually(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function runBench(): Promise<void> {
  const sim = await startSimulator();
  log(`simulator up with ${sim.ready.objects} objects`);
  const dir = mkdtempSync(join(tmpdir(), "bench-kubernetes-series-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, sim.ready.kubeconfig, { mode: 0o600 });
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const logger = pino({ level: "warn" });
  const config = { ...kubernetesSourceSchema.parse({ kubeconfig, maxObjects: 1_000_000 }), intervalMs: 15_000, timeoutMs: 10_000 };
  const source: Source = createKubernetesSource(config, { logger, metrics, seriesLimit: 1_000_000 });
  const status = metrics.handles.resourceStatus;
  const kinds = () => source.debug().kinds as { state: string; listedAt: string | null; objects: number }[];
  try {
    const sync = new Meter();
    sync.start();
    source.start();
    await eventually(() => source.status().up && kinds().length > 0 && kinds().every((k) => k.state === "synced"), 120_000, "the first lists");
    await eventually(() => metrics.handles.resourceTotal.value({ resource_type: "talosmachine", namespace: "tenant-000" }) === MACHINES, 60_000, "the first series");
    report(`first list of ${kinds().reduce((n, k) => n + k.objects, 0)} objects`, 1, "list", sync.stop(), undefined);

    // One machine per step, each a fresh one, flipping between Available and Pending.
    let step = 0;
    const flip = async (): Promise<void> => {
      const cluster = step % CLUSTERS;
      const machine = 3 + (Math.floor(step / CLUSTERS) % (MACHINES - 3));
      const name = machineName(cluster, machine);
      const namespace = `tenant-${String(cluster).padStart(3, "0")}`;
      const was = status.value({ resource_type: "talosmachine", namespace, name, status: "Available" }) !== undefined ? "Available" : "Pending";
      const next = was === "Available" ? "Pending" : "Available";
      step++;
      await sim.ask({ op: "flip", cluster, machine, state: next });
      await eventually(() => status.value({ resource_type: "talosmachine", namespace, name, status: next }) !== undefined, 10_000, `${name} to become ${next}`);
    };
    for (let i = 0; i < 100; i++) await flip();
    log(`${EVENTS} single-object watch events`);
    const profiler = new Profiler();
    await profiler.start();
    const events = new Meter();
    events.start();
    for (let i = 0; i < EVENTS; i++) await flip();
    const eventFigures = events.stop();
    report(`single-object watch event (TalosMachine state), ${EVENTS} events`, EVENTS, "event", eventFigures, await profiler.stop());

    log(`${RELISTS} full re-lists`);
    const relistProfiler = new Profiler();
    await relistProfiler.start();
    const relists = new Meter();
    relists.start();
    for (let i = 0; i < RELISTS; i++) {
      const before = kinds().map((k) => k.listedAt);
      await sim.ask({ op: "relist" });
      await eventually(() => kinds().every((k, j) => k.listedAt !== before[j] && k.state === "synced"), 120_000, "every kind listed again");
      // The source may finish its work on what was listed in an immediate after the list.
      await new Promise((r) => setTimeout(r, 20));
    }
    report(`full re-list (every kind), ${RELISTS} re-lists`, RELISTS, "re-list", relists.stop(), await relistProfiler.stop());
    const heap = process.memoryUsage();
    process.stdout.write(`heap used at the end ${(heap.heapUsed / 1024 / 1024).toFixed(1)} MiB\n`);
  } finally {
    await source.stop();
    sim.child.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (flags.sim) await runSimulator();
else await runBench();
