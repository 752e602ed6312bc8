import { context, ProxyTracerProvider, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from "@opentelemetry/api";
import { classifyError } from "../errors.ts";
import { errorMessage } from "../log.ts";
import { scrub } from "../secret.ts";
import type { SecretUrl } from "../secret-url.ts";
import { VERSION } from "../version.ts";

/**
 * Span helpers for checks, polls and upstream calls. With no provider registered every span here is the API's
 * non-recording span, so the cost is a few object allocations per run.
 *
 * Nothing here records exceptions or URLs: a span carries only names, templates, status codes and messages that
 * went through errorMessage(), which scrubs every secret the process knows.
 */

function tracer(): Tracer {
  return trace.getTracer("sidecar-exporter", VERSION);
}

/** What the API's global provider delegates to while no provider is registered. */
const NO_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether a tracer provider is registered. Without one every span is a no-op, so code that runs very often may
 * skip building its spans (and their attributes) altogether.
 */
export function tracingOn(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NO_PROVIDER;
}

/** The outcome a check run or a poll ends with; `message` is scrubbed before it reaches the span. */
export interface SpanOutcome {
  ok: boolean;
  reason?: string;
  message?: string;
}

/** A span for one check run or one poll. Calls made under activate(span, …) become its children. */
export function startSpan(name: string, attributes: Attributes): Span {
  return tracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes });
}

/** Runs `fn` with `span` as the active span, so spans started inside (also after awaits) are its children. */
export function activate<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/** Ends a check or poll span with `<prefix>.result` ok/failed, `<prefix>.reason` and, on failure, an ERROR status. */
export function finish(span: Span, prefix: "check" | "source", outcome: SpanOutcome): void {
  span.setAttribute(`${prefix}.result`, outcome.ok ? "ok" : "failed");
  if (!outcome.ok) {
    if (outcome.reason !== undefined) span.setAttribute(`${prefix}.reason`, outcome.reason);
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(outcome.message ?? outcome.reason ?? "failed") });
  }
  span.end();
}

/** Runs `fn` in a new active span and finishes it with the outcome: ok when `fn` resolves, failed when it throws. */
export async function inSpan<T>(name: string, prefix: "check" | "source", attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  const span = startSpan(name, attributes);
  try {
    const value = await activate(span, fn);
    finish(span, prefix, { ok: true });
    return value;
  } catch (err) {
    finish(span, prefix, { ok: false, reason: classifyError(err), message: errorMessage(err) });
    throw err;
  }
}

/** One request to something outside the process. */
export interface Upstream {
  /** The source, or "check" for a check's probe. */
  source: string;
  /** Talos node(s), or host[:port] of the server. */
  node: string;
  /** An RPC name or an HTTP method and route template, never a URL with its query: e.g. "GET /api/v2/tailnet/{tailnet}/devices". */
  operation: string;
  attributes?: Attributes;
}

/** An HTTP request as an Upstream: the route defaults to the URL's path; user info and query are never used. */
export function httpUpstream(source: string, method: string, url: SecretUrl, route?: string, attributes: Attributes = {}): Upstream {
  const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  return {
    source,
    node: url.host,
    // A path written in the config could hold a token; any value the process knows as a secret is scrubbed.
    operation: scrub(`${method} ${route ?? url.pathname}`),
    attributes: { "http.request.method": method, "server.address": url.hostname, "server.port": port, ...(route !== undefined && { "url.template": route }), ...attributes },
  };
}

/** A unary gRPC call as an Upstream; `method` is the full "package.Service/Method". */
export function grpcUpstream(source: string, node: string, method: string, attributes: Attributes = {}): Upstream {
  const slash = method.lastIndexOf("/");
  return {
    source,
    node,
    operation: method,
    attributes: { "rpc.system": "grpc", "rpc.service": method.slice(0, slash), "rpc.method": method.slice(slash + 1), ...attributes },
  };
}

/** Records the HTTP status; 4xx and 5xx mark the call failed, as OpenTelemetry's HTTP client conventions do. */
export function httpStatus(span: Span, status: number): void {
  span.setAttribute("http.response.status_code", status);
  if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR, message: `HTTP ${status}` });
}

/** Records the gRPC status code (0 is OK). */
export function grpcStatus(span: Span, code: number): void {
  span.setAttribute("rpc.grpc.status_code", code);
}

/**
 * Runs one upstream request in a client span, a child of the active check or poll span. The span ends when the
 * work settles: with the HTTP status when `statusOf` gives one, with an ERROR status when the work throws.
 */
export async function traced<T>(upstream: Upstream, work: (span: Span) => Promise<T>, statusOf?: (value: T) => number | undefined): Promise<T> {
  const span = tracer().startSpan(upstream.operation, {
    kind: SpanKind.CLIENT,
    attributes: { "upstream.source": upstream.source, "upstream.node": upstream.node, "upstream.operation": upstream.operation, ...upstream.attributes },
  });
  try {
    const value = await work(span);
    const status = statusOf?.(value);
    if (status !== undefined) httpStatus(span, status);
    return value;
  } catch (err) {
    span.setAttribute("error.type", classifyError(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(err) });
    throw err;
  } finally {
    span.end();
  }
}
