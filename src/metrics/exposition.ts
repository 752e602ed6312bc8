import { promisify } from "node:util";
import { constants as zlibConstants, gzip as gzipCallback, gzipSync, type ZlibOptions } from "node:zlib";
import type { MetricFamily, SeriesChunk } from "./families.ts";

const gzipAsync = promisify<Buffer, ZlibOptions, Buffer>(gzipCallback);

/**
 * Level 1: on exposition text it is three to four times faster than the default level 6 and the body comes out
 * about a third larger (1.9 MB of histograms: 3.8 ms for 105 KB against 14 ms for 80 KB), which costs nothing on
 * a pod network but saves most of the CPU spent keeping the gzip form current.
 */
const GZIP: ZlibOptions = { level: zlibConstants.Z_BEST_SPEED };
/**
 * A rendering whose changed chunks come to at most this many bytes compresses them on the spot; a larger one
 * compresses them on libuv's thread pool, off the event loop, a few at a time (each compression holds a few
 * hundred KiB of zlib state while it runs).
 */
const SYNC_GZIP_MAX = 64 * 1024;
const GZIP_CONCURRENCY = 2;

export type Form = "text" | "textGzip" | "openMetrics" | "openMetricsGzip";
export const FORMS: readonly Form[] = ["text", "textGzip", "openMetrics", "openMetricsGzip"];

export function isGzipForm(form: Form): boolean {
  return form === "textGzip" || form === "openMetricsGzip";
}

/** The form a scrape asks for. */
export function formOf(openMetrics: boolean, gzipped: boolean): Form {
  return openMetrics ? (gzipped ? "openMetricsGzip" : "openMetrics") : gzipped ? "textGzip" : "text";
}

/** One part of the exposition in every form it is served in. Empty buffers stand for "nothing to add". */
interface Rendered {
  /** Text format header (or the whole part, for parts that are not a single family). */
  readonly text: Buffer;
  readonly textGzip: Buffer;
  readonly openMetrics: Buffer;
  readonly openMetricsGzip: Buffer;
  /** Sample lines, which both formats share: one buffer per chunk of the family. */
  readonly body: readonly Buffer[];
  readonly bodyGzip: readonly Buffer[];
}

/** A chunk's sample lines as rendered, plain and compressed. */
interface RenderedChunk {
  readonly text: Buffer;
  readonly gzip: Buffer;
}

const EMPTY = Buffer.alloc(0);
const EOF = Buffer.from("# EOF\n");
const EOF_GZIP = gzipSync(EOF, GZIP);

function gzipNow(b: Buffer): Buffer {
  return b.length === 0 ? EMPTY : gzipSync(b, GZIP);
}

/** A part given whole in both formats (a family's header; process metrics, the operator's metrics). */
export function textPart(text: string, openMetrics: string): Rendered {
  const t = Buffer.from(text);
  const om = Buffer.from(openMetrics);
  return { text: t, textGzip: gzipNow(t), openMetrics: om, openMetricsGzip: gzipNow(om), body: [], bodyGzip: [] };
}

export const EMPTY_PART: Rendered = { text: EMPTY, textGzip: EMPTY, openMetrics: EMPTY, openMetricsGzip: EMPTY, body: [], bodyGzip: [] };

/** Compresses every buffer on libuv's thread pool, `GZIP_CONCURRENCY` at a time, in order. */
async function gzipAll(buffers: readonly Buffer[]): Promise<Buffer[]> {
  const out: Buffer[] = new Array<Buffer>(buffers.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < buffers.length) {
      const i = next++;
      out[i] = await gzipAsync(buffers[i] as Buffer, GZIP);
    }
  };
  await Promise.all(Array.from({ length: Math.min(GZIP_CONCURRENCY, buffers.length) }, worker));
  return out;
}

/** A response body as the buffers to write, in order, and their total length. */
export interface Body {
  readonly parts: readonly Buffer[];
  readonly length: number;
}

/**
 * The body of one form from its parts. The plain forms are the parts themselves (megabytes, not copied); the
 * compressed ones, a tenth of that in a few hundred gzip members, are joined into one buffer, so a scrape is one
 * write of one buffer, as from a static file.
 */
export function bodyOf(form: Form, parts: Buffer[]): Body {
  const length = parts.reduce((n, b) => n + b.length, 0);
  return isGzipForm(form) ? { parts: [Buffer.concat(parts, length)], length } : { parts, length };
}

export interface CachedExpositionOptions {
  /** The most time a change waits to be rendered, however costly rendering its family has become. */
  maxRenderIntervalMs: number;
  /**
   * After a family's rendering took t ms (sample lines and their compression), its next rendering waits until
   * t × this has passed since the last began, so rendering takes at most 1/renderCostFactor of a core whatever
   * the rate of changes.
   */
  renderCostFactor: number;
}

