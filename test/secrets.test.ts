/**
 * A credential planted in every URL, credential and credential-file field of the configuration (and in the
 * environment the tracing exporter reads) must not come out of any output of the real CLI: its endpoints, its
 * log lines at every level, the spans it exports, --print-config, `check`, and the errors of a configuration
 * that writes credentials inline.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { markedFields, schemaFields, type FieldKind } from "../src/config/fields.ts";
import { configSchema } from "../src/config/schema.ts";
import { runCli, writeConfig, type CliRun } from "./cli-process.ts";
import { eventually, httpServer, type TestServer } from "./helpers.ts";
import { kubeconfigYaml, startKubeApiSim, type KubeApiSim } from "./sim/kube-api.ts";
import { seedOperatorResources } from "./sim/kube-fixtures.ts";
import { createCA, issueCert } from "./sim/pki.ts";
import { startS3Sim, type S3Sim } from "./sim/s3.ts";
import { startTailscaleSim, type TailscaleSim } from "./sim/tailscale.ts";
import { startTalosSim, talosconfigYaml, type TalosSim } from "./sim/talos.ts";

const LEVELS = ["trace", "debug", "info", "warn"] as const;
const SOURCES = ["talos", "kubernetes", "tailscale", "backups", "operator-metrics"];
const SCRAPER = "system:serviceaccount:monitoring:prometheus";

/** Every planted value by name. Short ones are below the length scrubbing by value applies to. */
const markers = new Map<string, string>();
const run = randomBytes(4).toString("hex");
function mark(name: string, value = `${name}-${run}`): string {
  markers.set(name, value);
  return value;
}

/** A line from the middle of a PEM body or of a base64 text: a piece of key material no output may show. */
function keyPiece(name: string, text: string): string {
  return mark(name, text.length > 200 ? text.slice(100, 160) : (text.split("\n")[2] ?? text));
}

interface Upstreams {
  dir: string;
  talos: TalosSim;
  kube: KubeApiSim;
  tailscale: TailscaleSim;
  s3: S3Sim;
  /** Stands in for the operator's /metrics: the first request to each /metrics/<name> path succeeds, every later one fails. */
  operator: TestServer;
  /** Targets of the HTTP checks: /ok answers 200, anything else 500. */
  target: TestServer;
  /** An OTLP/HTTP collector that refuses the first export of each service and keeps every body. */
  collector: TestServer & { bodies: string[] };
  files: Record<string, string>;
  metricsCa: string;
}

let up: Upstreams;
const scraperToken = mark("scraper-token");

