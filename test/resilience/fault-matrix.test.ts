// Every fault against every upstream kind (see faults.ts for the table). Each cell runs a fresh exporter
// (startRuntime) against the row's simulator, injects the fault, and checks: nothing crashes or rejects
// unhandled, the failure is classified with the expected reason, /metrics and /healthz keep answering fast,
// the source or check recovers on its own when the fault ends, and no socket or timer is left behind.
//
// Cells run in rounds: one cell of each of up to LANES rows at a time. Handles are counted before a round and
// after every runtime of the round has stopped; when they grew, each cell of the round is run again alone, so a
// leak is pinned on the cell that leaves it. With FAULT_MATRIX_LANES=1 every count is per cell.
//
// The matrix is printed at the end (the README's Reliability section is that output). FAULT_MATRIX_ROWS=talos,s3
// runs some rows only; FAULT_MATRIX_DEBUG=1 adds per-cell timings and event-loop load.

import { Socket } from "node:net";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAILURE_REASONS } from "../../src/errors.ts";
import { httpServer, startRuntime, type TestRuntime, type TestServer } from "../helpers.ts";
import {
  COLUMNS,
  type CellFault,
  type ColumnId,
  grpcCheckRow,
  httpCheckRow,
  kubernetesRow,
  makePki,
  type Row,
  s3Row,
  type Subject,
  tailscaleRow,
  talosRow,
  tcpCheckRow,
} from "./faults.ts";
import { createCA } from "../sim/pki.ts";

/** Rows whose cells run at the same time (one cell per row at a time); default: every row. */
const LANES = Math.max(1, Number(process.env.FAULT_MATRIX_LANES ?? 8));
/**
 * The exporter shares this process, its event loop and two cores with the simulators, the proxies, the other
 * cells of the round and whatever else runs on the machine. So each /metrics or /healthz request is paired with
 * one to a trivial HTTP server in the same process (the control), and what is held to LATENCY_BOUND_MS is the
 * median of the exporter's answers minus the median of the control's: the time the exporter itself takes while
 * its upstream misbehaves. Raw medians and p99s are reported beside it.
 */
const LATENCY_BOUND_MS = 50;
/** Samples of each endpoint taken while a fault is active, at least. */
const MIN_SAMPLES = 6;
/** Node reports TLS sockets as the TCPSocketWrap under them; the TLS names are kept in case a version differs. */
const TRACKED_HANDLES = ["TCPSocketWrap", "TLSSocket", "TLSWrap", "Timeout"];
const ROW_IDS = ["talos", "kube-list", "kube-watch", "tailscale", "s3", "http", "tcp", "grpc"] as const;
/** FAULT_MATRIX_ROWS=talos,s3 runs only those rows (the other cells then fail as not run). */
const ONLY_ROWS = ROW_IDS.filter((id) => !process.env.FAULT_MATRIX_ROWS || process.env.FAULT_MATRIX_ROWS.split(",").includes(id));

interface CellResult {
  /** Milestones of the cell, for FAULT_MATRIX_DEBUG. */
  phases?: string;
  row: string;
  column: ColumnId;
  applicable: boolean;
  /** n/a: why; otherwise the reasons seen while the fault was active. */
  note: string;
  problems: string[];
  latencies: number[];
  /** The control's answers, taken between the exporter's. */
  controls: number[];
  durationMs: number;
}

const results = new Map<string, CellResult>();
const key = (row: string, column: string) => `${row}/${column}`;
const escaped: { at: number; what: string }[] = [];
const onRejection = (reason: unknown) => escaped.push({ at: Date.now(), what: `unhandled rejection: ${String(reason)}` });
const onException = (err: unknown) => escaped.push({ at: Date.now(), what: `uncaught exception: ${String(err)}` });
const rows: Row[] = [];
let totalMs = 0;
let startCounts: Record<string, number> = {};
let control: TestServer | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(fn: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await sleep(50);
  }
}

function handleCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) out[type] = (out[type] ?? 0) + 1;
  return out;
}

/** Where each open socket goes, to name what was left behind. */
function openSockets(): string[] {
  // process._getActiveHandles is undocumented; it is only read here to describe a failure, never to decide one.
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles
    .filter((h): h is Socket => h instanceof Socket)
    .map((s) => `${s.localAddress}:${s.localPort}→${s.remoteAddress ?? "?"}:${s.remotePort ?? "?"}${s.destroyed ? " (destroyed)" : ""}`);
}

/** Waits for tracked handles to fall back to the baseline; returns what is still above it. */
async function leftBehind(baseline: Record<string, number>, sockets: string[] = []): Promise<string[]> {
  const deadline = Date.now() + 3_000;
  for (;;) {
    const now = handleCounts();
    const grown = TRACKED_HANDLES.filter((t) => (now[t] ?? 0) > (baseline[t] ?? 0)).map((t) => `${t} ${baseline[t] ?? 0}→${now[t]}`);
    if (grown.length === 0) return grown;
    if (Date.now() > deadline) {
      const added = openSockets().filter((s) => !sockets.includes(s));
      return added.length > 0 ? [...grown, `sockets ${added.join(", ")}`] : grown;
    }
    await sleep(50);
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Reads what the exporter says about the row's subject, over its own endpoints. */
class Probe {
  /** Checks: every distinct result seen, by checkedAt. */
  readonly #checkResults = new Map<string, { reason: string | null; ok: boolean; at: number }>();
  #watching = true;
  readonly #watcher: Promise<void> | undefined;
  /** While latency is sampled, /metrics is read from the sampler's scrapes instead of scraped again. */
  metricsFeed: (() => Promise<string>) | undefined;

  constructor(
    private readonly rt: TestRuntime,
    private readonly agent: Agent,
    private readonly subject: Subject,
  ) {
    if (subject.kind === "check") this.#watcher = this.#watchCheck();
  }

  async #json(url: string): Promise<Record<string, unknown>> {
    const res = await request(url, { dispatcher: this.agent });
    return (await res.body.json()) as Record<string, unknown>;
  }

  async #watchCheck(): Promise<void> {
    while (this.#watching) {
      const view = await this.#json(`${this.rt.healthUrl}/health/${this.subject.name}`).catch(() => undefined);
      if (view && typeof view.checkedAt === "string") {
        this.#checkResults.set(view.checkedAt, { reason: (view.reason as string | null) ?? null, ok: view.status === "pass", at: Date.parse(view.checkedAt) });
      }
      await sleep(40);
    }
  }

  async stop(): Promise<void> {
    this.#watching = false;
    await this.#watcher;
  }

  /** Failures so far by reason: the source's error counter, or the check results seen. */
  async failures(since = 0): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    if (this.subject.kind === "check") {
      for (const r of this.#checkResults.values()) if (!r.ok && r.at >= since) out[r.reason ?? "none"] = (out[r.reason ?? "none"] ?? 0) + 1;
      return out;
    }
    const text = this.metricsFeed ? await this.metricsFeed() : await (await request(`${this.rt.metricsUrl}/metrics`, { dispatcher: this.agent })).body.text();
    for (const line of text.split("\n")) {
      if (!line.startsWith("sidecar_source_errors_total{")) continue;
      const source = /source="([^"]*)"/.exec(line)?.[1];
      const reason = /reason="([^"]*)"/.exec(line)?.[1];
      if (source === this.subject.name && reason) out[reason] = Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return out;
  }

  /** Up (and healthy by its own judgement) with a success after `since`; a check passing with a run after it. */
  async fine(since = 0): Promise<boolean> {
    if (this.subject.kind === "check") {
      return [...this.#checkResults.values()].some((r) => r.ok && r.at > since);
    }
    const status = await this.#json(`${this.rt.healthUrl}/debug/status`);
    const source = (status.sources as Record<string, unknown>[]).find((s) => s.name === this.subject.name);
    if (!source || source.up !== true || source.healthy === false) return false;
    return typeof source.lastSuccessAt === "string" && Date.parse(source.lastSuccessAt) > since;
  }

  /** How many attempts have failed in a row, for a fault that never ends. */
  async consecutiveFailures(): Promise<number> {
    if (this.subject.kind === "check") return [...this.#checkResults.values()].filter((r) => !r.ok).length;
    const status = await this.#json(`${this.rt.healthUrl}/debug/status`);
    const source = (status.sources as Record<string, unknown>[]).find((s) => s.name === this.subject.name);
    return Number(source?.consecutiveFailures ?? 0);
  }
}

/** Times /metrics and /healthz, each followed by the control, until stopped; hands each /metrics text to whoever waits. */
function sampleLatency(rt: TestRuntime, agent: Agent) {
  const samples: number[] = [];
  const controls: number[] = [];
  const bad: string[] = [];
  let running = true;
  let waiting: ((text: string) => void)[] = [];
  const timed = async (url: string, into: number[]): Promise<string> => {
    const t0 = performance.now();
    const res = await request(url, { dispatcher: agent });
    const text = await res.body.text();
    into.push(performance.now() - t0);
    if (res.statusCode !== 200) bad.push(`${new URL(url).pathname} answered ${res.statusCode}`);
    return text;
  };
  const loop = (async () => {
    while (running) {
      const text = await timed(`${rt.metricsUrl}/metrics`, samples).catch((err: unknown) => {
        bad.push(`/metrics failed: ${String(err)}`);
        return "";
      });
      const woken = waiting;
      waiting = [];
      for (const w of woken) w(text);
      await timed(`${control?.url}/`, controls).catch(() => undefined);
      await timed(`${rt.healthUrl}/healthz`, samples).catch((err: unknown) => bad.push(`/healthz failed: ${String(err)}`));
      await timed(`${control?.url}/`, controls).catch(() => undefined);
      // Spaced out: eight cells sample at once, and the sampling must not become the load it measures.
      await sleep(40);
    }
    for (const w of waiting) w("");
  })();
  return {
    count: () => samples.length / 2,
    /** The text of the next /metrics scrape. */
    nextMetrics: () => new Promise<string>((resolve) => (running ? waiting.push(resolve) : resolve(""))),
    async stop() {
      running = false;
      await loop;
      return { samples, controls, bad };
    },
  };
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, n] of Object.entries(after)) if (n - (before[reason] ?? 0) > 0) out[reason] = n - (before[reason] ?? 0);
  return out;
}

