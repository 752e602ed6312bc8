import type { CheckSpec } from "../config/types.ts";
import { backupProber } from "./backup.ts";
import { grpcProber } from "./grpc.ts";
import { httpProber } from "./http.ts";
import { sourceProber } from "./source.ts";
import { tcpProber } from "./tcp.ts";
import type { ProbeContext, Prober } from "./types.ts";

/** The one place that maps a check type to its prober. */
export function createProber(spec: CheckSpec, ctx: ProbeContext): Prober {
  switch (spec.type) {
    case "http":
      return httpProber(spec, ctx);
    case "tcp":
      return tcpProber(spec, ctx);
    case "grpc":
      return grpcProber(spec, ctx);
    case "source":
      return sourceProber(spec, ctx);
    case "backup":
      return backupProber(spec, ctx);
  }
}
