import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { KubeClient, type ResourceRef, type WatchEvent } from "../../src/sources/kubernetes/client.ts";
import { kubeconfigConnection } from "../../src/sources/kubernetes/kubeconfig.ts";
import { httpServer, type TestServer } from "../helpers.ts";
import { expectUpstreamError, outcomeAsync } from "./outcome.ts";
import { SecretUrl } from "../../src/secret-url.ts";

const dir = mkdtempSync(join(tmpdir(), "sidecar-property-kube-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PEM = Buffer.from("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
writeFileSync(join(dir, "ca.pem"), PEM);
writeFileSync(join(dir, "token"), "file-token-value-0123456789\n");
writeFileSync(join(dir, "empty"), "");

describe("kubeconfig", () => {
  const TOKEN = "inline-token-value-9876543210";
  const names = fc.constantFrom("a", "b", "", "__proto__");
  const junk = fc.jsonValue({ maxDepth: 1 });
  const maybe = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: junk });
  const cluster = fc.record(
    {
      server: fc.oneof({ weight: 6, arbitrary: fc.constantFrom("https://10.0.0.1:6443", "http://localhost:8080/") }, { weight: 1, arbitrary: fc.oneof(fc.constantFrom("ftp://x", ""), junk) }),
      "certificate-authority": maybe(fc.constantFrom("ca.pem", "missing.pem", join(dir, "ca.pem"), dir)),
      "certificate-authority-data": maybe(fc.constantFrom(PEM.toString("base64"), "!!!", "")),
      "insecure-skip-tls-verify": maybe(fc.boolean()),
      "tls-server-name": maybe(fc.string()),
    },
    { requiredKeys: ["server"] },
  );
  const user = fc.record(
    {
      token: maybe(fc.constant(TOKEN)),
      tokenFile: maybe(fc.constantFrom("token", "empty", "missing")),
      "client-certificate-data": maybe(fc.constant(PEM.toString("base64"))),
      "client-key-data": maybe(fc.constantFrom(Buffer.from("-----BEGIN EC PRIVATE KEY-----\nsecretkeybytes\n").toString("base64"), "")),
      exec: fc.constantFrom(undefined, undefined, undefined, { command: "aws" }),
      username: fc.constantFrom(undefined, undefined, undefined, "admin"),
    },
    { requiredKeys: [] },
  );
  const named = <T>(field: string, body: fc.Arbitrary<T>) => fc.array(maybe(fc.record({ name: maybe(names), [field]: maybe(body) })), { maxLength: 3 });
  const kubeconfig = fc.record(
    {
      "current-context": maybe(names),
      clusters: maybe(named("cluster", cluster)),
      contexts: maybe(named("context", fc.record({ cluster: maybe(names), user: maybe(names) }, { requiredKeys: [] }))),
      users: maybe(named("user", user)),
    },
    { requiredKeys: [] },
  );
  /** Names that refer to each other, so that many documents get as far as the TLS and credential fields. */
  const coherent = fc
    .record({ cluster, user, current: fc.oneof({ weight: 6, arbitrary: fc.constant("a") }, { weight: 1, arbitrary: fc.constantFrom("b", undefined) }), userName: fc.constantFrom("a", "a", "a", "b", undefined) })
    .map(({ cluster: c, user: u, current, userName }) => ({
      ...(current !== undefined && { "current-context": current }),
      clusters: [{ name: "a", cluster: c }],
      contexts: [{ name: "a", context: { cluster: "a", ...(userName !== undefined && { user: userName }) } }],
      users: [{ name: "a", user: u }],
    }));
  const text = fc.oneof(
    { weight: 4, arbitrary: kubeconfig.map((doc) => stringify(doc)) },
    { weight: 6, arbitrary: coherent.map((doc) => stringify(doc)) },
    { weight: 1, arbitrary: fc.tuple(kubeconfig, fc.nat(), fc.string({ maxLength: 6 })).map(([doc, at, s]) => {
      const yaml = stringify(doc);
      const cut = at % (yaml.length + 1);
      return yaml.slice(0, cut) + s + yaml.slice(cut);
    }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 100 }) },
  );

  it("any kubeconfig text is a connection or an UpstreamError that never shows a credential", async () => {
    const file = join(dir, "kubeconfig");
    const outcomes = { connected: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(text, fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: names }), async (yaml, context) => {
        writeFileSync(file, yaml);
        const result = await outcomeAsync(() => kubeconfigConnection(file, context, 60_000));
        expectUpstreamError(result);
        outcomes[result.ok ? "connected" : "refused"]++;
        if (result.ok) {
          expect(result.value.server.reveal()).toMatch(/^https?:\/\//);
          expect(result.value.server.child("/api").pathname).not.toContain("//");
          const auth = await outcomeAsync(() => result.value.credentials.authorization());
          if (auth.ok && auth.value !== undefined) expect(auth.value).toMatch(/^Bearer \S/);
          return;
        }
        expect(result.error.message).not.toContain(TOKEN);
        expect(result.error.message).not.toContain("file-token-value");
        expect(result.error.message).not.toContain("secretkeybytes");
      }),
      {
        numRuns: 400,
        examples: [["current-context: a\nclusters:\n  - name: a\n    cluster:\n      server: https://10.0.0.1:6443\ncontexts:\n  - name: a\n    context:\n      cluster: a\n      user: a\nusers:\n  - name: a\n    user:\n      token: \" \"\n", undefined]],
      },
    );
    expect(outcomes.connected).toBeGreaterThan(5);
  });
});

