#!/usr/bin/env node
/*
 * Only what parses the arguments, validates the configuration and takes the signals is imported here: a bad
 * configuration exits 2 before any port opens, and everything else (logging, the runtime and its servers, the
 * `check` command) is loaded with import() once it is needed, so a cold start reads no more than it must before
 * the health server listens.
 */
import { parseArgs } from "node:util";
import { formatDuration } from "./config/duration.ts";
import { firstFindings } from "./config/findings.ts";
import { loadConfig, type LoadResult } from "./config/load.ts";
import type { Finding } from "./config/resolve.ts";
import type { Config } from "./config/types.ts";
import { errorMessage } from "./errors.ts";
import type { Logger } from "./log.ts";
import { scrub } from "./secret.ts";
import { ProcessSignals } from "./signals.ts";
import { VERSION } from "./version.ts";

const USAGE = `sidecar-exporter ${VERSION}
Prometheus metrics and aggregated health for the systems around a Kubernetes operator.

Usage:
  sidecar-exporter [--config FILE] [--print-config]   run the exporter
  sidecar-exporter check [--config FILE]              run every configured check once, print a table, exit 0 or 1
  sidecar-exporter --version | --help

Options:
  -c, --config FILE    YAML configuration (default: $SIDECAR_CONFIG, else built-in defaults)
      --print-config   print the effective configuration, secrets redacted, and exit
      --metrics-secure[=true|false]
                       serve /metrics over HTTPS with authentication (default port 8443), or not
  -v, --version        print the version and exit
  -h, --help           print this help and exit

Environment overrides: SIDECAR_METRICS_PORT, SIDECAR_METRICS_SECURE, SIDECAR_METRICS_SCRAPE_THREAD,
SIDECAR_HEALTH_PORT, SIDECAR_GRPC_HEALTH_PORT, SIDECAR_LOG_LEVEL, SIDECAR_LOG_FORMAT.

Exit codes: 0 ok, 1 runtime failure (or a failing check with 'check'), 2 invalid usage or configuration.
`;

/** Exit code for bad input, before anything has started. */
const EXIT_USAGE = 2;

function printFindings(kind: "error" | "warning", findings: Finding[]): void {
  const { shown, more } = firstFindings(findings);
  for (const f of shown) process.stderr.write(`  ${kind === "error" ? "✗" : "!"} ${f.path}: ${f.message}\n`);
  if (more > 0) process.stderr.write(`  … and ${more} more ${kind}${more === 1 ? "" : "s"}\n`);
}

async function loadOrExit(file: string | undefined): Promise<Extract<LoadResult, { ok: true }>> {
  const result = await loadConfig(file);
  const where = result.file ?? "the built-in defaults";
  if (!result.ok) {
    process.stderr.write(`sidecar-exporter: invalid configuration in ${where} (${result.errors.length} error${result.errors.length === 1 ? "" : "s"}); nothing was started:\n`);
    printFindings("error", result.errors);
    if (result.warnings.length > 0) printFindings("warning", result.warnings);
    process.exit(EXIT_USAGE);
  }
  if (result.warnings.length > 0) {
    process.stderr.write(`sidecar-exporter: ${result.warnings.length} warning${result.warnings.length === 1 ? "" : "s"} in ${where}:\n`);
    printFindings("warning", result.warnings);
  }
  return result;
}

/** The effective config in the same shape and units as the file: durations as "15s", secrets redacted. */
export function displayConfig(config: Config): unknown {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === "object" && !("toJSON" in value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k.endsWith("Ms") && typeof v === "number") out[k.slice(0, -2)] = formatDuration(v);
        else out[k] = walk(v);
      }
      return out;
    }
    return value;
  };
  return JSON.parse(JSON.stringify(walk(config)));
}

async function runChecksOnce(config: Config): Promise<number> {
  if (config.checks.length === 0) {
    process.stdout.write("no checks configured\n");
    return 0;
  }
  const [{ createLogging }, { CheckEngine }, { MetricRegistry }, { buildSources }, { SourceRegistry }, { CheckStore }, { startTracing }, { checkTarget }] = await Promise.all([
    import("./log.ts"),
    import("./checks/engine.ts"),
    import("./metrics/registry.ts"),
    import("./sources/index.ts"),
    import("./sources/registry.ts"),
    import("./state/checks.ts"),
    import("./tracing/provider.ts"),
    import("./health/debug-status.ts"),
  ]);
  const logging = createLogging({ ...config.logging, format: "json", level: "silent" });
  const tracing = await startTracing(logging.root);
  // Source and backup checks read source state, so every configured source is brought up to date once first.
  const sources = new SourceRegistry(await buildSources(config.sources, { logger: logging.root, metrics: new MetricRegistry({}, { processMetrics: false }), seriesLimit: config.limits.seriesPerSource }));
  await Promise.all(sources.names.flatMap((name) => sources.get(name)?.refresh() ?? []));
  const store = new CheckStore();
  const engine = new CheckEngine(store, { logger: logging.root, sources }, undefined);
  for (const spec of config.checks) engine.add(spec);
  const rows = (await engine.runAllOnce()).map(({ spec, result }) => [
    spec.name,
    spec.type + (spec.critical ? "*" : ""),
    result?.ok ? "pass" : "FAIL",
    result ? `${Math.round(result.durationMs)}ms` : "-",
    result?.ok ? (result.message ?? "") : (result?.message ?? "did not run"),
  ]);
  await Promise.all([engine.stop(), sources.stop()]);
  await tracing?.shutdown(config.server.shutdownGracePeriodMs);
  const header = ["NAME", "TYPE", "RESULT", "DURATION", "DETAIL"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ");
  const failed = rows.filter((r) => r[2] !== "pass").length;
  const table = `${line(header)}\n${rows.map(line).join("\n")}\n\n${rows.length - failed}/${rows.length} passed (* = critical); targets: ${config.checks.map(checkTarget).join(", ")}\n`;
  process.stdout.write(scrub(table));
  return failed === 0 ? 0 : 1;
}

/**
 * Warnings that say nothing a user can act on, logged at debug with the reason. DEP0123: grpc-js gives a Talos
 * endpoint's address as the TLS server name when the endpoint is an IP address, as talosconfig endpoints usually
 * are; Node ignores it for SNI and still checks the certificate against the address.
 */
const KNOWN_WARNINGS: Readonly<Record<string, string>> = {
  DEP0123: "grpc-js names an IP address as the TLS server name for a Talos endpoint given by address; the certificate is still checked against the address",
};

/**
 * Node's process warnings (a library's deprecation, a listener leak) become log lines in the configured format,
 * instead of bare text on stderr among the JSON. Node prints them with a listener of its own, which this replaces.
 */
function logProcessWarnings(log: Logger): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning: Error & { code?: string }) => {
    const fields = { warning: warning.name, ...(warning.code !== undefined && { code: warning.code }), detail: warning.message };
    const known = warning.code === undefined ? undefined : KNOWN_WARNINGS[warning.code];
    if (known !== undefined) log.debug({ ...fields, why: known }, "Node.js process warning, known and harmless");
    else log.warn(fields, "Node.js process warning");
  });
}