async function runCell(row: Row, column: ColumnId, fault: CellFault): Promise<CellResult> {
  const started = performance.now();
  const marks: string[] = [];
  const mark = (what: string) => marks.push(`${what}@${Math.round(performance.now() - started)}`);
  const problems: string[] = [];
  let note = "";
  let latencies: number[] = [];
  let controls: number[] = [];
  const [first, ...later] = fault.steps;
  const appliedAt = Date.now();
  let rt: TestRuntime;
  try {
    if (fault.atStart && first) await first();
    rt = await startRuntime(fault.config ?? row.config);
  } catch (err) {
    await fault.clear().catch(() => undefined);
    return { row: row.id, column, applicable: true, note: "?", problems: [`could not start: ${String(err)}`], latencies, controls, durationMs: performance.now() - started };
  }
  mark("started");
  const agent = new Agent({ connections: 4 });
  const probe = new Probe(rt, agent, row.subject);
  let sampler: ReturnType<typeof sampleLatency> | undefined;
  try {
    let before: Record<string, number> = {};
    let faultFrom = appliedAt;
    if (!fault.atStart) {
      await until(() => probe.fine(), 8_000, "the upstream to be fine before the fault");
      before = await probe.failures();
      faultFrom = Date.now();
      mark("fine");
    }
    sampler = sampleLatency(rt, agent);
    probe.metricsFeed = sampler.nextMetrics;
    const steps = fault.atStart ? later : fault.steps;
    if (fault.atStart) await waitClassified(probe, fault, before, faultFrom, "at start");
    let injectedAt = appliedAt;
    for (const [i, step] of steps.entries()) {
      const atStep = await probe.failures(faultFrom);
      if (i === 0) injectedAt = Date.now();
      await step();
      await waitClassified(probe, fault, atStep, faultFrom, `step ${i + 1}`);
    }
    mark("classified");
    await until(async () => sampler!.count() >= MIN_SAMPLES, 5_000, "latency samples");
    mark("sampled");
    const seen = diff(await probe.failures(faultFrom), before);
    // The expected reason first, then anything else that was seen with it.
    const others = Object.keys(seen).filter((r) => r !== fault.expect).sort();
    note = [fault.expect in seen || fault.expect === "none" ? fault.expect : "", ...others.map((r) => `+${r}`)].filter(Boolean).join(" ") || "none";
    // A poll that ran out of time is rightly a timeout, whatever else was wrong; only other reasons are misreadings.
    const stray = Object.keys(seen).filter((r) => r !== fault.expect && r !== "timeout" && !(fault.alsoAllowed ?? []).includes(r as never));
    if (stray.length > 0) problems.push(`classified as ${stray.join(", ")} besides ${fault.expect}`);
    const wrong = fault.verify?.();
    if (wrong) problems.push(wrong);
    if (fault.readLimit) {
      const read = fault.readLimit.bytes();
      if (read > fault.readLimit.atMost) problems.push(`read ${read} bytes of a ${fault.readLimit.total}-byte body (at most ${fault.readLimit.atMost} allowed)`);
      note += ` (${(read / 1048576).toFixed(1)} of ${(fault.readLimit.total / 1048576).toFixed(0)} MiB sent)`;
    }
    probe.metricsFeed = undefined;
    const { samples, controls: control, bad } = await sampler.stop();
    sampler = undefined;
    latencies = samples;
    controls = control;
    problems.push(...bad);
    const median = percentile([...samples].sort((a, b) => a - b), 50);
    const baseline = percentile([...control].sort((a, b) => a - b), 50);
    if (!(median - baseline <= LATENCY_BOUND_MS)) {
      problems.push(`/metrics and /healthz median ${median.toFixed(1)}ms during the fault, ${(median - baseline).toFixed(1)}ms over the control's ${baseline.toFixed(1)}ms (bound ${LATENCY_BOUND_MS}ms)`);
    }

    const clearedAt = Date.now();
    await fault.clear();
    if (fault.noRecovery) {
      const n = await probe.consecutiveFailures();
      await until(async () => (await probe.consecutiveFailures()) > n, 5_000, "the next attempt (it keeps trying)");
      note += ", recovery n/a";
    } else {
      await until(() => probe.fine(clearedAt), 12_000, "recovery once the fault ended");
    }
    mark("recovered");
    if (fault.retryAfter) {
      const { ms, requests } = fault.retryAfter;
      const byWho = new Map<string, { at: number; limited?: boolean }[]>();
      for (const r of requests()) byWho.set(r.who, [...(byWho.get(r.who) ?? []), r]);
      let pairs = 0;
      for (const list of byWho.values()) {
        list.sort((a, b) => a.at - b.at);
        for (let i = 0; i + 1 < list.length; i++) {
          const r = list[i] as { at: number; limited?: boolean };
          // Answered 429 (where the upstream records it), or asked while every answer was a 429.
          if (r.limited === false || r.at < injectedAt || r.at >= clearedAt) continue;
          pairs++;
          const gap = (list[i + 1] as { at: number }).at - r.at;
          if (gap < ms * 0.9) problems.push(`asked again ${gap}ms after a Retry-After of ${ms}ms (${list.map((x) => x.at - injectedAt).join(",")} ms since the fault, cleared at ${clearedAt - injectedAt})`);
        }
      }
      if (pairs === 0) problems.push("no request followed a rate-limited one");
      // A poll that timed out never read its 429, so it backed off by its own rule; only then may it ask sooner.
      if (seen.timeout && problems.some((p) => p.startsWith("asked again"))) {
        note += " (Retry-After not judged: a poll timed out)";
        for (let i = problems.length - 1; i >= 0; i--) if (problems[i]?.startsWith("asked again")) problems.splice(i, 1);
      }
    }
  } catch (err) {
    problems.push(err instanceof Error ? err.message : String(err));
    await fault.clear().catch(() => undefined);
    if (!note) note = "?";
  } finally {
    if (sampler) await sampler.stop();
    await probe.stop();
    await agent.close();
    await rt.runtime.stop();
    mark("stopped");
  }
  const errors = rt.logs.records().filter((r) => r.level === "error" || r.level === "fatal");
  if (errors.length > 0) problems.push(`logged at error level: ${errors.map((r) => String(r.msg)).join("; ")}`);
  return { row: row.id, column, applicable: true, note, problems, latencies, controls, durationMs: performance.now() - started, phases: marks.join(" ") };
}

