import { Secret } from "../secret.ts";
import type { SecretUrl } from "../secret-url.ts";
import type { RawCheck, RawConfig } from "./schema.ts";
import { CHECK_TYPES } from "./schema.ts";
import { SEED_CHECK_DEFAULTS } from "./seed-checks.ts";
import type { CheckSpec, CheckType, Config, StatusRange } from "./types.ts";
import { formatDuration } from "./duration.ts";
import { show } from "./primitives.ts";
import type { ResolvedSources } from "../sources/config.ts";

export interface Finding {
  path: string;
  message: string;
}

/** Paths the health server answers itself; a check endpoint may not take one of them. */
export const RESERVED_HEALTH_PATHS = ["/", "/healthz", "/livez", "/readyz", "/debug/status"];

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Header names whose values are credentials and must never be printed. */
const SENSITIVE_HEADER = /authorization|token|secret|password|api[-_]?key|cookie/i;

/** Which fields belong to which check type, for "ignored" warnings. */
const FIELDS_BY_TYPE: Record<CheckType, readonly (keyof RawCheck)[]> = {
  http: ["url", "method", "expectedStatus", "bodyMatch", "headers", "bearerTokenFile", "maxBodyBytes", "tls"],
  tcp: ["address"],
  grpc: ["address", "service", "tls"],
  source: ["source"],
  backup: ["target", "maxAge", "minBytes", "requireVerified"],
};
const TYPED_FIELDS = new Set(Object.values(FIELDS_BY_TYPE).flat());

function statusRanges(specs: readonly (string | number)[] | undefined): StatusRange[] {
  if (!specs || specs.length === 0) return [[200, 299]];
  return specs.map((s): StatusRange => {
    if (typeof s === "number") return [s, s];
    if (s.endsWith("xx")) {
      const base = Number(s[0]) * 100;
      return [base, base + 99];
    }
    const [lo, hi] = s.split("-").map(Number);
    return [lo as number, (hi ?? lo) as number];
  });
}

interface ResolveResult {
  config: Config;
  errors: Finding[];
  warnings: Finding[];
}

