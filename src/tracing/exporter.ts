import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPExporterBase } from "@opentelemetry/otlp-exporter-base";
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from "@opentelemetry/otlp-exporter-base/node-http";
import { ProtobufTraceSerializer, TraceExporterMetricsHelper } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-node";
import type { OtlpProtocol } from "./settings.ts";

/**
 * OTLP/HTTP with protobuf bodies. The HTTP exporter package only serialises JSON; this pairs its transport
 * (endpoint, headers, timeout, compression and TLS files from the OTEL_EXPORTER_OTLP_* variables, retries) with
 * the protobuf serialiser from the same release.
 */
class ProtobufTraceExporter extends OTLPExporterBase<ReadableSpan[]> implements SpanExporter {
  constructor() {
    const options = convertLegacyHttpOptions({}, "TRACES", "v1/traces", { "Content-Type": "application/x-protobuf" });
    super(createOtlpHttpExportDelegate(options, ProtobufTraceSerializer, "otlp_http_span_exporter", TraceExporterMetricsHelper, undefined));
  }
}

/** The span exporter for the protocol OTEL_EXPORTER_OTLP_PROTOCOL names; everything else it reads from the environment. */
export function otlpExporter(protocol: OtlpProtocol): SpanExporter {
  return protocol === "http/json" ? new OTLPTraceExporter() : new ProtobufTraceExporter();
}
