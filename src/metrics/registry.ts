import { Registry, collectDefaultMetrics } from "prom-client";
import { METRICS, type MetricDef, type MetricKey } from "./catalogue.ts";
import { CachedExposition, DEFAULT_MAX_RENDER_INTERVAL_MS, DEFAULT_RENDER_COST_FACTOR, EMPTY_PART, FORMS, formOf, textPart, type Body, type Form } from "./exposition.ts";
import { Counter, Gauge, Histogram, type MetricFamily } from "./families.ts";
import { inBothFormats } from "./text-format.ts";

export interface Exposition extends Body {
  contentType: string;
  gzipped: boolean;
}

type Instance<D extends MetricDef> = D["type"] extends "counter" ? Counter : D["type"] extends "gauge" ? Gauge : Histogram;

export type MetricHandles = { [K in MetricKey]: Instance<(typeof METRICS)[K]> };

export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** A body as the answer to a scrape in that format and encoding. */
export function asExposition(body: Body, openMetrics: boolean, gzipped: boolean): Exposition {
  return { ...body, contentType: openMetrics ? OPENMETRICS_CONTENT_TYPE : TEXT_CONTENT_TYPE, gzipped };
}

/**
 * Process metrics change all the time and take prom-client a couple of milliseconds to read, so they are read on
 * a timer, not by the scrape: a scrape serves them at most this old.
 */
const PROCESS_METRICS_REFRESH_MS = 2_000;

export interface MetricRegistryOptions {
  /** Node.js process metrics (`process_*`, `nodejs_*`) from prom-client's default collectors. */
  processMetrics?: boolean;
  /** The most time a change waits to be rendered (see CachedExposition); default 5 s. */
  maxRenderIntervalMs?: number;
  /** Rendering's share of the event loop is at most 1/renderCostFactor per family (see CachedExposition); default 500. */
  renderCostFactor?: number;
}

/**
 * Every metric of the catalogue, as families that render only when they change, kept as bytes by a
 * CachedExposition; plus Node.js process metrics from prom-client's collectors (about forty series, re-read every
 * two seconds) and text from elsewhere (the operator's merged metrics).
 */
export class MetricRegistry {
  readonly handles: MetricHandles;
  readonly #families: MetricFamily[];
  readonly #exposition: CachedExposition;
  readonly #process: Registry | undefined;
  #processRead = false;
  #processReading: Promise<void> | undefined;
  #processTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly defaultLabels: Record<string, string> = {},
    options: MetricRegistryOptions = {},
  ) {
    const handles: Partial<Record<MetricKey, MetricFamily>> = {};
    for (const [key, def] of Object.entries(METRICS) as [MetricKey, MetricDef][]) {
      const common = { name: def.name, help: def.help, labelNames: def.labels, defaultLabels };
      handles[key] = def.type === "counter" ? new Counter(common) : def.type === "gauge" ? new Gauge(common) : new Histogram({ ...common, buckets: def.buckets ?? [] });
    }
    this.handles = handles as MetricHandles;
    this.#families = Object.values(handles);
    this.#exposition = new CachedExposition(this.#families, {
      maxRenderIntervalMs: options.maxRenderIntervalMs ?? DEFAULT_MAX_RENDER_INTERVAL_MS,
      renderCostFactor: options.renderCostFactor ?? DEFAULT_RENDER_COST_FACTOR,
    });
    if (options.processMetrics ?? true) {
      this.#process = new Registry();
      this.#process.setDefaultLabels(defaultLabels);
      collectDefaultMetrics({ register: this.#process });
      // Gauges named *_total break the exposition lint, and nodejs_active_{handles,requests,resources}{type}
      // already carry the same counts.
      for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
        this.#process.removeSingleMetric(name);
      }
      this.#processTimer = setInterval(() => void this.#readProcessMetrics(), PROCESS_METRICS_REFRESH_MS).unref();
    }
  }

  /** How many times the family of this name has been rendered (each rendering serves every scrape until the next). */
  renderCount(name: string): number {
    return this.#exposition.renderCount(name);
  }

  /** Names of the families this registry exports, with their types (catalogue and process metrics). */
  families(): { name: string; type: string }[] {
    // getMetricsAsArray() returns the metric objects, which carry name and type.
    const processFamilies = (this.#process?.getMetricsAsArray() ?? []) as unknown as { name: string; type: string }[];
    return [...this.#families.map((f) => ({ name: f.name, type: f.type })), ...processFamilies.map((m) => ({ name: m.name, type: m.type }))];
  }

  /**
   * Sets exposition text made elsewhere (the operator's merged metrics), served after this exporter's own
   * families until it is set again; empty strings remove it.
   */
  setExternalText(name: string, text: string, openMetrics: string): void {
    this.#exposition.setExtra(name, text === "" && openMetrics === "" ? EMPTY_PART : textPart(text, openMetrics));
  }

  async #readProcessMetrics(): Promise<void> {
    if (!this.#process) return;
    this.#processReading ??= (async () => {
      try {
        const forms = inBothFormats(await this.#process!.metrics());
        this.#exposition.setExtra("process", textPart(forms.text, forms.openMetrics));
        this.#processRead = true;
      } finally {
        this.#processReading = undefined;
      }
    })();
    await this.#processReading;
  }

  /**
   * The response body of one scrape, from the latest rendering: buffers to write, nothing rendered now (but
   * everything, the first time).
   */
  async exposition(openMetrics: boolean, gzipped: boolean): Promise<Exposition> {
    await this.#firstRendering();
    return asExposition(this.#exposition.body(formOf(openMetrics, gzipped)), openMetrics, gzipped);
  }

  /** Everything is rendered once, process metrics included, before the first scrape is answered. */
  async #firstRendering(): Promise<void> {
    if (this.#exposition.empty) await this.#exposition.flush();
    if (this.#process && !this.#processRead) await this.#readProcessMetrics();
  }

  /**
   * The latest rendering of every form as unjoined buffers (see CachedExposition.parts), for a copy of the
   * exposition kept elsewhere (the scrape thread); `onPublish` says when to take them again.
   */
  async forms(): Promise<Record<Form, Buffer[]>> {
    await this.#firstRendering();
    return Object.fromEntries(FORMS.map((form) => [form, this.#exposition.parts(form)])) as Record<Form, Buffer[]>;
  }

  /** Calls `listener` each time what a scrape would be served changes. */
  onPublish(listener: () => void): void {
    this.#exposition.onPublish(listener);
  }

  /** The exposition as text with every change made so far rendered; for tests and the command line. */
  async render(openMetrics: boolean): Promise<string> {
    await this.#exposition.flush();
    await this.#readProcessMetrics();
    const body = (await this.exposition(openMetrics, false)).parts;
    return Buffer.concat(body).toString("utf8");
  }

  /** Renders every change made so far; resolves once a scrape would serve it. */
  flush(): Promise<void> {
    return this.#exposition.flush();
  }

  /** Stops rendering; what was rendered stays served. */
  close(): void {
    clearInterval(this.#processTimer);
    this.#exposition.close();
  }
}
