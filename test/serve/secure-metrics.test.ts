import { mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startKubeApiSim, kubeconfigYaml, type KubeApiSim } from "../sim/kube-api.ts";
import { createCA, issueCert, type CertKey } from "../sim/pki.ts";
import { eventually, startRuntime, type TestRuntime } from "../helpers.ts";
import { runCli, writeConfig } from "../cli-process.ts";

const PROMETHEUS = "system:serviceaccount:monitoring:prometheus";
let kube: KubeApiSim;
let dir: string;
let ca: CertKey;
const runtimes: TestRuntime[] = [];

beforeAll(async () => {
  kube = await startKubeApiSim();
  kube.tokens.set("prometheus-token-abc123", { username: PROMETHEUS, groups: ["system:serviceaccounts"] });
  kube.tokens.set("intruder-token-def456", { username: "system:serviceaccount:default:intruder", groups: ["system:serviceaccounts"] });
  kube.allow(PROMETHEUS, "get", "/metrics");
  kube.allow(PROMETHEUS, "get", "/debug/*");
  dir = mkdtempSync(join(tmpdir(), "secure-"));
  writeFileSync(join(dir, "kubeconfig"), kubeconfigYaml(kube));
  ca = await createCA("metrics-test-ca");
});

afterAll(async () => {
  await kube.close();
});

afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.runtime.stop();
});

async function secureRuntime(metrics: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<TestRuntime> {
  const rt = await startRuntime({ metrics: { secure: true, auth: { kubeconfig: join(dir, "kubeconfig"), cacheTTL: "1m" }, ...metrics }, ...extra });
  runtimes.push(rt);
  return rt;
}

const insecure = new Agent({ connect: { rejectUnauthorized: false } });

async function scrape(url: string, token?: string, dispatcher: Agent = insecure) {
  const res = await request(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, dispatcher });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

function httpsUrl(rt: TestRuntime, path = "/metrics"): string {
  return `${rt.metricsUrl.replace("http://", "https://")}${path}`;
}

describe("secure metrics with TokenReview and SubjectAccessReview", () => {
  it("answers 401 without or with a bad token, 403 when not allowed, 200 when allowed", async () => {
    const rt = await secureRuntime();
    const url = httpsUrl(rt);
    const none = await scrape(url);
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(JSON.parse(none.body).error).toMatch(/no bearer token/);
    expect((await scrape(url, "not-a-real-token")).status).toBe(401);
    const denied = await scrape(url, "intruder-token-def456");
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body).error).toContain('nonResourceURLs ["/metrics"]');
    const ok = await scrape(url, "prometheus-token-abc123");
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("# TYPE health_check_up gauge");
    const text = await rt.runtime.metrics.render(false);
    expect(text).toMatch(/^sidecar_authn_requests_total\{result="no_token"\} 1$/m);
    expect(text).toMatch(/^sidecar_authz_requests_total\{result="denied_api"\} 1$/m);
    expect(text).toMatch(/^sidecar_authz_requests_total\{result="allowed_api"\} 1$/m);
    expect(rt.logs.text).not.toContain("prometheus-token-abc123");
  });

  it("reuses a decision from its cache without asking the API again", async () => {
    const rt = await secureRuntime();
    const before = { ...kube.counts };
    for (let i = 0; i < 5; i++) expect((await scrape(httpsUrl(rt), "prometheus-token-abc123")).status).toBe(200);
    expect(kube.counts.tokenReviews - before.tokenReviews).toBe(1);
    expect(kube.counts.subjectAccessReviews - before.subjectAccessReviews).toBe(1);
    expect(await rt.runtime.metrics.render(false)).toMatch(/^sidecar_authz_requests_total\{result="allowed_cache"\} 4$/m);
  });

  it("answers 503, never an open door, when the API server cannot be asked", async () => {
    const down = await startKubeApiSim();
    writeFileSync(join(dir, "down-kubeconfig"), kubeconfigYaml(down));
    await down.close();
    const rt = await secureRuntime({ auth: { kubeconfig: join(dir, "down-kubeconfig"), timeout: "1s" } });
    const res = await scrape(httpsUrl(rt), "prometheus-token-abc123");
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body).error).toMatch(/cannot verify the token now/);
    expect(await rt.runtime.metrics.render(false)).toMatch(/^sidecar_authn_requests_total\{result="error"\} 1$/m);
  });

  it("protects /debug/* when asked, while probe endpoints stay open", async () => {
    const rt = await secureRuntime({}, { debug: { protect: true } });
    expect((await scrape(`${rt.healthUrl}/healthz`)).status).toBe(200);
    expect((await scrape(`${rt.healthUrl}/readyz`)).status).toBe(200);
    expect((await scrape(`${rt.healthUrl}/debug/status`)).status).toBe(401);
    expect((await scrape(`${rt.healthUrl}/debug/status`, "intruder-token-def456")).status).toBe(403);
    expect((await scrape(`${rt.healthUrl}/debug/status`, "prometheus-token-abc123")).status).toBe(200);
  });
});