/** Waits for a failure with the expected reason that was not there at `atStep`. */
async function waitClassified(probe: Probe, fault: CellFault, atStep: Record<string, number>, since: number, what: string): Promise<void> {
  if (fault.expect === "none") {
    // Not a failure: give the consequence (a re-opened watch) time to show, then look for errors in the checks.
    await sleep(1_200);
    return;
  }
  const expected = fault.expect;
  await until(async () => ((await probe.failures(since))[expected] ?? 0) > (atStep[expected] ?? 0), 8_000, `a failure classified ${expected} (${what})`).catch(async (err: unknown) => {
    const seen = diff(await probe.failures(since), atStep);
    throw new Error(`${(err as Error).message}; saw ${JSON.stringify(seen)}`);
  });
}

type Planned = { row: Row; column: ColumnId; fault: CellFault };

/**
 * Spreads the rows over lanes (a lane runs its cells one after another), the most cells first. Each row starts
 * at a different column, so the heavy columns (oversized bodies) do not all land in the same round.
 */
function lanesOf(all: Row[]): Planned[][] {
  const lanes: Planned[][] = Array.from({ length: Math.min(LANES, all.length) }, () => []);
  const cost = (cells: Planned[]) => cells.reduce((n, c) => n + (c.row.id.startsWith("kube") ? 2 : 1), 0);
  const perRow = all.map((row, i) => {
    const cells: Planned[] = [];
    for (const c of COLUMNS) {
      const fault = row.cells[c.id];
      if (fault) cells.push({ row, column: c.id, fault });
    }
    const shift = (i * 2) % Math.max(1, cells.length);
    return [...cells.slice(shift), ...cells.slice(0, shift)];
  });
  for (const cells of perRow.sort((a, b) => cost(b) - cost(a))) {
    const lane = lanes.reduce((best, l) => (cost(l) < cost(best) ? l : best));
    lane.push(...cells);
  }
  return lanes;
}

