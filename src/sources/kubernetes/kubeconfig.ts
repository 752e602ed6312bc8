import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { UpstreamError } from "../../errors.ts";
import { Secret } from "../../secret.ts";
import { SecretUrl } from "../../secret-url.ts";
import { asArray, asObject, asString } from "./objects.ts";

export interface TlsSettings {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipVerify: boolean;
  serverName?: string;
}

/** Produces the Authorization header for each request; re-reads token files so rotated tokens are picked up. */
export interface Credentials {
  authorization(): Promise<string | undefined>;
  /** The server rejected the credential: read it again before the next request. */
  invalidate(): void;
}

export interface KubeConnection {
  /** The API server; requests go to its children (SecretUrl.child). */
  server: SecretUrl;
  tls: TlsSettings;
  credentials: Credentials;
  /** Where the settings came from, for logs and /debug/status: "in-cluster" or "kubeconfig FILE, context NAME". */
  origin: string;
}

export const IN_CLUSTER = {
  tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
  caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
} as const;

export interface InClusterPaths {
  tokenFile: string;
  caFile: string;
}

/** Projected service-account tokens rotate on disk (hourly by default); re-reading each minute follows them. */
export const TOKEN_RELOAD_MS = 60_000;

const none: Credentials = { authorization: async () => undefined, invalidate: () => {} };

function staticToken(token: Secret): Credentials {
  return { authorization: async () => `Bearer ${token.reveal()}`, invalidate: () => {} };
}

/**
 * A bearer token read from a file, re-read every `reloadMs` and after a 401. If a re-read fails the last good
 * token is kept (the file may be mid-rotation); with no token at all the request fails as unauthorized.
 */
export class FileToken implements Credentials {
  #token: Secret | undefined;
  #readAt = 0;

  constructor(
    readonly path: string,
    private readonly field: string,
    private readonly reloadMs: number = TOKEN_RELOAD_MS,
  ) {}

  async authorization(): Promise<string> {
    if (!this.#token || Date.now() - this.#readAt >= this.reloadMs) {
      try {
        const value = (await readFile(this.path, "utf8")).trim();
        if (value === "") throw Object.assign(new Error("empty"), { code: "EMPTY" });
        this.#token = new Secret(value, { rotating: true });
        this.#readAt = Date.now();
      } catch (err) {
        if (!this.#token) {
          const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
          throw new UpstreamError(`${this.field}: cannot read token file ${this.path}: ${code}; mount the token there or fix the path`, "unauthorized");
        }
      }
    }
    return `Bearer ${(this.#token as Secret).reveal()}`;
  }

  invalidate(): void {
    this.#readAt = 0;
  }
}

async function readFileOr(path: string, reason: "tls" | "unauthorized", what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UpstreamError(`cannot read ${what} ${path}: ${code}`, reason);
  }
}

