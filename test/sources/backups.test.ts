import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import http, { type IncomingHttpHeaders } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CheckEngine } from "../../src/checks/engine.ts";
import { createLogging } from "../../src/log.ts";
import { MetricRegistry } from "../../src/metrics/registry.ts";
import { Secret } from "../../src/secret.ts";
import { SecretUrl } from "../../src/secret-url.ts";
import { createBackupsSource } from "../../src/sources/backups/index.ts";
import { s3Addressing } from "../../src/sources/backups/s3.ts";
import { parseErrorDocument, parseListPage } from "../../src/sources/backups/s3-xml.ts";
import { signS3Request } from "../../src/sources/backups/sigv4.ts";
import { gunzipHead, VERIFY_HEAD_BYTES, verifySnapshotHead } from "../../src/sources/backups/verify.ts";
import { type XmlLimits, XmlReader } from "../../src/sources/backups/xml.ts";
import { SourceRegistry } from "../../src/sources/registry.ts";
import { CheckStore } from "../../src/state/checks.ts";
import { LogCapture, configFrom, httpServer, seriesValue } from "../helpers.ts";
import { corruptSnapshot, readFixtureSnapshot } from "../sim/etcd-snapshot.ts";
import { createCA, issueCert } from "../sim/pki.ts";
import { type S3Sim, startS3Sim } from "../sim/s3.ts";

// ---------------------------------------------------------------------------------------------------------------
// Harness

/** A value that must never leave the process: the S3 secret key of every target below. */
const PLANTED_SECRET = `planted-s3-secret-${randomBytes(12).toString("hex")}`;
const ACCESS_KEY_ID = "AKIDBACKUPSTEST01";
const UNKNOWN_ACCESS_KEY_ID = "AKIDNOBODYKNOWS99";
const HOUR = 3_600_000;

let secrets: string;
const keyFile = () => join(secrets, "access-key-id");
const unknownKeyFile = () => join(secrets, "unknown-access-key-id");
const secretFile = () => join(secrets, "secret-access-key");

beforeAll(async () => {
  secrets = await mkdtemp(join(tmpdir(), "backups-secrets-"));
  await writeFile(keyFile(), `${ACCESS_KEY_ID}\n`);
  await writeFile(unknownKeyFile(), `${UNKNOWN_ACCESS_KEY_ID}\n`);
  await writeFile(secretFile(), `${PLANTED_SECRET}\n`);
});
afterAll(async () => {
  await rm(secrets, { recursive: true, force: true });
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sim(): Promise<S3Sim> {
  const s = await startS3Sim({ accessKeyId: ACCESS_KEY_ID, secretAccessKey: PLANTED_SECRET });
  cleanups.push(() => s.close());
  return s;
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "backups-fs-"));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

function s3Target(endpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "primary",
    type: "s3",
    endpoint,
    bucket: "etcd-backups",
    prefix: "etcd/",
    pathStyle: true,
    namespace: "talos-system",
    backupName: "nightly",
    accessKeyId: { file: keyFile() },
    secretAccessKey: { file: secretFile() },
    ...extra,
  };
}

function fsTarget(path: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: "local", type: "filesystem", path, namespace: "talos-system", ...extra };
}

async function start(backups: Record<string, unknown>, checks: Record<string, unknown>[] = []) {
  const config = configFrom({
    logging: { level: "debug" },
    sources: { backups: { interval: "1m", timeout: "5s", ...backups } },
    healthChecks: { dependencies: checks },
  });
  const metrics = new MetricRegistry({}, { processMetrics: false });
  const logs = new LogCapture();
  const logger = createLogging(config.logging, logs).root;
  const backupsConfig = config.sources.backups;
  if (!backupsConfig) throw new Error("test config has no backups source");
  const source = createBackupsSource(backupsConfig, { logger, metrics });
  cleanups.push(() => source.stop());
  const registry = new SourceRegistry([source]);
  const engine = new CheckEngine(new CheckStore(), { logger, sources: registry }, metrics.handles);
  for (const spec of config.checks) engine.add(spec);
  cleanups.push(() => engine.stop());
  return { source, metrics, logs, engine, render: () => metrics.render(false) };
}

/** Whole seconds, so file-system and S3 timestamps compare exactly. */
function hoursAgo(h: number): Date {
  return new Date(Math.floor((Date.now() - h * HOUR) / 1000) * 1000);
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * A forwarding proxy in front of s3rver that records what reached the wire and counts the response bytes it
 * relayed: proof of what the client really sent and really received.
 */
async function recordingProxy(upstream: string, tls?: { certPem: string; keyPem: string }) {
  const seen: Seen[] = [];
  let bytesRelayed = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    const up = http.request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.on("data", (c: Buffer) => (bytesRelayed += c.length));
      ur.pipe(res);
      res.on("close", () => ur.destroy());
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  };
  const server = tls ? https.createServer({ cert: tls.certPem, key: tls.keyPem }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `${tls ? "https" : "http"}://127.0.0.1:${port}`, seen, bytes: () => bytesRelayed };
}