/** Runs cells together, then counts handles once all their runtimes have stopped. */
async function runRound(round: Planned[]): Promise<{ done: CellResult[]; grown: string[] }> {
  const baseline = handleCounts();
  const sockets = openSockets();
  const escapedBefore = escaped.length;
  const elu = performance.eventLoopUtilization();
  const done = await Promise.all(round.map((c) => runCell(c.row, c.column, c.fault)));
  if (process.env.FAULT_MATRIX_DEBUG) console.log(`event loop busy ${(performance.eventLoopUtilization(elu).utilization * 100).toFixed(0)}% during ${round.map((c) => `${c.row.id}×${c.column}`).join(", ")}`);
  const grown = await leftBehind(baseline, sockets);
  for (const r of done) r.problems.push(...escaped.slice(escapedBefore).map((e) => e.what));
  return { done, grown };
}

async function runMatrix(): Promise<void> {
  const t0 = performance.now();
  const lanes = lanesOf(rows);
  for (;;) {
    const round = lanes.map((l) => l.shift()).filter((c): c is Planned => c !== undefined);
    if (round.length === 0) break;
    let { done, grown } = await runRound(round);
    if (grown.length > 0 && round.length > 1) {
      // Something of the round stayed behind: run each of its cells again alone to find which one leaves it.
      done = [];
      for (const cell of round) {
        const alone = await runRound([cell]);
        const [r] = alone.done;
        if (!r) continue;
        if (alone.grown.length > 0) r.problems.push(`handles left behind: ${alone.grown.join(", ")}`);
        done.push(r);
      }
      if (done.every((r) => r.problems.length === 0)) for (const r of done) r.problems.push(`handles left behind when run with others (not alone): ${grown.join(", ")}`);
      grown = [];
    }
    for (const r of done) {
      if (grown.length > 0) r.problems.push(`handles left behind: ${grown.join(", ")}`);
      results.set(key(r.row, r.column), r);
    }
    if (process.env.FAULT_MATRIX_DEBUG) console.log(`round ${round.map((c) => `${c.row.id}×${c.column}`).join(", ")} done at ${Math.round(performance.now() - t0)}ms`);
  }
  for (const row of rows) {
    for (const c of COLUMNS) {
      const why = row.notApplicable[c.id];
      if (why !== undefined) results.set(key(row.id, c.id), { row: row.id, column: c.id, applicable: false, note: why, problems: [], latencies: [], controls: [], durationMs: 0 });
    }
  }
  totalMs = performance.now() - t0;
}

