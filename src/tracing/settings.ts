import { rememberSecret } from "../secret.ts";
import { rememberUrlCredentials } from "../secret-url.ts";

export type OtlpProtocol = "http/protobuf" | "http/json";

/** What the standard OTEL_* variables ask for. Tracing is off unless an OTLP endpoint is given. */
export type TracingSettings =
  | { enabled: false; why: string; problem?: boolean }
  | {
      enabled: true;
      protocol: OtlpProtocol;
      /** Where spans are sent, without user info, query or fragment: safe to log. */
      endpointShown: string;
    };

const PROTOCOLS: readonly string[] = ["http/protobuf", "http/json"];

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** scheme://host/path of a URL: user info, query and fragment can carry credentials and are left out. */
export function shownUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * Values of OTEL_EXPORTER_OTLP_HEADERS (`k1=v1,k2=v2`, values percent-encoded) and the credentials of the
 * endpoint (a password, tokens in its query) are remembered as secrets, so that no log line can carry them even if an SDK message quotes them.
 */
function rememberCredentials(env: NodeJS.ProcessEnv, url: URL): void {
  for (const raw of [env.OTEL_EXPORTER_OTLP_HEADERS, env.OTEL_EXPORTER_OTLP_TRACES_HEADERS]) {
    for (const pair of (raw ?? "").split(",")) {
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const value = pair.slice(eq + 1).trim();
      rememberSecret(value);
      try {
        rememberSecret(decodeURIComponent(value));
      } catch {
        // Not percent-encoded after all; the raw value is remembered already.
      }
    }
  }
  rememberUrlCredentials(url);
}

/**
 * Reads the OpenTelemetry SDK's own variables: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER, the OTLP endpoint (the
 * traces-specific one as given, else the general one plus /v1/traces, as the OTLP exporter resolves them) and
 * the protocol. Only OTLP over HTTP is spoken; "grpc" is refused rather than sent to a port that expects it.
 */
export function tracingSettings(env: NodeJS.ProcessEnv): TracingSettings {
  if (nonEmpty(env.OTEL_SDK_DISABLED)?.toLowerCase() === "true") return { enabled: false, why: "OTEL_SDK_DISABLED is true" };
  const exporters = nonEmpty(env.OTEL_TRACES_EXPORTER)?.split(",").map((e) => e.trim().toLowerCase());
  if (exporters?.includes("none")) return { enabled: false, why: "OTEL_TRACES_EXPORTER is none" };
  if (exporters && !exporters.includes("otlp")) {
    return { enabled: false, why: `OTEL_TRACES_EXPORTER=${exporters.join(",")} is not supported; only otlp is`, problem: true };
  }
  const specific = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const general = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (specific === undefined && general === undefined) return { enabled: false, why: "no OTEL_EXPORTER_OTLP_ENDPOINT" };
  const variable = specific !== undefined ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
  let url: URL;
  try {
    url = specific !== undefined ? new URL(specific) : new URL(`${(general as string).replace(/\/+$/, "")}/v1/traces`);
  } catch {
    return { enabled: false, why: `${variable} is not a URL`, problem: true };
  }
  rememberCredentials(env, url);
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { enabled: false, why: `${variable} must be an http:// or https:// URL (OTLP over HTTP, port 4318), not ${url.protocol}`, problem: true };
  }
  const protocol = (nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_PROTOCOL) ?? "http/protobuf").toLowerCase();
  if (!PROTOCOLS.includes(protocol)) {
    return {
      enabled: false,
      why: `OTLP protocol "${protocol}" is not supported; use http/protobuf (the default) or http/json, sent to the collector's OTLP/HTTP port 4318`,
      problem: true,
    };
  }
  return { enabled: true, protocol: protocol as OtlpProtocol, endpointShown: shownUrl(url) };
}