describe("Kubernetes API answers over a real socket", () => {
  const ref: ResourceRef = { group: "talos.alperen.cloud", version: "v1alpha1", plural: "talosclusters", namespaced: true };
  /** What the server sends for the next request: a status and the body in chunks. */
  let answer: { status: number; chunks: Buffer[] } = { status: 200, chunks: [] };
  let server: TestServer;
  let client: KubeClient;
  const MAX_EVENT = 2_048;

  beforeAll(async () => {
    server = await httpServer((_req, res) => {
      res.writeHead(answer.status, { "content-type": "application/json" });
      for (const c of answer.chunks) res.write(c);
      res.end();
    });
    client = new KubeClient(
      { server: new SecretUrl(server.url), tls: { insecureSkipVerify: false }, credentials: { authorization: async () => undefined, invalidate: () => {} }, origin: "test" },
      { requestTimeoutMs: 5_000, maxBodyBytes: 64 * 1024, maxEventBytes: MAX_EVENT },
    );
    return async () => {
      await client.close();
      await server.close();
    };
  });

  /** Splits bytes at arbitrary points, so lines and UTF-8 sequences straddle chunks. */
  const chunked = (text: fc.Arbitrary<string>) =>
    fc.tuple(text, fc.array(fc.nat(), { maxLength: 4 })).map(([t, cuts]) => {
      const bytes = Buffer.from(t);
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let last = 0;
      for (const p of [...points, bytes.length]) {
        if (p > last) chunks.push(bytes.subarray(last, p));
        last = p;
      }
      return chunks;
    });

  const object = fc.oneof(
    fc.record({ apiVersion: fc.constant("talos.alperen.cloud/v1alpha1"), kind: fc.constant("TalosCluster"), metadata: fc.record({ name: fc.string(), namespace: fc.string(), resourceVersion: fc.nat().map(String) }, { requiredKeys: [] }) }),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const event = fc.oneof(
    fc.record({ type: fc.constantFrom("ADDED", "MODIFIED", "DELETED", "BOOKMARK"), object }).map((e) => JSON.stringify(e)),
    fc.record({ type: fc.constant("ERROR"), object: fc.record({ kind: fc.constant("Status"), code: fc.oneof(fc.constantFrom(410, 500, 429, 403), fc.integer(), fc.jsonValue()), message: fc.string() }, { requiredKeys: [] }) }).map((e) => JSON.stringify(e)),
    fc.record({ type: fc.oneof(fc.string(), fc.jsonValue()), object: fc.jsonValue() }, { requiredKeys: [] }).map((e) => JSON.stringify(e)),
    fc.string({ maxLength: 30 }),
    fc.string({ minLength: MAX_EVENT, maxLength: MAX_EVENT + 20, unit: fc.constantFrom("a", "é", "{") }),
  );
  const stream = chunked(fc.tuple(fc.array(event, { maxLength: 5 }), fc.constantFrom("\n", "\r\n", "\n\n"), fc.boolean()).map(([lines, sep, trailing]) => lines.join(sep) + (trailing ? sep : "")));

  it("a watch stream of anything ends cleanly or with an UpstreamError, delivering only well-formed events", async () => {
    await fc.assert(
      fc.asyncProperty(stream, fc.constantFrom(200, 200, 200, 410, 500, 401), async (chunks, status) => {
        answer = { status, chunks };
        const events: WatchEvent[] = [];
        let opened = false;
        const result = await outcomeAsync(() =>
          client.watch(ref, "default", { resourceVersion: "1", timeoutSeconds: 5 }, AbortSignal.timeout(10_000), {
            onOpen: () => (opened = true),
            onEvent: (ev) => events.push(ev),
          }),
        );
        expectUpstreamError(result);
        if (status !== 200) expect(result.ok).toBe(false);
        if (events.length > 0) expect(opened).toBe(true);
        for (const ev of events) {
          expect(["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]).toContain(ev.type);
          expect(typeof ev.object).toBe("object");
          expect(Array.isArray(ev.object)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  const listBody = fc.oneof(
    fc.record({ kind: fc.constant("TalosClusterList"), metadata: fc.record({ resourceVersion: fc.oneof(fc.nat().map(String), fc.jsonValue()), continue: fc.oneof(fc.string(), fc.jsonValue()) }, { requiredKeys: [] }), items: fc.oneof(fc.array(object, { maxLength: 4 }), fc.jsonValue()) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.string({ maxLength: 60 }),
    fc.constant(JSON.stringify({ items: [], metadata: { resourceVersion: "1" }, pad: "x".repeat(70 * 1024) })),
  );

  it("a list page of anything is items with a resourceVersion, or an UpstreamError", async () => {
    await fc.assert(
      fc.asyncProperty(chunked(listBody), fc.constantFrom(200, 200, 200, 404, 429, 500), async (chunks, status) => {
        answer = { status, chunks };
        const result = await outcomeAsync(() => client.listPage(ref, undefined, 100, undefined, AbortSignal.timeout(10_000)));
        expectUpstreamError(result);
        if (status !== 200) expect(result.ok).toBe(false);
        if (!result.ok) return;
        expect(typeof result.value.resourceVersion).toBe("string");
        for (const item of result.value.items) expect(typeof item).toBe("object");
      }),
      { numRuns: 300 },
    );
  });
});