/** The matrix as a Markdown table, generated from the results: ✓ / ✗ / n/a with the reason observed. */
function matrixTable(): string {
  const header = `| upstream | ${COLUMNS.map((c) => c.title).join(" | ")} |`;
  const rule = `|---|${COLUMNS.map(() => "---").join("|")}|`;
  const lines = rows.map((row) => {
    const cells = COLUMNS.map((c) => {
      const r = results.get(key(row.id, c.id));
      if (!r) return "?";
      if (!r.applicable) return "n/a";
      const reason = r.note.replace(/ \(.*\)/, "").replace(/, recovery n\/a/, "").replace(/ \+/g, " +");
      return `${r.problems.length === 0 ? "✓" : "✗"} ${reason}${r.note.includes("recovery n/a") ? "¹" : ""}`;
    });
    return `| ${row.title} | ${cells.join(" | ")} |`;
  });
  return [header, rule, ...lines].join("\n");
}

const title = (id: ColumnId) => COLUMNS.find((c) => c.id === id)?.title ?? id;

function summary(): string {
  const all = [...results.values()];
  const real = all.filter((r) => r.applicable);
  const passed = real.filter((r) => r.problems.length === 0);
  const samples = real.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const control = real.flatMap((r) => r.controls).sort((a, b) => a - b);
  const excess = real.map((r) => percentile([...r.latencies].sort((a, b) => a - b), 50) - percentile([...r.controls].sort((a, b) => a - b), 50)).sort((a, b) => a - b);
  const na = all.filter((r) => !r.applicable);
  const failures = real.filter((r) => r.problems.length > 0).map((r) => `  ✗ ${r.row} × ${r.column}: ${r.problems.join("; ")}`);
  return [
    `Fault matrix: ${rows.length} upstream kinds × ${COLUMNS.length} faults = ${all.length} cells; ${real.length} apply, ${passed.length} pass, ${na.length} n/a.`,
    `/metrics and /healthz during faults: ${samples.length} requests, median ${percentile(samples, 50).toFixed(1)}ms, p99 ${percentile(samples, 99).toFixed(1)}ms, max ${(samples.at(-1) ?? NaN).toFixed(1)}ms` +
      ` (control in the same process: median ${percentile(control, 50).toFixed(1)}ms, p99 ${percentile(control, 99).toFixed(1)}ms);` +
      ` per-cell median over the control: at most ${(excess.at(-1) ?? NaN).toFixed(1)}ms (bound ${LATENCY_BOUND_MS}ms).`,
    `Run time ${(totalMs / 1000).toFixed(1)}s with ${LANES} lane(s).`,
    ...(process.env.FAULT_MATRIX_DEBUG ? real.map((r) => `  ${r.row} × ${r.column}: ${r.note}; ${r.durationMs.toFixed(0)}ms, slowest ${[...r.latencies].sort((a, b) => b - a).slice(0, 3).map((x) => x.toFixed(0)).join("/")}ms of ${r.latencies.length}; ${r.phases}`) : []),
    "",
    matrixTable(),
    "",
    "Columns: " + COLUMNS.map((c) => `${c.title}: ${c.about}`).join("; ") + ".",
    "¹ recovery not applicable: a .invalid name never starts resolving; the cell checks that attempts go on.",
    "+reason: also seen during the fault: +connection where the proxy cut live connections to inject it, +timeout where a poll ran out of time.",
    "n/a:",
    ...[...new Set(na.map((r) => r.note))].map((why) => `  ${why}: ${na.filter((r) => r.note === why).map((r) => `${r.row} × ${title(r.column)}`).join(", ")}`),
    ...(failures.length > 0 ? ["", "Failures:", ...failures] : []),
  ].join("\n");
}

