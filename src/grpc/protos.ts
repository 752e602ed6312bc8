import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PACKAGE_ROOT } from "../package-root.ts";

/** protos/ sits in the package's root, beside src/ and dist/. */
export const PROTOS_DIR = join(PACKAGE_ROOT, "protos");

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