describe("review answers: only a JSON true opens the door", () => {
  afterEach(() => {
    delete kube.reviewAnswers.tokenReview;
    delete kube.reviewAnswers.subjectAccessReview;
  });

  const reviewed = (status: unknown) => JSON.stringify({ kind: "TokenReview", apiVersion: "authentication.k8s.io/v1", status });
  const accessed = (status: unknown) => JSON.stringify({ kind: "SubjectAccessReview", apiVersion: "authorization.k8s.io/v1", status });
  const prometheus = { username: PROMETHEUS, groups: ["system:serviceaccounts"] };
  // Each case sends a token of its own, so no decision of another case is found in the cache.
  const cases: { name: string; tokenReview?: string; subjectAccessReview?: string; expected: number }[] = [
    { name: 'authenticated: "false"', tokenReview: reviewed({ authenticated: "false", user: prometheus }), expected: 503 },
    { name: "authenticated: 1", tokenReview: reviewed({ authenticated: 1, user: prometheus }), expected: 503 },
    { name: "TokenReview status: null", tokenReview: reviewed(null), expected: 503 },
    { name: "TokenReview without a status", tokenReview: JSON.stringify({ kind: "TokenReview" }), expected: 503 },
    { name: "TokenReview as a JSON array", tokenReview: JSON.stringify([{ status: { authenticated: true, user: prometheus } }]), expected: 503 },
    { name: "TokenReview as JSON null", tokenReview: "null", expected: 503 },
    { name: "TokenReview that is not JSON", tokenReview: '{"status": {"authenticated": tr', expected: 503 },
    { name: "authenticated user without a string username", tokenReview: reviewed({ authenticated: true, user: { username: 42 } }), expected: 503 },
    { name: "authenticated user without a username", tokenReview: reviewed({ authenticated: true, user: {} }), expected: 503 },
    { name: "groups that are not strings", tokenReview: reviewed({ authenticated: true, user: { username: PROMETHEUS, groups: "system:masters" } }), expected: 503 },
    { name: "another kind of object", tokenReview: JSON.stringify({ kind: "Status", status: { authenticated: true, user: prometheus } }), expected: 503 },
    { name: "authenticated: false", tokenReview: reviewed({ authenticated: false, user: prometheus }), expected: 401 },
    { name: "authenticated left out, as the API server does", tokenReview: reviewed({ user: {} }), expected: 401 },
    { name: 'allowed: "false"', subjectAccessReview: accessed({ allowed: "false" }), expected: 503 },
    { name: "allowed: 1", subjectAccessReview: accessed({ allowed: 1 }), expected: 503 },
    { name: 'allowed: "true"', subjectAccessReview: accessed({ allowed: "true" }), expected: 503 },
    { name: "allowed left out", subjectAccessReview: accessed({ reason: "no opinion" }), expected: 503 },
    { name: "SubjectAccessReview status: null", subjectAccessReview: accessed(null), expected: 503 },
    { name: "SubjectAccessReview as a JSON array", subjectAccessReview: JSON.stringify([{ status: { allowed: true } }]), expected: 503 },
    { name: 'denied: "yes"', subjectAccessReview: accessed({ allowed: true, denied: "yes" }), expected: 503 },
    { name: "allowed and denied both true", subjectAccessReview: accessed({ allowed: true, denied: true }), expected: 503 },
    { name: "allowed: false", subjectAccessReview: accessed({ allowed: false, reason: "no rule" }), expected: 403 },
    { name: "allowed: false, denied: true", subjectAccessReview: accessed({ allowed: false, denied: true }), expected: 403 },
    { name: "allowed: true", subjectAccessReview: accessed({ allowed: true, reason: "rule" }), expected: 200 },
  ];

  it("answers 503 to an answer of any unexpected shape, 401 and 403 to a JSON false, 200 only to a JSON true", async () => {
    const rt = await secureRuntime();
    const seen: Record<string, number> = {};
    for (const [i, c] of cases.entries()) {
      const token = `shape-token-${i}`;
      // The TokenReview cases let the sim decide the access review (Prometheus may read /metrics), and the other way round.
      kube.tokens.set(token, prometheus);
      kube.reviewAnswers.tokenReview = c.tokenReview;
      kube.reviewAnswers.subjectAccessReview = c.subjectAccessReview;
      if (c.tokenReview === undefined) delete kube.reviewAnswers.tokenReview;
      if (c.subjectAccessReview === undefined) delete kube.reviewAnswers.subjectAccessReview;
      seen[c.name] = (await scrape(httpsUrl(rt), token)).status;
    }
    expect(seen).toEqual(Object.fromEntries(cases.map((c) => [c.name, c.expected])));
    const refusals = rt.logs.records().filter((r) => r.msg === "SubjectAccessReview failed; answering 503");
    expect(refusals.map((r) => String(r.err)).join("\n")).toMatch(/unexpected shape at status\.allowed/);
    // The token the TokenReview answer carries back never reaches a log line.
    expect(rt.logs.text).not.toMatch(/shape-token-/);
  });

  it("never caches an answer it could not read: the next request asks again", async () => {
    const rt = await secureRuntime();
    kube.reviewAnswers.subjectAccessReview = accessed({ allowed: "false" });
    const before = kube.counts.subjectAccessReviews;
    expect((await scrape(httpsUrl(rt), "prometheus-token-abc123")).status).toBe(503);
    expect((await scrape(httpsUrl(rt), "prometheus-token-abc123")).status).toBe(503);
    expect(kube.counts.subjectAccessReviews - before).toBe(2);
    delete kube.reviewAnswers.subjectAccessReview;
    expect((await scrape(httpsUrl(rt), "prometheus-token-abc123")).status).toBe(200);
    expect(await rt.runtime.metrics.render(false)).toMatch(/^sidecar_authz_requests_total\{result="error"\} 2$/m);
  });
});

