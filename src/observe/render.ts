/**
 * Every file `npm run observe` writes, by path relative to the repository root. The test of the generated files
 * and the generator both call this, so what is committed is exactly what would be generated.
 */
import { DASHBOARDS } from "./dashboards.ts";
import { renderDashboard } from "./grafana.ts";
import { renderPrometheusRule, renderRulesFile } from "./rules.ts";

export const DASHBOARD_DIR = "dashboards";
export const RULES_FILE = "monitoring/alerts.rules.yml";
export const PROMETHEUS_RULE_FILE = "k8s/monitoring/prometheusrule.yaml";

export function renderObserveFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const d of DASHBOARDS) files.set(`${DASHBOARD_DIR}/${d.file}`, renderDashboard(d));
  files.set(RULES_FILE, renderRulesFile());
  files.set(PROMETHEUS_RULE_FILE, renderPrometheusRule());
  return files;
}
