/**
 * Reads Prometheus text exposition back into families and samples, so the prom-client baseline can hold exactly
 * the series the exporter served.
 */
export interface ParsedSample {
  /** The sample's own name: for histograms, with its _bucket, _sum or _count suffix. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  samples: ParsedSample[];
}

function unescapeHelp(s: string): string {
  return s.replace(/\\(\\|n)/g, (_, c: string) => (c === "n" ? "\n" : "\\"));
}

function parseValue(s: string): number {
  if (s === "+Inf" || s === "Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(s);
}

/** Labels of `{a="x",b="y\"z"}` starting at `open` (the brace); returns them and the index after the closing brace. */
function parseLabels(line: string, open: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = open + 1;
  while (i < line.length && line[i] !== "}") {
    const eq = line.indexOf("=", i);
    const name = line.slice(i, eq).trim();
    i = eq + 2; // past ="
    let value = "";
    while (i < line.length && line[i] !== '"') {
      const c = line[i];
      if (c === "\\") {
        const next = line[i + 1];
        value += next === "n" ? "\n" : (next ?? "");
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    labels[name] = value;
    i++; // closing quote
    if (line[i] === ",") i++;
  }
  return { labels, end: i + 1 };
}

const SUFFIXES = ["_bucket", "_sum", "_count", "_created", "_total", "_info"];

export function parseExposition(text: string): ParsedFamily[] {
  const families = new Map<string, ParsedFamily>();
  const family = (name: string): ParsedFamily => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: "", type: "untyped", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  let current: ParsedFamily | undefined;
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# EOF")) continue;
    if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
      const rest = line.slice(7);
      const space = rest.indexOf(" ");
      const name = space === -1 ? rest : rest.slice(0, space);
      const value = space === -1 ? "" : rest.slice(space + 1);
      current = family(name);
      if (line[2] === "H") current.help = unescapeHelp(value);
      else current.type = value;
      continue;
    }
    if (line.startsWith("#")) continue;
    const brace = line.indexOf("{");
    const firstSpace = line.indexOf(" ");
    let name: string;
    let labels: Record<string, string> = {};
    let rest: string;
    if (brace !== -1 && (firstSpace === -1 || brace < firstSpace)) {
      name = line.slice(0, brace);
      const parsed = parseLabels(line, brace);
      labels = parsed.labels;
      rest = line.slice(parsed.end).trim();
    } else {
      name = line.slice(0, firstSpace);
      rest = line.slice(firstSpace + 1).trim();
    }
    const value = parseValue(rest.split(" ")[0] ?? "NaN");
    // A sample belongs to the family announced last when its name is that family's or a suffixed form of it.
    const owner =
      current && (name === current.name || SUFFIXES.some((s) => name === current?.name + s)) ? current : family(name);
    owner.samples.push({ name, labels, value });
  }
  return [...families.values()];
}

/** Series in an exposition: every line that is not a comment or blank. */
export function countSeries(text: string): number {
  let n = 0;
  for (const line of text.split("\n")) if (line !== "" && !line.startsWith("#")) n++;
  return n;
}
