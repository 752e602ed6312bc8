import * as z from "zod";
import { SOURCE_NAME_LIST, sourcesSchema } from "../sources/config.ts";
import { markField } from "./fields.ts";
import { bool, credentialFile, duration, enumOf, hostPort, httpPath, httpUrl, pattern, port, show, timerDuration } from "./primitives.ts";

export const CHECK_TYPES = ["http", "tcp", "grpc", "source", "backup"] as const;
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "OPTIONS"] as const;

const labelName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, {
  error: (iss) => `${show(iss.input)} is not a Prometheus label name, use letters, digits and "_"`,
});

const checkName = z
  .string({ error: "a check needs a name" })
  .regex(/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/, {
    error: (iss) => `${show(iss.input)} is not a check name, use lower-case letters, digits, ".", "_" and "-" (at most 63)`,
  });

/** "200", 200, "2xx" or "200-299". */
const statusSpec = z.union([z.number().int(), z.string()]).refine(
  (s) => (typeof s === "number" ? s >= 100 && s <= 599 : /^([1-5]xx|[1-5]\d\d(-[1-5]\d\d)?)$/.test(s)),
  { error: (iss) => `${show(iss.input)} is not an HTTP status, use e.g. 200, "2xx" or "200-299"` },
);

const tls = z.strictObject({
  enabled: bool().optional(),
  caFile: z.string().optional(),
  certFile: z.string().optional(),
  keyFile: credentialFile().optional(),
  serverName: z.string().optional(),
  insecureSkipVerify: bool().default(false),
});

/**
 * One shape for every check type, so unknown keys are found the same way everywhere; which fields a type needs
 * is enforced in `resolve.ts`, where the type is known.
 */
export const checkSchema = z.strictObject({
  name: checkName,
  type: enumOf(CHECK_TYPES).optional(),
  critical: bool().optional(),
  interval: timerDuration().optional(),
  timeout: timerDuration().optional(),
  endpoint: httpPath().optional(),
  // http
  url: httpUrl().optional(),
  method: enumOf(HTTP_METHODS).optional(),
  expectedStatus: z.array(statusSpec).optional(),
  bodyMatch: pattern().optional(),
  // Values under names like Authorization are credentials; any of them may be.
  headers: markField(z.record(z.string(), z.string()), "secret").optional(),
  bearerTokenFile: credentialFile().optional(),
  maxBodyBytes: z.number().int().positive().optional(),
  // tcp and grpc
  address: hostPort().optional(),
  // grpc
  service: z.string().optional(),
  tls: tls.optional(),
  // source
  source: enumOf(SOURCE_NAME_LIST).optional(),
  // backup
  target: z.string().optional(),
  maxAge: duration().optional(),
  minBytes: z.number().int().nonnegative().optional(),
  requireVerified: bool().optional(),
});

const collection = z.strictObject({
  interval: timerDuration().default(15_000),
  timeout: timerDuration().default(10_000),
});

export const configSchema = z.strictObject({
  metrics: z
    .strictObject({
      enabled: bool().default(true),
      /** Default 8080, or 8443 when secure. */
      port: port().optional(),
      path: httpPath().default("/metrics"),
      /** HTTPS with Kubernetes authentication and authorization, as the operators serve their own metrics. */
      secure: bool().default(false),
      /** Scrapes answered by a thread of their own, from a copy of the exposition: no wait behind the event loop. */
      scrapeThread: bool().default(false),
      tls: z
        .strictObject({
          certFile: z.string().min(1),
          keyFile: credentialFile().min(1),
          /** How often the files are compared for a rotated certificate. */
          reloadInterval: timerDuration().default(10_000),
        })
        .optional(),
      auth: z
        .strictObject({
          mode: enumOf(["kubernetes", "mtls", "none"]).default("kubernetes"),
          cacheTTL: duration().default(60_000),
          cacheSize: z.number().int().min(1).default(1024),
          timeout: timerDuration().default(5_000),
          /** The API server for reviews: a kubeconfig for runs outside a cluster; default in-cluster. */
          kubeconfig: credentialFile().optional(),
          context: z.string().optional(),
          /** mtls: the CA that signs scrapers' client certificates, and the common names allowed. */
          clientCAFile: z.string().optional(),
          allowedCommonNames: z.array(z.string()).default([]),
        })
        .prefault({}),
      collection: collection.prefault({}),
      custom: z
        .strictObject({
          enabled: bool().default(true),
          labels: z.record(labelName, z.string()).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
  health: z
    .strictObject({
      enabled: bool().default(true),
      port: port().default(8081),
      livenessPath: httpPath().default("/healthz"),
      readinessPath: httpPath().default("/readyz"),
    })
    .prefault({}),
  grpcHealth: z
    .strictObject({
      enabled: bool().default(true),
      port: port().default(8082),
    })
    .prefault({}),
  server: z
    .strictObject({
      address: z.string().default("0.0.0.0"),
      /** On SIGTERM, readiness fails this long before the servers stop accepting: what a load balancer needs to notice. */
      shutdownDelay: timerDuration().default(5_000),
      shutdownGracePeriod: timerDuration().default(5_000),
    })
    .prefault({}),
  sources: sourcesSchema,
  limits: z
    .strictObject({
      /** A source's series beyond this are dropped and counted, so one runaway upstream cannot exhaust memory. */
      seriesPerSource: z.number().int().min(1).default(10_000),
      /** Open connections per server (health, metrics, gRPC health); at the cap the longest idle or waiting gives way. */
      maxConnections: z.number().int().min(1).default(256),
    })
    .prefault({}),
  leaderElection: z
    .strictObject({
      enabled: bool().default(false),
      leaseName: z.string().default("sidecar-exporter"),
      /** Default: the pod's namespace (POD_NAMESPACE, else the service account's namespace file). */
      namespace: z.string().optional(),
      /** Default: the pod name (HOSTNAME). */
      identity: z.string().optional(),
      leaseDuration: timerDuration().default(15_000),
      renewDeadline: timerDuration().default(10_000),
      retryPeriod: timerDuration().default(2_000),
      kubeconfig: credentialFile().optional(),
      context: z.string().optional(),
    })
    .prefault({}),
  healthChecks: z
    .strictObject({
      custom: z.array(checkSchema).default([]),
      dependencies: z.array(checkSchema).default([]),
    })
    .prefault({}),
  debug: z
    .strictObject({
      /** Apply metrics.auth (kubernetes mode) to /debug/status and /debug/pprof/* too. */
      protect: bool().default(false),
      /** /debug/pprof/heap and /debug/pprof/profile on the health port; off because a heap snapshot is costly. */
      pprof: z.strictObject({ enabled: bool().default(false), maxProfileSeconds: z.number().int().min(1).max(300).default(30) }).prefault({}),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: enumOf(LOG_LEVELS).default("info"),
      format: enumOf(["json", "console"]).default("json"),
      components: z.record(z.string(), z.strictObject({ level: enumOf(LOG_LEVELS) })).default({}),
      fields: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
      sampling: z
        .strictObject({
          enabled: bool().default(false),
          levels: z.partialRecord(enumOf(LOG_LEVELS), z.number().int().min(1)).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawCheck = z.output<typeof checkSchema>;
export type TlsConfig = z.output<typeof tls>;
export type LogLevel = (typeof LOG_LEVELS)[number];
