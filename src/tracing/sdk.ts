/**
 * The OpenTelemetry SDK side of tracing: building, registering and tearing down the global provider. Loaded
 * only when the OTEL_* variables turn tracing on, so a process without them never reads the SDK's modules.
 */
import { context, diag, DiagLogLevel, trace, type DiagLogger } from "@opentelemetry/api";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import type { Logger } from "../log.ts";
import { VERSION } from "../version.ts";
import { otlpExporter } from "./exporter.ts";
import type { OtlpProtocol } from "./settings.ts";

export const DEFAULT_SERVICE_NAME = "sidecar-exporter";

/** The SDK reports failed exports on every batch; one line per this long is enough to see a collector is down. */
const DIAG_LOG_EVERY_MS = 60_000;

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

/** A registered provider; `shutdown` exports what is queued and unregisters it. */
export interface RegisteredProvider {
  shutdown(): Promise<void>;
}

/**
 * Builds the provider and registers it globally. Registering also installs the AsyncLocalStorage context
 * manager that makes upstream calls children of their check or poll. No propagator: no request carries trace
 * headers to an upstream.
 */
export function registerProvider(protocol: OtlpProtocol, logger: Logger): RegisteredProvider {
  // Later merges win: the SDK's defaults, then this program's name, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": DEFAULT_SERVICE_NAME, "service.version": VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  // The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, the batch sizes from OTEL_BSP_*.
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(otlpExporter(protocol))] });
  diag.setLogger(diagLogger(logger), { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
  provider.register({ propagator: null });
  return { shutdown: () => provider.shutdown() };
}

/** Unregisters everything registerProvider installed, whether or not its shutdown finished. */
export function unregisterProvider(): void {
  trace.disable();
  context.disable();
  diag.disable();
}
