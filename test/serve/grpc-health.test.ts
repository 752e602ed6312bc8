import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HealthCheckResponse } from "../../src/grpc/protos.ts";
import { eventually, healthClient, httpServer, startRuntime, type HealthClient, type TestRuntime, type TestServer } from "../helpers.ts";

let upstream: TestServer;
let healthy = true;
let rt: TestRuntime;
let client: HealthClient;

function check(service: string): Promise<HealthCheckResponse> {
  return new Promise((resolve, reject) => client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res))));
}

beforeAll(async () => {
  upstream = await httpServer((_req, res) => {
    res.statusCode = healthy ? 200 : 500;
    res.end();
  });
  rt = await startRuntime({
    healthChecks: {
      dependencies: [
        { name: "api", type: "http", url: upstream.url, critical: true, interval: "500ms", timeout: "450ms" },
        { name: "extra", type: "tcp", address: "127.0.0.1:1", interval: "1m", timeout: "1s" },
      ],
    },
  });
  client = healthClient(rt.grpcAddress);
  await eventually(() => rt.runtime.store.view("api")?.status === "pass");
});

afterAll(async () => {
  client.close();
  await rt.runtime.stop();
  await upstream.close();
});

describe("grpc.health.v1 server", () => {
  it("answers Check for overall readiness, for one check, and NOT_FOUND for an unknown service", async () => {
    expect(await check("")).toEqual({ status: "SERVING" });
    expect(await check("api")).toEqual({ status: "SERVING" });
    expect(await check("extra")).toEqual({ status: "NOT_SERVING" });
    await expect(check("nope")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("streams changes to Watch", async () => {
    const stream = client.Watch({ service: "" });
    const seen: string[] = [];
    stream.on("data", (m: HealthCheckResponse) => seen.push(m.status));
    stream.on("error", () => undefined);
    await eventually(() => seen.length === 1);
    expect(seen).toEqual(["SERVING"]);
    healthy = false;
    await eventually(() => seen.length === 2);
    expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
    healthy = true;
    await eventually(() => seen.length === 3);
    expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    stream.cancel();
  });

  it("answers SERVICE_UNKNOWN on Watch for an unknown service and keeps the stream open", async () => {
    const stream = client.Watch({ service: "later" });
    const first = await new Promise<HealthCheckResponse>((resolve) => stream.once("data", resolve));
    expect(first.status).toBe("SERVICE_UNKNOWN");
    stream.on("error", () => undefined);
    stream.cancel();
  });

  it("counts requests, errors and durations by method and code", async () => {
    await eventually(async () => {
      const text = await rt.runtime.metrics.render(false);
      return /grpc_server_requests_total\{method="grpc.health.v1.Health\/Watch",code="CANCELLED"\} [1-9]/.test(text);
    });
    const text = await rt.runtime.metrics.render(false);
    expect(text).toMatch(/^grpc_server_requests_total\{method="grpc.health.v1.Health\/Check",code="OK"\} 3$/m);
    expect(text).toMatch(/^grpc_server_requests_total\{method="grpc.health.v1.Health\/Check",code="NOT_FOUND"\} 1$/m);
    expect(text).toMatch(/^grpc_server_errors_total\{method="grpc.health.v1.Health\/Check",code="NOT_FOUND"\} 1$/m);
    expect(text).not.toMatch(/grpc_server_errors_total\{[^}]*code="OK"/);
    expect(text).toMatch(/^grpc_server_request_duration_seconds_count\{method="grpc.health.v1.Health\/Check"\} 4$/m);
  });
});
