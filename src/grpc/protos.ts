import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** protos/ sits beside src/ and dist/, so the same relative path works from sources and from the build. */
export const PROTOS_DIR = fileURLToPath(new URL("../../protos/", import.meta.url));

const cache = new Map<string, grpc.GrpcObject>();

export function loadProto(relativePath: string): grpc.GrpcObject {
  let pkg = cache.get(relativePath);
  if (!pkg) {
    const definition = protoLoader.loadSync(relativePath, {
      includeDirs: [PROTOS_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    pkg = grpc.loadPackageDefinition(definition);
    cache.set(relativePath, pkg);
  }
  return pkg;
}

export type HealthStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

export interface HealthCheckResponse {
  status: HealthStatus;
}

/** The generated client constructor for grpc.health.v1.Health. */
export function healthClientConstructor(): grpc.ServiceClientConstructor {
  const pkg = loadProto("grpc/health/v1/health.proto") as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return pkg.grpc.health.v1.Health;
}