function bracketIfIpv6(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** The service account the pod runs as: KUBERNETES_SERVICE_HOST/PORT, its token and the cluster CA. */
export async function inClusterConnection(
  paths: InClusterPaths = IN_CLUSTER,
  env: NodeJS.ProcessEnv = process.env,
  reloadMs: number = TOKEN_RELOAD_MS,
): Promise<KubeConnection> {
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  const port = env.KUBERNETES_SERVICE_PORT?.trim() || "443";
  if (!host) {
    throw new UpstreamError(
      "sources.kubernetes: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set); set sources.kubernetes.kubeconfig to a kubeconfig file",
      "other",
    );
  }
  const ca = await readFileOr(paths.caFile, "tls", "the in-cluster CA");
  const credentials = new FileToken(paths.tokenFile, "in-cluster service account", reloadMs);
  // Fail at startup, not at the first request, when the token is not mounted.
  await credentials.authorization();
  return { server: new SecretUrl(`https://${bracketIfIpv6(host)}:${port}`), tls: { ca, insecureSkipVerify: false }, credentials, origin: "in-cluster" };
}

/** A kubeconfig's server as a SecretUrl; undefined when it is not an http(s) URL. */
function serverUrl(server: string | undefined): SecretUrl | undefined {
  if (server === undefined || !/^https?:\/\//.test(server)) return undefined;
  try {
    return new SecretUrl(server);
  } catch {
    return undefined;
  }
}

type Named = { name: string; body: Record<string, unknown> };

function namedEntries(doc: Record<string, unknown>, list: string, field: string): Named[] {
  const out: Named[] = [];
  for (const raw of asArray(doc[list])) {
    const entry = asObject(raw);
    const name = asString(entry?.name);
    if (name !== undefined) out.push({ name, body: asObject(entry?.[field]) ?? {} });
  }
  return out;
}

/** Inline base64 data or a file path (relative to the kubeconfig), whichever the entry gives. */
async function material(
  body: Record<string, unknown>,
  field: string,
  baseDir: string,
  where: string,
  reason: "tls" | "unauthorized",
): Promise<Buffer | undefined> {
  const data = asString(body[`${field}-data`]);
  if (data !== undefined) {
    const buf = Buffer.from(data, "base64");
    if (buf.length === 0) throw new UpstreamError(`${where}: ${field}-data is not base64`, reason);
    return buf;
  }
  const path = asString(body[field]);
  if (path === undefined) return undefined;
  return readFileOr(isAbsolute(path) ? path : resolve(baseDir, path), reason, `${where} ${field}`);
}

/**
 * A kubeconfig's context: server, CA (file or inline), TLS options, and a bearer token (inline or tokenFile) or
 * client certificate. exec and auth-provider plugins are not run; such a user is refused with an explanation.
 */
export async function kubeconfigConnection(path: string, contextName: string | undefined, reloadMs: number = TOKEN_RELOAD_MS): Promise<KubeConnection> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UpstreamError(`sources.kubernetes.kubeconfig: cannot read ${path}: ${code}`, "other");
  }
  let doc: Record<string, unknown>;
  try {
    // Warnings (an unknown tag, say) would go to the console, outside the structured log; a kubeconfig is used as data.
    doc = asObject(parseYaml(text, { logLevel: "error" })) ?? {};
  } catch (err) {
    throw new UpstreamError(`sources.kubernetes.kubeconfig: ${path} is not valid YAML: ${(err as Error).message.split("\n")[0]}`, "other");
  }
  const where = `kubeconfig ${path}`;
  const contexts = namedEntries(doc, "contexts", "context");
  const wanted = contextName ?? asString(doc["current-context"]);
  if (wanted === undefined) {
    throw new UpstreamError(`${where}: no current-context; set sources.kubernetes.context to one of: ${contexts.map((c) => c.name).join(", ") || "(none)"}`, "other");
  }
  const context = contexts.find((c) => c.name === wanted);
  if (!context) {
    throw new UpstreamError(`${where}: context "${wanted}" not found; contexts are: ${contexts.map((c) => c.name).join(", ") || "(none)"}`, "other");
  }
  const clusterName = asString(context.body.cluster);
  const cluster = namedEntries(doc, "clusters", "cluster").find((c) => c.name === clusterName);
  if (!cluster) throw new UpstreamError(`${where}: context "${wanted}" names cluster "${clusterName ?? ""}", which is not in the file`, "other");
  const server = serverUrl(asString(cluster.body.server));
  if (server === undefined) throw new UpstreamError(`${where}: cluster "${cluster.name}" has no http(s) server URL`, "other");
  const baseDir = dirname(resolve(path));
  const clusterWhere = `${where} cluster "${cluster.name}"`;
  const tls: TlsSettings = { insecureSkipVerify: cluster.body["insecure-skip-tls-verify"] === true };
  const ca = await material(cluster.body, "certificate-authority", baseDir, clusterWhere, "tls");
  if (ca) tls.ca = ca;
  const serverName = asString(cluster.body["tls-server-name"]);
  if (serverName !== undefined) tls.serverName = serverName;

  const userName = asString(context.body.user);
  const user = userName === undefined ? undefined : namedEntries(doc, "users", "user").find((u) => u.name === userName);
  if (userName !== undefined && !user) throw new UpstreamError(`${where}: context "${wanted}" names user "${userName}", which is not in the file`, "other");
  let credentials: Credentials = none;
  if (user) {
    const userWhere = `${where} user "${user.name}"`;
    if (user.body.exec !== undefined || user.body["auth-provider"] !== undefined) {
      throw new UpstreamError(
        `${userWhere} gets its credentials from an exec or auth-provider plugin, which the exporter does not run; use a token, tokenFile or client certificate`,
        "unauthorized",
      );
    }
    if (user.body.username !== undefined || user.body.password !== undefined) {
      throw new UpstreamError(`${userWhere} uses basic authentication, which Kubernetes no longer supports; use a token or client certificate`, "unauthorized");
    }
    const token = asString(user.body.token);
    const tokenFile = asString(user.body.tokenFile);
    if (token !== undefined) {
      // Surrounding whitespace is not part of a bearer token; a blank one would be sent as "Bearer " and refused.
      if (token.trim() === "") throw new UpstreamError(`${userWhere}: token is empty; set it, or remove it and use tokenFile or a client certificate`, "unauthorized");
      credentials = staticToken(new Secret(token.trim()));
    } else if (tokenFile !== undefined) {
      credentials = new FileToken(isAbsolute(tokenFile) ? tokenFile : resolve(baseDir, tokenFile), userWhere, reloadMs);
      await credentials.authorization();
    }
    const cert = await material(user.body, "client-certificate", baseDir, userWhere, "tls");
    const key = await material(user.body, "client-key", baseDir, userWhere, "tls");
    if ((cert === undefined) !== (key === undefined)) {
      throw new UpstreamError(`${userWhere}: a client certificate needs both client-certificate and client-key`, "tls");
    }
    if (cert && key) {
      new Secret(key.toString("utf8")); // registers the key so it is scrubbed from anything printed later
      tls.cert = cert;
      tls.key = key;
    }
  }
  return { server, tls, credentials, origin: `kubeconfig ${path}, context ${wanted}` };
}

export interface ConnectionOptions {
  inCluster?: Partial<InClusterPaths>;
  env?: NodeJS.ProcessEnv;
  tokenReloadMs?: number;
}

/** The kubeconfig when the config names one, else the pod's service account. */
export function loadConnection(config: { kubeconfig?: string | undefined; context?: string | undefined }, options: ConnectionOptions = {}): Promise<KubeConnection> {
  const reloadMs = options.tokenReloadMs ?? TOKEN_RELOAD_MS;
  if (config.kubeconfig !== undefined) return kubeconfigConnection(config.kubeconfig, config.context, reloadMs);
  return inClusterConnection({ ...IN_CLUSTER, ...options.inCluster }, options.env ?? process.env, reloadMs);
}
