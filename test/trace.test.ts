import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProxyTracerProvider, trace } from "@opentelemetry/api";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { scrub } from "../src/secret.ts";
import { tracingSettings } from "../src/tracing/settings.ts";
import { eventually, httpServer, startRuntime, type TestRuntime, type TestServer } from "./helpers.ts";
import { startTailscaleSim, type TailscaleSim } from "./sim/tailscale.ts";
import { startTalosSim, talosconfigYaml, type TalosSim } from "./sim/talos.ts";

const CHECK_SECRET = "planted-check-bearer-7d1e";
const QUERY_SECRET = "planted-query-token-52ab";
const OTLP_HEADER_SECRET = "planted-otlp-header-c0ff";
const ERROR = 2;

interface Received {
  contentType: string | undefined;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

interface OtlpKeyValue {
  key: string;
  value: { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpKeyValue[];
  status?: { code?: number; message?: string };
}
interface OtlpExport {
  resourceSpans: { resource: { attributes: OtlpKeyValue[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

interface Span {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  attrs: Record<string, unknown>;
  status: { code?: number; message?: string };
  resource: Record<string, unknown>;
}

function flatten(kvs: OtlpKeyValue[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of kvs) {
    out[key] = value.stringValue ?? value.boolValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.doubleValue);
  }
  return out;
}

function spansOf(received: Received[]): Span[] {
  const out: Span[] = [];
  for (const r of received) {
    const doc = JSON.parse(r.body.toString("utf8")) as OtlpExport;
    for (const rs of doc.resourceSpans) {
      const resource = flatten(rs.resource.attributes);
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          out.push({
            name: s.name,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId || undefined,
            attrs: flatten(s.attributes),
            status: s.status ?? {},
            resource,
          });
        }
      }
    }
  }
  return out;
}

/** An OTLP/HTTP receiver, as a collector's otlp receiver on :4318 is one: POST /v1/traces. */
async function otlpReceiver(): Promise<TestServer & { received: Received[] }> {
  const received: Received[] = [];
  const server = await httpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.statusCode = 404;
        return res.end();
      }
      received.push({ contentType: req.headers["content-type"], headers: req.headers, body: Buffer.concat(chunks) });
      const json = req.headers["content-type"] === "application/json";
      res.setHeader("content-type", json ? "application/json" : "application/x-protobuf");
      res.end(json ? "{}" : Buffer.alloc(0));
    });
  });
  return Object.assign(server, { received });
}

function recording(): boolean {
  const span = trace.getTracer("probe").startSpan("probe");
  const on = span.isRecording();
  span.end();
  return on;
}

/** The OTEL_* variables of the environment the tests run in, set aside so each test decides its own. */
const savedEnv: Record<string, string | undefined> = {};
const OTEL_KEYS = () => Object.keys(process.env).filter((k) => k.startsWith("OTEL_"));

function setEnv(vars: Record<string, string>): void {
  for (const key of OTEL_KEYS()) delete process.env[key];
  Object.assign(process.env, vars);
}

beforeAll(() => {
  for (const key of OTEL_KEYS()) savedEnv[key] = process.env[key];
});

afterAll(() => {
  for (const key of OTEL_KEYS()) delete process.env[key];
  for (const [key, value] of Object.entries(savedEnv)) if (value !== undefined) process.env[key] = value;
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  // The API's global provider is process-wide; whatever a test left registered must not reach the next one.
  trace.disable();
});

describe("tracing off (no OTEL_* variables)", () => {
  it("registers no provider: every span is the API's non-recording no-op", async () => {
    setEnv({});
    const web = await httpServer((_req, res) => res.end("ok"));
    cleanups.push(() => web.close());
    const rt = await startRuntime({ healthChecks: { dependencies: [{ name: "web", type: "http", url: web.url, interval: "1m", timeout: "1s" }] } });
    cleanups.push(() => rt.runtime.stop());
    await eventually(() => rt.runtime.store.view("web")?.result);
    const provider = trace.getTracerProvider();
    expect(provider).toBeInstanceOf(ProxyTracerProvider);
    expect((provider as ProxyTracerProvider).getDelegate()).not.toBeInstanceOf(NodeTracerProvider);
    expect(recording()).toBe(false);
    expect(rt.logs.text).not.toContain("tracing is on");
  });
});