async function serve(config: Config, file: string | undefined): Promise<void> {
  // Before the first port opens: from here on no signal ends the process by Node's default action.
  const signals = new ProcessSignals();
  const [{ Runtime }, { stopOnSignals }] = await Promise.all([import("./runtime.ts"), import("./shutdown.ts")]);
  // The health server listens before logging and the rest are loaded, so the process is live from here on; a
  // failure to listen is logged as any other failure to start.
  const health = await Runtime.serveHealth(config).catch((err: unknown) => ({ failed: err }));
  const { createLogging } = await import("./log.ts");
  const logging = createLogging(config.logging);
  const log = logging.component("main");
  logProcessWarnings(log);
  let runtime: Awaited<ReturnType<typeof Runtime.start>>;
  try {
    if ("failed" in health) throw health.failed;
    runtime = await Runtime.start(config, { logging, health });
  } catch (err) {
    log.fatal({ err: errorMessage(err) }, "cannot start");
    process.exit(1);
  }
  // Told to stop while starting: readiness fails before anything could be routed here, and the stop is acted on
  // below, once everything that started can be stopped in order.
  const stoppedWhileStarting = signals.stopRequested !== undefined;
  if (stoppedWhileStarting) runtime.withdraw();
  // SIGHUP or a changed file re-reads the configuration; a SIGHUP that came while starting is honoured now.
  const { ConfigReloader } = await import("./reload.ts");
  const reloader = new ConfigReloader(file, runtime, logging.component("config"));
  await reloader.start();
  log.info({ version: VERSION, checks: config.checks.length, ...runtime.addresses }, "sidecar-exporter started");
  if (!stoppedWhileStarting) signals.onHangup(() => void reloader.reload("SIGHUP"));
  stopOnSignals(signals, runtime, log, { skipDelay: stoppedWhileStarting, onBegin: () => reloader.stop(), exit: (code) => process.exit(code) });
  // A bug in one handler must be seen, not kill the probe target of the operator's pod.
  process.on("unhandledRejection", (reason) => log.error({ err: errorMessage(reason) }, "unhandled promise rejection"));
}

/**
 * `--metrics-secure[=true|false]`, spelled as the operators spell it; it overrides metrics.secure like the
 * SIDECAR_METRICS_SECURE variable does. Returns the other arguments.
 */
function takeMetricsSecure(argv: string[]): string[] {
  return argv.filter((arg) => {
    const m = /^--metrics-secure(?:=(.*))?$/.exec(arg);
    if (!m) return true;
    const value = m[1] ?? "true";
    if (value !== "true" && value !== "false") {
      process.stderr.write(`sidecar-exporter: --metrics-secure takes true or false, not ${JSON.stringify(value)}\n`);
      process.exit(EXIT_USAGE);
    }
    process.env.SIDECAR_METRICS_SECURE = value;
    return false;
  });
}

async function main(rawArgv: string[]): Promise<void> {
  const argv = takeMetricsSecure(rawArgv);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        "print-config": { type: "boolean" },
        version: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    process.stderr.write(`sidecar-exporter: ${errorMessage(err)}\n\n${USAGE}`);
    process.exit(EXIT_USAGE);
  }
  const { values, positionals } = parsed;
  if (values.help) return void process.stdout.write(USAGE);
  if (values.version) return void process.stdout.write(`${VERSION}\n`);
  const command = positionals[0] ?? "run";
  if (!["run", "check"].includes(command) || positionals.length > 1) {
    process.stderr.write(`sidecar-exporter: unknown command "${positionals.join(" ")}"; use "check" or no command\n\n${USAGE}`);
    process.exit(EXIT_USAGE);
  }
  const file = values.config ?? (process.env.SIDECAR_CONFIG || undefined);
  const { config } = await loadOrExit(file);
  if (values["print-config"]) {
    const { stringify } = (await import("yaml")).default;
    return void process.stdout.write(scrub(stringify(displayConfig(config))));
  }
  if (command === "check") process.exit(await runChecksOnce(config));
  await serve(config, file);
}

main(process.argv.slice(2)).catch(async (err: unknown) => {
  const { default: pino } = await import("pino");
  pino({ base: undefined }).fatal({ err: errorMessage(err) }, "sidecar-exporter failed");
  process.exit(1);
});