/**
 * Rendering takes at most 0.2 % of a core per family: a family that took 0.02 ms may be rendered again 10 ms later,
 * one that took 10 ms (a thousand checks' histograms, written and compressed) 5 s later — still several times per
 * scrape interval, where rendering once a second cost more than the thousand probes behind it.
 */
export const DEFAULT_RENDER_COST_FACTOR = 500;
/** However costly a family, a change is rendered within this long. */
export const DEFAULT_MAX_RENDER_INTERVAL_MS = 5_000;

/**
 * The exposition kept as bytes, so a scrape writes buffers and renders nothing.
 *
 * A family that changes is rendered again, but not for every change: each family waits after a rendering in
 * proportion to what that rendering cost (see `renderCostFactor`), and changes meanwhile are gathered into its
 * next one. A small family is thus re-rendered within milliseconds of a change and a scrape right after sees
 * it, while the histograms of a thousand checks reporting 67 results a second, which take milliseconds to write
 * and compress, are rendered every few seconds; a source poll that sets ten thousand series costs one
 * rendering. Every family is kept as its header and its sample lines, each also gzip'ed on its own: gzip members
 * one after another are one valid gzip stream, so the compressed body is assembled from the members of the parts
 * and nothing is compressed per scrape. Within a family only the chunks that changed are rendered and
 * compressed again (see MetricFamily), so the cost of a rendering follows what changed, not the family's size. A
 * family's rendering is published whole (text and gzip together) once its compression is done, so every form
 * serves the same state; the compressed body is served as one buffer, joined when first asked for.
 */
export class CachedExposition {
  readonly #families: readonly MetricFamily[];
  readonly #parts = new Map<MetricFamily, Rendered>();
  /** Each chunk's latest rendering; a chunk that leaves its family is forgotten with it. */
  readonly #chunks = new WeakMap<SeriesChunk, RenderedChunk>();
  readonly #renderCounts = new Map<string, number>();
  readonly #extras = new Map<string, Rendered>();
  readonly #pending = new Set<MetricFamily>();
  /** When each family's latest rendering began, and how long after it the next may begin. */
  readonly #renderedAt = new Map<MetricFamily, number>();
  readonly #spacing = new Map<MetricFamily, number>();
  readonly #maxInterval: number;
  readonly #costFactor: number;
  #bodies = new Map<Form, Body>();
  #timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #running: Promise<void> | undefined;
  #published = false;
  #closed = false;
  readonly #publishListeners: (() => void)[] = [];

