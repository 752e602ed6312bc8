import { Writable } from "node:stream";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { request } from "undici";
import { healthClientConstructor, type HealthCheckResponse } from "../src/grpc/protos.ts";
import { validateConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/types.ts";
import { createLogging, type LogSetup } from "../src/log.ts";
import { Runtime } from "../src/runtime.ts";

/** A log destination that keeps every line, for tests that read what was logged. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join("\n");
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

/** Validates a config document the way the CLI does, failing the test with the findings when it is invalid. */
export function configFrom(doc: Record<string, unknown>): Config {
  const result = validateConfig(structuredClone(doc));
  if (!result.ok) throw new Error(`test config invalid: ${JSON.stringify(result.errors)}`);
  return result.config;
}

/** Ports 0 everywhere so tests never collide, bound to loopback. */
export function withEphemeralPorts(doc: Record<string, unknown>): Record<string, unknown> {
  return {
    ...doc,
    metrics: { ...(doc.metrics as object), port: 0 },
    health: { ...(doc.health as object), port: 0 },
    grpcHealth: { ...(doc.grpcHealth as object), port: 0 },
    server: { address: "127.0.0.1", shutdownGracePeriod: "1s", ...(doc.server as object) },
  };
}

export interface TestRuntime {
  runtime: Runtime;
  logs: LogCapture;
  logging: LogSetup;
  metricsUrl: string;
  healthUrl: string;
  grpcAddress: string;
}

export async function startRuntime(doc: Record<string, unknown>): Promise<TestRuntime> {
  const config = configFrom(withEphemeralPorts(doc));
  const logs = new LogCapture();
  const logging = createLogging(config.logging, logs);
  const runtime = await Runtime.start(config, { logging, processMetrics: false });
  const a = runtime.addresses;
  return { runtime, logs, logging, metricsUrl: `http://${a.metrics}`, healthUrl: `http://${a.health}`, grpcAddress: a.grpc ?? "" };
}

export async function get(url: string, headers: Record<string, string> = {}, method: "GET" | "HEAD" | "POST" = "GET") {
  const res = await request(url, { method, headers });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

/** A port nothing listens on now, for a test that must know a server's port before the server can say it. */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** The value of one exact series in exposition text, or undefined when the series is absent. */
export function seriesValue(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Polls until `fn` returns a truthy value or the time runs out. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 5_000, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface TestServer {
  url: string;
  port: number;
  server: Server;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

/** A real HTTP server on loopback whose behaviour the test decides per request. */
export async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type HealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: HealthCheckResponse) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<HealthCheckResponse>;
};

/** A grpc.health.v1 client over plain TCP, built from the same proto the server serves. */
export function healthClient(address: string, options?: grpc.ChannelOptions): HealthClient {
  const Health = healthClientConstructor();
  // The generated constructor is untyped; the methods are those of the proto.
  return new Health(address, grpc.credentials.createInsecure(), options) as unknown as HealthClient;
}
