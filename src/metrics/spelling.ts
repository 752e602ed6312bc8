/**
 * How the two exposition formats spell strings and numbers: the Prometheus text format 0.0.4 and OpenMetrics 1.0.
 * Label values are quoted in both and escape the same three characters; HELP text is quoted only in OpenMetrics
 * (an escaped-string in its ABNF), so only there does a double quote need its backslash.
 */
export type ExpositionFormat = "text" | "openmetrics";

const ESCAPES: Readonly<Record<string, string>> = { "\\": "\\\\", "\n": "\\n", '"': '\\"' };
/** Backslash, line feed and double quote: what a quoted string escapes. */
const IN_QUOTES = /[\\\n"]/g;
/** The text format's HELP is not quoted: a double quote stands as it is, and `\"` would read as two characters. */
const UNQUOTED = /[\\\n]/g;

/** Escapes a label value (`where: "label"`) or HELP text for one format. */
export function escapeString(value: string, where: "label" | "help", format: ExpositionFormat): string {
  const special = where === "help" && format === "text" ? UNQUOTED : IN_QUOTES;
  return value.replace(special, (c) => ESCAPES[c] as string);
}

/** A label value between its quotes, the same in both formats. */
export function escapeLabelValue(value: string): string {
  return escapeString(value, "label", "text");
}

/** Sample values as both formats spell them: any float rendering is allowed there. */
export function formatValue(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return "NaN";
  return value > 0 ? "+Inf" : "-Inf";
}

/**
 * The canonical spelling OpenMetrics asks of `le` and `quantile` label values, so that one bound is one label
 * value whoever wrote it: the shortest digits that read back as the same float, in fixed notation for exponents
 * -4 to 5 and in exponent notation (at least two exponent digits) outside them, with ".0" added to a whole
 * number; `+Inf` for positive infinity. So 1 is "1.0", 0.005 "0.005", 1e-05 "1e-05", 1000000 "1e+06".
 */
export function canonicalFloat(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value === 0) return "0.0";
  const [digits = "", exponentText = "0"] = value.toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 6) return `${digits}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
  const fixed = String(value);
  return fixed.includes(".") ? fixed : `${fixed}.0`;
}

/** A float as the formats write one (`1`, `-2.5e3`, `.5`, `+Inf`, `NaN`); undefined for anything else. */
export function readFloat(text: string): number | undefined {
  if (!/^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)$/.test(text)) return undefined;
  if (text.endsWith("Inf")) return text.startsWith("-") ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  return Number(text);
}
