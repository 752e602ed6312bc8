import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify, parseAllDocuments } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { parseDuration } from "../../src/config/duration.ts";
import { kubernetesSourceSchema } from "../../src/sources/config.ts";
import { watchedKinds } from "../../src/sources/kubernetes/kinds.ts";

const ROOT = join(import.meta.dirname, "../..");
const NAME_LABEL = { "app.kubernetes.io/name": "sidecar-exporter" };
const SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}
interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}
interface Role extends K8sObject {
  rules: PolicyRule[];
}
interface Binding extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string; optional?: boolean };
  emptyDir?: { medium?: string; sizeLimit?: string };
}
interface Deployment extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        serviceAccountName?: string;
        automountServiceAccountToken?: boolean;
        terminationGracePeriodSeconds?: number;
        securityContext?: SecurityContext & { fsGroup?: number };
        containers: Container[];
        volumes?: Volume[];
      };
    };
  };
}
interface Service extends K8sObject {
  spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
}
interface ServiceMonitor extends K8sObject {
  spec: {
    selector: { matchLabels: Record<string, string> };
    endpoints: {
      port: string;
      path?: string;
      scheme?: string;
      interval?: string;
      honorLabels?: boolean;
      bearerTokenFile?: string;
      tlsConfig?: { insecureSkipVerify?: boolean };
    }[];
  };
}
interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}
type Json = Record<string, unknown>;

function render(dir: string): K8sObject[] {
  const out = execFileSync("kubectl", ["kustomize", join(ROOT, dir)], { encoding: "utf8" });
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length > 0) throw doc.errors[0];
    return doc.toJS() as K8sObject;
  });
}

function find<T extends K8sObject>(objects: K8sObject[], kind: string, name: string | RegExp): T {
  const matches = objects.filter((o) => o.kind === kind && (typeof name === "string" ? o.metadata.name === name : name.test(o.metadata.name)));
  if (matches.length !== 1) throw new Error(`expected one ${kind} ${String(name)}, found ${matches.length}`);
  return matches[0] as T;
}

function container(deployment: Deployment, name: string): Container {
  const c = deployment.spec.template.spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

/** A rule set as sorted "group/resource:verb" (or "url:verb") atoms, so two sets compare regardless of grouping. */
function atoms(rules: PolicyRule[]): string[] {
  return rules
    .flatMap((r) => [
      ...(r.apiGroups ?? []).flatMap((g) => (r.resources ?? []).flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))),
      ...(r.nonResourceURLs ?? []).flatMap((u) => r.verbs.map((v) => `url ${u}:${v}`)),
    ])
    .sort();
}

function expectNoWildcards(rules: PolicyRule[]): void {
  for (const r of rules) {
    for (const value of [...(r.apiGroups ?? []), ...(r.resources ?? []), ...(r.verbs ?? []), ...(r.nonResourceURLs ?? [])]) {
      expect(value).not.toContain("*");
    }
    expect(r.resourceNames).toBeUndefined();
  }
}

/** The pod-level value of a security setting, unless the container overrides it. */
function effective<K extends keyof SecurityContext>(deployment: Deployment, c: Container, key: K): SecurityContext[K] {
  return c.securityContext?.[key] ?? deployment.spec.template.spec.securityContext?.[key];
}

/** Every file path a config names: secret references, talosconfig, and the *File settings. */
function configFiles(value: unknown, path = ""): { path: string; file: string }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => configFiles(v, `${path}[${i}]`));
  if (!value || typeof value !== "object") return [];
  return Object.entries(value as Json).flatMap(([k, v]) => {
    const here = path ? `${path}.${k}` : k;
    if (typeof v === "string" && (k === "file" || k === "talosconfig" || /File$/.test(k))) return [{ path: here, file: v }];
    return configFiles(v, here);
  });
}

