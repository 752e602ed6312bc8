import type { Secret } from "../secret.ts";
import type { SecretUrl } from "../secret-url.ts";
import type { LogLevel, TlsConfig } from "./schema.ts";

import type { ResolvedSources } from "../sources/config.ts";

export type CheckType = "http" | "tcp" | "grpc" | "source" | "backup";

interface CheckBase {
  name: string;
  critical: boolean;
  intervalMs: number;
  timeoutMs: number;
  /** Path on the health server that answers for this check alone. */
  endpoint: string;
  /** Which list of the config file the check came from. */
  group: "custom" | "dependencies";
}

/** Inclusive ranges of accepted status codes. */
export type StatusRange = readonly [number, number];

export interface HttpCheckSpec extends CheckBase {
  type: "http";
  url: SecretUrl;
  method: string;
  expectedStatus: StatusRange[];
  bodyMatch?: string;
  headers: Record<string, string | Secret>;
  bearerTokenFile?: string;
  tls?: TlsConfig;
  maxBodyBytes: number;
}

export interface TcpCheckSpec extends CheckBase {
  type: "tcp";
  address: string;
}

export interface GrpcCheckSpec extends CheckBase {
  type: "grpc";
  address: string;
  service: string;
  tls?: TlsConfig;
}

export interface SourceCheckSpec extends CheckBase {
  type: "source";
  source: string;
}

/** Passes when the backup target's newest backup is recent, large enough and (by default) verified. */
export interface BackupCheckSpec extends CheckBase {
  type: "backup";
  target: string;
  maxAgeMs?: number;
  minBytes?: number;
  requireVerified: boolean;
}

export type CheckSpec = HttpCheckSpec | TcpCheckSpec | GrpcCheckSpec | SourceCheckSpec | BackupCheckSpec;

export interface LoggingConfig {
  level: LogLevel;
  format: "json" | "console";
  components: Record<string, { level: LogLevel }>;
  fields: Record<string, string | number | boolean>;
  sampling: { enabled: boolean; levels: Partial<Record<LogLevel, number>> };
}

export interface Config {
  metrics: {
    enabled: boolean;
    port: number;
    path: string;
    secure: boolean;
    scrapeThread: boolean;
    tls?: { certFile: string; keyFile: string; reloadIntervalMs: number };
    auth: {
      mode: "kubernetes" | "mtls" | "none";
      cacheTtlMs: number;
      cacheSize: number;
      timeoutMs: number;
      kubeconfig?: string;
      context?: string;
      clientCAFile?: string;
      allowedCommonNames: string[];
    };
    collection: { intervalMs: number; timeoutMs: number };
    labels: Record<string, string>;
  };
  health: { enabled: boolean; port: number; livenessPath: string; readinessPath: string };
  grpcHealth: { enabled: boolean; port: number };
  server: { address: string; shutdownDelayMs: number; shutdownGracePeriodMs: number };
  checks: CheckSpec[];
  sources: ResolvedSources;
  limits: { seriesPerSource: number; maxConnections: number };
  leaderElection: {
    enabled: boolean;
    leaseName: string;
    namespace?: string;
    identity?: string;
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
    kubeconfig?: string;
    context?: string;
  };
  debug: { protect: boolean; pprof: { enabled: boolean; maxProfileSeconds: number } };
  logging: LoggingConfig;
}