async function startUpstreams(): Promise<Upstreams> {
  const dir = mkdtempSync(join(tmpdir(), "sidecar-secrets-"));
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  const talos = await startTalosSim();
  const kube = await startKubeApiSim({ token: mark("kubeconfig-token") });
  seedOperatorResources(kube);
  kube.tokens.set(scraperToken, { username: SCRAPER, groups: ["system:serviceaccounts"] });
  kube.allow(SCRAPER, "get", "/metrics");
  kube.allow(SCRAPER, "get", "/debug/*");
  const tailscale = await startTailscaleSim({ apiKey: mark("tailscale-api-key"), oauth: { clientSecret: mark("tailscale-client-secret") } });
  const s3 = await startS3Sim({ accessKeyId: mark("s3-access-key-id"), secretAccessKey: mark("s3-secret-access-key") });
  await s3.putSnapshot("etcd/snapshot.db", { lastModified: new Date(Date.now() - 60_000) });
  const seen = new Set<string>();
  const operator = await httpServer((req, res) => {
    const path = (req.url ?? "").split("?")[0] ?? "";
    const first = path.startsWith("/metrics/") && !seen.has(path);
    seen.add(path);
    res.statusCode = first ? 200 : 500;
    res.end(first ? "# TYPE operator_reconcile_total counter\noperator_reconcile_total 3\n" : "upstream failure");
  });
  const target = await httpServer((req, res) => {
    res.statusCode = req.url?.startsWith("/ok") ? 200 : 500;
    res.end("checked");
  });
  const bodies: string[] = [];
  const services = new Set<string>();
  const collector = Object.assign(
    await httpServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        bodies.push(body);
        const service = /"service\.name","value":\{"stringValue":"([^"]+)"/.exec(body)?.[1] ?? "";
        res.statusCode = services.has(service) ? 200 : 500;
        services.add(service);
        res.end("{}");
      });
    }),
    { bodies },
  );
  const ca = await createCA("secrets-test-ca");
  const metricsCert = await issueCert(ca, { commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"], server: true });
  const kubeconfig = kubeconfigYaml(kube).replace(kube.url, kube.url.replace("://", `://kube-user:${mark("kubeconfig-server-password")}@`));
  const talosconfig = talosconfigYaml(talos);
  keyPiece("talosconfig-key", /key: (\S+)/.exec(talosconfig)?.[1] ?? "");
  const garbageKey = (name: string) => `-----BEGIN PRIVATE KEY-----\n${mark(name)}\n-----END PRIVATE KEY-----\n`;
  keyPiece("talos-key-file", talos.clientCert.keyPem);
  keyPiece("metrics-tls-key", metricsCert.keyPem);
  const files = {
    kubeconfig: file("kubeconfig", kubeconfig),
    talosconfig: file("talosconfig", talosconfig),
    talosKey: file("talos-key.pem", talos.clientCert.keyPem),
    metricsCert: file("metrics.crt", metricsCert.certPem),
    metricsKey: file("metrics.key", metricsCert.keyPem),
    checkToken: file("check-token", `${mark("check-bearer-token-file")}\n`),
    operatorToken: file("operator-token", `${mark("operator-bearer-token-file")}\n`),
    tailscaleSecret: file("tailscale-client-secret", `${markers.get("tailscale-client-secret")}\n`),
    s3Secret: file("s3-secret", `${markers.get("s3-secret-access-key")}\n`),
    garbageCert: file("garbage.crt", "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"),
    customTlsKey: file("custom-tls.key", garbageKey("custom-check-tls-key")),
    dependencyTlsKey: file("dependency-tls.key", garbageKey("dependency-check-tls-key")),
  };
  return { dir, talos, kube, tailscale, s3, operator, target, collector, files, metricsCa: ca.certPem };
}

/** Query parameters that carry credentials in URLs people use, each with its own value. */
function tokenQuery(prefix: string, names: readonly string[]): string {
  return names.map((n) => `${n}=${mark(`${prefix}-query-${n}`)}`).join("&");
}

/** The environment variables the configuration names for credentials. */
const credentialEnv = () => ({
  S3_ACCESS_KEY_ID: markers.get("s3-access-key-id") ?? "",
  S3_SESSION_TOKEN: mark("s3-session-token"),
  TS_API_KEY: markers.get("tailscale-api-key") ?? "",
});

/** The configuration of a running exporter: every field marked in the schema carries a planted credential. */
function plantedConfig(name: string, level: string, variant: "run" | "check" = "run"): Record<string, unknown> {
  const { files } = up;
  const host = (s: { port: number }) => `127.0.0.1:${s.port}`;
  const quick = { interval: "2s", timeout: "1500ms" };
  return {
    metrics: {
      port: 0,
      secure: true,
      tls: { certFile: files.metricsCert, keyFile: files.metricsKey },
      auth: { kubeconfig: files.kubeconfig },
      collection: quick,
    },
    health: { port: 0 },
    grpcHealth: { port: 0 },
    server: { address: "127.0.0.1", shutdownGracePeriod: "1s" },
    debug: { protect: true },
    // Long lease timings: a loaded machine must not make a replica lose the lease it alone uses.
    leaderElection: {
      enabled: true,
      kubeconfig: files.kubeconfig,
      namespace: "default",
      identity: name,
      leaseName: `secrets-${name}`,
      leaseDuration: "2m",
      renewDeadline: "1m",
      retryPeriod: "5s",
    },
    // Where the servers listen is logged at info, so that one line is kept at any level.
    logging: { level, components: { main: { level: "info" } } },
    sources: {
      talos: { talosconfig: files.talosconfig, keyFile: files.talosKey },
      kubernetes: { kubeconfig: files.kubeconfig },
      tailscale: {
        baseUrl: `http://ts-user:${mark("tailscale-url-password")}@${host(up.tailscale)}/?${tokenQuery("tailscale", ["token"])}`,
        ...(variant === "run"
          ? { oauth: { clientId: up.tailscale.oauth.clientId, clientSecret: { file: files.tailscaleSecret } } }
          : { apiKey: { env: "TS_API_KEY" } }),
      },
      backups: {
        targets: [
          {
            name: "s3",
            type: "s3",
            endpoint: `http://s3-user:${mark("s3-url-password")}@${host(up.s3)}/?${tokenQuery("s3", ["X-Amz-Security-Token"])}`,
            bucket: up.s3.bucket,
            region: up.s3.region,
            pathStyle: true,
            accessKeyId: { env: "S3_ACCESS_KEY_ID" },
            secretAccessKey: { file: files.s3Secret },
            sessionToken: { env: "S3_SESSION_TOKEN" },
          },
        ],
      },
      operatorMetrics: {
        // The password is short: below the length a remembered secret is scrubbed by value.
        url: `http://op-user:${mark("operator-url-password", "p~Q7!")}@${host(up.operator)}/metrics/${name}?${tokenQuery("operator", ["access_token"])}&format=text`,
        bearerTokenFile: files.operatorToken,
      },
    },
    healthChecks: {
      custom: [
        {
          name: "planted-ok",
          type: "http",
          url: `http://${mark("ok-url-user")}@${host(up.target)}/ok?${tokenQuery("ok", ["api_key", "auth"])}&page=2`,
          headers: { Authorization: `Bearer ${mark("header-authorization")}`, "X-Api-Key": mark("header-api-key") },
          ...quick,
        },
        {
          name: "planted-tls",
          type: "http",
          url: `https://tls-user:${mark("custom-tls-url-password")}@${host(up.target)}/tls?${tokenQuery("custom-tls", ["signature"])}`,
          bearerTokenFile: files.checkToken,
          tls: { certFile: files.garbageCert, keyFile: files.customTlsKey },
          ...quick,
        },
      ],
      dependencies: [
        {
          name: "planted-fail",
          type: "http",
          critical: true,
          url: `http://chk-user:${mark("fail-url-password", "c~W4!")}@${host(up.target)}/fail?${tokenQuery("fail", [
            "token",
            "access_token",
            "api_key",
            "signature",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "X-Amz-Security-Token",
            "sig",
            "client_secret",
            "password",
          ])}&key=${mark("fail-query-key", "K~3z!")}&keep=visible-param`,
          headers: { "X-Auth-Token": mark("header-auth-token") },
          bearerTokenFile: files.checkToken,
          ...quick,
        },
        {
          name: "planted-refused",
          type: "http",
          url: `https://dep-user:${mark("refused-url-password")}@127.0.0.1:1/x?${tokenQuery("refused", ["access_token"])}`,
          tls: { certFile: files.garbageCert, keyFile: files.dependencyTlsKey },
          ...quick,
        },
        { name: "planted-operator", type: "source", source: "operator-metrics", critical: true, ...quick },
        { name: "planted-backup", type: "backup", target: "s3", maxAge: "1h", requireVerified: false, ...quick },
      ],
    },
  };
}

/** The OTLP variables: an endpoint with user info and a token in its query, and a header carrying a token. */
function tracingEnv(name: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://otlp-user:${mark("otlp-url-password")}@127.0.0.1:${up.collector.port}/v1/traces?${tokenQuery("otlp", ["api_key"])}`,
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${mark("otlp-header")}`,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "200",
    OTEL_SERVICE_NAME: `secrets-${name}`,
  };
}

/** Every planted value found in any of the outputs, as "output: marker". */
function leaks(outputs: Map<string, string>): string[] {
  const found: string[] = [];
  for (const [where, text] of outputs) for (const [name, value] of markers) if (text.includes(value)) found.push(`${where}: ${name}`);
  return found;
}

interface Running {
  cli: CliRun;
  health: string;
  metrics: string;
}

const tls = () => new Agent({ connect: { ca: up.metricsCa } });

async function fetchText(url: string, token?: string): Promise<{ status: number; body: string }> {
  const res = await request(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, dispatcher: url.startsWith("https:") ? tls() : undefined });
  return { status: res.statusCode, body: await res.body.text() };
}

type DebugStatus = {
  sources: { name: string; lastAttemptAt: string | null; error: string | null; url?: unknown }[];
  checks: { name: string; status: string }[];
};

function startExporter(level: string): CliRun {
  return runCli(["--config", writeConfig(plantedConfig(level, level))], { ...credentialEnv(), ...tracingEnv(level), SIDECAR_LOG_FORMAT: "json" });
}

/** The addresses the exporter logs once it has started. */
async function addresses(cli: CliRun): Promise<Running> {
  const started = await eventually(
    () =>
      cli
        .stdout()
        .split("\n")
        .find((l) => l.includes("sidecar-exporter started")),
    60_000,
    100,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}; the exporter said:\n${cli.stdout()}\n${cli.stderr()}`);
  });
  const { health, metrics } = JSON.parse(started) as { health: string; metrics: string };
  return { cli, health: `http://${health}`, metrics: `https://${metrics}` };
}