beforeAll(async () => {
  control = await httpServer((_req, res) => res.end("ok"));
  startCounts = handleCounts();
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  const pki = await makePki(await createCA("fault-matrix CA"));
  const builders: Record<(typeof ROW_IDS)[number], () => Promise<Row>> = {
    talos: talosRow,
    "kube-list": () => kubernetesRow("list", pki),
    "kube-watch": () => kubernetesRow("watch", pki),
    tailscale: () => tailscaleRow(pki),
    s3: () => s3Row(pki),
    http: () => httpCheckRow(pki),
    tcp: tcpCheckRow,
    grpc: () => grpcCheckRow(pki),
  };
  for (const id of ONLY_ROWS) rows.push(await builders[id]());
  await runMatrix();
}, 300_000);

afterAll(async () => {
  if (rows.length > 0) console.log(summary());
  await Promise.all(rows.map((r) => r.close()));
  await control?.close();
  process.off("unhandledRejection", onRejection);
  process.off("uncaughtException", onException);
  // The simulators and proxies must let go of everything too, or a leak above could hide behind them.
  expect(await leftBehind(startCounts)).toEqual([]);
}, 30_000);

describe("fault matrix", () => {
  for (const rowId of ROW_IDS) {
    for (const column of COLUMNS) {
      it(`${rowId} × ${column.title}`, () => {
        const r = results.get(key(rowId, column.id));
        expect(r, "every cell is either run or says why it does not apply").toBeDefined();
        if (!r) return;
        if (!r.applicable) {
          expect(r.note.length).toBeGreaterThan(10);
          return;
        }
        expect(r.problems).toEqual([]);
      });
    }
  }

  it("lets nothing escape as an unhandled rejection or an uncaught exception", () => {
    expect(escaped.map((e) => e.what)).toEqual([]);
  });

  it("sees every reason a fault here can cause", () => {
    const seen = new Set([...results.values()].filter((r) => r.applicable).map((r) => r.note.split(" ")[0]));
    // not_found needs a missing resource, not a fault; everything else must have been met.
    expect(FAILURE_REASONS.filter((r) => r !== "not_found" && !seen.has(r))).toEqual([]);
  });
});
