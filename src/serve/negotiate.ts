/**
 * Content negotiation for a scrape, by the rules of HTTP (RFC 9110 §12.5): each media range or coding may carry a
 * weight `q` from 0 to 1, a form takes the weight of the most specific range that matches it, and q=0 means "not
 * acceptable". One function for every server that answers scrapes (the main thread's and the scrape thread's).
 */
import type { ExpositionFormat } from "../metrics/spelling.ts";

/** What a scrape is answered with; undefined from `negotiateScrape` when nothing served is acceptable (406). */
export interface ScrapeForm {
  format: ExpositionFormat;
  gzipped: boolean;
}

interface Preference {
  /** Lower-cased type/subtype, or a coding. */
  name: string;
  params: Map<string, string>;
  q: number;
  /** Position in the header: of equal weights and specificity, the one the client named first wins. */
  index: number;
}

/** Splits at commas outside quoted strings. */
function splitList(header: string): string[] {
  const items: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const c = header[i] as string;
    if (c === '"') quoted = !quoted;
    else if (c === "\\" && quoted) {
      current += c + (header[i + 1] ?? "");
      i++;
      continue;
    } else if (c === "," && !quoted) {
      items.push(current);
      current = "";
      continue;
    }
    current += c;
  }
  items.push(current);
  return items.map((item) => item.trim()).filter((item) => item !== "");
}

/** `0`, `0.5`, `1`, `1.000`: a weight as RFC 9110 writes one; undefined for anything else. */
function weight(text: string): number | undefined {
  return /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(text) ? Number(text) : undefined;
}

/** The entries of an Accept or Accept-Encoding header; an entry with an unreadable weight is left out. */
function preferences(header: string): Preference[] {
  const out: Preference[] = [];
  splitList(header).forEach((item, index) => {
    const [name = "", ...rest] = item.split(";").map((part) => part.trim());
    const params = new Map<string, string>();
    let q: number | undefined = 1;
    for (const param of rest) {
      const eq = param.indexOf("=");
      if (eq === -1) continue;
      const key = param.slice(0, eq).trim().toLowerCase();
      const value = param
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, "$1");
      if (key === "q") q = weight(value);
      else params.set(key, value);
    }
    if (q !== undefined) out.push({ name: name.toLowerCase(), params, q, index });
  });
  return out;
}

interface Offer {
  format: ExpositionFormat;
  type: string;
  subtype: string;
  /** The version this exporter writes; a range naming another version does not match. */
  version: string;
}

/** The text format first: it is the default, and wins a tie. */
const OFFERS: readonly Offer[] = [
  { format: "text", type: "text", subtype: "plain", version: "0.0.4" },
  { format: "openmetrics", type: "application", subtype: "openmetrics-text", version: "1.0.0" },
];

/** How specifically a range names an offer: -1 not at all, 0 `*∕*`, 1 `type/*`, 2 the type, 3 the type and version. */
function specificity(range: Preference, offer: Offer): number {
  const [type, subtype] = range.name.split("/");
  if (type === "*" && subtype === "*") return 0;
  if (type !== offer.type) return -1;
  if (subtype === "*") return 1;
  if (subtype !== offer.subtype) return -1;
  const version = range.params.get("version");
  if (version === undefined) return 2;
  return version === offer.version ? 3 : -1;
}

interface Judged {
  offer: Offer;
  /** The range that decided, or undefined when none matched. */
  range: Preference | undefined;
  specificity: number;
}

function judge(ranges: readonly Preference[], offer: Offer): Judged {
  let best: Judged = { offer, range: undefined, specificity: -1 };
  for (const range of ranges) {
    const s = specificity(range, offer);
    if (s > best.specificity) best = { offer, range, specificity: s };
  }
  return best;
}

/**
 * The exposition format an Accept header asks for. Of the formats it accepts (q > 0), the one with the highest
 * weight; then the one named more specifically; then the one named first; then the text format. OpenMetrics is
 * offered as version 1.0.0, which a range without a version also means; a range naming another version (a later
 * one, or the 0.0.1 draft) does not match it, nor does a text range naming a version other than 0.0.4. When
 * nothing matches, the text format is the answer, as with no header; undefined (406) only when the header refuses
 * the text format outright (q=0) and accepts nothing else served.
 */
export function negotiateFormat(accept: string | undefined): ExpositionFormat | undefined {
  if (accept === undefined || accept.trim() === "") return "text";
  // A scraper sends the same header every time: read once, it is a lookup.
  if (decided.has(accept)) return decided.get(accept);
  const format = decide(accept);
  if (accept.length > DECIDED_LONGEST) return format;
  if (decided.size >= DECIDED_MAX) decided.clear();
  decided.set(accept, format);
  return format;
}

/** Headers remembered at most, and the longest: a client sending ever new or huge ones cannot grow the memory. */
const DECIDED_MAX = 64;
const DECIDED_LONGEST = 1024;
const decided = new Map<string, ExpositionFormat | undefined>();

function decide(accept: string): ExpositionFormat | undefined {
  const ranges = preferences(accept);
  const judged = OFFERS.map((offer) => judge(ranges, offer));
  const acceptable = judged.filter((j): j is Judged & { range: Preference } => j.range !== undefined && j.range.q > 0);
  acceptable.sort((a, b) => b.range.q - a.range.q || b.specificity - a.specificity || a.range.index - b.range.index);
  const chosen = acceptable[0];
  if (chosen) return chosen.offer.format;
  const text = judged[0] as Judged;
  return text.range !== undefined ? undefined : "text";
}

/** gzip when Accept-Encoding gives it (or `*`) a weight above 0; identity otherwise, which is always acceptable here. */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  const codings = preferences(acceptEncoding);
  const named = codings.find((c) => c.name === "gzip" || c.name === "x-gzip") ?? codings.find((c) => c.name === "*");
  return named !== undefined && named.q > 0;
}

/** Both at once, for one scrape. */
export function negotiateScrape(accept: string | undefined, acceptEncoding: string | undefined): ScrapeForm | undefined {
  const format = negotiateFormat(accept);
  return format === undefined ? undefined : { format, gzipped: acceptsGzip(acceptEncoding) };
}

/** What a 406 says: the formats there are to ask for. */
export const NOT_ACCEPTABLE = `none of the formats served is acceptable; ask for ${OFFERS.map((o) => `${o.type}/${o.subtype}; version=${o.version}`).join(" or ")}`;
