/**
 * Every file `npm run observe` writes, by path relative to the repository root. The test of the generated files
 * and the generator both call this, so what is committed is exactly what would be generated.
 */
import { DASHBOARDS } from "./dashboards.ts";
import { renderDashboard } from "./grafana.ts";
import { renderAlertTable, renderPrometheusRule, renderRulesFile } from "./rules.ts";

export const DASHBOARD_DIR = "dashboards";
export const RULES_FILE = "monitoring/alerts.rules.yml";
export const PROMETHEUS_RULE_FILE = "k8s/monitoring/prometheusrule.yaml";
export const ALERTS_DOC = "docs/alerts.md";

const ALERTS_DOC_HEADER = `# Alerts

Generated from \`src/observe/alerts.ts\` by \`npm run observe\`; do not edit by hand. The same groups are in
\`monitoring/alerts.rules.yml\` (Prometheus \`rule_files\`) and \`k8s/monitoring/prometheusrule.yaml\` (a PrometheusRule
labelled \`release: prometheus\`). Each alert has a \`severity\` label and \`summary\`, \`description\` and \`runbook\`
annotations, keeps the exporter's custom labels (e.g. \`cluster\`), and expects the scrape to honour the exporter's
own labels (\`honorLabels: true\`, as in \`k8s/monitoring/servicemonitor.yaml\`). Their unit tests are in
\`monitoring/tests/\` (\`promtool test rules\`, run by \`npm test\`).

`;

export function renderObserveFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const d of DASHBOARDS) files.set(`${DASHBOARD_DIR}/${d.file}`, renderDashboard(d));
  files.set(RULES_FILE, renderRulesFile());
  files.set(PROMETHEUS_RULE_FILE, renderPrometheusRule());
  files.set(ALERTS_DOC, ALERTS_DOC_HEADER + renderAlertTable());
  return files;
}
