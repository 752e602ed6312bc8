import * as grpc from "@grpc/grpc-js";
import type { GrpcCheckSpec } from "../config/types.ts";
import { UpstreamError } from "../errors.ts";
import { healthClientConstructor, type HealthCheckResponse } from "../grpc/protos.ts";
import { reasonForGrpcError } from "../grpc/reason.ts";
import { grpcStatus, grpcUpstream, traced } from "../tracing/spans.ts";
import { readTlsMaterial } from "./tls-files.ts";
import type { ProberFactory } from "./types.ts";

/** The generated client's Check method, which proto-loader's client type does not spell out. */
type HealthCheckMethod = (
  request: { service: string },
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res: HealthCheckResponse) => void,
) => grpc.ClientUnaryCall;

/** Calls grpc.health.v1.Health/Check; passes on SERVING. */
export const grpcProber: ProberFactory<GrpcCheckSpec> = (spec) => {
  let client: grpc.Client | undefined;

  async function getClient(): Promise<grpc.Client> {
    if (client) return client;
    let credentials = grpc.credentials.createInsecure();
    if (spec.tls) {
      const m = await readTlsMaterial(spec.tls);
      credentials = grpc.credentials.createSsl(m.ca ?? null, m.key ?? null, m.cert ?? null, {
        rejectUnauthorized: !spec.tls.insecureSkipVerify,
      });
    }
    const Health = healthClientConstructor();
    client = new Health(spec.address, credentials, {
      ...(spec.tls?.serverName !== undefined && { "grpc.ssl_target_name_override": spec.tls.serverName }),
      // Fail fast rather than queue calls while the channel backs off between connection attempts.
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": Math.max(1_000, spec.intervalMs),
    });
    return client;
  }

  return {
    async probe(signal) {
      const c = await getClient();
      const response = await traced(grpcUpstream("check", spec.address, "grpc.health.v1.Health/Check"), (span) => new Promise<HealthCheckResponse>((resolve, reject) => {
        const call = (c as unknown as { Check: HealthCheckMethod }).Check.call(
          c,
          { service: spec.service },
          { deadline: Date.now() + spec.timeoutMs },
          (err, res) => {
            signal.removeEventListener("abort", cancel);
            grpcStatus(span, err ? err.code : grpc.status.OK);
            if (err) reject(new UpstreamError(`${grpc.status[err.code] ?? err.code}: ${err.details}`, reasonForGrpcError(err.code, err.details)));
            else resolve(res);
          },
        );
        const cancel = () => call.cancel();
        signal.addEventListener("abort", cancel, { once: true });
      }));
      if (response.status === "SERVING") return { ok: true, message: "SERVING" };
      return { ok: false, message: `status ${response.status}`, reason: "unhealthy" };
    },
    async close() {
      client?.close();
      client = undefined;
    },
  };
};
