import { canonicalFloat, escapeLabelValue, escapeString, formatValue } from "./spelling.ts";

/**
 * The metric families this exporter records into: counters, gauges and histograms with a fixed list of label
 * names, in the shape of prom-client's API (`inc`, `set`, `observe`, `remove`, `startTimer`), so code that records
 * metrics reads as it would with prom-client. What differs is the inside: each series keeps its label text
 * rendered once, when it is created, and sits in a chunk of a few hundred sample lines; a chunk is rendered again
 * only when one of its values changed since its last rendering. A value set to what it already was changes
 * nothing, so a source that re-reports an unchanged world costs no rendering at all, and one watch event among
 * fifteen thousand objects costs the rendering of one chunk, not of the family.
 */

/**
 * About this many sample lines make a chunk: small enough that rendering and compressing one takes a fraction of
 * a millisecond, large enough that a 50,000-series exposition is a few hundred buffers.
 */
export const LINES_PER_CHUNK = 512;

/** Series of one family rendered (and compressed) together. */
export interface SeriesChunk {
  /** True from birth and after any change to a member, until the chunk is rendered. */
  readonly dirty: boolean;
}

/** Where a series sits: its chunk, and its index among the chunk's members. */
interface Placed {
  chunk: Chunk<Placed>;
  slot: number;
}

class Chunk<S extends Placed> implements SeriesChunk {
  readonly members: S[] = [];
  dirty = true;
  /** False once the chunk emptied and left its family. */
  live = true;
}

/** Where a series is before place() puts it in a chunk (it never stays there). */
const UNPLACED = new Chunk<Placed>();

export type LabelValues = Readonly<Record<string, string | number>>;
export type MetricType = "counter" | "gauge" | "histogram";

/** Told when a family changed, so that it is rendered again. */
export type ChangeListener = (family: MetricFamily) => void;

export interface FamilyOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  /** Labels every series carries after its own (the configured `metrics.labels`). */
  defaultLabels?: Readonly<Record<string, string>>;
}

