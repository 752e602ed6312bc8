/**
 * Renders the alert definitions as a Prometheus rules file and as a PrometheusRule for the Prometheus Operator.
 * Both carry the same groups; the output depends on nothing but the definitions, so a fresh rendering can be
 * compared with the committed files.
 */
import { stringify } from "yaml";
import { ALERT_GROUPS, runbook, type AlertGroup } from "./alerts.ts";

const HEADER = "# Generated from src/observe/alerts.ts by `npm run observe`; do not edit by hand.\n";

/** Labels the PrometheusRule carries; kube-prometheus-stack's default ruleSelector matches `release: <its release name>`. */
export const PROMETHEUS_RULE_LABELS: Readonly<Record<string, string>> = {
  "app.kubernetes.io/name": "sidecar-exporter",
  "app.kubernetes.io/component": "alerts",
  release: "prometheus",
};

function sorted(record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface RuleGroupDoc {
  name: string;
  rules: { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }[];
}

export function ruleGroups(groups: readonly AlertGroup[] = ALERT_GROUPS): RuleGroupDoc[] {
  return groups.map((g) => ({
    name: g.name,
    rules: g.alerts.map((a) => ({
      alert: a.alert,
      expr: a.expr,
      for: a.for,
      labels: sorted({ severity: a.severity }),
      annotations: sorted({ summary: a.summary, description: a.description, runbook: runbook(a) }),
    })),
  }));
}

// No folding: PromQL and annotation text stay on one line each, which keeps diffs of the generated files readable.
const YAML_OPTIONS = { lineWidth: 0 } as const;

/** monitoring/alerts.rules.yml: a plain rules file for Prometheus's rule_files (and promtool). */
export function renderRulesFile(groups: readonly AlertGroup[] = ALERT_GROUPS): string {
  return HEADER + stringify({ groups: ruleGroups(groups) }, YAML_OPTIONS);
}

/** k8s/monitoring/prometheusrule.yaml: the same groups for a Prometheus Operator (kube-prometheus-stack). */
export function renderPrometheusRule(groups: readonly AlertGroup[] = ALERT_GROUPS): string {
  const doc = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "sidecar-exporter", labels: sorted(PROMETHEUS_RULE_LABELS) },
    spec: { groups: ruleGroups(groups) },
  };
  return HEADER + stringify(doc, YAML_OPTIONS);
}

/** The README's alert table: alert, severity, what it means, what to do. */
export function renderAlertTable(groups: readonly AlertGroup[] = ALERT_GROUPS): string {
  const cell = (s: string): string => s.replaceAll("|", "\\|");
  const lines = ["| alert | severity | what it means | what to do |", "|---|---|---|---|"];
  for (const a of groups.flatMap((g) => g.alerts)) lines.push(`| \`${a.alert}\` | ${a.severity} | ${cell(a.meaning)} | ${cell(a.action)} |`);
  return `${lines.join("\n")}\n`;
}
