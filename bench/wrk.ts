/** Debian's `wrk`: one run against one URL, its latency distribution and throughput read from its report. */
import { spawnProc } from "./servers.ts";

export interface WrkOptions {
  url: string;
  connections: number;
  threads: number;
  durationS: number;
  gzip: boolean;
  /** A request slower than this counts as a timeout. */
  timeoutS?: number;
}

export interface WrkResult {
  connections: number;
  gzip: boolean;
  durationS: number;
  requests: number;
  requestsPerSecond: number;
  avgMs: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  bytesPerResponse: number;
  errors: { connect: number; read: number; write: number; timeout: number; non2xx: number };
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function ms(text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text ?? "");
  if (!m?.[1] || !m[2]) return Number.NaN;
  return Number(m[1]) * (TIME_UNITS[m[2]] ?? Number.NaN);
}

export function parseWrk(out: string): Omit<WrkResult, "connections" | "gzip" | "durationS"> {
  const percentile = (p: string) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out)?.[1]);
  const latency = /^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(out);
  const total = /(\d+) requests in ([\d.]+\w+), ([\d.]+)(\w+) read/.exec(out);
  const requests = Number(total?.[1] ?? 0);
  const bytes = Number(total?.[3] ?? 0) * (SIZE_UNITS[total?.[4] ?? "B"] ?? 1);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests,
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    avgMs: ms(latency?.[1]),
    p50Ms: percentile("50"),
    p75Ms: percentile("75"),
    p90Ms: percentile("90"),
    p99Ms: percentile("99"),
    maxMs: ms(latency?.[3]),
    bytesPerResponse: requests > 0 ? Math.round(bytes / requests) : 0,
    errors: {
      connect: Number(socket?.[1] ?? 0),
      read: Number(socket?.[2] ?? 0),
      write: Number(socket?.[3] ?? 0),
      timeout: Number(socket?.[4] ?? 0),
      non2xx: Number(non2xx?.[1] ?? 0),
    },
  };
}

export async function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    `-c${opts.connections}`,
    `-t${opts.threads}`,
    `-d${opts.durationS}s`,
    `--timeout`,
    `${opts.timeoutS ?? 10}s`,
    "--latency",
    ...(opts.gzip ? ["-H", "Accept-Encoding: gzip"] : []),
    opts.url,
  ];
  const proc = spawnProc("wrk", "wrk", args);
  const code = await proc.exited;
  const out = proc.output();
  if (code !== 0) throw new Error(`wrk ${args.join(" ")} exited ${String(code)}:\n${out}`);
  const parsed = parseWrk(out);
  if (parsed.requests === 0) {
    // No request finished within the run: there is no distribution, and wrk's zeros must not read as fast.
    for (const k of ["avgMs", "p50Ms", "p75Ms", "p90Ms", "p99Ms", "maxMs"] as const) parsed[k] = Number.NaN;
  }
  return { connections: opts.connections, gzip: opts.gzip, durationS: opts.durationS, ...parsed };
}