export abstract class MetricFamily<S extends Placed = Placed> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricType;
  protected readonly series = new Map<string, S>();
  readonly #defaultLabelText: string;
  readonly #chunkCapacity: number;
  #chunks: Chunk<S>[] = [];
  /** Chunks that had room when last looked at; a new series goes into the newest one that still has. */
  #withRoom: Chunk<S>[] = [];
  #listener: ChangeListener | undefined;
  #dirty = true;

  constructor(opts: FamilyOptions, linesPerSeries: number) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = [...opts.labelNames];
    this.#chunkCapacity = Math.max(1, Math.floor(LINES_PER_CHUNK / linesPerSeries));
    const own = new Set(this.labelNames);
    this.#defaultLabelText = Object.entries(opts.defaultLabels ?? {})
      .filter(([k]) => !own.has(k))
      .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
      .join(",");
  }

  /** Set by the registry; a family is dirty from birth so its HELP and TYPE appear at once. */
  onChange(listener: ChangeListener): void {
    this.#listener = listener;
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  /** How many series the family holds. */
  get size(): number {
    return this.series.size;
  }

  #changed(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    this.#listener?.(this);
  }

  /** A new series takes its place in a chunk with room. */
  protected place(key: string, s: S): void {
    let chunk = this.#withRoom.at(-1);
    while (chunk && (!chunk.live || chunk.members.length >= this.#chunkCapacity)) {
      this.#withRoom.pop();
      chunk = this.#withRoom.at(-1);
    }
    if (!chunk) {
      chunk = new Chunk<S>();
      this.#chunks.push(chunk);
      this.#withRoom.push(chunk);
    }
    s.chunk = chunk;
    s.slot = chunk.members.length;
    chunk.members.push(s);
    this.series.set(key, s);
    this.touched(s);
  }

  /** A series' value changed: its chunk is rendered again. */
  protected touched(s: S): void {
    s.chunk.dirty = true;
    this.#changed();
  }

  #unplace(s: S): void {
    const chunk = s.chunk as Chunk<S>;
    const last = chunk.members.pop() as S;
    if (last !== s) {
      chunk.members[s.slot] = last;
      last.slot = s.slot;
    }
    if (chunk.members.length === 0) {
      chunk.live = false;
      this.#chunks = this.#chunks.filter((c) => c !== chunk);
    } else if (chunk.members.length === this.#chunkCapacity - 1) {
      this.#withRoom.push(chunk);
    }
    this.touched(s);
  }

  /**
   * The family's own key for a label set: label values in label-name order. A caller that keeps series of its own
   * (OwnedSeries) keys them the same way and hands the key back (setKey, removeKey), so that one key serves both.
   */
  keyOf(labels: LabelValues | undefined): string {
    const names = this.labelNames;
    if (names.length === 0) return "";
    if (names.length === 1) return String(labels?.[names[0] as string] ?? "");
    let key = "";
    for (let i = 0; i < names.length; i++) key += (i === 0 ? "" : "\u0001") + String(labels?.[names[i] as string] ?? "");
    return key;
  }

  /**
   * Checks the label names of a new series (once per series, not per update) and renders its label text:
   * `a="x",b="y"` without braces, default labels included.
   */
  protected labelText(labels: LabelValues | undefined): string {
    const given = labels ?? {};
    for (const name of Object.keys(given)) {
      if (!this.labelNames.includes(name)) throw new Error(`metric ${this.name} has no label "${name}"; its labels are: ${this.labelNames.join(", ") || "none"}`);
    }
    const parts = this.labelNames.map((name) => `${name}="${escapeLabelValue(String(given[name] ?? ""))}"`);
    if (this.#defaultLabelText) parts.push(this.#defaultLabelText);
    return parts.join(",");
  }

  /** The label values of a series, from its key. */
  protected labelsOf(key: string): Record<string, string> {
    const values = this.labelNames.length === 1 ? [key] : key.split("\u0001");
    return Object.fromEntries(this.labelNames.map((name, i) => [name, values[i] ?? ""]));
  }

  /** Removes one series; true when it existed. */
  remove(labels: LabelValues): boolean {
    return this.removeKey(this.keyOf(labels));
  }

  /** remove() for a key made by keyOf. */
  removeKey(key: string): boolean {
    const s = this.series.get(key);
    if (!s) return false;
    this.series.delete(key);
    this.#unplace(s);
    return true;
  }

  /** Removes every series. */
  reset(): void {
    if (this.series.size === 0) return;
    this.series.clear();
    for (const c of this.#chunks) c.live = false;
    this.#chunks = [];
    this.#withRoom = [];
    this.#changed();
  }

  /** `# HELP` and `# TYPE`; OpenMetrics names a counter family without its `_total`. */
  header(openMetrics: boolean): string {
    const familyName = openMetrics && this.type === "counter" ? this.name.replace(/_total$/, "") : this.name;
    return `# HELP ${familyName} ${escapeString(this.help, "help", openMetrics ? "openmetrics" : "text")}\n# TYPE ${familyName} ${this.type}\n`;
  }

  /**
   * The family's chunks as they are now, in exposition order, for a rendering: only those still `dirty` need
   * rendering again. Clears the family's mark, so a change from here on is announced again.
   */
  takeChunks(): readonly SeriesChunk[] {
    this.#dirty = false;
    return [...this.#chunks];
  }

  /** The sample lines of one chunk, the same in both formats; clears the chunk's mark. */
  renderChunk(chunk: SeriesChunk): Buffer {
    const c = chunk as Chunk<S>;
    c.dirty = false;
    return this.samples(c.members);
  }

  /** Every sample line of the family (all its chunks, rendered now); for tests and benchmarks. */
  renderSamples(): Buffer {
    return Buffer.concat(this.takeChunks().map((c) => this.renderChunk(c)));
  }

  protected abstract samples(members: readonly S[]): Buffer;

  /** `name{labels} `, what a sample line starts with. */
  protected linePrefix(sampleName: string, labelText: string): string {
    return labelText === "" ? `${sampleName} ` : `${sampleName}{${labelText}} `;
  }
}

interface ValueSeries extends Placed {
  /** `name{labels} `, rendered when the series is created. */
  readonly prefix: string;
  value: number;
}

abstract class ValueFamily extends MetricFamily<ValueSeries> {
  constructor(opts: FamilyOptions) {
    super(opts, 1);
  }

  protected seriesFor(labels: LabelValues | undefined): ValueSeries {
    return this.seriesAt(this.keyOf(labels), labels);
  }

  /** The series of a key made by keyOf(labels); the labels are read only to make it. */
  protected seriesAt(key: string, labels: LabelValues | undefined): ValueSeries {
    let s = this.series.get(key);
    if (!s) {
      s = { prefix: this.linePrefix(this.name, this.labelText(labels)), value: 0, chunk: UNPLACED, slot: -1 };
      this.place(key, s);
    }
    return s;
  }

  /** Adds to a series, made at zero if new; adding 0 only makes it exist. */
  protected add(labels: LabelValues | undefined, amount: number): void {
    const s = this.seriesFor(labels);
    if (amount === 0) return;
    s.value += amount;
    this.touched(s);
  }

  /** The current value of one series, or undefined when it does not exist. */
  value(labels?: LabelValues): number | undefined {
    return this.series.get(this.keyOf(labels))?.value;
  }

  /** Every series with its labels and value, for inspection (tests, debug); not used to render. */
  values(): { labels: Record<string, string>; value: number }[] {
    return [...this.series].map(([key, s]) => ({ labels: this.labelsOf(key), value: s.value }));
  }

  protected samples(members: readonly ValueSeries[]): Buffer {
    let out = "";
    for (const s of members) out += `${s.prefix}${formatValue(s.value)}\n`;
    return Buffer.from(out);
  }
}

export class Counter extends ValueFamily {
  readonly type = "counter";

  /** Adds `amount` (default 1); `inc(labels, 0)` makes the series exist at zero. */
  inc(labels?: LabelValues, amount = 1): void {
    if (!(amount >= 0)) throw new Error(`counter ${this.name} cannot be increased by ${amount}`);
    this.add(labels, amount);
  }
}

export class Gauge extends ValueFamily {
  readonly type = "gauge";

  set(value: number): void;
  set(labels: LabelValues, value: number): void;
  set(labelsOrValue: LabelValues | number, maybeValue?: number): void {
    if (typeof labelsOrValue === "number") this.setKey(this.keyOf(undefined), undefined, labelsOrValue);
    else this.setKey(this.keyOf(labelsOrValue), labelsOrValue, maybeValue ?? 0);
  }

  /** set() for a key made by keyOf(labels); the labels are read only when the series is new. */
  setKey(key: string, labels: LabelValues | undefined, value: number): void {
    const s = this.seriesAt(key, labels);
    // Object.is: NaN equals NaN, and 0 differs from -0 only in print, which is harmless either way.
    if (Object.is(s.value, value)) return;
    s.value = value;
    this.touched(s);
  }

  inc(labels?: LabelValues, amount = 1): void {
    this.add(labels, amount);
  }

  dec(labels?: LabelValues, amount = 1): void {
    this.inc(labels, -amount);
  }

  /** Starts a stopwatch; calling the returned function sets the gauge to the seconds elapsed. */
  startTimer(labels?: LabelValues): () => number {
    const started = performance.now();
    return () => {
      const seconds = (performance.now() - started) / 1000;
      this.set(labels ?? {}, seconds);
      return seconds;
    };
  }
}

interface HistogramSeries extends Placed {
  /** `a="x",b="y"`, without braces. */
  readonly labelText: string;
  /** Observations per bucket, not cumulative; the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
  /**
   * The series' sample lines as last rendered, dropped when it observes again: a thousand checks' histograms are
   * sixteen lines each, and in one rendering of a chunk only the checks that ran need theirs written anew.
   */
  lines: Buffer | undefined;
}

export class Histogram extends MetricFamily<HistogramSeries> {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  /**
   * `le="0.005"`, …, `le="1.0"`, `le="+Inf"`: canonical in both formats, as OpenMetrics asks, so the sample lines
   * are the same bytes in both and a bucket is the same series whichever format a scrape negotiated.
   */
  readonly #le: readonly string[];

  constructor(opts: FamilyOptions & { buckets: readonly number[] }) {
    // A bucket line per bound, +Inf, _sum and _count.
    super(opts, opts.buckets.length + 3);
    this.buckets = [...opts.buckets].sort((a, b) => a - b);
    this.#le = [...this.buckets.map((b) => `le="${canonicalFloat(b)}"`), 'le="+Inf"'];
  }

  observe(labels: LabelValues, value: number): void {
    const key = this.keyOf(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labelText: this.labelText(labels), counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0, lines: undefined, chunk: UNPLACED, slot: -1 };
      this.place(key, s);
    }
    let i = 0;
    while (i < this.buckets.length && value > (this.buckets[i] as number)) i++;
    (s.counts[i] as number)++;
    s.sum += value;
    s.count++;
    s.lines = undefined;
    this.touched(s);
  }

  /** Starts a stopwatch; calling the returned function observes the seconds elapsed. */
  startTimer(labels: LabelValues = {}): () => number {
    const started = performance.now();
    return () => {
      const seconds = (performance.now() - started) / 1000;
      this.observe(labels, seconds);
      return seconds;
    };
  }

  /** Observation count and sum of one series, or undefined when it has none. */
  value(labels: LabelValues): { count: number; sum: number } | undefined {
    const s = this.series.get(this.keyOf(labels));
    return s && { count: s.count, sum: s.sum };
  }

  protected samples(members: readonly HistogramSeries[]): Buffer {
    const blocks: Buffer[] = [];
    let length = 0;
    for (const s of members) {
      s.lines ??= Buffer.from(this.#lines(s));
      blocks.push(s.lines);
      length += s.lines.length;
    }
    return Buffer.concat(blocks, length);
  }

  #lines(s: HistogramSeries): string {
    const open = s.labelText === "" ? `${this.name}_bucket{` : `${this.name}_bucket{${s.labelText},`;
    let out = "";
    let cumulative = 0;
    for (let i = 0; i < this.#le.length; i++) {
      cumulative += s.counts[i] as number;
      out += `${open}${this.#le[i] as string}} ${cumulative}\n`;
    }
    return `${out}${this.linePrefix(`${this.name}_sum`, s.labelText)}${formatValue(s.sum)}\n${this.linePrefix(`${this.name}_count`, s.labelText)}${s.count}\n`;
  }
}
