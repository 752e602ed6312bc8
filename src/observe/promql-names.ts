/**
 * Finds the metric names a PromQL expression refers to, without a full parser: enough to check that every name in
 * the generated alerts and dashboards is a family this exporter (or the passthrough) really exposes. It skips
 * string literals, label matchers `{…}`, ranges and subqueries `[…]`, numbers and durations, Grafana variables,
 * function and aggregation names, keywords, and the label lists after by/without/on/ignoring/group_left/group_right.
 */
import type { Family } from "./promql.ts";

const AGGREGATORS = new Set([
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
]);
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const KEYWORDS = new Set([...LABEL_LIST_KEYWORDS, "offset", "bool", "and", "or", "unless", "atan2", "inf", "nan"]);

const IDENT_START = /[A-Za-z_:]/;
const IDENT_PART = /[A-Za-z0-9_:]/;

/** Index just past the quoted string that starts at `i`. */
function skipString(expr: string, i: number): number {
  const quote = expr[i];
  let j = i + 1;
  while (j < expr.length && expr[j] !== quote) j += quote !== "`" && expr[j] === "\\" ? 2 : 1;
  return j + 1;
}

/** Index just past the bracket that closes the one at `i`, skipping strings inside. */
function skipBalanced(expr: string, i: number, open: string, close: string): number {
  let depth = 0;
  let j = i;
  while (j < expr.length) {
    const c = expr[j] as string;
    if (c === '"' || c === "'" || c === "`") {
      j = skipString(expr, j);
      continue;
    }
    if (c === open) depth++;
    else if (c === close && --depth === 0) return j + 1;
    j++;
  }
  return j;
}

function skipSpace(expr: string, i: number): number {
  let j = i;
  while (j < expr.length && /\s/.test(expr[j] as string)) j++;
  return j;
}

/** The metric names in `expr`, sorted and without duplicates. */
export function metricNames(expr: string): string[] {
  const names = new Set<string>();
  let i = 0;
  while (i < expr.length) {
    const c = expr[i] as string;
    if (/\s/.test(c)) i++;
    else if (c === '"' || c === "'" || c === "`") i = skipString(expr, i);
    else if (c === "{") i = skipBalanced(expr, i, "{", "}");
    else if (c === "[") i = skipBalanced(expr, i, "[", "]");
    else if (c === "#") i = expr.includes("\n", i) ? expr.indexOf("\n", i) : expr.length;
    else if (c === "$") {
      // A Grafana variable: $name or ${name}.
      i = expr[i + 1] === "{" ? skipBalanced(expr, i + 1, "{", "}") : i + 1;
      while (i < expr.length && IDENT_PART.test(expr[i] as string)) i++;
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(expr[i + 1] ?? ""))) {
      // Numbers, hex, exponents and durations (1h30m) all end at the first character that cannot continue them.
      i++;
      while (i < expr.length && (/[0-9A-Za-z_.]/.test(expr[i] as string) || (/[+-]/.test(expr[i] as string) && /[eE]/.test(expr[i - 1] as string)))) i++;
    } else if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < expr.length && IDENT_PART.test(expr[j] as string)) j++;
      const word = expr.slice(i, j);
      const lower = word.toLowerCase();
      const next = skipSpace(expr, j);
      if (LABEL_LIST_KEYWORDS.has(lower) && expr[next] === "(") i = skipBalanced(expr, next, "(", ")");
      else if (KEYWORDS.has(lower) || AGGREGATORS.has(lower) || expr[next] === "(") i = j;
      else {
        names.add(word);
        i = j;
      }
    } else i++;
  }
  return [...names].sort();
}

const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count", "_created"];

/** The family a series name belongs to: itself, or a histogram's _bucket/_sum/_count/_created series. */
export function familyOf<F extends Family>(name: string, families: readonly F[]): F | undefined {
  const exact = families.find((f) => f.name === name);
  if (exact) return exact;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const family = families.find((f) => f.name === base && f.type === "histogram");
    if (family) return family;
  }
  return undefined;
}
