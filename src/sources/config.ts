import * as z from "zod";
import { bool, credentialFile, duration, enumOf, httpUrl, pattern, timerDuration } from "../config/primitives.ts";
import { secretRef } from "../config/secret-ref.ts";

/** Settings every source has. Interval and timeout default to metrics.collection's. */
const common = {
  enabled: bool().default(true),
  interval: timerDuration().optional(),
  timeout: timerDuration().optional(),
};

const tlsFiles = z.strictObject({
  caFile: z.string().optional(),
  serverName: z.string().optional(),
  insecureSkipVerify: bool().default(false),
});

export const talosSourceSchema = z.strictObject({
  ...common,
  /** A talosctl config file (contexts with endpoints, nodes and base64 ca/crt/key). */
  talosconfig: credentialFile().optional(),
  /** Context to use; default: the file's current context. */
  context: z.string().optional(),
  /** Override the context's endpoints (host or host:port, port 50000 when absent). */
  endpoints: z.array(z.string()).optional(),
  /** Nodes to target through the endpoint; default: the context's nodes, else the endpoints. */
  nodes: z.array(z.string()).optional(),
  /** Without a talosconfig: PEM files for mTLS. */
  caFile: z.string().optional(),
  certFile: z.string().optional(),
  keyFile: credentialFile().optional(),
  /** Value of the `cluster` label of talos_etcd_member_count; default: the context name. */
  cluster: z.string().optional(),
});

const crdGroup = (group: string) =>
  z
    .strictObject({
      enabled: bool().default(true),
      group: z.string().default(group),
      version: z.string().default("v1alpha1"),
    })
    .prefault({});

export const kubernetesSourceSchema = z.strictObject({
  ...common,
  /** A kubeconfig for runs outside a cluster; default: the in-cluster service account. */
  kubeconfig: credentialFile().optional(),
  context: z.string().optional(),
  /** Namespaces to watch; empty means all. */
  namespaces: z.array(z.string()).default([]),
  /** How long one watch request stays open before it is renewed. */
  watchTimeout: timerDuration().default(300_000),
  /**
   * Objects the source keeps across all kinds; beyond it new objects are left out and counted, so a flood of
   * custom resources cannot exhaust memory.
   */
  maxObjects: z.number().int().min(1).default(50_000),
  talos: crdGroup("talos.alperen.cloud"),
  tailscale: crdGroup("gateway.tailscale.com"),
});

export const tailscaleSourceSchema = z.strictObject({
  ...common,
  baseUrl: httpUrl().prefault("https://api.tailscale.com"),
  tailnet: z.string().default("-"),
  /** An API key ("tskey-api-..."), sent as Bearer (default) or Basic. */
  apiKey: secretRef().optional(),
  authScheme: enumOf(["bearer", "basic"]).default("bearer"),
  /** An OAuth client: the exporter exchanges it for access tokens and refreshes them before they expire. */
  oauth: z
    .strictObject({
      clientId: z.string().min(1),
      clientSecret: secretRef(),
      scopes: z.array(z.string()).default([]),
    })
    .optional(),
  /** A device counts as online when connected to control, or seen within this window where that field is absent. */
  onlineWindow: duration().default(300_000),
  /** What `tailscale-connectivity` requires to be online. */
  expect: z
    .strictObject({
      tags: z.array(z.string()).default([]),
      hostnames: z.array(z.string()).default([]),
    })
    .prefault({}),
  tls: tlsFiles.optional(),
  maxBodyBytes: z.number().int().positive().default(10 * 1024 * 1024),
});

const backupTargetCommon = {
  name: z.string().regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, { error: "use lower-case letters, digits, '.', '_' and '-'" }),
  /** Labels of talos_operator_etcd_backup_size_bytes: the TalosEtcdBackup this target belongs to. */
  namespace: z.string().default(""),
  backupName: z.string().optional(),
};

export const backupTargetSchema = z.discriminatedUnion("type", [
  z.strictObject({
    ...backupTargetCommon,
    type: z.literal("s3"),
    /** S3 endpoint URL; default: AWS's regional endpoint. */
    endpoint: httpUrl().optional(),
    region: z.string().default("us-east-1"),
    bucket: z.string().min(1),
    prefix: z.string().default(""),
    pathStyle: bool().default(false),
    accessKeyId: secretRef().default({ env: "AWS_ACCESS_KEY_ID" }),
    secretAccessKey: secretRef().default({ env: "AWS_SECRET_ACCESS_KEY" }),
    sessionToken: secretRef().optional(),
    tls: tlsFiles.optional(),
  }),
  z.strictObject({
    ...backupTargetCommon,
    type: z.literal("filesystem"),
    path: z.string().min(1),
  }),
]);

export const backupsSourceSchema = z.strictObject({
  ...common,
  targets: z.array(backupTargetSchema).min(1, { error: "add at least one target (type s3 or filesystem)" }),
  /** File names that count as backups; default: everything under the prefix. */
  match: pattern().optional(),
});

export const operatorMetricsSourceSchema = z.strictObject({
  ...common,
  url: httpUrl().prefault("http://127.0.0.1:8080/metrics"),
  bearerTokenFile: credentialFile().optional(),
  tls: tlsFiles.optional(),
  maxBodyBytes: z.number().int().positive().default(10 * 1024 * 1024),
});

export const sourcesSchema = z
  .strictObject({
    talos: talosSourceSchema.optional(),
    kubernetes: kubernetesSourceSchema.optional(),
    tailscale: tailscaleSourceSchema.optional(),
    backups: backupsSourceSchema.optional(),
    operatorMetrics: operatorMetricsSourceSchema.optional(),
  })
  .prefault({});

export type TalosSourceConfig = z.output<typeof talosSourceSchema>;
export type KubernetesSourceConfig = z.output<typeof kubernetesSourceSchema>;
export type TailscaleSourceConfig = z.output<typeof tailscaleSourceSchema>;
export type BackupTargetConfig = z.output<typeof backupTargetSchema>;
export type BackupsSourceConfig = z.output<typeof backupsSourceSchema>;
export type OperatorMetricsSourceConfig = z.output<typeof operatorMetricsSourceSchema>;
export type SourcesConfig = z.output<typeof sourcesSchema>;

export interface Schedule {
  intervalMs: number;
  timeoutMs: number;
}

/** Sources as the program uses them: only enabled ones, with their schedule resolved. */
export interface ResolvedSources {
  talos?: TalosSourceConfig & Schedule;
  kubernetes?: KubernetesSourceConfig & Schedule;
  tailscale?: TailscaleSourceConfig & Schedule;
  backups?: BackupsSourceConfig & Schedule;
  operatorMetrics?: OperatorMetricsSourceConfig & Schedule;
}

/** The names sources are known by: in `source` checks, metrics' `source` label and /debug/status. */
export const SOURCE_NAMES = {
  talos: "talos",
  kubernetes: "kubernetes",
  tailscale: "tailscale",
  backups: "backups",
  operatorMetrics: "operator-metrics",
} as const satisfies Record<keyof SourcesConfig, string>;

export const SOURCE_NAME_LIST = Object.values(SOURCE_NAMES) as [string, ...string[]];
