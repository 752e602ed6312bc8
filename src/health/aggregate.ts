import { scrub } from "../secret.ts";
import type { CheckStore, CheckView } from "../state/checks.ts";

export interface HealthItem {
  name: string;
  ok: boolean;
  /** Why it fails; empty when ok. */
  reason: string;
  /** Shown for information only (sources); never decides the verdict. */
  informational?: boolean;
}

/** A source's state as readiness lists it. */
export interface SourceLine {
  name: string;
  up: boolean;
  error?: string;
}

export interface HealthReport {
  ok: boolean;
  items: HealthItem[];
}

export function describeFailure(view: CheckView): string {
  switch (view.status) {
    case "pending":
      return "not run yet";
    case "stale":
      return `stale: last result is ${Math.round((view.ageMs ?? 0) / 1000)}s old`;
    default:
      return view.result?.message ?? "failed";
  }
}

/** Liveness: the process is running its event loop. Nothing outside the process is consulted, by design. */
export function liveness(): HealthReport {
  return { ok: true, items: [{ name: "ping", ok: true, reason: "" }] };
}

/**
 * Readiness: the process is not shutting down and every critical check passes. Non-critical checks are listed
 * for information with ?verbose but never fail it.
 */
export function readiness(
  store: CheckStore,
  opts: { shuttingDown: boolean; exclude?: ReadonlySet<string>; sources?: readonly SourceLine[] },
): HealthReport {
  const items: HealthItem[] = [
    { name: "shutdown", ok: !opts.shuttingDown, reason: opts.shuttingDown ? "process is shutting down" : "" },
  ];
  for (const view of store.views()) {
    if (!view.spec.critical || opts.exclude?.has(view.spec.name)) continue;
    const ok = view.status === "pass";
    items.push({ name: view.spec.name, ok, reason: ok ? "" : describeFailure(view) });
  }
  for (const source of opts.sources ?? []) {
    const name = `source/${source.name}`;
    if (opts.exclude?.has(name)) continue;
    items.push({ name, ok: source.up, reason: source.up ? "" : `${source.error ?? "no successful poll yet"} (not critical)`, informational: true });
  }
  const filtered = opts.exclude?.has("shutdown") ? items.filter((i) => i.name !== "shutdown") : items;
  return { ok: filtered.every((i) => i.ok || i.informational), items: filtered };
}

/** The kube-apiserver ?verbose body: one line per item, then the verdict; answered without authentication, so scrubbed. */
export function verboseText(kind: "livez" | "readyz" | "healthz", report: HealthReport, excluded: readonly string[] = []): string {
  const lines = report.items.map((i) => (i.ok ? `[+]${i.name} ok` : `[-]${i.name} failed: ${i.reason}`));
  for (const name of excluded) lines.push(`[+]${name} excluded: ok`);
  lines.push(`${kind} check ${report.ok ? "passed" : "failed"}`);
  return scrub(`${lines.join("\n")}\n`);
}
