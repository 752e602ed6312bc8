/**
 * Spawn to the first /healthz 200, compiled and under tsx, with the full configuration and with none.
 *
 *   node --import tsx bench/cold-start.ts [--runs 5] [--tsx]
 *
 * runs this phase on its own against the 50k simulators: compiled only, unless --tsx.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compileExporter, imageNodeFlags } from "./compiled.ts";
import { log } from "./log.ts";
import { median, type Results } from "./report.ts";
import { freePorts, httpGet, installCleanup, ROOT, sleep, spawnProc, stopAll } from "./servers.ts";
import { exporterConfig, SCALES, startUpstreams, type Upstreams } from "./workload.ts";

/**
 * Spawn to the first /healthz 200: with the full configuration (sources and checks) or with none (every default,
 * the ports from the environment).
 */
async function coldStart(up: Upstreams, command: string[], full: boolean): Promise<number> {
  const [metrics = 0, health = 0, grpc = 0] = await freePorts(3);
  const config = full ? exporterConfig(up, { metrics, health, grpc }, { name: "cold-start" }) : undefined;
  const env: Record<string, string> = config
    ? { ...config.env, SIDECAR_LOG_FORMAT: "json" }
    : { SIDECAR_METRICS_PORT: String(metrics), SIDECAR_HEALTH_PORT: String(health), SIDECAR_GRPC_HEALTH_PORT: String(grpc), SIDECAR_LOG_LEVEL: "warn", SIDECAR_CONFIG: "" };
  const url = `http://127.0.0.1:${health}/healthz`;
  const started = performance.now();
  const proc = spawnProc("cold-start", process.execPath, [...command, ...(config ? ["--config", config.file] : [])], { env });
  try {
    for (;;) {
      if (!proc.running) throw new Error(`exporter exited during cold start:\n${proc.output()}`);
      const ok = await httpGet(url, {}, 5_000).then(
        (a) => a.status === 200,
        () => false,
      );
      if (ok) return performance.now() - started;
      if (performance.now() - started > 60_000) throw new Error(`no /healthz 200 within 60 s:\n${proc.output()}`);
      await sleep(5);
    }
  } finally {
    await proc.stop();
  }
}

/**
 * `runs` starts compiled with the full configuration; a few more compiled with none and under tsx, to compare
 * (with `withTsx` false, as many compiled with none and none under tsx).
 */
export async function coldStartPhase(up: Upstreams, compiledCli: string | undefined, runs: number, withTsx = true): Promise<Results["coldStart"]> {
  log(`cold start: ${compiledCli ? `compiled with the full configuration (${runs} runs), with none` : ""}${withTsx || !compiledCli ? `${compiledCli ? ", and " : ""}under tsx` : ""}`);
  const out: Results["coldStart"] = { compiledMs: [], compiledNoConfigMs: [], tsxMs: [] };
  const tsx = ["--import", "tsx", join(ROOT, "src/cli.ts")];
  // As the image's entrypoint runs it, V8 flags included.
  const compiled = compiledCli === undefined ? [] : [...imageNodeFlags(), compiledCli];
  for (let i = 0; i < runs; i++) {
    if (compiledCli) {
      out.compiledMs.push(await coldStart(up, compiled, true));
      await sleep(300);
    }
    if (i % 2 === 0 || !compiledCli || !withTsx) {
      if (compiledCli) {
        out.compiledNoConfigMs.push(await coldStart(up, compiled, false));
        await sleep(300);
      }
      if (withTsx || !compiledCli) {
        out.tsxMs.push(await coldStart(up, tsx, true));
        await sleep(300);
      }
    }
  }
  const fmt = (xs: number[]) => xs.map((m) => m.toFixed(0)).join(", ");
  log(`  compiled ${fmt(out.compiledMs)} ms; compiled, no configuration ${fmt(out.compiledNoConfigMs)} ms; tsx ${fmt(out.tsxMs)} ms`);
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, tsx: { type: "boolean", default: false } } });
  let up: Upstreams | undefined;
  installCleanup(async () => {
    await stopAll();
    await up?.close();
  });
  const compiled = compileExporter();
  up = await startUpstreams(SCALES["50k"]);
  try {
    const r = await coldStartPhase(up, compiled.cli, Number(values.runs), values.tsx);
    const line = (what: string, xs: number[]) => (xs.length > 0 ? `${what}: median ${median(xs).toFixed(0)} ms (${xs.map((m) => m.toFixed(0)).join(", ")})\n` : "");
    process.stdout.write(line("compiled, 50k configuration", r.compiledMs) + line("compiled, no configuration", r.compiledNoConfigMs) + line("tsx, 50k configuration", r.tsxMs));
  } finally {
    await up.close();
    compiled.remove();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
