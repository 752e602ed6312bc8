import * as grpc from "@grpc/grpc-js";
import type { HealthModel } from "../health/model.ts";
import type { Logger } from "../log.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import { loadProto, type HealthStatus } from "../grpc/protos.ts";

const CHECK = "grpc.health.v1.Health/Check";
const WATCH = "grpc.health.v1.Health/Watch";

interface HealthRequest {
  service: string;
}

/** The answer for one service name; undefined when no such service exists. */
function statusFor(model: HealthModel, service: string): HealthStatus | undefined {
  // Watchers of "" are told on every change of any check: ready() spares them a walk over all of them.
  if (service === "") return model.ready() ? "SERVING" : "NOT_SERVING";
  const view = model.check(service);
  if (!view) return undefined;
  return view.status === "pass" && !model.shuttingDown ? "SERVING" : "NOT_SERVING";
}

export interface GrpcHealthServer {
  address: string;
  port: number;
  close(graceMs: number): Promise<void>;
}

/**
 * grpc.health.v1: service "" is overall readiness, "<check>" is that check. Check answers NOT_FOUND for an
 * unknown service; Watch answers SERVICE_UNKNOWN and keeps watching, as the protocol specifies.
 */
export async function startGrpcHealth(
  model: HealthModel,
  host: string,
  port: number,
  metrics: MetricHandles,
  logger: Logger,
): Promise<GrpcHealthServer> {
  const pkg = loadProto("grpc/health/v1/health.proto") as unknown as {
    grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } };
  };
  const server = new grpc.Server({ "grpc.max_concurrent_streams": 100 });
  /** Open Watch streams: how to send the current status, and how to detach from the model and record the end. */
  const watches = new Map<grpc.ServerWritableStream<HealthRequest, { status: HealthStatus }>, { send: () => void; done: (code: grpc.status) => void }>();

  const finish = (method: string, started: number, code: grpc.status) => {
    const codeName = grpc.status[code] ?? String(code);
    metrics.grpcServerRequests.inc({ method, code: codeName });
    metrics.grpcServerDuration.observe({ method }, (performance.now() - started) / 1000);
    if (code !== grpc.status.OK) metrics.grpcServerErrors.inc({ method, code: codeName });
  };

  server.addService(pkg.grpc.health.v1.Health.service, {
    Check(call: grpc.ServerUnaryCall<HealthRequest, { status: HealthStatus }>, callback: grpc.sendUnaryData<{ status: HealthStatus }>) {
      const started = performance.now();
      const status = statusFor(model, call.request.service);
      if (status === undefined) {
        finish(CHECK, started, grpc.status.NOT_FOUND);
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
        return;
      }
      finish(CHECK, started, grpc.status.OK);
      callback(null, { status });
    },
    Watch(call: grpc.ServerWritableStream<HealthRequest, { status: HealthStatus }>) {
      const started = performance.now();
      const service = call.request.service;
      let last: HealthStatus | undefined;
      const send = () => {
        const status = statusFor(model, service) ?? "SERVICE_UNKNOWN";
        if (status !== last) {
          last = status;
          call.write({ status });
        }
      };
      const done = (code: grpc.status) => {
        if (!watches.delete(call)) return;
        model.off("change", send);
        finish(WATCH, started, code);
      };
      watches.set(call, { send, done });
      model.on("change", send);
      call.on("cancelled", () => done(grpc.status.CANCELLED));
      call.on("error", () => done(grpc.status.CANCELLED));
      send();
    },
  });

  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(new Error(`gRPC health server cannot listen on ${host}:${port}: ${err.message}; set grpcHealth.port to a free port`));
      else resolve(p);
    });
  });
  logger.debug({ port: boundPort }, "gRPC health server listening");

  return {
    address: `${host.includes(":") ? `[${host}]` : host}:${boundPort}`,
    port: boundPort,
    close(graceMs) {
      // Watchers learn the final NOT_SERVING and see their stream end cleanly before the server goes.
      for (const [call, { send, done }] of [...watches]) {
        send(); // the model is shutting down by now, so this is NOT_SERVING unless already sent
        call.end();
        done(grpc.status.OK);
      }
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
