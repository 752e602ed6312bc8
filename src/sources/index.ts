import { createBackupsSource } from "./backups/index.ts";
import type { ResolvedSources } from "./config.ts";
import { createKubernetesSource } from "./kubernetes/source.ts";
import { createOperatorMetricsSource } from "./operator-metrics/source.ts";
import { createTailscaleSource } from "./tailscale/source.ts";
import { createTalosSource } from "./talos/source.ts";
import type { Source, SourceContext } from "./types.ts";

/** Builds one Source per enabled source in the config; the only place that knows every source. */
export function buildSources(config: ResolvedSources, ctx: SourceContext): Source[] {
  const sources: Source[] = [];
  if (config.talos) sources.push(createTalosSource(config.talos, ctx));
  if (config.kubernetes) sources.push(createKubernetesSource(config.kubernetes, ctx));
  if (config.tailscale) sources.push(createTailscaleSource(config.tailscale, ctx));
  if (config.backups) sources.push(createBackupsSource(config.backups, ctx));
  if (config.operatorMetrics) sources.push(createOperatorMetricsSource(config.operatorMetrics, ctx));
  return sources;
}