/** Turns the schema-checked file into the program's Config, applying the cross-field rules. */
export function resolveConfig(raw: RawConfig): ResolveResult {
  const errors: Finding[] = [];
  const warnings: Finding[] = [];
  const checks: CheckSpec[] = [];
  const names = new Map<string, string>();
  const endpoints = new Map<string, string>();
  const defaults = { intervalMs: raw.metrics.collection.interval, timeoutMs: raw.metrics.collection.timeout };

  if (defaults.timeoutMs > defaults.intervalMs) {
    errors.push({
      path: "metrics.collection.timeout",
      message: `${formatDuration(defaults.timeoutMs)} is longer than metrics.collection.interval (${formatDuration(defaults.intervalMs)}); make it shorter`,
    });
  }

  for (const group of ["custom", "dependencies"] as const) {
    raw.healthChecks[group].forEach((given, i) => {
      const at = `healthChecks.${group}[${i}]`;
      const seed = group === "custom" ? SEED_CHECK_DEFAULTS[given.name] : undefined;
      const c: RawCheck = { ...seed, ...given };
      const seen = names.get(c.name);
      if (seen) errors.push({ path: `${at}.name`, message: `${show(c.name)} is already used by ${seen}; names must be unique` });
      names.set(c.name, at);
      const check = resolveCheck(c, group, at, defaults, errors, warnings);
      if (!check) return;
      const clash = endpoints.get(check.endpoint);
      if (clash) errors.push({ path: `${at}.endpoint`, message: `${show(check.endpoint)} is already served for ${clash}` });
      if (RESERVED_HEALTH_PATHS.includes(check.endpoint) || [raw.health.livenessPath, raw.health.readinessPath].includes(check.endpoint) || check.endpoint.startsWith("/readyz/")) {
        errors.push({ path: `${at}.endpoint`, message: `${show(check.endpoint)} is a built-in path of the health server; choose another such as "/health/${check.name}"` });
      }
      endpoints.set(check.endpoint, at);
      checks.push(check);
    });
  }

  const ports: [string, boolean, number][] = [
    ["metrics.port", raw.metrics.enabled, raw.metrics.port ?? (raw.metrics.secure ? 8443 : 8080)],
    ["health.port", raw.health.enabled, raw.health.port],
    ["grpcHealth.port", raw.grpcHealth.enabled, raw.grpcHealth.port],
  ];
  ports.forEach(([path, enabled, port], i) => {
    if (!enabled || port === 0) return;
    const earlier = ports.slice(0, i).find(([, e, p]) => e && p === port);
    if (earlier) errors.push({ path, message: `${port} is already used by ${earlier[0]}; give each server its own port` });
  });

  const sources = resolveSources(raw, defaults, errors);
  for (const check of checks) {
    if (check.type !== "backup") continue;
    const at = `healthChecks.${check.group}[${raw.healthChecks[check.group].findIndex((c) => c.name === check.name)}].target`;
    const names = sources.backups?.targets.map((t) => t.name) ?? [];
    if (!names.includes(check.target)) {
      errors.push({ path: at, message: `${show(check.target)} is not a backup target; ${names.length ? `use one of: ${names.join(", ")}` : "add it under sources.backups.targets"}` });
    }
  }

  const { auth, tls } = raw.metrics;
  const le = raw.leaderElection;
  if (le.enabled && !(le.retryPeriod < le.renewDeadline && le.renewDeadline < le.leaseDuration)) {
    errors.push({ path: "leaderElection", message: "needs retryPeriod < renewDeadline < leaseDuration (e.g. 2s, 10s, 15s)" });
  }
  const metricsPort = raw.metrics.port ?? (raw.metrics.secure ? 8443 : 8080);
  if (raw.metrics.secure && auth.mode === "mtls" && !auth.clientCAFile) {
    errors.push({ path: "metrics.auth.clientCAFile", message: "missing: mtls mode needs the CA that signs the scrapers' client certificates" });
  }
  if (raw.metrics.scrapeThread && raw.metrics.secure) {
    errors.push({ path: "metrics.scrapeThread", message: "cannot be combined with metrics.secure, whose scrapers are authenticated on the main thread; turn one of them off" });
  }
  if (raw.debug.protect && auth.mode !== "kubernetes") {
    errors.push({ path: "debug.protect", message: `needs metrics.auth.mode kubernetes (the health port is plain HTTP, so ${auth.mode} cannot apply there)` });
  }
  const config: Config = {
    metrics: {
      enabled: raw.metrics.enabled,
      port: metricsPort,
      path: raw.metrics.path,
      secure: raw.metrics.secure,
      scrapeThread: raw.metrics.scrapeThread,
      ...(tls && { tls: { certFile: tls.certFile, keyFile: tls.keyFile, reloadIntervalMs: tls.reloadInterval } }),
      auth: {
        mode: auth.mode,
        cacheTtlMs: auth.cacheTTL,
        cacheSize: auth.cacheSize,
        timeoutMs: auth.timeout,
        ...(auth.kubeconfig !== undefined && { kubeconfig: auth.kubeconfig }),
        ...(auth.context !== undefined && { context: auth.context }),
        ...(auth.clientCAFile !== undefined && { clientCAFile: auth.clientCAFile }),
        allowedCommonNames: auth.allowedCommonNames,
      },
      collection: defaults,
      labels: raw.metrics.custom.enabled ? raw.metrics.custom.labels : {},
    },
    health: raw.health,
    grpcHealth: raw.grpcHealth,
    server: { address: raw.server.address, shutdownDelayMs: raw.server.shutdownDelay, shutdownGracePeriodMs: raw.server.shutdownGracePeriod },
    checks,
    sources,
    limits: raw.limits,
    leaderElection: {
      enabled: le.enabled,
      leaseName: le.leaseName,
      ...(le.namespace !== undefined && { namespace: le.namespace }),
      ...(le.identity !== undefined && { identity: le.identity }),
      leaseDurationMs: le.leaseDuration,
      renewDeadlineMs: le.renewDeadline,
      retryPeriodMs: le.retryPeriod,
      ...(le.kubeconfig !== undefined && { kubeconfig: le.kubeconfig }),
      ...(le.context !== undefined && { context: le.context }),
    },
    debug: raw.debug,
    logging: raw.logging,
  };
  return { config, errors, warnings };
}

