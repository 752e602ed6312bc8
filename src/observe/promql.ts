/**
 * Builders for the PromQL in alerts and dashboards. Every selector starts from a family object (the catalogue's
 * METRICS or EXTERNAL_METRICS), never from a string, so a renamed family fails the type check or the name test
 * rather than leaving a query that silently matches nothing.
 */
export interface Family {
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram";
}

interface Histogram extends Family {
  readonly type: "histogram";
}

/** `name{matcher, …}`; matchers are written out, e.g. `status="failed"`. */
export function sel(family: Family, ...matchers: readonly string[]): string {
  return matchers.length === 0 ? family.name : `${family.name}{${matchers.join(", ")}}`;
}

/** The `_bucket` series of a histogram, as a family of its own for `sel`. */
export function bucketOf(family: Histogram): Family {
  return { name: `${family.name}_bucket`, type: "counter" };
}

export function sumOf(family: Histogram): Family {
  return { name: `${family.name}_sum`, type: "counter" };
}

export function countOf(family: Histogram): Family {
  return { name: `${family.name}_count`, type: "counter" };
}

/**
 * `histogram_quantile(q, sum by (…, le) (rate(…_bucket[window])))`: the quantile per group of `by` labels.
 */
export function quantile(q: number, family: Histogram, by: readonly string[], window: string, ...matchers: readonly string[]): string {
  return `histogram_quantile(${q}, sum by (${[...by, "le"].join(", ")}) (rate(${sel(bucketOf(family), ...matchers)}[${window}])))`;
}
