/**
 * Where a process' CPU time went, from a V8 .cpuprofile (what the exporter's /debug/pprof/profile returns): self
 * time per function and per source area, so a target that is not met comes with the reason.
 */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileLine {
  name: string;
  selfMs: number;
  percent: number;
}

export interface ProfileSummary {
  durationMs: number;
  /** Time the profiler saw the thread doing nothing. */
  idleMs: number;
  /** Time spent in the profiler's own session, left out of the rest. */
  profilerMs: number;
  /** What the samples attribute to JavaScript, V8 (GC, compiler) and native calls made from JavaScript. */
  busyMs: number;
  /** CPU the main thread used over the same time, from /proc, to set the samples against. */
  mainThreadCpuMs?: number;
  functions: ProfileLine[];
  areas: ProfileLine[];
}

/** The part of the program a frame belongs to: a file of this project, a package, Node itself or V8's own. */
export function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const project = /\/(src|bench|test)\/(.+)$/.exec(url);
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  if (project?.[1] && project[2]) return `${project[1]}/${project[2]}`;
  if (url.startsWith("node:")) return url.replace(/^node:(internal\/)?/, "node:").replace(/\/.*$/, "");
  return url;
}

export function summarizeProfile(profile: CpuProfile, top = 12): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    // Each delta is the time up to the sample it precedes; the sampled frame gets that time.
    const id = samples[i];
    if (id === undefined) continue;
    self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0) / 1000);
  }
  const durationMs = (profile.endTime - profile.startTime) / 1000;
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let idleMs = 0;
  let profilerMs = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idleMs += ms;
      continue;
    }
    // The inspector session's own message dispatch: the profiler starting, stopping and serializing itself.
    if (functionName === "dispatch" && url === "") {
      profilerMs += ms;
      continue;
    }
    const area = areaOf(url, functionName);
    const name = `${functionName || "(anonymous)"} ${area}${url ? `:${lineNumber + 1}` : ""}`;
    fns.set(name, (fns.get(name) ?? 0) + ms);
    areas.set(area, (areas.get(area) ?? 0) + ms);
  }
  const busy = durationMs - idleMs - profilerMs;
  const lines = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, selfMs]) => ({ name, selfMs: Math.round(selfMs), percent: busy > 0 ? Math.round((selfMs / busy) * 1000) / 10 : 0 }));
  return { durationMs: Math.round(durationMs), idleMs: Math.round(idleMs), profilerMs: Math.round(profilerMs), busyMs: Math.round(busy), functions: lines(fns), areas: lines(areas) };
}