describe("TLS of the secure metrics server", () => {
  it("serves a self-signed certificate when none is given and logs its fingerprint", async () => {
    const rt = await secureRuntime();
    const line = rt.logs.records().find((r) => r.msg === "no metrics.tls given: serving a self-signed certificate made at start");
    expect(line?.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const [host, port] = rt.runtime.addresses.metrics!.split(":");
    const served = await new Promise<string>((resolve, reject) => {
      const s = connect({ host, port: Number(port), rejectUnauthorized: false }, () => {
        resolve(s.getPeerX509Certificate()?.fingerprint256 ?? "");
        s.end();
      });
      s.on("error", reject);
    });
    expect(served).toBe(line?.sha256);
  });

  it("refuses a client that speaks TLS 1.0", async () => {
    const rt = await secureRuntime();
    const [host, port] = rt.runtime.addresses.metrics!.split(":");
    const err = await new Promise<Error>((resolve) => {
      const s = connect({ host, port: Number(port), rejectUnauthorized: false, minVersion: "TLSv1", maxVersion: "TLSv1" }, () => resolve(new Error("handshake succeeded")));
      s.on("error", resolve);
    });
    expect(err.message).not.toBe("handshake succeeded");
    expect((err as NodeJS.ErrnoException).code ?? err.message).toMatch(/ERR_SSL|PROTOCOL|VERSION|alert/i);
  });

  it("picks up a rotated certificate without a restart", async () => {
    const certFile = join(dir, "tls.crt");
    const keyFile = join(dir, "tls.key");
    const first = await issueCert(ca, { commonName: "sidecar-exporter", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], server: true });
    writeFileSync(certFile, first.certPem);
    writeFileSync(keyFile, first.keyPem);
    const rt = await secureRuntime({ tls: { certFile, keyFile, reloadInterval: "100ms" } });
    const trusting = new Agent({ connect: { ca: ca.certPem }, pipelining: 0 });
    const fingerprintNow = async () =>
      new Promise<string>((resolve, reject) => {
        const [host, port] = rt.runtime.addresses.metrics!.split(":");
        const s = connect({ host, port: Number(port), ca: ca.certPem, servername: "localhost" }, () => {
          resolve(s.getPeerX509Certificate()?.fingerprint256 ?? "");
          s.end();
        });
        s.on("error", reject);
      });
    const before = await fingerprintNow();
    expect((await scrape(httpsUrl(rt), "prometheus-token-abc123", trusting)).status).toBe(200);
    const second = await issueCert(ca, { commonName: "sidecar-exporter-rotated", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], server: true });
    writeFileSync(certFile, second.certPem);
    writeFileSync(keyFile, second.keyPem);
    const after = await eventually(async () => {
      const now = await fingerprintNow();
      return now !== before ? now : undefined;
    }, 5_000, 100);
    expect(after).not.toBe(before);
    expect(rt.logs.text).toContain("metrics certificate reloaded");
    await trusting.close();
  });
});

