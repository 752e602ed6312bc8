import type { Finding } from "./resolve.ts";

/**
 * How many errors, and apart from them warnings, are shown of a configuration: the first few are enough to act
 * on, and a file with thousands would otherwise flood the terminal or make one log line of megabytes.
 */
export const FINDINGS_SHOWN = 20;

/** The first FINDINGS_SHOWN findings, and how many more there are. */
export function firstFindings(findings: readonly Finding[]): { shown: readonly Finding[]; more: number } {
  return { shown: findings.slice(0, FINDINGS_SHOWN), more: Math.max(0, findings.length - FINDINGS_SHOWN) };
}
