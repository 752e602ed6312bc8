import { canonicalFloat, escapeLabelValue, escapeString, readFloat, type ExpositionFormat } from "./spelling.ts";

/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4) and a writer of it and of OpenMetrics,
 * enough to merge another process's /metrics into ours: families with HELP and TYPE, samples with escaped label
 * values, optional timestamps. Lines it cannot read are reported, never guessed at.
 */
export type FamilyType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface ExpositionSample {
  name: string;
  labels: [string, string][];
  value: string;
  timestamp?: string;
}

export interface Family {
  name: string;
  type: FamilyType;
  help?: string;
  samples: ExpositionSample[];
}

export interface ParseResult {
  families: Family[];
  /** "line N: what is wrong", for lines that were skipped. */
  errors: string[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<FamilyType>(["counter", "gauge", "histogram", "summary", "untyped"]);
const SUFFIXES: Record<FamilyType, readonly string[]> = {
  counter: ["", "_total", "_created"],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count", "_created"],
  summary: ["", "_sum", "_count", "_created"],
};

/** Every sample name a family of this type may produce. */
export function sampleNames(name: string, type: FamilyType): string[] {
  return SUFFIXES[type].map((s) => name + s);
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_m, c: string) => (c === "n" ? "\n" : "\\"));
}

/** Reads `{a="x",b="y"}` starting at `i` (just after the "{"); returns the labels and the index after "}". */
function readLabels(line: string, start: number): { labels: [string, string][]; end: number } | string {
  const labels: [string, string][] = [];
  // A Set, not a scan of `labels`: a line of many thousand labels must not take quadratic time.
  const seen = new Set<string>();
  let i = start;
  for (;;) {
    while (line[i] === " ") i++;
    if (line[i] === "}") return { labels, end: i + 1 };
    const eq = line.indexOf("=", i);
    if (eq === -1) return "label without '='";
    const name = line.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) return `bad label name ${JSON.stringify(name)}`;
    i = eq + 1;
    if (line[i] !== '"') return `label ${name}: value must be quoted`;
    i++;
    let value = "";
    for (;;) {
      const c = line[i];
      if (c === undefined) return `label ${name}: unterminated value`;
      if (c === "\\") {
        const n = line[i + 1];
        value += n === "n" ? "\n" : n === '"' ? '"' : n === "\\" ? "\\" : `\\${n ?? ""}`;
        i += 2;
        continue;
      }
      if (c === '"') break;
      value += c;
      i++;
    }
    i++;
    if (seen.has(name)) return `label ${name} repeated`;
    seen.add(name);
    labels.push([name, value]);
    while (line[i] === " ") i++;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") return "expected ',' or '}' after a label";
  }
}

function parseSample(line: string): ExpositionSample | string {
  const brace = line.indexOf("{");
  const space = line.search(/[ \t]/);
  const nameEnd = brace !== -1 && (space === -1 || brace < space) ? brace : space;
  if (nameEnd <= 0) return "no value";
  const name = line.slice(0, nameEnd);
  if (!NAME.test(name)) return `bad metric name ${JSON.stringify(name)}`;
  let labels: [string, string][] = [];
  let rest: string;
  if (line[nameEnd] === "{") {
    const parsed = readLabels(line, nameEnd + 1);
    if (typeof parsed === "string") return parsed;
    labels = parsed.labels;
    rest = line.slice(parsed.end);
  } else {
    rest = line.slice(nameEnd);
  }
  const parts = rest.trim().split(/[ \t]+/);
  const [value, timestamp, extra] = parts;
  if (value === undefined || readFloat(value) === undefined) return `bad value ${JSON.stringify(value ?? "")}`;
  if (timestamp !== undefined && !/^-?\d+$/.test(timestamp)) return `bad timestamp ${JSON.stringify(timestamp)}`;
  if (extra !== undefined) return "unexpected text after the timestamp";
  return { name, labels, value, ...(timestamp !== undefined && { timestamp }) };
}

/** The label that carries a number for this sample of its family: a histogram bucket's bound, a summary's quantile. */
function boundLabel(family: Family, sampleName: string): "le" | "quantile" | undefined {
  if (family.type === "histogram" && sampleName === `${family.name}_bucket`) return "le";
  if (family.type === "summary" && sampleName === family.name) return "quantile";
  return undefined;
}

/**
 * Gives a bucket's bound or a quantile its canonical spelling (`le="1"` becomes `le="1.0"`), so both formats write
 * the one OpenMetrics asks for; an error when the label is missing or is not a number a reader could use.
 */