describe("mTLS client certificates instead of tokens", () => {
  it("lets an allowed common name in, refuses others and clients without a certificate", async () => {
    const caFile = join(dir, "client-ca.crt");
    writeFileSync(caFile, ca.certPem);
    const rt = await secureRuntime({ auth: { mode: "mtls", clientCAFile: caFile, allowedCommonNames: ["prometheus"] } });
    const client = async (cn: string) => {
      const cert = await issueCert(ca, { commonName: cn, client: true });
      return new Agent({ connect: { rejectUnauthorized: false, cert: cert.certPem, key: cert.keyPem } });
    };
    expect((await scrape(httpsUrl(rt), undefined, await client("prometheus"))).status).toBe(200);
    expect((await scrape(httpsUrl(rt), undefined, await client("someone-else"))).status).toBe(403);
    expect((await scrape(httpsUrl(rt))).status).toBe(401);
    const stranger = await createCA("stranger");
    const foreign = await issueCert(stranger, { commonName: "prometheus", client: true });
    const res = await scrape(httpsUrl(rt), undefined, new Agent({ connect: { rejectUnauthorized: false, cert: foreign.certPem, key: foreign.keyPem } }));
    expect(res.status).toBe(401);
  });
});

describe("--metrics-secure", () => {
  it("turns secure serving on and off as the operator spells it", async () => {
    const file = writeConfig({ metrics: { secure: true } });
    const off = runCli(["--config", file, "--metrics-secure=false", "--print-config"]);
    const on = runCli(["--metrics-secure", "--print-config"]);
    const bad = runCli(["--metrics-secure=maybe"]);
    expect(await Promise.all([off.exited, on.exited, bad.exited])).toEqual([0, 0, 2]);
    expect(off.stdout()).toMatch(/secure: false/);
    expect(off.stdout()).toMatch(/port: 8080/);
    expect(on.stdout()).toMatch(/port: 8443/);
    expect(bad.stderr()).toContain('--metrics-secure takes true or false, not "maybe"');
  });
});
