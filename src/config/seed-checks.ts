import type { RawCheck } from "./schema.ts";

/**
 * The custom checks the operators' seed ConfigMaps name without a type. Each gets a documented default so those
 * ConfigMaps load unchanged; any field given in the file wins over these.
 */
export const SEED_CHECK_DEFAULTS: Readonly<Record<string, Partial<RawCheck>>> = {
  // The Tailscale gateway operator's extension server answers grpc.health.v1 on its own port.
  "extension-server-grpc": { type: "grpc", address: "localhost:5005", service: "" },
  // Passes when the Tailscale source is up and the devices it is told to watch are online.
  "tailscale-connectivity": { type: "source", source: "tailscale" },
  // Passes when the Kubernetes source sees the operator's service registry (its custom resources).
  "service-registry": { type: "source", source: "kubernetes" },
};