/** Until every source has been polled (the operator's once well, then failing) and every check has run. */
async function settled(r: Running, name: string): Promise<void> {
  await eventually(
    async () => {
      const debug = JSON.parse((await fetchText(`${r.health}/debug/status`, scraperToken)).body) as DebugStatus;
      const sources = new Map(debug.sources.map((s) => [s.name, s]));
      const operator = sources.get("operator-metrics");
      const exported = up.collector.bodies.filter((b) => b.includes(`secrets-${name}`)).length;
      return (
        SOURCES.every((s) => sources.get(s)?.lastAttemptAt) &&
        operator?.url !== undefined &&
        operator.error &&
        debug.checks.every((c) => c.status !== "pending") &&
        exported >= 2
      );
    },
    90_000,
    250,
  );
}

/** Everything a client can read from a running exporter, by where it came from. */
async function endpointOutputs(r: Running, name: string): Promise<Map<string, string>> {
  const checks = ["planted-ok", "planted-tls", "planted-fail", "planted-refused", "planted-operator", "planted-backup"];
  const paths = [
    "/",
    "/healthz?verbose",
    "/livez?verbose",
    "/readyz?verbose",
    "/readyz",
    "/no-such-path",
    "/readyz/no-such-check",
    ...checks.flatMap((c) => [`/readyz/${c}?verbose`, `/health/${c}`]),
    ...SOURCES.map((s) => `/readyz/source/${s}?verbose`),
  ];
  const out = new Map<string, string>();
  for (const path of paths) out.set(`${name} ${path}`, (await fetchText(`${r.health}${path}`)).body);
  out.set(`${name} /debug/status`, (await fetchText(`${r.health}/debug/status`, scraperToken)).body);
  out.set(`${name} /debug/status without a token`, (await fetchText(`${r.health}/debug/status`)).body);
  out.set(`${name} /metrics`, (await fetchText(`${r.metrics}/metrics`, scraperToken)).body);
  out.set(`${name} /metrics with a wrong token`, (await fetchText(`${r.metrics}/metrics`, "not-the-token")).body);
  return out;
}

