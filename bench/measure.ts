/** CPU time and resident memory of a process, read from /proc as `ps` and `top` would. */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let clockTicks: number | undefined;

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  clockTicks ??= Number.parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim(), 10) || 100;
  return clockTicks;
}

function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, "utf8");
  // The command name (field 2) is in parentheses and may hold spaces; fields are counted after its closing one.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicksPerSecond();
}

/** User plus system CPU seconds the process has used so far, all threads. */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/**
 * CPU seconds of the main thread (the event loop) and of all other threads together (V8's GC helpers, libuv's
 * pool), so a process' CPU can be told apart from what a JavaScript profile of the main thread shows.
 */
export function threadCpuSeconds(pid: number): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const seconds = statCpuSeconds(`/proc/${pid}/task/${tid}/stat`);
      if (Number(tid) === pid) main += seconds;
      else others += seconds;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return { main, others };
}

function statusKb(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return m?.[1] === undefined ? Number.NaN : Number(m[1]);
}

/** VmRSS, in MiB. */
export function rssMiB(pid: number): number {
  return statusKb(pid, "VmRSS") / 1024;
}

/** VmHWM (the highest VmRSS so far), in MiB. */
export function peakRssMiB(pid: number): number {
  return statusKb(pid, "VmHWM") / 1024;
}

/** Samples VmRSS on a timer while something runs, for its peak over that stretch rather than since start. */
export class RssSampler {
  #max = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    everyMs = 250,
  ) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  #sample(): void {
    try {
      this.#max = Math.max(this.#max, rssMiB(this.pid));
    } catch {
      // The process exited; the samples so far stand.
    }
  }

  /** Stops sampling; the highest VmRSS seen, in MiB. */
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    return this.#max;
  }
}

/** CPU seconds a process spends while `work` runs, and its RSS at the end and at its peak meanwhile. */
export async function during<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; cpuSeconds: number; wallSeconds: number; rssMiB: number; peakRssMiB: number }> {
  const sampler = new RssSampler(pid);
  try {
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const result = await work();
    const wallSeconds = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(pid) - cpu0;
    return { result, cpuSeconds: cpu, wallSeconds, rssMiB: rssMiB(pid), peakRssMiB: sampler.stop() };
  } finally {
    sampler.stop();
  }
}
