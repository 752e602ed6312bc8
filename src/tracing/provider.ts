import { context, diag, DiagLogLevel, trace, type DiagLogger } from "@opentelemetry/api";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { Logger } from "../log.ts";
import { VERSION } from "../version.ts";
import { otlpExporter } from "./exporter.ts";
import { tracingSettings } from "./settings.ts";

export const DEFAULT_SERVICE_NAME = "sidecar-exporter";

/** The SDK reports failed exports on every batch; one line per this long is enough to see a collector is down. */
const DIAG_LOG_EVERY_MS = 60_000;

export interface Tracing {
  /** Where spans go, without credentials. */
  readonly endpoint: string;
  /**
   * Exports the spans still queued, then stops and unregisters the provider. Resolves within `timeoutMs`
   * whether or not the collector answered. Safe to call more than once.
   */
  shutdown(timeoutMs: number): Promise<void>;
}

interface Active {
  provider: NodeTracerProvider;
  endpoint: string;
  users: number;
  logger: Logger;
}

/** The global provider is process-wide, so a second runtime in the same process shares the first one's. */
let active: Active | undefined;

/** The SDK's own warnings (failed exports, bad sampler values) as log lines, at most one a minute. */
function diagLogger(logger: Logger): DiagLogger {
  let lastAt = 0;
  let suppressed = 0;
  const log = (message: string, ...args: unknown[]): void => {
    const now = Date.now();
    if (now - lastAt < DIAG_LOG_EVERY_MS) {
      suppressed++;
      return;
    }
    lastAt = now;
    const detail = args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
    logger.warn({ detail: detail || undefined, ...(suppressed > 0 && { suppressed }) }, `opentelemetry: ${message}`);
    suppressed = 0;
  };
  const ignore = (): void => undefined;
  return { error: log, warn: log, info: ignore, debug: ignore, verbose: ignore };
}

function build(protocol: Parameters<typeof otlpExporter>[0]): NodeTracerProvider {
  // Later merges win: the SDK's defaults, then this program's name, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": DEFAULT_SERVICE_NAME, "service.version": VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  // The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, the batch sizes from OTEL_BSP_*.
  return new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(otlpExporter(protocol))] });
}

/**
 * Starts exporting spans when the standard OTEL_* variables ask for it, and returns undefined otherwise: then no
 * provider is registered and every span is the API's no-op. Logs one line saying which it is.
 */
export function startTracing(logger: Logger): Tracing | undefined {
  const settings = tracingSettings(process.env);
  if (!settings.enabled) {
    if (settings.problem) logger.warn({ why: settings.why }, "tracing is off: the OTEL_* settings cannot be used");
    else logger.debug({ why: settings.why }, "tracing is off");
    return undefined;
  }
  if (!active) {
    const provider = build(settings.protocol);
    diag.setLogger(diagLogger(logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
    // Registering also installs the AsyncLocalStorage context manager that makes upstream calls children of
    // their check or poll. No propagator: no request carries trace headers to an upstream.
    provider.register({ propagator: null });
    active = { provider, endpoint: settings.endpointShown, users: 0, logger };
    logger.info(
      { endpoint: settings.endpointShown, protocol: settings.protocol, sampler: process.env.OTEL_TRACES_SAMPLER?.trim() || "parentbased_always_on" },
      "tracing is on: spans are sent over OTLP/HTTP",
    );
  }
  const mine = active;
  mine.users++;
  let stopping: Promise<void> | undefined;
  return {
    endpoint: mine.endpoint,
    shutdown(timeoutMs) {
      stopping ??= release(mine, timeoutMs);
      return stopping;
    },
  };
}

async function release(mine: Active, timeoutMs: number): Promise<void> {
  mine.users--;
  if (mine.users > 0 || active !== mine) return;
  active = undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), Math.max(0, timeoutMs))));
  const done = mine.provider.shutdown().then(
    () => "done" as const,
    () => "failed" as const,
  );
  const outcome = await Promise.race([done, deadline]);
  clearTimeout(timer);
  if (outcome !== "done") mine.logger.warn({ timeoutMs }, "tracing: queued spans could not be exported before shutdown");
  trace.disable();
  context.disable();
  diag.disable();
}