/** The value a field path ("a.b[].c") takes in a document: every one, lists expanded. */
function valuesAt(doc: unknown, path: string): unknown[] {
  let values = [doc];
  for (const seg of path.split(".")) {
    const key = seg.replace(/\[\]$/, "");
    values = values.flatMap((v) => {
      const next = v && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined;
      return seg.endsWith("[]") && Array.isArray(next) ? next : [next];
    });
  }
  return values.filter((v) => v !== undefined);
}

/** What a planted field actually carries: the URL itself, the file or variable a reference names, a file's content. */
function planted(value: unknown, kind: FieldKind, env: Record<string, string>): string {
  if (kind === "secret-file") return readFileSync(String(value), "utf8");
  if (kind === "secret" && value && typeof value === "object" && ("file" in value || "env" in value)) {
    const ref = value as { file?: string; env?: string };
    return ref.file !== undefined ? readFileSync(ref.file, "utf8") : (env[ref.env ?? ""] ?? "");
  }
  return JSON.stringify(value);
}

beforeAll(async () => {
  up = await startUpstreams();
}, 60_000);

afterAll(async () => {
  if (!up) return;
  await Promise.allSettled([
    up.talos.close(),
    up.kube.close(),
    up.tailscale.close(),
    up.s3.close(),
    up.operator.close(),
    up.target.close(),
    up.collector.close(),
  ]);
  rmSync(up.dir, { recursive: true, force: true });
});

