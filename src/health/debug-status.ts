import type { CheckSpec } from "../config/types.ts";
import { scrub } from "../secret.ts";
import type { CheckView } from "../state/checks.ts";
import type { HealthModel } from "./model.ts";

/** Where a check points; a URL shows without the credentials its user info or query may carry (SecretUrl). */
export function checkTarget(spec: CheckSpec): string {
  switch (spec.type) {
    case "http":
      return `${spec.method} ${spec.url}`;
    case "tcp":
    case "grpc":
      return spec.type === "grpc" && spec.service ? `${spec.address} service=${spec.service}` : spec.address;
    case "source":
      return `source ${spec.source}`;
    case "backup":
      return `backup target ${spec.target}`;
  }
}

export function checkJson(view: CheckView) {
  const { spec, result } = view;
  return {
    name: spec.name,
    type: spec.type,
    critical: spec.critical,
    target: checkTarget(spec),
    endpoint: spec.endpoint,
    intervalSeconds: spec.intervalMs / 1000,
    timeoutSeconds: spec.timeoutMs / 1000,
    status: view.status,
    checkedAt: result ? new Date(result.checkedAt).toISOString() : null,
    ageSeconds: view.ageMs === undefined ? null : Math.round(view.ageMs / 100) / 10,
    durationMs: result?.durationMs ?? null,
    error: result && !result.ok ? (result.message ?? "failed") : null,
    reason: result?.reason ?? null,
    message: result?.ok ? (result.message ?? null) : null,
  };
}

export interface DebugInfo {
  version: string;
  startedAt: number;
}

/** Everything /debug/status shows. Built from state only, then scrubbed of any known secret value. */
export function debugStatus(model: HealthModel, info: DebugInfo, sources: () => unknown[] = () => []): string {
  const report = model.readiness();
  const body = {
    version: info.version,
    startedAt: new Date(info.startedAt).toISOString(),
    uptimeSeconds: Math.round((Date.now() - info.startedAt) / 1000),
    ready: report.ok,
    shuttingDown: model.shuttingDown,
    checks: model.store.views().map(checkJson),
    sources: sources(),
  };
  return scrub(JSON.stringify(body, null, 2));
}
