import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import { METRICS, type MetricDef, type MetricKey } from "./catalogue.ts";

type Instance<D extends MetricDef> = D["type"] extends "counter"
  ? Counter<string>
  : D["type"] extends "gauge"
    ? Gauge<string>
    : Histogram<string>;

export type MetricHandles = { [K in MetricKey]: Instance<(typeof METRICS)[K]> };

export const TEXT_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/**
 * prom-client picks the exposition format per registry, so the same metric objects are registered in two
 * registries, one per format; values are shared, only the rendering differs.
 */
export class MetricRegistry {
  readonly text = new Registry();
  readonly openMetrics: Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE> = new Registry();
  readonly handles: MetricHandles;

  constructor(
    readonly defaultLabels: Record<string, string> = {},
    options: { processMetrics?: boolean } = {},
  ) {
    this.openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    this.text.setDefaultLabels(defaultLabels);
    this.openMetrics.setDefaultLabels(defaultLabels);
    const registers = [this.text, this.openMetrics];
    const handles: Partial<Record<MetricKey, Metric<string>>> = {};
    for (const [key, def] of Object.entries(METRICS) as [MetricKey, MetricDef][]) {
      const common = { name: def.name, help: def.help, labelNames: [...def.labels], registers };
      handles[key] =
        def.type === "counter"
          ? new Counter(common)
          : def.type === "gauge"
            ? new Gauge(common)
            : new Histogram({ ...common, buckets: [...(def.buckets ?? [])] });
    }
    this.handles = handles as MetricHandles;
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.text });
      // Gauges named *_total break the exposition lint, and nodejs_active_{handles,requests,resources}{type}
      // already carry the same counts.
      for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
        this.text.removeSingleMetric(name);
      }
      // getMetricsAsArray() returns the metric objects themselves, whatever its declared type says.
      for (const metric of this.text.getMetricsAsArray() as unknown as (Metric<string> & { name: string })[]) {
        if (!this.openMetrics.getSingleMetric(metric.name)) this.openMetrics.registerMetric(metric);
      }
    }
  }

  readonly #textProviders: ((openMetrics: boolean) => string)[] = [];

  /** Names of the families this registry exports, with their types (catalogue and process metrics). */
  families(): { name: string; type: string }[] {
    // getMetricsAsArray() returns the metric objects, which carry name and type.
    return (this.text.getMetricsAsArray() as unknown as { name: string; type: string }[]).map((m) => ({ name: m.name, type: m.type }));
  }

  /**
   * Adds exposition text rendered elsewhere (the operator's merged metrics). Providers return ready text from
   * memory; they must not do I/O.
   */
  addTextProvider(provider: (openMetrics: boolean) => string): void {
    this.#textProviders.push(provider);
  }

  /** Renders the exposition; reads only values already in memory. */
  async render(openMetrics: boolean): Promise<string> {
    const own = await (openMetrics ? this.openMetrics : this.text).metrics();
    if (this.#textProviders.length === 0) return own;
    const extra = this.#textProviders.map((p) => p(openMetrics)).join("");
    if (!openMetrics) return own + extra;
    // OpenMetrics ends with "# EOF"; merged families go before it.
    const eof = own.lastIndexOf("# EOF");
    return eof === -1 ? own + extra : own.slice(0, eof) + extra + own.slice(eof);
  }
}