describe("credentials in the configuration", () => {
  it("are planted in every URL, credential and credential-file field the schema has", () => {
    const docs = [plantedConfig("trace", "trace"), plantedConfig("check", "info", "check")];
    const env = credentialEnv();
    const fields = markedFields(configSchema);
    expect(fields.map((f) => f.kind)).toEqual(expect.arrayContaining(["url", "secret", "secret-file"]));
    const unplanted = fields.filter(
      (f) => !docs.some((doc) => valuesAt(doc, f.path).some((v) => [...markers.values()].some((m) => planted(v, f.kind, env).includes(m)))),
    );
    expect(unplanted.map((f) => f.path)).toEqual([]);
    // A field named like a URL or a credential that is not marked would be missed by all of the above.
    const credentialLike = /url|endpoint|token|secret|passw|apikey|accesskey|credential|kubeconfig|talosconfig|keyfile/i;
    const notCredentials = new Set([
      // Paths this process serves, not URLs it calls.
      "healthChecks.custom[].endpoint",
      "healthChecks.dependencies[].endpoint",
      // host:port, which has no place for a credential.
      "sources.talos.endpoints",
      "sources.talos.endpoints[]",
    ]);
    const unmarked = schemaFields(configSchema).filter(
      (f) => f.kind === undefined && credentialLike.test(f.path.split(".").at(-1) ?? "") && !notCredentials.has(f.path),
    );
    // Parts of a marked field (the file and env of a reference, a header's value) are covered by their parent.
    expect(unmarked.map((f) => f.path).filter((p) => !fields.some((m) => p.startsWith(`${m.path}.`)))).toEqual([]);
  });

  it("reach no output of the running exporter at any log level: endpoints, logs, exported spans", { timeout: 240_000 }, async () => {
    const outputs = new Map<string, string>();
    const settledRuns = await Promise.allSettled(
      LEVELS.map(async (level) => {
        const cli = startExporter(level);
        try {
          const r = await addresses(cli);
          await settled(r, level);
          for (const [k, v] of await endpointOutputs(r, level)) outputs.set(k, v);
        } finally {
          cli.child.kill("SIGTERM");
          await cli.exited;
        }
        outputs.set(`${level} stdout`, cli.stdout());
        outputs.set(`${level} stderr`, cli.stderr());
      }),
    );
    // Every exporter is stopped before the test ends, whichever of them failed.
    for (const r of settledRuns) if (r.status === "rejected") throw r.reason;
    outputs.set("exported spans", up.collector.bodies.join("\n"));
    expect(leaks(outputs)).toEqual([]);

    // The outputs say what happened, with the credentials left out.
    const trace = (what: string) => outputs.get(`trace ${what}`) ?? "";
    expect(trace("/readyz?verbose")).toMatch(/\[-\]source\/operator-metrics failed: .*op-user:\[REDACTED\]@.* answered 500/);
    expect(trace("/debug/status")).toContain("op-user:[REDACTED]@");
    expect(trace("/debug/status")).toContain("keep=visible-param");
    expect(trace("stdout")).toMatch(/"level":"warn".*source down/);
    expect(trace("stdout")).toMatch(/"level":"debug"/);
    expect(trace("/metrics")).toContain("operator_reconcile_total");
    expect(up.collector.bodies.length).toBeGreaterThan(0);
    // The real values are what the upstreams were sent.
    const sent = up.target.requests.map((r) => r.url ?? "");
    expect(sent).toContain(
      `/fail?${tokenQuery("fail", ["token", "access_token", "api_key", "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "client_secret", "password"])}&key=K~3z!&keep=visible-param`,
    );
    expect(up.operator.requests.map((r) => r.url)).toContain(`/metrics/trace?${tokenQuery("operator", ["access_token"])}&format=text`);
    const debug = JSON.parse(trace("/debug/status")) as { sources: { name: string; up: boolean }[] };
    expect(debug.sources.filter((s) => s.up).map((s) => s.name)).toEqual(expect.arrayContaining(["talos", "kubernetes", "tailscale", "backups"]));
    for (const level of LEVELS) expect(outputs.get(`${level} stdout`)).toContain("sidecar-exporter started");
  });

  it("reach neither --print-config nor the check command", { timeout: 60_000 }, async () => {
    const env = credentialEnv();
    const outputs = new Map<string, string>();
    const runConfig = writeConfig(plantedConfig("print", "info"));
    const checkConfig = plantedConfig("check", "info", "check");
    // Sources run once in `check`; this one's operator path fails from the first request.
    ((checkConfig.sources as Record<string, Record<string, unknown>>).operatorMetrics as Record<string, unknown>).url =
      `http://op-user:p~Q7!@127.0.0.1:${up.operator.port}/failing?${tokenQuery("operator", ["access_token"])}`;
    const checkFile = writeConfig(checkConfig);
    const printed = runCli(["--print-config", "--config", runConfig], env);
    const printedCheck = runCli(["--print-config", "--config", checkFile], env);
    const check = runCli(["check", "--config", checkFile], env);
    expect(await printed.exited).toBe(0);
    expect(await printedCheck.exited).toBe(0);
    expect(await check.exited).toBe(1);
    for (const [name, r] of [
      ["--print-config", printed],
      ["--print-config (api key)", printedCheck],
      ["check", check],
    ] as const) {
      outputs.set(`${name} stdout`, r.stdout());
      outputs.set(`${name} stderr`, r.stderr());
    }
    expect(leaks(outputs)).toEqual([]);
    expect(printed.stdout()).toContain("op-user:[REDACTED]@");
    expect(printed.stdout()).toContain("keep=visible-param");
    expect(check.stdout()).toMatch(/^planted-fail\s+http\*\s+FAIL/m);
    expect(check.stdout()).toMatch(/^planted-operator\s+source\*\s+FAIL\s+\d+ms\s+source operator-metrics is down: .*op-user:\[REDACTED\]@/m);
  });

  it("written inline, or in a URL the configuration refuses, are not quoted by the errors", { timeout: 30_000 }, async () => {
    const doc = plantedConfig("invalid", "info");
    const sources = doc.sources as Record<string, Record<string, unknown>>;
    const tailscale = sources.tailscale as Record<string, unknown>;
    tailscale.apiKey = mark("inline-api-key");
    tailscale.oauth = { clientId: "client", clientSecret: mark("inline-client-secret") };
    tailscale.baseUrl = `ftp://ts-user:${mark("refused-tailscale-password")}@127.0.0.1/?token=${mark("refused-tailscale-token")}`;
    const [target] = (sources.backups as { targets: Record<string, unknown>[] }).targets;
    Object.assign(target ?? {}, {
      accessKeyId: mark("inline-access-key-id"),
      secretAccessKey: mark("inline-secret-access-key"),
      sessionToken: mark("inline-session-token"),
      endpoint: `http://s3-user:${mark("refused-s3-password")}@127.0.0.1:99999/`,
    });
    sources.operatorMetrics = { url: `http://op-user:${mark("refused-operator-password")}@[::1/metrics?access_token=${mark("refused-operator-token")}` };
    const checks = doc.healthChecks as Record<string, Record<string, unknown>[]>;
    Object.assign(checks.dependencies?.[0] ?? {}, {
      url: `http://chk-user:${mark("refused-check-password")}@127.0.0.1:99999/?token=${mark("refused-check-token")}`,
      headers: { Authorization: 918273645546372 },
    });
    markers.set("inline-header-number", "918273645546372");
    const cli = runCli(["--config", writeConfig(doc)], credentialEnv());
    expect(await cli.exited).toBe(2);
    const err = cli.stderr();
    expect(leaks(new Map([["config errors", `${err}\n${cli.stdout()}`]]))).toEqual([]);
    for (const path of [
      "sources.tailscale.apiKey",
      "sources.tailscale.oauth.clientSecret",
      "sources.backups.targets[0].accessKeyId",
      "sources.backups.targets[0].secretAccessKey",
      "sources.backups.targets[0].sessionToken",
      "healthChecks.dependencies[0].headers.Authorization",
    ]) {
      expect(err).toContain(`${path}: `);
    }
  });
});
