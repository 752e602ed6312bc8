import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import { METRICS, type MetricDef, type MetricKey } from "./catalogue.ts";
import { EOF_BUFFER, eofGzipped, gzip, OwnerSlice, watchChanges } from "./exposition.ts";
import { toOpenMetrics } from "./text-format.ts";

/**
 * Families that belong to one source, by catalogue group. Their series can number tens of thousands, so they are
 * rendered when their source changes them, not on every scrape.
 */
const OWNER_BY_GROUP: Partial<Record<MetricDef["group"], string>> = {
  "Talos API": "talos",
  "Kubernetes resources": "kubernetes",
  "Tailscale API": "tailscale",
  "etcd backups": "backups",
};

export interface Exposition {
  body: Buffer;
  contentType: string;
  gzipped: boolean;
}

type Instance<D extends MetricDef> = D["type"] extends "counter"
  ? Counter<string>
  : D["type"] extends "gauge"
    ? Gauge<string>
    : Histogram<string>;

export type MetricHandles = { [K in MetricKey]: Instance<(typeof METRICS)[K]> };

export const TEXT_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/**
 * Every metric of the catalogue, in prom-client objects: the families of each source in that source's own
 * registry (rendered when they change), everything else in the main registry (rendered per scrape; it is small).
 */
export class MetricRegistry {
  readonly text = new Registry();
  readonly handles: MetricHandles;
  readonly #owners = new Map<string, OwnerSlice>();

  constructor(
    readonly defaultLabels: Record<string, string> = {},
    options: { processMetrics?: boolean } = {},
  ) {
    this.text.setDefaultLabels(defaultLabels);
    const handles: Partial<Record<MetricKey, Metric<string>>> = {};
    for (const [key, def] of Object.entries(METRICS) as [MetricKey, MetricDef][]) {
      const owner = OWNER_BY_GROUP[def.group];
      let slice = owner === undefined ? undefined : this.#owners.get(owner);
      if (owner !== undefined && !slice) {
        slice = new OwnerSlice(owner, defaultLabels);
        this.#owners.set(owner, slice);
      }
      const registers = [slice ? slice.text : this.text];
      const common = { name: def.name, help: def.help, labelNames: [...def.labels], registers };
      handles[key] =
        def.type === "counter"
          ? new Counter(common)
          : def.type === "gauge"
            ? new Gauge(common)
            : new Histogram({ ...common, buckets: [...(def.buckets ?? [])] });
      if (slice) watchChanges(handles[key] as object, slice);
    }
    this.handles = handles as MetricHandles;
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.text });
      // Gauges named *_total break the exposition lint, and nodejs_active_{handles,requests,resources}{type}
      // already carry the same counts.
      for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
        this.text.removeSingleMetric(name);
      }
    }
  }

  readonly #textProviders: ((openMetrics: boolean) => string)[] = [];

  /** The slice of a source, for tests that wait for a rendering. */
  ownerSlice(owner: string): OwnerSlice | undefined {
    return this.#owners.get(owner);
  }

  /** Names of the families this registry exports, with their types (catalogue and process metrics). */
  families(): { name: string; type: string }[] {
    const registries = [this.text, ...[...this.#owners.values()].map((o) => o.text)];
    // getMetricsAsArray() returns the metric objects, which carry name and type.
    return registries.flatMap((r) => (r.getMetricsAsArray() as unknown as { name: string; type: string }[]).map((m) => ({ name: m.name, type: m.type })));
  }

  /**
   * Adds exposition text rendered elsewhere (the operator's merged metrics). Providers return ready text from
   * memory; they must not do I/O.
   */
  addTextProvider(provider: (openMetrics: boolean) => string): void {
    this.#textProviders.push(provider);
  }

  /**
   * The response body of one scrape. The small part that changes all the time (checks, gRPC, process metrics,
   * source freshness) is rendered now; each source's families are copied from their latest rendering. With gzip,
   * the parts are separate gzip members, which HTTP clients (Prometheus included) read as one stream, so the
   * large parts are compressed once per change, not per scrape.
   */
  async exposition(openMetrics: boolean, gzipped: boolean): Promise<Exposition> {
    const own = await this.text.metrics();
    const extra = this.#textProviders.map((p) => p(openMetrics)).join("");
    const head = Buffer.from(openMetrics ? toOpenMetrics(own) + extra : own + extra);
    const slices = await Promise.all([...this.#owners.values()].map((o) => o.current()));
    const parts: Buffer[] = [gzipped ? await gzip(head) : head];
    for (const s of slices) parts.push(openMetrics ? (gzipped ? s.openMetricsGzip : s.openMetrics) : gzipped ? s.textGzip : s.text);
    if (openMetrics) parts.push(gzipped ? await eofGzipped() : EOF_BUFFER);
    return { body: Buffer.concat(parts), contentType: openMetrics ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE, gzipped };
  }

  /** The exposition as text; reads only values already in memory. */
  async render(openMetrics: boolean): Promise<string> {
    return (await this.exposition(openMetrics, false)).body.toString("utf8");
  }
}
