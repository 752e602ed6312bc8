import type { ResolvedSources } from "./config.ts";
import type { Source, SourceContext } from "./types.ts";

/**
 * Builds one Source per enabled source in the config; the only place that knows every source. Each source's
 * modules (gRPC and protobuf for Talos, HTTP clients, XML and signing for backups) are loaded only when that
 * source is configured: together they are most of what a cold start would otherwise read.
 */
export async function buildSources(config: ResolvedSources, ctx: SourceContext): Promise<Source[]> {
  const { talos, kubernetes, tailscale, backups, operatorMetrics } = config;
  const built = await Promise.all([
    talos && import("./talos/source.ts").then((m) => m.createTalosSource(talos, ctx)),
    kubernetes && import("./kubernetes/source.ts").then((m) => m.createKubernetesSource(kubernetes, ctx)),
    tailscale && import("./tailscale/source.ts").then((m) => m.createTailscaleSource(tailscale, ctx)),
    backups && import("./backups/index.ts").then((m) => m.createBackupsSource(backups, ctx)),
    operatorMetrics && import("./operator-metrics/source.ts").then((m) => m.createOperatorMetricsSource(operatorMetrics, ctx)),
  ]);
  return built.filter((s): s is Source => s !== undefined);
}
