import { createServer } from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { HealthModel } from "../health/model.ts";
import type { Logger } from "../log.ts";
import type { MetricHandles } from "../metrics/registry.ts";
import { loadProto, type HealthStatus } from "../grpc/protos.ts";
import { ConnectionCap, type DropReport } from "./connection-cap.ts";
import { bind, IDLE_TIMEOUT_MS } from "./listen.ts";

const CHECK = "grpc.health.v1.Health/Check";
const WATCH = "grpc.health.v1.Health/Watch";
/** How often a connection is pinged, and how long the answer may take: a peer gone without a word stops answering. */
const KEEPALIVE_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;

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
  /** Passes on each connection closed to stay within limits.maxConnections. */
  onDrop(report: DropReport): void;
  close(graceMs: number): Promise<void>;
}

export interface GrpcLimits {
  /** Connections open at once (limits.maxConnections). */
  maxConnections?: number;
  /** Time a connection may stay open with no stream open. */
  idleTimeoutMs?: number;
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
  limits: GrpcLimits = {},
): Promise<GrpcHealthServer> {
  const pkg = loadProto("grpc/health/v1/health.proto") as unknown as {
    grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } };
  };
  const idleTimeoutMs = limits.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  const server = new grpc.Server({
    "grpc.max_concurrent_streams": 100,
    // GOAWAY to a connection with no stream open for this long; an open Watch is a stream, so it stays.
    "grpc.max_connection_idle_ms": idleTimeoutMs,
    "grpc.keepalive_time_ms": KEEPALIVE_MS,
    "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
  });
  // grpc-js's idle timeout cannot close a connection that never finished its HTTP/2 preface, nor can it cap the
  // connections: the port is this net.Server's, which hands grpc-js the connections the cap admits. The cap closes
  // what is left at rest after twice the idle timeout, so a client that talks HTTP/2 gets its GOAWAY first.
  const connections = new ConnectionCap({ max: limits.maxConnections ?? Infinity, idleTimeoutMs: 2 * idleTimeoutMs, stalledTimeoutMs: 2 * idleTimeoutMs });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const listener = createServer((socket) => {
    connections.admit(socket);
    if (!socket.destroyed) injector.injectConnection(socket);
  });
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
      connections.touch(call.getPeer());
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
      // grpc-js names the peer as address:port, as the cap does.
      const release = connections.hold(call.getPeer(), call);
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
        release();
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

  const bound = await bind(listener, "gRPC health", host, port, "grpcHealth.port (or SIDECAR_GRPC_HEALTH_PORT)").catch((err: unknown) => {
    connections.stop();
    throw err;
  });
  logger.debug({ port: bound.port }, "gRPC health server listening");

  return {
    address: bound.address,
    port: bound.port,
    onDrop: (report) => connections.onDrop(report),
    close(graceMs) {
      // Watchers learn the final NOT_SERVING and see their stream end cleanly before the server goes.
      for (const [call, { send, done }] of [...watches]) {
        send(); // the model is shutting down by now, so this is NOT_SERVING unless already sent
        call.end();
        done(grpc.status.OK);
      }
      connections.stop();
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          connections.closeAll();
          resolve();
        }, graceMs);
        force.unref();
        // Resolves once every connection is gone: grpc-js closes its sessions with GOAWAY once their streams have
        // ended, which it cannot do for a connection that never finished its preface; those are closed here.
        listener.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.tryShutdown(() => undefined);
        connections.closeUnused();
      });
    },
  };
}