describe("tracing on (OTLP/HTTP to a receiver)", () => {
  let sim: TailscaleSim;
  let talos: TalosSim;
  let dir: string;
  let web: TestServer;
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let rt: TestRuntime;
  let spans: Span[];
  let payload: string;

  beforeAll(async () => {
    sim = await startTailscaleSim();
    talos = await startTalosSim();
    dir = await mkdtemp(join(tmpdir(), "trace-test-"));
    const talosconfig = join(dir, "talosconfig");
    await writeFile(talosconfig, talosconfigYaml(talos));
    web = await httpServer((req, res) => {
      res.statusCode = req.url?.startsWith("/broken") ? 503 : 200;
      res.end("ok");
    });
    receiver = await otlpReceiver();
    setEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_HEADERS: `x-collector-token=${OTLP_HEADER_SECRET}`,
      OTEL_SERVICE_NAME: "sidecar-under-test",
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=test,k8s.pod.name=operator-0",
      // Nothing is exported on the timer, so what arrives shows the flush at shutdown.
      OTEL_BSP_SCHEDULE_DELAY: "600000",
    });
    process.env.TRACE_TEST_TS_SECRET = sim.oauth.clientSecret;
    rt = await startRuntime({
      sources: {
        tailscale: {
          baseUrl: sim.url,
          tailnet: sim.tailnet,
          oauth: { clientId: sim.oauth.clientId, clientSecret: { env: "TRACE_TEST_TS_SECRET" }, scopes: ["devices:core:read"] },
          interval: "1m",
          timeout: "2s",
        },
        talos: { talosconfig, interval: "1m", timeout: "5s" },
      },
      healthChecks: {
        dependencies: [
          { name: "web", type: "http", critical: true, url: `${web.url}/healthz?token=${QUERY_SECRET}`, headers: { Authorization: `Bearer ${CHECK_SECRET}` }, interval: "1m", timeout: "2s" },
          { name: "broken", type: "http", url: `${web.url}/broken`, interval: "1m", timeout: "2s" },
          { name: "port", type: "tcp", address: `127.0.0.1:${web.port}`, interval: "1m", timeout: "2s" },
        ],
      },
    });
    await eventually(() => rt.runtime.store.views().every((v) => v.result !== undefined), 10_000);
    expect(recording()).toBe(true);
    // Batched, not sent per span.
    expect(receiver.received).toHaveLength(0);
    await rt.runtime.stop();
    spans = spansOf(receiver.received);
    payload = receiver.received.map((r) => r.body.toString("utf8")).join("\n");
  });

  afterAll(async () => {
    await rt?.runtime.stop();
    await sim?.close();
    await talos?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await web?.close();
    await receiver?.close();
    delete process.env.TRACE_TEST_TS_SECRET;
  });

  const one = (name: string): Span => {
    const found = spans.filter((s) => s.name === name);
    expect(found.map((s) => s.name), `spans named ${name} among ${spans.map((s) => s.name).join(", ")}`).toEqual([name]);
    return found[0] as Span;
  };

  it("logs once where it sends, and unregisters the provider on shutdown", () => {
    const lines = rt.logs.records().filter((r) => r.msg === "tracing is on: spans are sent over OTLP/HTTP");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ endpoint: `${receiver.url}/v1/traces`, protocol: "http/json" });
    expect(recording()).toBe(false);
  });

  it("flushes the queued spans on shutdown, as OTLP/HTTP JSON with the configured headers and resource", () => {
    expect(receiver.received.length).toBeGreaterThan(0);
    for (const r of receiver.received) {
      expect(r.contentType).toBe("application/json");
      expect(r.headers["x-collector-token"]).toBe(OTLP_HEADER_SECRET);
    }
    expect(spans[0]?.resource).toMatchObject({
      "service.name": "sidecar-under-test",
      "deployment.environment.name": "test",
      "k8s.pod.name": "operator-0",
      "telemetry.sdk.language": "nodejs",
    });
  });

  it("records a passing check with its request as a child span", () => {
    const check = one("check web");
    expect(check.attrs).toEqual({ "check.name": "web", "check.type": "http", "check.critical": true, "check.result": "ok" });
    expect(check.status.code ?? 0).not.toBe(ERROR);
    const call = one("GET /healthz");
    expect(call.traceId).toBe(check.traceId);
    expect(call.parentSpanId).toBe(check.spanId);
    expect(call.attrs).toMatchObject({
      "upstream.source": "check",
      "upstream.node": `127.0.0.1:${web.port}`,
      "upstream.operation": "GET /healthz",
      "http.request.method": "GET",
      "http.response.status_code": 200,
      "server.port": web.port,
    });
  });

  it("marks a failing check and its request with an ERROR status and the reason", () => {
    const check = one("check broken");
    expect(check.attrs).toMatchObject({ "check.name": "broken", "check.critical": false, "check.result": "failed", "check.reason": "unhealthy" });
    expect(check.status).toMatchObject({ code: ERROR, message: "unexpected status 503" });
    const call = one("GET /broken");
    expect(call.parentSpanId).toBe(check.spanId);
    expect(call.attrs["http.response.status_code"]).toBe(503);
    expect(call.status.code).toBe(ERROR);
  });

  it("records a poll with each upstream request, named by route template, as children", () => {
    const poll = one("poll tailscale");
    expect(poll.attrs).toEqual({ "source.name": "tailscale", "source.result": "ok" });
    const token = one("POST /api/v2/oauth/token");
    const devices = one("GET /api/v2/tailnet/{tailnet}/devices");
    for (const call of [token, devices]) {
      expect(call.traceId).toBe(poll.traceId);
      expect(call.parentSpanId).toBe(poll.spanId);
      expect(call.attrs).toMatchObject({ "upstream.source": "tailscale", "upstream.node": `127.0.0.1:${sim.port}`, "http.response.status_code": 200 });
    }
    expect(devices.attrs["url.template"]).toBe("/api/v2/tailnet/{tailnet}/devices");
    // Checks and polls are separate traces.
    expect(poll.traceId).not.toBe(one("check web").traceId);
  });

  it("records each Talos RPC with its nodes and gRPC status as a child of the poll", () => {
    const poll = one("poll talos");
    expect(poll.attrs).toEqual({ "source.name": "talos", "source.result": "ok" });
    const nodes = talos.model.nodes.map((n) => n.name).join(",");
    for (const rpc of ["Version", "ServiceList", "EtcdMemberList", "EtcdStatus"]) {
      const call = one(`machine.MachineService/${rpc}`);
      expect(call.parentSpanId).toBe(poll.spanId);
      expect(call.attrs).toMatchObject({
        "upstream.source": "talos",
        "upstream.node": nodes,
        "upstream.operation": `machine.MachineService/${rpc}`,
        "rpc.system": "grpc",
        "rpc.method": rpc,
        "rpc.grpc.status_code": 0,
        "talos.endpoint": talos.address,
      });
    }
  });

  it("records a TCP check's connection", () => {
    const check = one("check port");
    const call = one("TCP connect");
    expect(call.parentSpanId).toBe(check.spanId);
    expect(call.attrs).toMatchObject({ "upstream.source": "check", "upstream.node": `127.0.0.1:${web.port}` });
  });

  it("sends no credential and no URL query anywhere", () => {
    const issued = sim.tokens.map((t) => t.token);
    expect(issued.length).toBeGreaterThan(0);
    // The base64 body of the Talos client key, the part that is secret.
    const talosKey = talos.clientCert.keyPem.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    for (const secret of [CHECK_SECRET, QUERY_SECRET, OTLP_HEADER_SECRET, sim.oauth.clientSecret, ...issued, talosKey.slice(0, 40)]) {
      expect(payload).not.toContain(secret);
      expect(rt.logs.text).not.toContain(secret);
    }
    expect(payload).not.toContain(sim.tailnet);
    expect(payload).not.toContain("token=");
  });
});