/** The volume mounted at or above `file` in the container, the deepest one winning. */
function mountFor(deployment: Deployment, c: Container, file: string): { mountPath: string; readOnly?: boolean; volume: Volume | undefined } | undefined {
  const mount = (c.volumeMounts ?? [])
    .filter((m) => file === m.mountPath || file.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return undefined;
  return { ...mount, volume: deployment.spec.template.spec.volumes?.find((v) => v.name === mount.name) };
}

function configOf(objects: K8sObject[]): { text: string; doc: Json; configMap: ConfigMap } {
  const configMap = find<ConfigMap>(objects, "ConfigMap", /^sidecar-exporter-config-[a-z0-9]{10}$/);
  const text = configMap.data["config.yaml"];
  if (!text) throw new Error("the ConfigMap has no config.yaml");
  return { text, doc: parse(text) as Json, configMap };
}

const EXPECTED_CLUSTER_RULES: PolicyRule[] = [
  {
    apiGroups: ["talos.alperen.cloud"],
    resources: ["talosclusters", "taloscontrolplanes", "talosworkers", "talosmachines", "talosetcdbackups", "talosetcdbackupschedules"],
    verbs: ["get", "list", "watch"],
  },
  {
    apiGroups: ["gateway.tailscale.com"],
    resources: ["tailscalegateways", "tailscaleendpoints", "tailscaletailnets", "tailscaleroutepolicies", "tailscaleservice", "tailscaleservices"],
    verbs: ["get", "list", "watch"],
  },
  { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
  { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
];
const EXPECTED_ROLE_RULES: PolicyRule[] = [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] }];

const PROBES: Record<"livenessProbe" | "readinessProbe" | "startupProbe", Probe> = {
  livenessProbe: { httpGet: { path: "/healthz", port: "health" }, initialDelaySeconds: 15, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 3 },
  readinessProbe: { httpGet: { path: "/readyz", port: "health" }, initialDelaySeconds: 5, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
  startupProbe: { httpGet: { path: "/healthz", port: "health" }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 30 },
};

const base = render("k8s/base");
const monitoring = render("k8s/monitoring");
const secure = render("k8s/overlays/secure");
const tmp = mkdtempSync(join(tmpdir(), "sidecar-kustomize-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("k8s/base", () => {
  const deployment = find<Deployment>(base, "Deployment", "talos-operator");
  const pod = deployment.spec.template.spec;
  const exporter = container(deployment, "sidecar-exporter");
  const { text: configText, doc: config, configMap } = configOf(base);

  it("renders the exporter's objects, labelled, in one namespace, with bindings that resolve", () => {
    expect(base.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "-<hash>")}`).sort()).toEqual([
      "ClusterRole/sidecar-exporter",
      "ClusterRoleBinding/sidecar-exporter",
      "ConfigMap/sidecar-exporter-config-<hash>",
      "Deployment/talos-operator",
      "Role/sidecar-exporter",
      "RoleBinding/sidecar-exporter",
      "Service/sidecar-exporter",
      "ServiceAccount/sidecar-exporter",
    ]);
    for (const o of base) expect(o.metadata.labels, `${o.kind}/${o.metadata.name}`).toMatchObject(NAME_LABEL);
    const namespaced = base.filter((o) => !o.kind.startsWith("Cluster"));
    const namespace = namespaced[0]?.metadata.namespace;
    expect(namespace).toBeTruthy();
    for (const o of namespaced) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(namespace);
    for (const o of base.filter((x) => x.kind.startsWith("Cluster"))) expect(o.metadata.namespace).toBeUndefined();

    for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
      const binding = find<Binding>(base, kind, "sidecar-exporter");
      expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "sidecar-exporter", namespace }]);
      expect(find<Role>(base, binding.roleRef.kind, binding.roleRef.name).kind).toBe(kind.replace("Binding", ""));
    }
    expect(pod.serviceAccountName).toBe("sidecar-exporter");
    expect(pod.automountServiceAccountToken).not.toBe(false);
  });

  it("grants exactly read access to the watched kinds and the two review APIs, and leases in its namespace", () => {
    const clusterRole = find<Role>(base, "ClusterRole", "sidecar-exporter");
    expect(atoms(clusterRole.rules)).toEqual(atoms(EXPECTED_CLUSTER_RULES));
    expectNoWildcards(clusterRole.rules);
    const role = find<Role>(base, "Role", "sidecar-exporter");
    expect(atoms(role.rules)).toEqual(atoms(EXPECTED_ROLE_RULES));
    expectNoWildcards(role.rules);

    // The read rules are exactly the kinds the Kubernetes source watches with its default groups.
    const kinds = watchedKinds(kubernetesSourceSchema.parse({}));
    const watched = kinds.flatMap((k) => ["get", "list", "watch"].map((v) => `${k.group}/${k.plural}:${v}`)).sort();
    expect(atoms(clusterRole.rules).filter((a) => !a.includes(".k8s.io/"))).toEqual(watched);
  });

  it("runs the exporter container with its image, config, named ports and exact probes", () => {
    expect(exporter.image).toBe("sidecar-exporter:0.1.0");
    expect(exporter.args).toEqual(["--config", "/etc/sidecar-exporter/config.yaml"]);
    // `kubectl exec … -- sidecar-exporter check` finds the same file.
    expect(exporter.env).toContainEqual({ name: "SIDECAR_CONFIG", value: "/etc/sidecar-exporter/config.yaml" });
    expect(exporter.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ["metrics", 8080],
      ["health", 8081],
      ["grpc-health", 8082],
    ]);
    for (const [probe, expected] of Object.entries(PROBES)) expect(exporter[probe as keyof typeof PROBES], probe).toEqual(expected);
    expect(exporter.resources?.requests).toEqual({ cpu: "10m", memory: "64Mi" });
    expect(exporter.resources?.limits).toEqual({ cpu: "200m", memory: "256Mi" });
  });

  it("locks the exporter down: non-root numeric user, read-only root, no privilege escalation, no capabilities, seccomp", () => {
    expect(effective(deployment, exporter, "runAsNonRoot")).toBe(true);
    const uid = effective(deployment, exporter, "runAsUser");
    expect(Number.isInteger(uid) && (uid as number) > 0).toBe(true);
    expect(effective(deployment, exporter, "readOnlyRootFilesystem")).toBe(true);
    expect(effective(deployment, exporter, "allowPrivilegeEscalation")).toBe(false);
    expect(effective(deployment, exporter, "capabilities")).toEqual({ drop: ["ALL"] });
    expect(effective(deployment, exporter, "seccompProfile")).toEqual({ type: "RuntimeDefault" });
    expect(pod.securityContext?.seccompProfile).toEqual({ type: "RuntimeDefault" });
    // With a read-only root, /tmp is the one writable place.
    const tmpMount = mountFor(deployment, exporter, "/tmp");
    expect(tmpMount?.mountPath).toBe("/tmp");
    expect(tmpMount?.volume?.emptyDir).toBeDefined();
  });

  it("mounts the ConfigMap and, read-only, a Secret at every credential path the config names, and no unused one", () => {
    const configMount = mountFor(deployment, exporter, "/etc/sidecar-exporter/config.yaml");
    expect(configMount?.volume?.configMap?.name).toBe(configMap.metadata.name);
    expect(configMount?.readOnly).toBe(true);

    const files = configFiles(config);
    expect(files.map((f) => f.path)).toEqual(
      expect.arrayContaining([
        "sources.talos.talosconfig",
        "sources.tailscale.apiKey.file",
        "sources.backups.targets[0].accessKeyId.file",
        "sources.backups.targets[0].secretAccessKey.file",
      ]),
    );
    const usedMounts = new Set<string>();
    for (const { path, file } of files) {
      // The service account token and CA are the kubelet's own projected mount.
      if (file.startsWith(`${SA_TOKEN_DIR}/`)) continue;
      const mount = mountFor(deployment, exporter, file);
      expect(mount?.volume?.secret, `${path}: ${file}`).toBeDefined();
      expect(mount?.readOnly, `${path}: ${file}`).toBe(true);
      usedMounts.add(mount?.mountPath ?? "");
    }
    const secretMounts = (exporter.volumeMounts ?? []).filter((m) => pod.volumes?.find((v) => v.name === m.name)?.secret);
    expect(secretMounts.map((m) => m.mountPath).sort()).toEqual([...usedMounts].sort());
    expect(secretMounts.map((m) => m.mountPath).sort()).toEqual([
      "/var/run/secrets/etcd-backup-s3",
      "/var/run/secrets/tailscale",
      "/var/run/secrets/talos",
    ]);
  });

  it("keeps the operator's ports clear of the exporter's and its metrics where the passthrough reads them", () => {
    const ports = pod.containers.flatMap((c) => c.ports ?? []);
    expect(new Set(ports.map((p) => p.containerPort)).size).toBe(ports.length);
    expect(new Set(ports.map((p) => p.name)).size).toBe(ports.length);
    const operator = container(deployment, "manager");
    const bind = operator.args?.find((a) => a.startsWith("--metrics-bind-address="))?.split("=")[1];
    const operatorMetrics = (config.sources as { operatorMetrics?: { url?: string } } | undefined)?.operatorMetrics;
    const url = new URL(operatorMetrics?.url ?? "");
    expect(bind).toBe(`${url.hostname}:${url.port}`);
    const exporterPorts = new Set(exporter.ports?.map((p) => p.containerPort));
    expect(exporterPorts.has(Number(url.port))).toBe(false);
  });

  it("exposes the three ports by name through the Service, selecting the pod", () => {
    const service = find<Service>(base, "Service", "sidecar-exporter");
    expect(service.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ["metrics", 8080, "metrics"],
      ["health", 8081, "health"],
      ["grpc-health", 8082, "grpc-health"],
    ]);
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
  });

  it("ships a config that --print-config accepts with no warning, matching the container's ports and probe paths", () => {
    const file = join(tmp, "base-config.yaml");
    writeFileSync(file, configText);
    const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/cli.ts"), "--config", file, "--print-config"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", HOME: tmp },
    });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    const printed = parse(run.stdout) as {
      metrics: { port: number };
      health: { port: number; livenessPath: string; readinessPath: string };
      grpcHealth: { port: number };
      sources: Json;
    };
    expect(Object.keys(printed.sources).sort()).toEqual(["backups", "kubernetes", "operatorMetrics", "tailscale", "talos"]);
    const port = (name: string) => exporter.ports?.find((p) => p.name === name)?.containerPort;
    expect(printed.metrics.port).toBe(port("metrics"));
    expect(printed.health.port).toBe(port("health"));
    expect(printed.grpcHealth.port).toBe(port("grpc-health"));
    expect(exporter.livenessProbe?.httpGet?.path).toBe(printed.health.livenessPath);
    expect(exporter.readinessProbe?.httpGet?.path).toBe(printed.health.readinessPath);
    // The shutdown delay and the drain end before the kubelet kills the container.
    const { shutdownDelay, shutdownGracePeriod } = (parse(run.stdout) as { server: { shutdownDelay: string; shutdownGracePeriod: string } }).server;
    const shutdownMs = (parseDuration(shutdownDelay) ?? Infinity) + (parseDuration(shutdownGracePeriod) ?? Infinity);
    expect(shutdownMs).toBeLessThan((pod.terminationGracePeriodSeconds ?? 30) * 1_000);
  });
});

describe("k8s/monitoring", () => {
  const serviceMonitor = find<ServiceMonitor>(monitoring, "ServiceMonitor", "sidecar-exporter");
  const service = find<Service>(base, "Service", "sidecar-exporter");

  it("scrapes the Service's metrics port every 30s, and carries the alert rules", () => {
    expect(serviceMonitor.apiVersion).toBe("monitoring.coreos.com/v1");
    expect(serviceMonitor.spec.endpoints).toHaveLength(1);
    expect(serviceMonitor.spec.endpoints[0]).toMatchObject({ port: "metrics", interval: "30s", path: "/metrics" });
    expect(service.spec.ports.map((p) => p.name)).toContain(serviceMonitor.spec.endpoints[0]?.port);
    expect(service.metadata.labels).toMatchObject(serviceMonitor.spec.selector.matchLabels);
    expect(serviceMonitor.metadata.namespace).toBe(service.metadata.namespace);
    const rule = find(monitoring, "PrometheusRule", /.+/);
    expect(rule.apiVersion).toBe("monitoring.coreos.com/v1");
  });
});

describe("k8s/overlays/secure", () => {
  const deployment = find<Deployment>(secure, "Deployment", "talos-operator");
  const exporter = container(deployment, "sidecar-exporter");
  const service = find<Service>(secure, "Service", "sidecar-exporter");
  const serviceMonitor = find<ServiceMonitor>(secure, "ServiceMonitor", "sidecar-exporter");
  const { doc: config, configMap } = configOf(secure);

  it("serves metrics on 8443 as https-metrics, through the container, the Service and the ServiceMonitor", () => {
    expect(exporter.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ["https-metrics", 8443],
      ["health", 8081],
      ["grpc-health", 8082],
    ]);
    expect(service.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ["https-metrics", 8443, "https-metrics"],
      ["health", 8081, "health"],
      ["grpc-health", 8082, "grpc-health"],
    ]);
    expect(serviceMonitor.spec.endpoints).toEqual([
      expect.objectContaining({
        port: "https-metrics",
        path: "/metrics",
        interval: "30s",
        scheme: "https",
        bearerTokenFile: `${SA_TOKEN_DIR}/token`,
        tlsConfig: { insecureSkipVerify: true },
      }),
    ]);
    // The kubelet still probes plain HTTP on the health port.
    for (const [probe, expected] of Object.entries(PROBES)) expect(exporter[probe as keyof typeof PROBES], probe).toEqual(expected);
  });

  it("configures secure serving with the certificate from a mounted Secret, everything else as in the base", () => {
    const metrics = config.metrics as { port: number; secure: boolean; tls: { certFile: string; keyFile: string } };
    expect(metrics.secure).toBe(true);
    expect(metrics.port).toBe(8443);
    for (const file of [metrics.tls.certFile, metrics.tls.keyFile]) {
      const mount = mountFor(deployment, exporter, file);
      expect(mount?.mountPath, file).toBe("/etc/sidecar-exporter/tls");
      expect(mount?.volume?.secret, file).toBeDefined();
      expect(mount?.readOnly, file).toBe(true);
    }
    expect(mountFor(deployment, exporter, "/etc/sidecar-exporter/config.yaml")?.volume?.configMap?.name).toBe(configMap.metadata.name);

    // How /metrics is served differs; the scrape thread is a choice the base offers and secure serving excludes.
    const withoutServing = (doc: Json): Json => {
      const { port: _port, secure: _secure, tls: _tls, scrapeThread: _scrapeThread, ...rest } = doc.metrics as Json;
      return { ...doc, metrics: rest };
    };
    expect(withoutServing(config)).toEqual(withoutServing(configOf(base).doc));

    // The exporter itself accepts it: secure serving on 8443 with the mounted certificate, no warning.
    const file = join(tmp, "secure-config.yaml");
    writeFileSync(file, stringify(config));
    const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "src/cli.ts"), "--config", file, "--print-config"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", HOME: tmp },
    });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(parse(run.stdout)).toMatchObject({ metrics: { port: 8443, secure: true, auth: { mode: "kubernetes" } } });
  });

  it("lets the scraper be granted get on /metrics, and keeps the review permissions", () => {
    const reader = find<Role>(secure, "ClusterRole", "sidecar-exporter-metrics-reader");
    expect(atoms(reader.rules)).toEqual(["url /metrics:get"]);
    expectNoWildcards(reader.rules);
    const clusterRole = find<Role>(secure, "ClusterRole", "sidecar-exporter");
    expect(atoms(clusterRole.rules)).toEqual(atoms(EXPECTED_CLUSTER_RULES));
    expect(secure.filter((o) => o.kind === "PrometheusRule")).toHaveLength(1);
  });
});