function resolveCheck(
  c: RawCheck,
  group: "custom" | "dependencies",
  at: string,
  defaults: { intervalMs: number; timeoutMs: number },
  errors: Finding[],
  warnings: Finding[],
): CheckSpec | undefined {
  if (!c.type) {
    errors.push({ path: `${at}.type`, message: `missing for check ${show(c.name)}, use one of: ${CHECK_TYPES.join(", ")}` });
    return undefined;
  }
  const intervalMs = c.interval ?? defaults.intervalMs;
  const timeoutMs = c.timeout ?? Math.min(defaults.timeoutMs, intervalMs);
  if (timeoutMs > intervalMs) {
    errors.push({ path: `${at}.timeout`, message: `${formatDuration(timeoutMs)} is longer than the check's interval (${formatDuration(intervalMs)}); make it shorter` });
  }
  if (intervalMs <= 0) errors.push({ path: `${at}.interval`, message: "must be longer than 0s" });
  if (timeoutMs <= 0) errors.push({ path: `${at}.timeout`, message: "must be longer than 0s" });

  for (const field of TYPED_FIELDS) {
    if (c[field] !== undefined && !FIELDS_BY_TYPE[c.type].includes(field) && SEED_CHECK_DEFAULTS[c.name]?.[field] === undefined) {
      warnings.push({ path: `${at}.${field}`, message: `ignored: ${c.type} checks do not use it` });
    }
  }
  if (c.tls?.certFile && !c.tls.keyFile) errors.push({ path: `${at}.tls.keyFile`, message: "missing: certFile needs its keyFile" });
  if (c.tls?.keyFile && !c.tls.certFile) errors.push({ path: `${at}.tls.certFile`, message: "missing: keyFile needs its certFile" });

  const base = {
    name: c.name,
    critical: c.critical ?? false,
    intervalMs,
    timeoutMs,
    endpoint: c.endpoint ?? `/health/${c.name}`,
    group,
  };
  const need = (field: keyof RawCheck, example: string): boolean => {
    if (c[field] !== undefined) return true;
    errors.push({ path: `${at}.${field}`, message: `missing: a ${c.type} check needs it, e.g. ${example}` });
    return false;
  };

  switch (c.type) {
    case "http": {
      if (!need("url", '"https://example.internal/healthz"')) return undefined;
      const headers: Record<string, string | Secret> = {};
      for (const [k, v] of Object.entries(c.headers ?? {})) headers[k] = SENSITIVE_HEADER.test(k) ? new Secret(v) : v;
      return {
        ...base,
        type: "http",
        url: c.url as SecretUrl,
        method: c.method ?? "GET",
        expectedStatus: statusRanges(c.expectedStatus),
        ...(c.bodyMatch !== undefined && { bodyMatch: c.bodyMatch }),
        headers,
        ...(c.bearerTokenFile !== undefined && { bearerTokenFile: c.bearerTokenFile }),
        ...(c.tls !== undefined && { tls: c.tls }),
        maxBodyBytes: c.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      };
    }
    case "tcp":
      if (!need("address", '"db.internal:5432"')) return undefined;
      return { ...base, type: "tcp", address: c.address as string };
    case "grpc":
      if (!need("address", '"localhost:5005"')) return undefined;
      return {
        ...base,
        type: "grpc",
        address: c.address as string,
        service: c.service ?? "",
        ...(c.tls !== undefined && c.tls.enabled !== false && { tls: c.tls }),
      };
    case "source":
      if (!need("source", '"tailscale"')) return undefined;
      return { ...base, type: "source", source: c.source as string };
    case "backup":
      if (!need("target", '"primary" (a name from sources.backups.targets)')) return undefined;
      return {
        ...base,
        type: "backup",
        target: c.target as string,
        ...(c.maxAge !== undefined && { maxAgeMs: c.maxAge }),
        ...(c.minBytes !== undefined && { minBytes: c.minBytes }),
        requireVerified: c.requireVerified ?? true,
      };
  }
}

/** Keeps the enabled sources and fills in their schedule from metrics.collection. */
function resolveSources(raw: RawConfig, defaults: { intervalMs: number; timeoutMs: number }, errors: Finding[]): ResolvedSources {
  const out: ResolvedSources = {};
  for (const key of Object.keys(raw.sources) as (keyof ResolvedSources)[]) {
    const given = raw.sources[key];
    if (!given || !given.enabled) continue;
    const intervalMs = given.interval ?? defaults.intervalMs;
    const timeoutMs = given.timeout ?? Math.min(defaults.timeoutMs, intervalMs);
    if (timeoutMs > intervalMs) {
      errors.push({ path: `sources.${key}.timeout`, message: `${formatDuration(timeoutMs)} is longer than the source's interval (${formatDuration(intervalMs)}); make it shorter` });
    }
    (out as Record<string, unknown>)[key] = { ...given, intervalMs, timeoutMs };
  }
  const talos = out.talos;
  if (talos && talos.talosconfig === undefined && !(talos.endpoints?.length && talos.caFile && talos.certFile && talos.keyFile)) {
    errors.push({ path: "sources.talos", message: "needs talosconfig, or endpoints with caFile, certFile and keyFile" });
  }
  const ts = out.tailscale;
  if (ts && !ts.apiKey === !ts.oauth) {
    errors.push({ path: "sources.tailscale", message: ts.apiKey ? "set apiKey or oauth, not both" : "needs apiKey ({ env: TS_API_KEY } or { file: ... }) or oauth ({ clientId, clientSecret })" });
  }
  const targets = out.backups?.targets ?? [];
  targets.forEach((t, i) => {
    if (targets.findIndex((o) => o.name === t.name) !== i) errors.push({ path: `sources.backups.targets[${i}].name`, message: `${show(t.name)} is already used; target names must be unique` });
  });
  return out;
}