function canonicalBound(family: Family, sample: ExpositionSample): string | undefined {
  const name = boundLabel(family, sample.name);
  if (name === undefined) return undefined;
  const at = sample.labels.findIndex(([n]) => n === name);
  const text = at === -1 ? undefined : (sample.labels[at] as [string, string])[1];
  if (text === undefined) return `${sample.name} has no ${name} label`;
  const bound = readFloat(text);
  const usable = bound !== undefined && (name === "le" ? !Number.isNaN(bound) : bound >= 0 && bound <= 1);
  if (!usable) return `${name}=${JSON.stringify(text)} is not ${name === "le" ? "a bucket bound" : "a quantile between 0 and 1"}`;
  sample.labels[at] = [name, canonicalFloat(bound)];
  return undefined;
}

/** `keepEmpty` keeps families that have HELP/TYPE but no samples yet, as a registry renders them. */
export function parseExposition(text: string, opts: { keepEmpty?: boolean } = {}): ParseResult {
  const families = new Map<string, Family>();
  const errors: string[] = [];
  /** Sample name → the family it belongs to, from TYPE lines seen so far. */
  const owner = new Map<string, Family>();
  /** Families that had their TYPE line; a second one would leave samples named for the first type. */
  const typed = new Set<string>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, type: "untyped", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const line = raw.trimEnd();
    if (line === "") return;
    const at = `line ${index + 1}`;
    if (line.startsWith("#")) {
      // "s": HELP text may hold any character but "\n", including "\r" and U+2028, which "." alone would not match.
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/s.exec(line);
      if (!m) return; // any other comment is allowed and ignored
      const [, kind, name = "", arg = ""] = m;
      if (!NAME.test(name)) return void errors.push(`${at}: bad metric name ${JSON.stringify(name)}`);
      const f = family(name);
      if (kind === "HELP") {
        f.help = unescapeHelp(arg);
      } else {
        const type = arg.trim() as FamilyType;
        if (!TYPES.has(type)) return void errors.push(`${at}: unknown type ${JSON.stringify(arg)}`);
        if (f.samples.length > 0) return void errors.push(`${at}: TYPE for ${name} after its samples`);
        if (typed.has(name)) return void errors.push(`${at}: second TYPE line for ${name}`);
        typed.add(name);
        f.type = type;
        for (const n of sampleNames(name, type)) owner.set(n, f);
      }
      return;
    }
    const sample = parseSample(line);
    if (typeof sample === "string") return void errors.push(`${at}: ${sample}`);
    const target = owner.get(sample.name) ?? family(sample.name);
    // A histogram's bare name is no sample of it: "x 0" after "# TYPE x histogram" names no family it could join.
    if (!sampleNames(target.name, target.type).includes(sample.name)) {
      const expected = sampleNames(target.name, target.type).join(", ");
      return void errors.push(`${at}: sample ${sample.name} does not belong to the ${target.type} ${target.name} (its samples are ${expected})`);
    }
    const badBound = canonicalBound(target, sample);
    if (badBound !== undefined) return void errors.push(`${at}: ${badBound}`);
    target.samples.push(sample);
  });
  return { families: [...families.values()].filter((f) => opts.keepEmpty || f.samples.length > 0), errors };
}

/**
 * Writes families back out, adding `extraLabels` to samples that do not carry them. In OpenMetrics, counter
 * families are named without "_total" and their samples carry it, and untyped becomes unknown.
 */
export function renderFamilies(families: readonly Family[], extraLabels: Record<string, string>, format: ExpositionFormat): string {
  const openMetrics = format === "openmetrics";
  const extra = Object.entries(extraLabels);
  let out = "";
  for (const f of families) {
    let familyName = f.name;
    let type: string = f.type;
    if (openMetrics) {
      if (f.type === "counter") familyName = f.name.replace(/_total$/, "");
      if (f.type === "untyped") type = "unknown";
    }
    if (f.help !== undefined) out += `# HELP ${familyName} ${escapeString(f.help, "help", format)}\n`;
    out += `# TYPE ${familyName} ${type}\n`;
    for (const s of f.samples) {
      let name = s.name;
      if (openMetrics && f.type === "counter" && name === familyName) name = `${familyName}_total`;
      const labels = [...s.labels];
      for (const [k, v] of extra) if (!labels.some(([n]) => n === k)) labels.push([k, v]);
      const labelText = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}` : "";
      // OpenMetrics timestamps are seconds; the text format's are milliseconds.
      const ts = s.timestamp === undefined ? "" : ` ${openMetrics ? Number(s.timestamp) / 1000 : s.timestamp}`;
      out += `${name}${labelText} ${s.value}${ts}\n`;
    }
  }
  return out;
}

/**
 * Exposition text from elsewhere (prom-client's process metrics) in both formats, written anew from what was read:
 * the same escaping and canonical bounds as every other part; OpenMetrics without its closing "# EOF" line. Lines
 * it cannot read are left out.
 */
export function inBothFormats(text: string): { text: string; openMetrics: string } {
  const { families } = parseExposition(text, { keepEmpty: true });
  return { text: renderFamilies(families, {}, "text"), openMetrics: renderFamilies(families, {}, "openmetrics") };
}
