import { type Agent, request } from "undici";
import { readTlsMaterial } from "../../checks/tls-files.ts";
import { bearerFromFile } from "../../http/bearer-token.ts";
import { readCapped } from "../../http/body.ts";
import { upstreamAgent } from "../../http/agent.ts";
import { UpstreamError, reasonForStatus } from "../../errors.ts";
import type { Secret } from "../../secret.ts";
import type { Logger } from "../../log.ts";
import type { MetricRegistry } from "../../metrics/registry.ts";
import { httpUpstream, traced } from "../../tracing/spans.ts";
import { SOURCE_NAMES, type OperatorMetricsSourceConfig, type Schedule } from "../config.ts";
import { PolledSource } from "../poller.ts";
import type { PollDriver, PollOutcome, Source, SourceContext } from "../types.ts";
import { parseExposition, renderFamilies, sampleNames, type Family, type FamilyType } from "../../metrics/text-format.ts";
import { SeriesBudget } from "../../metrics/series-budget.ts";

type Config = OperatorMetricsSourceConfig & Schedule;

const ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/** Every sample name this exporter itself produces; an upstream family using one would break the exposition. */
function ownSampleNames(registry: MetricRegistry): Set<string> {
  const names = new Set<string>();
  for (const { name, type } of registry.families()) {
    const t: FamilyType = type === "counter" || type === "gauge" || type === "histogram" || type === "summary" ? type : "untyped";
    for (const n of [name, ...sampleNames(name, t)]) names.add(n);
  }
  return names;
}

/** "12 families merged, 1 dropped (name clash), 3 left out (series limit)": what reached /metrics and what did not. */
export function mergeDetail(merged: number, clashes: number, overLimit: number): string {
  const notMerged = [clashes > 0 && `${clashes} dropped (name clash)`, overLimit > 0 && `${overLimit} left out (series limit)`].filter(Boolean);
  return [`${merged} families merged`, ...notMerged].join(", ");
}

/**
 * Scrapes the operator container's own /metrics and keeps them, rendered in both formats, for this exporter's
 * /metrics to append. Families whose names clash with ours are dropped and counted, never merged.
 */
class OperatorMetricsDriver implements PollDriver {
  #agent: Agent | undefined;
  readonly #warned = new Set<string>();
  readonly #budget: SeriesBudget;
  readonly #basic: Secret | undefined;

  constructor(
    private readonly config: Config,
    private readonly registry: MetricRegistry,
    private readonly logger: Logger,
    seriesLimit: number | undefined,
  ) {
    this.#basic = config.url.basicAuthorization();
    this.#budget = new SeriesBudget({ source: SOURCE_NAMES.operatorMetrics, limit: seriesLimit, dropped: registry.handles.seriesDropped, logger });
    for (const reason of ["name_clash", "invalid"]) registry.handles.passthroughDropped.inc({ reason }, 0);
  }

  async #dispatcher(): Promise<Agent> {
    if (this.#agent) return this.#agent;
    const tls = this.config.tls;
    const material = await readTlsMaterial(tls);
    this.#agent = upstreamAgent({ ...material, ...tls }, { timeoutMs: this.config.timeoutMs, connections: 1 });
    return this.#agent;
  }

  async #headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: ACCEPT, "user-agent": "sidecar-exporter" };
    // A bearer token file wins over user info in the URL, which is Basic authentication otherwise.
    if (this.config.bearerTokenFile !== undefined) headers.authorization = await bearerFromFile(this.config.bearerTokenFile);
    else if (this.#basic) headers.authorization = this.#basic.reveal();
    return headers;
  }

  async poll(signal: AbortSignal): Promise<PollOutcome> {
    const upstream = httpUpstream(SOURCE_NAMES.operatorMetrics, "GET", this.config.url);
    const res = await traced(upstream, async () => request(this.config.url.reveal(), { headers: await this.#headers(), dispatcher: await this.#dispatcher(), signal }), (r) => r.statusCode);
    if (res.statusCode !== 200) {
      await res.body.dump();
      const reason = reasonForStatus(res.statusCode) ?? "other";
      throw new UpstreamError(`${this.config.url} answered ${res.statusCode}${reason === "unauthorized" ? "; check bearerTokenFile and the operator's metrics authorization" : ""}`, reason);
    }
    const text = await readCapped(res.body, this.config.maxBodyBytes, String(this.config.url), { hint: "raise maxBodyBytes or trim the operator's metrics" });
    const parsed = parseExposition(text);
    if (parsed.families.length === 0 && parsed.errors.length > 0) {
      throw new UpstreamError(`${this.config.url} did not answer in the Prometheus text format: ${parsed.errors[0]}`, "decode");
    }
    const ours = ownSampleNames(this.registry);
    const kept: Family[] = [];
    let clashes = 0;
    for (const f of parsed.families) {
      const clash = f.samples.find((s) => ours.has(s.name)) ?? (ours.has(f.name) ? f.samples[0] : undefined);
      if (!clash) {
        kept.push(f);
        continue;
      }
      clashes++;
      this.registry.handles.passthroughDropped.inc({ reason: "name_clash" });
      if (!this.#warned.has(f.name)) {
        this.#warned.add(f.name);
        this.logger.warn({ family: f.name }, "operator metric family dropped: its name clashes with one of this exporter's");
      }
    }
    if (parsed.errors.length > 0) {
      this.registry.handles.passthroughDropped.inc({ reason: "invalid" }, parsed.errors.length);
      this.logger.debug({ errors: parsed.errors.slice(0, 5), count: parsed.errors.length }, "operator metrics lines skipped");
    }
    const merged = this.#withinBudget(kept);
    const labels = this.registry.defaultLabels;
    this.registry.setExternalText("operator", renderFamilies(merged, labels, "text"), renderFamilies(merged, labels, "openmetrics"));
    return {
      detail: mergeDetail(merged.length, clashes, kept.length - merged.length),
      debug: { url: this.config.url, families: merged.length, droppedFamilies: clashes, overLimitFamilies: kept.length - merged.length, skippedLines: parsed.errors.length },
    };
  }

  /**
   * The families that fit in limits.seriesPerSource, in the operator's order; a family that would go past the
   * limit is left out whole (half a histogram would mislead), and its series are counted as dropped.
   */
  #withinBudget(families: Family[]): Family[] {
    this.#budget.release(this.#budget.used);
    const fitting: Family[] = [];
    for (const f of families) {
      if (!this.#budget.takeAll(f.samples.length)) {
        this.#budget.drop(f.samples.length, f.name);
        continue;
      }
      fitting.push(f);
    }
    return fitting;
  }

  async close(): Promise<void> {
    this.registry.setExternalText("operator", "", "");
    await this.#agent?.destroy();
    this.#agent = undefined;
  }
}

export function createOperatorMetricsSource(config: Config, ctx: SourceContext): Source {
  const driver = new OperatorMetricsDriver(config, ctx.metrics, ctx.logger, ctx.seriesLimit);
  return new PolledSource(SOURCE_NAMES.operatorMetrics, config, driver, ctx.metrics.handles, ctx.logger);
}