function listXml(objects: { key: string; at: Date; size: number }[], next?: string): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
    "<Name>etcd-backups</Name><Prefix>etcd/</Prefix>",
    `<KeyCount>${objects.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>${next ? "true" : "false"}</IsTruncated>`,
    next ? `<NextContinuationToken>${next}</NextContinuationToken>` : "",
    ...objects.map(
      (o) =>
        `<Contents><Key>${o.key}</Key><LastModified>${o.at.toISOString()}</LastModified><ETag>"x"</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    ),
    "</ListBucketResult>",
  ].join("\n");
}

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>1</RequestId></Error>`;
}

async function fakeS3(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const s = await httpServer(handler);
  cleanups.push(() => s.close());
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Building blocks

describe("SigV4 signing (aws4)", () => {
  // The credentials and fixed time of AWS's own SigV4 examples for S3 ("Signature Calculations for the
  // Authorization Header: Transferring Payload in a Single Chunk", Amazon S3 API Reference).
  const creds = {
    accessKeyId: new Secret("AKIAIOSFODNN7EXAMPLE"),
    secretAccessKey: new Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
  };
  const now = new Date("2013-05-24T00:00:00Z");
  const host = "examplebucket.s3.amazonaws.com";

  it("reproduces AWS's published signature for GET Bucket (List Objects)", () => {
    const signed = signS3Request({ method: "GET", host, path: "/?max-keys=2&prefix=J", region: "us-east-1", now }, creds);
    expect(signed.headers.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, " +
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
    expect(signed.headers["x-amz-date"]).toBe("20130524T000000Z");
    expect(signed.headers["x-amz-content-sha256"]).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(signed.headers.host).toBe(host);
  });

  it("reproduces AWS's published signature for GET Bucket Lifecycle (a query key without a value)", () => {
    const signed = signS3Request({ method: "GET", host, path: "/?lifecycle", region: "us-east-1", now }, creds);
    expect(signed.headers.authorization).toMatch(/Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543$/);
  });

  it("signs the session token and sends the query in the form it signed", () => {
    const signed = signS3Request(
      { method: "GET", host, path: "/?list-type=2&prefix=etcd%2F&continuation-token=a%2Bb%3D", region: "eu-west-1", now },
      { ...creds, sessionToken: new Secret("session-token-value") },
    );
    expect(signed.headers["x-amz-security-token"]).toBe("session-token-value");
    expect(signed.headers.authorization).toContain("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,");
    expect(signed.headers.authorization).toContain("/20130524/eu-west-1/s3/aws4_request");
    expect(new URL(`http://h${signed.path}`).searchParams.get("continuation-token")).toBe("a+b=");
    expect(new URL(`http://h${signed.path}`).searchParams.get("prefix")).toBe("etcd/");
  });

  it("a different secret gives a different signature", () => {
    const a = signS3Request({ method: "GET", host, path: "/", region: "us-east-1", now }, creds);
    const b = signS3Request({ method: "GET", host, path: "/", region: "us-east-1", now }, { ...creds, secretAccessKey: new Secret("another-secret-key") });
    expect(a.headers.authorization).not.toBe(b.headers.authorization);
  });
});

describe("S3 addressing", () => {
  it("puts the bucket in the path or in the host name", () => {
    expect(s3Addressing({ endpoint: new SecretUrl("http://127.0.0.1:9000"), region: "x", bucket: "b", pathStyle: true })).toMatchObject({
      origin: "http://127.0.0.1:9000",
      host: "127.0.0.1:9000",
      bucketPath: "/b",
    });
    expect(s3Addressing({ endpoint: new SecretUrl("https://minio.example/s3/"), region: "x", bucket: "b", pathStyle: false })).toMatchObject({
      origin: "https://b.minio.example",
      host: "b.minio.example",
      bucketPath: "/s3",
    });
    expect(s3Addressing({ endpoint: undefined, region: "eu-central-1", bucket: "b", pathStyle: false }).origin).toBe("https://b.s3.eu-central-1.amazonaws.com");
  });

  it("never shows credentials written into the endpoint", () => {
    const a = s3Addressing({ endpoint: new SecretUrl("https://user:hunter2hunter2@minio.example"), region: "x", bucket: "b", pathStyle: true });
    expect(JSON.stringify(a)).not.toContain("hunter2");
  });
});

/** Every element of a document with its text (all kept), read in pieces of `piece` characters. */
function elements(doc: string, piece = doc.length || 1, limits: Partial<XmlLimits> = {}): [string, string][] {
  const out: [string, string][] = [];
  const reader = new XmlReader({ open: () => undefined, keepText: () => true, close: (path, text) => void out.push([path.join("/"), text]) }, limits);
  for (let at = 0; at < doc.length; at += piece) reader.write(doc.slice(at, at + piece));
  reader.end();
  return out;
}

describe("XML reading", () => {
  const doc = '<?xml version="1.0"?><!-- c --><a:R xmlns:a="u" b=\'>\'><K>x &amp; y &lt;&#65;&#x42;&gt;</K><C><![CDATA[<raw>]]></C><E/></a:R>\n';

  it("decodes entities and CDATA and drops namespace prefixes, however the document is cut", () => {
    const expected = [
      ["R/K", "x & y <AB>"],
      ["R/C", "<raw>"],
      ["R/E", ""],
      ["R", ""],
    ];
    for (const piece of [doc.length, 7, 3, 1]) expect(elements(doc, piece)).toEqual(expected);
  });

  it.each([
    ["<a><b></a></b>", /malformed XML: expected <\/b>, found <\/a>/],
    ["<a>", /malformed XML: unclosed <a>/],
    ["<a", /malformed XML: the document ends inside markup/],
    ["<!DOCTYPE a [<!ENTITY x 'y'>]><a/>", /malformed XML: unexpected DOCTYPE/],
    ["<a>&x;</a>", /malformed XML: unknown entity &x;/],
    ["<a>&#0;</a>", /malformed XML: &#0; is not a character XML allows/],
    ["<a>a & b</a>", /malformed XML: an & that does not start a reference/],
    ["<a b=c/>", /malformed XML: <a>: malformed attribute value/],
    ["<a/><b/>", /malformed XML: a second root element <b>/],
    ["text", /malformed XML: text outside the root element/],
    ["", /malformed XML: no root element/],
  ])("rejects %j", (bad, message) => {
    expect(() => elements(bad)).toThrow(message);
  });

  it("holds no more than its limits, whatever the document", () => {
    expect(() => elements(`<a>${"<b>".repeat(20)}`, 64, { maxDepth: 16 })).toThrow(/nested more than 16 deep/);
    expect(() => elements(`<a>${"&amp;".repeat(5000)}</a>`, 1024, { maxTextChars: 4096 })).toThrow(/<a> holds more than 4096 characters/);
    expect(() => elements(`<a><!--${"x".repeat(20_000)}--></a>`, 1024, { maxMarkupChars: 8192 })).toThrow(/markup longer than 8192 characters/);
    expect(() => elements(`<a ${"b".repeat(20_000)}="1"/>`, 1024, { maxMarkupChars: 8192 })).toThrow(/markup longer than 8192 characters/);
  });

  it("reads a ListObjectsV2 page strictly", () => {
    const at = new Date("2024-05-01T10:00:00.000Z");
    const page = parseListPage(listXml([{ key: "etcd/a &amp; b.db", at, size: 12 }], "tok"));
    expect(page).toEqual({ objects: [{ key: "etcd/a & b.db", lastModifiedMs: at.getTime(), sizeBytes: 12 }], truncated: true, nextToken: "tok" });
    expect(() => parseListPage(listXml([{ key: "k", at, size: -1 }]))).toThrow(/valid Key, LastModified or Size/);
    expect(() => parseListPage(errorXml("AccessDenied", "no"))).toThrow(/expected a ListBucketResult/);
    const three = listXml([1, 2, 3].map((i) => ({ key: `k${i}`, at, size: i })));
    expect(parseListPage(three, 3).objects).toHaveLength(3);
    expect(() => parseListPage(three, 2)).toThrow(/the page lists more than the 2 objects asked for/);
  });

  it("reads an Error document's code and message", () => {
    expect(parseErrorDocument(errorXml("SlowDown", "Please &amp; reduce"))).toEqual({ code: "SlowDown", message: "Please & reduce" });
    expect(() => parseErrorDocument(listXml([]))).toThrow(/expected an Error document/);
  });
});

describe("snapshot verification", () => {
  const fixture = readFixtureSnapshot();

  it("finds the bbolt magic in a plain snapshot", async () => {
    expect(await verifySnapshotHead(fixture.subarray(0, VERIFY_HEAD_BYTES), fixture.length)).toEqual({ verified: true, reason: "bbolt magic found" });
  });

  it("finds it in a gzip'ed snapshot from a cut-off prefix only", async () => {
    // A large snapshot: its gzip is far longer than the prefix, so the decompressor sees a truncated stream.
    const big = Buffer.concat([fixture, randomBytes(4 * 1024 * 1024)]);
    const gz = gzipSync(big);
    expect(gz.length).toBeGreaterThan(VERIFY_HEAD_BYTES * 4);
    expect(await verifySnapshotHead(gz.subarray(0, VERIFY_HEAD_BYTES), gz.length)).toEqual({ verified: true, reason: "bbolt magic found (gzip)" });
  });

  it("does not inflate a gzip bomb beyond what it needs", async () => {
    // 64 KiB of this stream inflate to about 64 MiB of zeros; only the first chunk is produced.
    const bomb = gzipSync(Buffer.alloc(128 * 1024 * 1024)).subarray(0, VERIFY_HEAD_BYTES);
    const out = await gunzipHead(bomb, 20);
    expect(out.length).toBeGreaterThanOrEqual(20);
    expect(out.length).toBeLessThanOrEqual(64 * 1024);
    expect(await verifySnapshotHead(bomb, 1e9)).toEqual({ verified: false, reason: "not an etcd snapshot: magic 0x00000000 after gzip decompression" });
  });

  it.each([
    ["a corrupt snapshot", corruptSnapshot(), "not an etcd snapshot: magic 0xDEADBEEF"],
    ["an empty file", Buffer.alloc(0), "empty file"],
    ["a short file", Buffer.from("hello"), "not an etcd snapshot: only 5 bytes"],
    ["a zstd file", Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]), "zstd-compressed; cannot verify: only plain and gzip'ed snapshots are read"],
    ["broken gzip", Buffer.from([0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), /^gzip data is corrupt: /],
    ["a gzip'ed corrupt snapshot", gzipSync(corruptSnapshot()), "not an etcd snapshot: magic 0xDEADBEEF after gzip decompression"],
  ])("rejects %s with a reason", async (_name, bytes, reason) => {
    const v = await verifySnapshotHead(bytes.subarray(0, VERIFY_HEAD_BYTES), bytes.length);
    expect(v.verified).toBe(false);
    if (typeof reason === "string") expect(v.reason).toBe(reason);
    else expect(v.reason).toMatch(reason);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The source against s3rver and a directory

describe("backups source", () => {
  it("reports the newest backup of an S3 target: all five families, verified", async () => {
    const s3 = await sim();
    const older = hoursAgo(27);
    const newer = hoursAgo(3);
    await s3.putSnapshot("etcd/snapshot-1.db", { lastModified: older });
    const body = await s3.putSnapshot("etcd/snapshot-2.db", { lastModified: newer });
    await s3.put("other/not-a-backup.db", "x"); // outside the prefix
    const { source, render } = await start({ targets: [s3Target(s3.url)] });
    const before = Date.now();
    await source.refresh();

    const text = await render();
    expect(seriesValue(text, 'etcd_backup_objects_total{target="primary"}')).toBe(2);
    expect(seriesValue(text, 'etcd_backup_last_timestamp_seconds{target="primary"}')).toBe(newer.getTime() / 1000);
    expect(seriesValue(text, 'talos_operator_etcd_backup_size_bytes{namespace="talos-system",name="nightly"}')).toBe(body.length);
    expect(seriesValue(text, 'etcd_backup_verified{target="primary"}')).toBe(1);
    const age = seriesValue(text, 'etcd_backup_age_seconds{target="primary"}') ?? NaN;
    expect(age).toBeGreaterThanOrEqual((before - newer.getTime()) / 1000 - 1);
    expect(age).toBeLessThanOrEqual((Date.now() - newer.getTime()) / 1000 + 1);

    expect(source.status()).toMatchObject({ up: true, healthy: true, detail: "1 target, newest 3h old" });
    expect(source.backupTarget("primary")).toEqual({
      reachable: true,
      lastSuccessAt: expect.any(Number),
      staleAfterMs: 2 * 60_000 + 5_000,
      objects: 2,
      newestKey: "etcd/snapshot-2.db",
      newestAt: newer.getTime(),
      sizeBytes: body.length,
      verified: true,
      verifyReason: "bbolt magic found",
    });
    expect(source.backupTarget("nope")).toBeUndefined();
    expect(seriesValue(text, 'sidecar_source_up{source="backups"}')).toBe(1);
  });

  it("reports the newest backup of a filesystem target", async () => {
    const dir = await tempDir();
    const older = hoursAgo(30);
    const newer = hoursAgo(2);
    const fixture = readFixtureSnapshot();
    await writeFile(join(dir, "etcd-1.db"), fixture);
    await writeFile(join(dir, "etcd-2.db.gz"), gzipSync(fixture));
    await writeFile(join(dir, ".etcd-3.db.partial"), "upload in progress"); // skipped: a temporary file
    await mkdir(join(dir, "old")); // skipped: not descended into
    await writeFile(join(dir, "old", "etcd-0.db"), fixture);
    await utimes(join(dir, "etcd-1.db"), older, older);
    await utimes(join(dir, "etcd-2.db.gz"), newer, newer);
    const { source, render } = await start({ targets: [fsTarget(dir, { backupName: "local-nightly" })] });
    await source.refresh();

    const text = await render();
    expect(seriesValue(text, 'etcd_backup_objects_total{target="local"}')).toBe(2);
    expect(seriesValue(text, 'etcd_backup_last_timestamp_seconds{target="local"}')).toBe(newer.getTime() / 1000);
    expect(seriesValue(text, 'talos_operator_etcd_backup_size_bytes{namespace="talos-system",name="local-nightly"}')).toBe(gzipSync(fixture).length);
    expect(seriesValue(text, 'etcd_backup_verified{target="local"}')).toBe(1);
    expect(seriesValue(text, 'etcd_backup_age_seconds{target="local"}')).toBeGreaterThan(2 * 3600 - 5);
    expect(source.backupTarget("local")).toMatchObject({
      reachable: true,
      newestKey: "etcd-2.db.gz",
      verified: true,
      verifyReason: "bbolt magic found (gzip)",
    });
  });

  it("only counts files that match", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "etcd-1.db"), readFixtureSnapshot());
    await writeFile(join(dir, "README.txt"), "not a backup");
    const { source } = await start({ targets: [fsTarget(dir)], match: "\\.db$" });
    await source.refresh();
    expect(source.backupTarget("local")).toMatchObject({ objects: 1, newestKey: "etcd-1.db", verified: true });
  });

  it("verifies a gzip'ed snapshot in S3", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/snapshot.db.gz", { gzip: true });
    const { source, render } = await start({ targets: [s3Target(s3.url)] });
    await source.refresh();
    expect(source.backupTarget("primary")).toMatchObject({ verified: true, verifyReason: "bbolt magic found (gzip)" });
    expect(seriesValue(await render(), 'etcd_backup_verified{target="primary"}')).toBe(1);
  });

  it("reports a corrupt newest snapshot as not verified, with the reason", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/good.db", { lastModified: hoursAgo(5) });
    await s3.putSnapshot("etcd/bad.db", { body: corruptSnapshot(), lastModified: hoursAgo(1) });
    const { source, render, logs } = await start({ targets: [s3Target(s3.url)] });
    await source.refresh();
    expect(seriesValue(await render(), 'etcd_backup_verified{target="primary"}')).toBe(0);
    expect(source.backupTarget("primary")).toMatchObject({ newestKey: "etcd/bad.db", verified: false, verifyReason: "not an etcd snapshot: magic 0xDEADBEEF" });
    expect(source.status()).toMatchObject({ up: true, healthy: false, detail: "1 target, newest 1h old; not verified: primary" });
    const target = (source.debug().targets as Record<string, unknown>[])[0];
    expect(target).toMatchObject({ name: "primary", verified: false, verifyReason: "not an etcd snapshot: magic 0xDEADBEEF" });
    expect(logs.text).toContain("newest backup is not a verifiable etcd snapshot");
  });

  it("reports an empty newest object as not verified without reading it", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/good.db", { lastModified: hoursAgo(5) });
    await s3.put("etcd/empty.db", Buffer.alloc(0), { lastModified: hoursAgo(1) });
    const { source } = await start({ targets: [s3Target(s3.url)] });
    await source.refresh();
    expect(source.backupTarget("primary")).toMatchObject({ newestKey: "etcd/empty.db", sizeBytes: 0, verified: false, verifyReason: "empty file" });
  });

  it("reports an empty prefix as zero backups and no newest", async () => {
    const s3 = await sim();
    await s3.putSnapshot("elsewhere/snapshot.db");
    const { source, render } = await start({ targets: [s3Target(s3.url)] });
    await source.refresh();
    const text = await render();
    expect(seriesValue(text, 'etcd_backup_objects_total{target="primary"}')).toBe(0);
    for (const family of ["etcd_backup_last_timestamp_seconds", "etcd_backup_age_seconds", "etcd_backup_verified", "talos_operator_etcd_backup_size_bytes"]) {
      expect(text).not.toMatch(new RegExp(`^${family}\\{`, "m"));
    }
    expect(source.backupTarget("primary")).toEqual({ reachable: true, lastSuccessAt: expect.any(Number), staleAfterMs: 125_000, objects: 0 });
    expect(source.status()).toMatchObject({ up: true, healthy: false, detail: "1 target, no backups" });
  });

  it("fails as unauthorized with an access key the endpoint does not know", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/snapshot.db");
    const { source, render } = await start({ targets: [s3Target(s3.url, { accessKeyId: { file: unknownKeyFile() } })] });
    await source.refresh();
    const status = source.status();
    expect(status.up).toBe(false);
    expect(status.error).toMatch(
      /s3 target "primary" \(bucket etcd-backups at http:\/\/127\.0\.0\.1:\d+\): ListObjectsV2 failed with HTTP 403 InvalidAccessKeyId: .*; .*check accessKeyId/,
    );
    expect(seriesValue(await render(), 'sidecar_source_errors_total{source="backups",reason="unauthorized"}')).toBe(1);
    expect(source.backupTarget("primary")).toMatchObject({ reachable: false, objects: 0 });
  });

  it("fails as not_found when the bucket does not exist", async () => {
    const s3 = await sim();
    const { source, render } = await start({ targets: [s3Target(s3.url, { bucket: "no-such-bucket" })] });
    await source.refresh();
    expect(source.status().error).toMatch(/ListObjectsV2 failed with HTTP 404 NoSuchBucket: .*; check bucket, endpoint and pathStyle/);
    expect(seriesValue(await render(), 'sidecar_source_errors_total{source="backups",reason="not_found"}')).toBe(1);
  });

  it("keeps polling the other targets when a directory is missing", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/snapshot.db", { lastModified: hoursAgo(1) });
    const missing = join(await tempDir(), "not-mounted");
    const { source, render } = await start({ targets: [s3Target(s3.url), fsTarget(missing)] });
    await source.refresh();

    expect(source.status()).toMatchObject({ up: true, healthy: false, detail: "2 targets, newest 1h old; unreachable: local" });
    const local = source.backupTarget("local");
    expect(local).toMatchObject({ reachable: false, objects: 0 });
    expect(local?.error).toBe(
      `filesystem target "local" (${missing}): cannot list the directory: ENOENT; the directory does not exist: mount the backup volume there or fix path`,
    );
    const targets = source.debug().targets as Record<string, unknown>[];
    expect(targets.find((t) => t.name === "local")).toMatchObject({ reachable: false, reason: "not_found" });
    const text = await render();
    expect(seriesValue(text, 'etcd_backup_verified{target="primary"}')).toBe(1);
    // Nothing was ever read there: only its own freshness is exported, and says so.
    expect(text).not.toMatch(/^etcd_backup_(objects_total|last_timestamp_seconds|age_seconds|verified)\{target="local"\}/m);
    expect(text).not.toMatch(/^etcd_backup_target_last_success_timestamp_seconds\{target="local"\}/m);
    expect(seriesValue(text, 'etcd_backup_target_up{target="local"}')).toBe(0);
    expect(seriesValue(text, 'etcd_backup_target_errors_total{target="local",reason="not_found"}')).toBe(1);
    expect(seriesValue(text, 'etcd_backup_target_up{target="primary"}')).toBe(1);
    expect(seriesValue(text, 'etcd_backup_target_errors_total{target="primary",reason="not_found"}')).toBe(0);
    // The source is up, its other target being fresh, but the failure is counted.
    expect(seriesValue(text, 'sidecar_source_up{source="backups"}')).toBe(1);
    expect(seriesValue(text, 'sidecar_source_errors_total{source="backups",reason="not_found"}')).toBe(1);
  });

  it("keeps a failing target's last good series while the others move on", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/a.db", { lastModified: hoursAgo(4) });
    const dir = await tempDir();
    await writeFile(join(dir, "etcd.db"), readFixtureSnapshot());
    const { source, render } = await start({ targets: [s3Target(s3.url), fsTarget(dir)] });
    await source.refresh();
    const first = await render();
    expect(seriesValue(first, 'etcd_backup_objects_total{target="local"}')).toBe(1);

    await rm(dir, { recursive: true });
    await s3.putSnapshot("etcd/b.db", { lastModified: hoursAgo(1) });
    await source.refresh();
    const second = await render();
    expect(seriesValue(second, 'etcd_backup_objects_total{target="primary"}')).toBe(2);
    for (const family of ["etcd_backup_objects_total", "etcd_backup_last_timestamp_seconds", "etcd_backup_age_seconds", "etcd_backup_verified"]) {
      const series = `${family}{target="local"}`;
      expect(seriesValue(second, series)).toBe(seriesValue(first, series));
    }
    expect(source.backupTarget("local")).toMatchObject({ reachable: false, objects: 1, newestKey: "etcd.db", verified: true });
    expect(source.backupTarget("local")?.error).toMatch(/ENOENT/);
  });

  it("fails the poll only when every target failed, and then leaves every series alone", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "etcd.db"), readFixtureSnapshot());
    const { source, render } = await start({ targets: [fsTarget(dir), fsTarget(join(dir, "missing"), { name: "other" })] });
    await source.refresh();
    expect(source.status().up).toBe(true);
    const before = await render();
    await rm(dir, { recursive: true });
    await source.refresh();
    expect(source.status()).toMatchObject({ up: false });
    expect(source.status().error).toMatch(/^all 2 backup targets failed: filesystem target "local".*ENOENT.*; filesystem target "other".*ENOENT/);
    const after = await render();
    expect(seriesValue(after, 'etcd_backup_objects_total{target="local"}')).toBe(seriesValue(before, 'etcd_backup_objects_total{target="local"}'));
    // One for "other" in the first poll, which still worked; one for the second poll, which failed whole.
    expect(seriesValue(after, 'sidecar_source_errors_total{source="backups",reason="not_found"}')).toBe(2);
    expect(seriesValue(after, 'etcd_backup_target_errors_total{target="other",reason="not_found"}')).toBe(2);
    expect(seriesValue(after, 'etcd_backup_target_errors_total{target="local",reason="not_found"}')).toBe(1);
    expect(seriesValue(after, 'etcd_backup_target_up{target="local"}')).toBe(0);
  });

  it("reads only the first bytes of the newest backup, with a ranged GET", async () => {
    const s3 = await sim();
    // 16 MiB: a snapshot followed by padding, far more than the verification reads.
    const huge = Buffer.concat([readFixtureSnapshot(), Buffer.alloc(16 * 1024 * 1024)]);
    await s3.put("etcd/huge.db", huge);
    const proxy = await recordingProxy(s3.url);
    const { source, render } = await start({ targets: [s3Target(proxy.url)] });
    await source.refresh();

    expect(source.backupTarget("primary")).toMatchObject({ sizeBytes: huge.length, verified: true });
    expect(seriesValue(await render(), 'talos_operator_etcd_backup_size_bytes{namespace="talos-system",name="nightly"}')).toBe(huge.length);
    const get = proxy.seen.find((r) => r.url === "/etcd-backups/etcd/huge.db");
    expect(get?.headers.range).toBe(`bytes=0-${VERIFY_HEAD_BYTES - 1}`);
    expect(get?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDBACKUPSTEST01\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/,
    );
    expect(proxy.bytes()).toBeLessThan(1024 * 1024);

    // The same newest backup is not read again on the next poll.
    const gets = () => proxy.seen.filter((r) => r.url.startsWith("/etcd-backups/etcd/")).length;
    const readsBefore = gets();
    await source.refresh();
    expect(gets()).toBe(readsBefore);
    expect(proxy.seen.filter((r) => r.url.startsWith("/etcd-backups?")).length).toBe(2);
  });

  it("pages through a long listing with continuation tokens", async () => {
    const t0 = hoursAgo(10);
    const page1 = Array.from({ length: 3 }, (_, i) => ({ key: `etcd/a-${i}.db`, at: new Date(t0.getTime() + i * 1000), size: 100 + i }));
    const page2 = [{ key: "etcd/b-0.db", at: new Date(t0.getTime() + HOUR), size: 500 }];
    const token = "1/token+with=chars";
    const server = await fakeS3((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.searchParams.get("list-type") === "2") {
        res.writeHead(200, { "content-type": "application/xml" });
        res.end(url.searchParams.get("continuation-token") === token ? listXml(page2) : listXml(page1, token));
        return;
      }
      res.writeHead(206, { "content-range": `bytes 0-99/500` });
      res.end(readFixtureSnapshot().subarray(0, 100));
    });
    const { source } = await start({ targets: [s3Target(server.url)] });
    await source.refresh();
    expect(source.backupTarget("primary")).toMatchObject({ reachable: true, objects: 4, newestKey: "etcd/b-0.db", sizeBytes: 500, verified: true });
    const lists = server.requests.filter((r) => r.url?.includes("list-type=2"));
    expect(lists).toHaveLength(2);
    expect(new URL(lists[1]?.url ?? "", "http://x").searchParams.get("continuation-token")).toBe(token);
    expect(new URL(lists[0]?.url ?? "", "http://x").searchParams.get("prefix")).toBe("etcd/");
  });

  it("reports rate limiting and waits as long as the endpoint asks", async () => {
    let calls = 0;
    const server = await fakeS3((_req, res) => {
      calls++;
      res.writeHead(503, { "content-type": "application/xml", "retry-after": "120" });
      res.end(errorXml("SlowDown", "Please reduce your request rate."));
    });
    const { source, render } = await start({ targets: [s3Target(server.url)] });
    await source.refresh();
    expect(source.status().error).toMatch(/ListObjectsV2 failed with HTTP 503 SlowDown: Please reduce your request rate; the endpoint asks for fewer requests/);
    expect(seriesValue(await render(), 'sidecar_source_errors_total{source="backups",reason="rate_limited"}')).toBe(1);
    await source.refresh();
    expect(calls).toBe(1); // the second poll did not ask again before Retry-After passed
    expect(seriesValue(await render(), 'sidecar_source_errors_total{source="backups",reason="rate_limited"}')).toBe(2);
  });

  it("a hanging target times out on its own and the others still report", async () => {
    const hanging = await fakeS3(() => {
      // never answers
    });
    const dir = await tempDir();
    await writeFile(join(dir, "etcd.db"), readFixtureSnapshot());
    const { source, render } = await start({ targets: [s3Target(hanging.url), fsTarget(dir)], interval: "2s", timeout: "1s" });
    const started = Date.now();
    await source.refresh();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(source.status()).toMatchObject({ up: true, healthy: false });
    expect(source.backupTarget("primary")).toMatchObject({ reachable: false });
    expect((source.debug().targets as Record<string, unknown>[])[0]).toMatchObject({ name: "primary", reason: "timeout" });
    expect(seriesValue(await render(), 'etcd_backup_verified{target="local"}')).toBe(1);
  });

  it("trusts an endpoint's certificate through tls.caFile", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/snapshot.db");
    const ca = await createCA("backups-test-ca");
    const leaf = await issueCert(ca, { commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"], server: true });
    const caFile = join(secrets, "ca.pem");
    await writeFile(caFile, ca.certPem);
    const proxy = await recordingProxy(s3.url, leaf);

    const trusted = await start({ targets: [s3Target(proxy.url, { tls: { caFile } })] });
    await trusted.source.refresh();
    expect(trusted.source.backupTarget("primary")).toMatchObject({ reachable: true, verified: true });

    const untrusted = await start({ targets: [s3Target(proxy.url)] });
    await untrusted.source.refresh();
    expect(untrusted.source.status().up).toBe(false);
    expect(untrusted.source.status().error).toMatch(/request failed: .*; set tls\.caFile to the CA that signed the endpoint's certificate/);
    expect(seriesValue(await untrusted.render(), 'sidecar_source_errors_total{source="backups",reason="tls"}')).toBe(1);
  });

  it("never lets the secret key reach logs, errors, debug output or metrics", async () => {
    const s3 = await sim();
    await s3.putSnapshot("etcd/snapshot.db");
    const denied = await fakeS3((_req, res) => {
      res.writeHead(403, { "content-type": "application/xml" });
      // A hostile or careless endpoint echoing the credentials back must not get them printed.
      res.end(errorXml("SignatureDoesNotMatch", `The request signature we calculated does not match; you sent ${PLANTED_SECRET}`));
    });
    const runs = [
      await start({ targets: [s3Target(s3.url)] }),
      await start({ targets: [s3Target(s3.url, { accessKeyId: { file: unknownKeyFile() } })] }),
      await start({ targets: [s3Target(s3.url, { bucket: "no-such-bucket" })] }),
      await start({ targets: [s3Target(denied.url)] }),
    ];
    const outputs: string[] = [];
    for (const run of runs) {
      await run.source.refresh();
      outputs.push(
        run.logs.text,
        JSON.stringify(run.source.debug()),
        JSON.stringify(run.source.status()),
        JSON.stringify(run.source.backupTarget("primary")),
        await run.render(),
      );
    }
    const all = outputs.join("\n");
    expect(runs[3]?.source.status().error).toMatch(/SignatureDoesNotMatch.*check secretAccessKey and region/);
    expect(all).toContain("InvalidAccessKeyId"); // the failures really were reported
    expect(all).not.toContain(PLANTED_SECRET);
    // Where the endpoint did not echo it, nothing even tried to print it (the scrubber had nothing to replace).
    expect(outputs.slice(0, 15).join("\n")).not.toContain("[REDACTED]");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The backup check reads this source

describe("backup check on the backups source", () => {
  async function checked(snapshot: { body?: Buffer; hoursOld: number }, check: Record<string, unknown>) {
    const s3 = await sim();
    await s3.putSnapshot("etcd/snapshot.db", { lastModified: hoursAgo(snapshot.hoursOld), ...(snapshot.body && { body: snapshot.body }) });
    const run = await start({ targets: [s3Target(s3.url)] }, [{ name: "etcd-backup", type: "backup", target: "primary", ...check }]);
    await run.source.refresh();
    return run.engine.runOnce("etcd-backup");
  }

  it("passes for a recent, large enough, verified backup", async () => {
    const result = await checked({ hoursOld: 2 }, { maxAge: "1d", minBytes: 1024 });
    expect(result).toMatchObject({ ok: true, message: expect.stringMatching(/^newest backup etcd\/snapshot\.db is 2h\d*m?\d*s? old, 20512 bytes, verified$/) });
  });

  it("fails when the newest backup is older than maxAge", async () => {
    const result = await checked({ hoursOld: 30 }, { maxAge: "1d" });
    expect(result).toMatchObject({ ok: false, reason: "unhealthy", message: expect.stringMatching(/is 1d6h\S* old, more than 1d$/) });
  });

  it("fails when the newest backup is smaller than minBytes", async () => {
    const result = await checked({ hoursOld: 1 }, { minBytes: 1024 * 1024 });
    expect(result).toMatchObject({ ok: false, reason: "unhealthy", message: "newest backup is 20512 bytes, less than 1048576" });
  });

  it("fails on an unverified backup unless requireVerified is false", async () => {
    const strict = await checked({ hoursOld: 1, body: corruptSnapshot() }, {});
    expect(strict).toMatchObject({ ok: false, reason: "unhealthy", message: "newest backup not verified: not an etcd snapshot: magic 0xDEADBEEF" });
    const lenient = await checked({ hoursOld: 1, body: corruptSnapshot() }, { requireVerified: false });
    expect(lenient).toMatchObject({ ok: true });
  });

  it("fails while the target has not been reached", async () => {
    const s3 = await sim();
    const run = await start({ targets: [s3Target(s3.url, { bucket: "no-such-bucket" })] }, [{ name: "etcd-backup", type: "backup", target: "primary" }]);
    expect(await run.engine.runOnce("etcd-backup")).toMatchObject({ ok: false, message: "backup target primary unreachable: no poll succeeded yet" });
    await run.source.refresh();
    expect(await run.engine.runOnce("etcd-backup")).toMatchObject({
      ok: false,
      reason: "unhealthy",
      message: expect.stringMatching(/^backup target primary unreachable: .*NoSuchBucket/),
    });
  });
});