describe("tracing on, default protocol", () => {
  it("sends OTLP/HTTP protobuf under the default service name", async () => {
    const receiver = await otlpReceiver();
    cleanups.push(() => receiver.close());
    const web = await httpServer((_req, res) => res.end("ok"));
    cleanups.push(() => web.close());
    setEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces` });
    const rt = await startRuntime({
      healthChecks: { dependencies: [{ name: "web", type: "http", url: web.url, headers: { Authorization: `Bearer ${CHECK_SECRET}` }, interval: "1m", timeout: "1s" }] },
    });
    cleanups.push(() => rt.runtime.stop());
    await eventually(() => rt.runtime.store.view("web")?.result);
    await rt.runtime.stop();
    expect(receiver.received.length).toBeGreaterThan(0);
    const body = Buffer.concat(receiver.received.map((r) => r.body));
    expect(receiver.received.every((r) => r.contentType === "application/x-protobuf")).toBe(true);
    // Protobuf strings are their UTF-8 bytes, so names can be found without decoding the message.
    expect(body.includes("check web")).toBe(true);
    expect(body.includes("sidecar-exporter")).toBe(true);
    expect(body.includes(CHECK_SECRET)).toBe(false);
  });
});

describe("tracingSettings", () => {
  it("is off without an endpoint, when the SDK is disabled, or when the exporter is none", () => {
    expect(tracingSettings({})).toMatchObject({ enabled: false });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "  " })).toMatchObject({ enabled: false });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "TRUE" })).toMatchObject({ enabled: false, why: "OTEL_SDK_DISABLED is true" });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" })).toMatchObject({ enabled: false });
  });

  it("resolves the endpoint as the OTLP exporter does and shows it without credentials", () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector.monitoring:4318/" })).toEqual({
      enabled: true,
      protocol: "http/protobuf",
      endpointShown: "http://otel-collector.monitoring:4318/v1/traces",
    });
    expect(
      tracingSettings({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://user:hunter2-secret@collector.example/custom/traces?key=q-secret-123",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      }),
    ).toEqual({ enabled: true, protocol: "http/json", endpointShown: "https://collector.example/custom/traces" });
  });

  it("remembers header values and endpoint passwords as secrets, so logs are scrubbed of them", () => {
    tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://u:pw-in-url-9f2@c:4318", OTEL_EXPORTER_OTLP_HEADERS: "api-key=hdr%20value-81c,other=plain-value-3aa" });
    expect(scrub("a pw-in-url-9f2 b hdr value-81c c plain-value-3aa")).toBe("a [REDACTED] b [REDACTED] c [REDACTED]");
  });

  it("refuses what it cannot speak, with the reason", () => {
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toMatchObject({ enabled: false, problem: true, why: expect.stringContaining("4318") });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" })).toMatchObject({ enabled: false, problem: true });
    expect(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "zipkin" })).toMatchObject({ enabled: false, problem: true });
  });
});
