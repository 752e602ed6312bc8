/** This exporter as the benchmark runs it: started on free ports, waited on until complete, asked for a profile. */
import { countSeries } from "./exposition.ts";
import { log } from "./log.ts";
import { threadCpuSeconds } from "./measure.ts";
import { summarizeProfile, type CpuProfile, type ProfileSummary } from "./profile.ts";
import { freePorts, httpGet, sleep, startExporter, waitForHttp, type Proc } from "./servers.ts";
import { exporterConfig, type ExporterPorts, type Upstreams } from "./workload.ts";
import { runWrk } from "./wrk.ts";

export interface RunningExporter {
  proc: Proc;
  ports: ExporterPorts;
  metricsUrl: string;
  healthUrl: string;
}

export interface LaunchOptions {
  /** Changes the written configuration file before the exporter reads it. */
  editConfig?: (file: string) => void;
  /** More environment for the exporter (NODE_OPTIONS, say). */
  env?: Record<string, string>;
  /** Flags for the exporter's node, before the script, instead of the image entrypoint's. */
  nodeArgs?: string[];
}

/** Starts the exporter on free ports; tries new ones if another process took one in between. */
export async function launchExporter(up: Upstreams, name: string, sources: boolean, opts: LaunchOptions = {}): Promise<RunningExporter> {
  for (let attempt = 1; ; attempt++) {
    const [metrics = 0, health = 0, grpc = 0] = await freePorts(3);
    const ports = { metrics, health, grpc };
    const config = exporterConfig(up, ports, { name, sources });
    opts.editConfig?.(config.file);
    const proc = startExporter(name, config.file, { ...config.env, ...opts.env }, opts.nodeArgs);
    const healthUrl = `http://127.0.0.1:${health}`;
    try {
      await waitForHttp(`${healthUrl}/healthz`, proc, 60_000);
      return { proc, ports, metricsUrl: `http://127.0.0.1:${metrics}/metrics`, healthUrl };
    } catch (err) {
      await proc.stop();
      if (attempt < 3 && proc.output().includes("already in use")) continue;
      throw err;
    }
  }
}

interface DebugStatus {
  checks: { status: string }[];
  sources: { name: string; up: boolean; error?: string | null; kinds?: { state: string }[] }[];
}

/**
 * Waits until every source is up, every check has run, and two scrapes in a row hold the same number of series;
 * returns the last scrape.
 */
export async function waitComplete(ex: RunningExporter, sources: boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let previous = -1;
  let state = "";
  while (Date.now() < deadline) {
    if (!ex.proc.running) throw new Error(`${ex.proc.name} exited:\n${ex.proc.output()}`);
    try {
      const status = JSON.parse((await httpGet(`${ex.healthUrl}/debug/status`)).body.toString("utf8")) as DebugStatus;
      // A watching source is up once it lists; its series are complete once every kind is synced.
      const down = status.sources.filter((s) => !s.up || (s.kinds ?? []).some((k) => k.state !== "synced")).map((s) => s.name);
      const pending = status.checks.filter((c) => c.status === "pending").length;
      state = `sources down: ${down.join(", ") || "none"}, checks pending: ${pending}`;
      if ((!sources || (status.sources.length > 0 && down.length === 0)) && pending === 0) {
        const body = (await httpGet(ex.metricsUrl, {}, 60_000)).body.toString("utf8");
        const series = countSeries(body);
        if (series === previous) return body;
        previous = series;
      }
    } catch (err) {
      // A busy exporter may not answer in time; the next round asks again.
      const message = err instanceof Error ? err.message : String(err);
      state = /no answer/.test(message) ? "it stopped answering /debug/status and /metrics" : `a request failed: ${message}`;
      log(`${ex.proc.name}: ${state}`);
    }
    await sleep(2_000);
  }
  throw new Error(`${state} (${ex.proc.name}, after ${Math.round(timeoutMs / 1000)} s)`);
}

export async function sourceState(ex: RunningExporter, name: string): Promise<{ up: boolean; error: string | null }> {
  const status = JSON.parse((await httpGet(`${ex.healthUrl}/debug/status`)).body.toString("utf8")) as DebugStatus;
  const source = status.sources.find((s) => s.name === name);
  return { up: source?.up ?? false, error: source?.error ?? null };
}

/** A CPU profile of an exporter over `seconds`, summarized; with `load`, while one scraper scrapes it without pause. */
export async function profileOf(ex: RunningExporter, seconds: number, load: boolean): Promise<ProfileSummary | undefined> {
  log(`${ex.proc.name}: CPU profile over ${seconds} s${load ? " of one-scraper load" : ""}`);
  const wrk = load ? runWrk({ url: ex.metricsUrl, connections: 1, threads: 1, gzip: false, durationS: seconds + 2 }) : undefined;
  try {
    const before = threadCpuSeconds(ex.proc.pid).main;
    const answer = await httpGet(`${ex.healthUrl}/debug/pprof/profile?seconds=${seconds}`, {}, (seconds + 60) * 1000);
    const mainThreadCpuMs = Math.round((threadCpuSeconds(ex.proc.pid).main - before) * 1000);
    if (answer.status !== 200) throw new Error(`status ${answer.status}: ${answer.body.toString("utf8").slice(0, 200)}`);
    const summary = { ...summarizeProfile(JSON.parse(answer.body.toString("utf8")) as CpuProfile), mainThreadCpuMs };
    log(`  busy ${summary.busyMs} of ${summary.durationMs} ms (main thread CPU ${mainThreadCpuMs} ms); ${summary.areas.slice(0, 5).map((a) => `${a.name} ${a.percent}%`).join(", ")}`);
    for (const f of summary.functions.slice(0, 5)) log(`    ${f.percent}% ${f.name}`);
    return summary;
  } catch (err) {
    log(`  no profile: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  } finally {
    await wrk?.catch(() => undefined);
  }
}
