import { CATALOGUE, type MetricDef } from "./catalogue.ts";

/** The metrics reference (docs/metrics.md), rendered from the catalogue so the two cannot drift apart. */
export function renderMetricsReference(catalogue: readonly MetricDef[] = CATALOGUE): string {
  const lines = [
    "# Metrics reference",
    "",
    "Generated from `src/metrics/catalogue.ts` by `npm run docs:metrics`; do not edit by hand.",
    "Every series also carries the labels of `metrics.custom.labels`. Process and Node.js metrics",
    "(`process_*`, `nodejs_*`) come from prom-client's defaults and are not listed.",
  ];
  const groups = [...new Set(catalogue.map((m) => m.group))];
  for (const group of groups) {
    lines.push("", `## ${group[0]?.toUpperCase()}${group.slice(1)}`, "", "| name | type | labels | help |", "|---|---|---|---|");
    for (const m of catalogue.filter((x) => x.group === group)) {
      const note = m.lintException ? ` (Name kept despite the exposition lint: ${m.lintException}.)` : "";
      lines.push(`| \`${m.name}\` | ${m.type} | ${m.labels.map((l) => `\`${l}\``).join(", ") || "—"} | ${m.help}${note} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}