  constructor(families: readonly MetricFamily[], opts: CachedExpositionOptions) {
    this.#families = families;
    this.#maxInterval = opts.maxRenderIntervalMs;
    this.#costFactor = opts.renderCostFactor;
    for (const f of families) {
      // Headers never change: made once, in every form, as any whole part is; the sample lines come per rendering.
      this.#parts.set(f, textPart(f.header(false), f.header(true)));
      f.onChange((changed) => this.#changed(changed));
      if (f.dirty) this.#pending.add(f);
    }
    this.#schedule();
  }

  /** How many times the family of this name has been rendered. */
  renderCount(name: string): number {
    return this.#renderCounts.get(name) ?? 0;
  }

  /** Replaces (or with EMPTY_PART, clears) a named part that is not a catalogue family; served after the families. */
  setExtra(name: string, part: Rendered): void {
    this.#extras.set(name, part);
    this.#bodies = new Map();
    if (this.#published) for (const listener of this.#publishListeners) listener();
  }

  #changed(family: MetricFamily): void {
    if (this.#closed) return;
    this.#pending.add(family);
    this.#schedule();
  }

  #dueAt(family: MetricFamily): number {
    return (this.#renderedAt.get(family) ?? Number.NEGATIVE_INFINITY) + (this.#spacing.get(family) ?? 0);
  }

  #schedule(): void {
    if (this.#running || this.#pending.size === 0 || this.#closed) return;
    let next = Number.POSITIVE_INFINITY;
    for (const f of this.#pending) next = Math.min(next, this.#dueAt(f));
    // A timer already set for this moment or sooner serves; one for later (a costly family's) is brought forward.
    if (this.#timer) {
      if (this.#timerAt <= next) return;
      this.#cancelTimer();
    }
    const now = performance.now();
    this.#timerAt = Math.max(now, next);
    // The timer must not keep a stopping process alive; the exposition is only of use while something serves it.
    // #run's promise is kept in #running for whoever waits on it; a rejection (gzip out of memory) is not one the
    // timer could do anything about.
    const run = () => void this.#run(false);
    this.#timer = next <= now ? setImmediate(run).unref() : setTimeout(run, next - now).unref();
  }

  #cancelTimer(): void {
    if (!this.#timer) return;
    clearTimeout(this.#timer as NodeJS.Timeout);
    clearImmediate(this.#timer as NodeJS.Immediate);
    this.#timer = undefined;
  }

  /** Renders the pending families that are due (or all of them), then schedules the rest. */
  #run(all: boolean): Promise<void> {
    this.#timer = undefined;
    const now = performance.now();
    // A millisecond of slack: timers fire late, never early, and a family due a moment from now may as well go.
    const due = [...this.#pending].filter((f) => all || this.#dueAt(f) <= now + 1);
    for (const f of due) this.#pending.delete(f);
    const running = this.#render(due).finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
    this.#running = running;
    return running;
  }

  async #render(families: readonly MetricFamily[]): Promise<void> {
    // Sample lines are taken in one go, so what is published together is one moment of these families; only the
    // chunks that changed are rendered. Each family is timed for its own pacing: its share of the rendering now
    // and of the compression, on the spot or on the thread pool.
    const rendered = families.map((f) => {
      const began = performance.now();
      const chunks = f.takeChunks();
      const fresh = new Map<SeriesChunk, Buffer>();
      for (const c of chunks) if (c.dirty || !this.#chunks.has(c)) fresh.set(c, f.renderChunk(c));
      return { f, began, chunks, fresh, ms: performance.now() - began };
    });
    let bytes = 0;
    for (const r of rendered) for (const b of r.fresh.values()) bytes += b.length;
    const inline = bytes <= SYNC_GZIP_MAX;
    for (const r of rendered) {
      const began = performance.now();
      const texts = [...r.fresh.values()];
      const gzips = inline ? texts.map(gzipNow) : await gzipAll(texts);
      let i = 0;
      for (const c of r.fresh.keys()) {
        this.#chunks.set(c, { text: texts[i] as Buffer, gzip: gzips[i] as Buffer });
        i++;
      }
      r.ms += performance.now() - began;
    }
    for (const { f, began, chunks, ms } of rendered) {
      const previous = this.#parts.get(f) ?? EMPTY_PART;
      const body: Buffer[] = [];
      const bodyGzip: Buffer[] = [];
      for (const c of chunks) {
        const part = this.#chunks.get(c) as RenderedChunk;
        body.push(part.text);
        bodyGzip.push(part.gzip);
      }
      this.#parts.set(f, { ...previous, body, bodyGzip });
      const count = (this.#renderCounts.get(f.name) ?? 0) + 1;
      this.#renderCounts.set(f.name, count);
      this.#renderedAt.set(f, began);
      // A family's first rendering runs code V8 has not compiled yet and says little about what the next will cost.
      this.#spacing.set(f, count === 1 ? 0 : Math.min(this.#maxInterval, ms * this.#costFactor));
    }
    this.#published = true;
    this.#bodies = new Map();
    for (const listener of this.#publishListeners) listener();
  }

  /** Calls `listener` after each rendering is published, and after each change of an extra part. */
  onPublish(listener: () => void): void {
    this.#publishListeners.push(listener);
  }

  /** Renders every change made so far, now; resolves once it is published. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
    if (this.#pending.size === 0) return;
    this.#cancelTimer();
    await this.#run(true);
  }

  /** True until the first rendering is published. */
  get empty(): boolean {
    return !this.#published;
  }

  /**
   * The latest published body in one form (see bodyOf), made once per publication.
   */
  body(form: Form): Body {
    let body = this.#bodies.get(form);
    if (body) return body;
    body = bodyOf(form, this.parts(form));
    this.#bodies.set(form, body);
    return body;
  }

  /**
   * The latest published body in one form as the buffers it is made of, none joined: the same buffer objects
   * from one publication to the next wherever a part did not change (what the scrape thread's mirror relies on).
   */
  parts(form: Form): Buffer[] {
    const parts: Buffer[] = [];
    const gzipped = isGzipForm(form);
    const add = (b: Buffer) => {
      if (b.length > 0) parts.push(b);
    };
    for (const f of this.#families) {
      const p = this.#parts.get(f) ?? EMPTY_PART;
      add(p[form]);
      for (const b of gzipped ? p.bodyGzip : p.body) add(b);
    }
    for (const p of this.#extras.values()) add(p[form]);
    if (form === "openMetrics" || form === "openMetricsGzip") parts.push(gzipped ? EOF_GZIP : EOF);
    return parts;
  }

  close(): void {
    this.#closed = true;
    this.#cancelTimer();
  }
}
