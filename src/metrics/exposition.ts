import { promisify } from "node:util";
import { gzip as gzipCallback } from "node:zlib";
import { Registry } from "prom-client";
import { toOpenMetrics } from "./text-format.ts";

const gzip = promisify(gzipCallback);
const EOF_LINE = "# EOF\n";

/** The four forms one slice of the exposition is served in. */
export interface RenderedSlice {
  text: Buffer;
  textGzip: Buffer;
  /** OpenMetrics, without the closing "# EOF" (the response adds it once, at the end). */
  openMetrics: Buffer;
  openMetricsGzip: Buffer;
}

const EMPTY: RenderedSlice = { text: Buffer.alloc(0), textGzip: Buffer.alloc(0), openMetrics: Buffer.alloc(0), openMetricsGzip: Buffer.alloc(0) };


/**
 * OpenMetrics is made from the text rendering rather than by a second prom-client registry: prom-client renames a
 * counter in place when an OpenMetrics registry renders it, which would drop "_total" from the text format.
 *
 * The families one source owns, in registries of their own, rendered when the source reports a change and kept as
 * bytes (plain and gzip, text and OpenMetrics). A scrape copies these bytes; it does not render them, so its cost
 * does not grow with the source's series. A scrape that arrives while a rendering is under way waits for it (it
 * is in-process work of a few milliseconds, never an upstream), so it never serves an older state than the source
 * has reported.
 */
export class OwnerSlice {
  readonly text = new Registry();
  #current: RenderedSlice = EMPTY;
  #rendering: Promise<void> | undefined;
  #dirty = false;
  #version = 0;

  constructor(
    readonly owner: string,
    defaultLabels: Record<string, string>,
  ) {
    this.text.setDefaultLabels(defaultLabels);
    this.markDirty();
  }

  /** How many renderings have completed. */
  get version(): number {
    return this.#version;
  }

  /**
   * One of the slice's series changed. The rendering is redone once after the current tick, so a poll that sets
   * thousands of series costs one rendering.
   */
  markDirty(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    setImmediate(() => {
      if (this.#dirty) this.#kick();
    });
  }

  #kick(): void {
    this.#rendering ??= this.#renderLoop().finally(() => {
      this.#rendering = undefined;
    });
  }

  async #renderLoop(): Promise<void> {
    while (this.#dirty) {
      this.#dirty = false;
      await this.#render();
    }
  }

  async #render(): Promise<void> {
    const textString = await this.text.metrics();
    const text = Buffer.from(textString);
    const om = Buffer.from(toOpenMetrics(textString));
    const [textGzip, openMetricsGzip] = await Promise.all([gzip(text), gzip(om)]);
    this.#current = { text, textGzip, openMetrics: om, openMetricsGzip };
    this.#version++;
  }

  /** The latest rendering, made now if a change has not been rendered yet. */
  async current(): Promise<RenderedSlice> {
    if (this.#dirty) this.#kick();
    if (this.#rendering) await this.#rendering;
    return this.#current;
  }
}

/** Makes every change to `metric` mark `slice` dirty, whoever makes it. */
export function watchChanges(metric: object, slice: OwnerSlice): void {
  const target = metric as Record<string, unknown>;
  for (const method of ["set", "inc", "dec", "observe", "remove", "reset", "zero", "setToCurrentTime"]) {
    const original = target[method];
    if (typeof original !== "function") continue;
    target[method] = function (this: unknown, ...args: unknown[]) {
      const result: unknown = (original as (...a: unknown[]) => unknown).apply(this, args);
      slice.markDirty();
      return result;
    };
  }
}

export const EOF_BUFFER = Buffer.from(EOF_LINE);
let eofGzip: Buffer | undefined;
export async function eofGzipped(): Promise<Buffer> {
  eofGzip ??= await gzip(EOF_BUFFER);
  return eofGzip;
}
export { gzip };
