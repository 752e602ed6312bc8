import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { request } from "undici";
import { startS3Sim } from "./s3.ts";
import type { S3Sim, S3SimOptions } from "./s3.ts";
import {
  BBOLT_MAGIC,
  BBOLT_MAGIC_OFFSET,
  SNAPSHOT_HASH_TRAILER_BYTES,
  corruptSnapshot,
  readFixtureSnapshot,
} from "./etcd-snapshot.ts";

const sims: S3Sim[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

async function sim(opts?: S3SimOptions): Promise<S3Sim> {
  const s = await startS3Sim(opts);
  sims.push(s);
  return s;
}

function keysOf(xml: string): string[] {
  return [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1] ?? "");
}

/** x-amz-date format: yyyyMMdd'T'HHmmss'Z'. */
function amzDate(d = new Date()): string {
  return d.toISOString().replace(/[-:]|\.\d{3}/g, "");
}

/**
 * A well-formed SigV4 Authorization header with a made-up signature: enough
 * to tell whether the server verifies signatures or only their shape.
 */
function fakeSigV4Headers(accessKeyId: string, region: string): Record<string, string> {
  const date = amzDate();
  return {
    "x-amz-date": date,
    "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    authorization:
      `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${date.slice(0, 8)}/${region}/s3/aws4_request, ` +
      `SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${"0".repeat(64)}`,
  };
}

describe("etcd snapshot fixture", () => {
  it("is a bbolt file with etcd's SHA-256 trailer", () => {
    const buf = readFixtureSnapshot();
    expect(buf.length).toBeLessThan(200 * 1024);
    expect(buf.readUInt32LE(BBOLT_MAGIC_OFFSET)).toBe(BBOLT_MAGIC);
    expect(buf.readUInt32LE(BBOLT_MAGIC_OFFSET + 4)).toBe(2); // bbolt format version
    const pageSize = buf.readUInt32LE(BBOLT_MAGIC_OFFSET + 8);
    expect(pageSize).toBe(4096);
    expect(buf.readUInt32LE(pageSize + BBOLT_MAGIC_OFFSET)).toBe(BBOLT_MAGIC); // second meta page
    const body = buf.subarray(0, buf.length - SNAPSHOT_HASH_TRAILER_BYTES);
    expect(body.length % pageSize).toBe(0);
    const trailer = buf.subarray(buf.length - SNAPSHOT_HASH_TRAILER_BYTES);
    expect(createHash("sha256").update(body).digest().equals(trailer)).toBe(true);
  });

  it("corruptSnapshot keeps the size and breaks both meta pages", () => {
    const good = readFixtureSnapshot();
    const bad = corruptSnapshot();
    expect(bad.length).toBe(good.length);
    expect(bad.readUInt32LE(BBOLT_MAGIC_OFFSET)).not.toBe(BBOLT_MAGIC);
    expect(bad.readUInt32LE(4096 + BBOLT_MAGIC_OFFSET)).not.toBe(BBOLT_MAGIC);
    // readFixtureSnapshot hands out copies, so the corruption did not leak.
    expect(readFixtureSnapshot().readUInt32LE(BBOLT_MAGIC_OFFSET)).toBe(BBOLT_MAGIC);
  });
});

describe("s3 sim", () => {
  it("lists uploaded keys with ListObjectsV2 and a prefix", async () => {
    const s = await sim();
    await s.putSnapshot("etcd/snap-001.db");
    await s.putSnapshot("etcd/snap-002.db.gz", { gzip: true });
    await s.put("other/readme.txt", "hello");

    const res = await request(`${s.url}/${s.bucket}?list-type=2&prefix=${encodeURIComponent("etcd/")}`);
    const xml = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(keysOf(xml)).toEqual(["etcd/snap-001.db", "etcd/snap-002.db.gz"]);
    expect(xml).toContain("<KeyCount>2</KeyCount>");
    expect(xml).toContain(`<Size>${readFixtureSnapshot().length}</Size>`);

    const all = await request(`${s.url}/${s.bucket}?list-type=2&prefix=`);
    expect(keysOf(await all.body.text())).toHaveLength(3);
  });

  it("serves a ranged GET of the snapshot head with 206 and the bbolt magic", async () => {
    const s = await sim();
    await s.putSnapshot("etcd/snap.db");
    const res = await request(`${s.url}/${s.bucket}/etcd/snap.db`, { headers: { range: "bytes=0-4095" } });
    const buf = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes 0-4095/${readFixtureSnapshot().length}`);
    expect(buf.length).toBe(4096);
    expect(buf.readUInt32LE(BBOLT_MAGIC_OFFSET)).toBe(BBOLT_MAGIC);
  });

  it("stores the gzip variant byte for byte and honours lastModified", async () => {
    const s = await sim();
    const when = new Date("2024-03-01T12:00:00Z");
    const stored = await s.putSnapshot("etcd/old.db.gz", { gzip: true, lastModified: when });
    const res = await request(`${s.url}/${s.bucket}/etcd/old.db.gz`);
    const buf = Buffer.from(await res.body.arrayBuffer());
    expect(buf.equals(stored)).toBe(true);
    expect(gunzipSync(buf).equals(readFixtureSnapshot())).toBe(true);
    expect(res.headers["last-modified"]).toBe(when.toUTCString());

    const list = await request(`${s.url}/${s.bucket}?list-type=2&prefix=etcd/`);
    expect(await list.body.text()).toContain("<LastModified>2024-03-01T12:00:00.000Z</LastModified>");
  });

  it("removes objects and 404s on missing keys", async () => {
    const s = await sim();
    await s.put("a.db", readFixtureSnapshot());
    await s.remove("a.db");
    const res = await request(`${s.url}/${s.bucket}/a.db`);
    const text = await res.body.text();
    expect(res.statusCode).toBe(404);
    expect(text).toContain("NoSuchKey");
  });

  it("does not verify SigV4 signatures, only the access key id", async () => {
    const s = await sim({ accessKeyId: "AKIDSIMTEST", secretAccessKey: "secret" });
    await s.put("k.db", "x");
    const url = `${s.url}/${s.bucket}/k.db`;

    const unsigned = await request(url);
    await unsigned.body.dump();
    expect(unsigned.statusCode).toBe(200);

    // Signature is 64 zeros: a real S3 would answer 403 SignatureDoesNotMatch.
    const bogus = await request(url, { headers: fakeSigV4Headers(s.accessKeyId, s.region) });
    await bogus.body.dump();
    expect(bogus.statusCode).toBe(200);

    const unknown = await request(url, { headers: fakeSigV4Headers("AKIDNOBODY", s.region) });
    const text = await unknown.body.text();
    expect(unknown.statusCode).toBe(403);
    expect(text).toContain("InvalidAccessKeyId");
  });

  it("close() removes the temp directory and unregisters a custom key", async () => {
    const s = await startS3Sim({ accessKeyId: "AKIDCLOSE", secretAccessKey: "secret" });
    await s.putSnapshot("x.db");
    await s.close();
    const { access } = await import("node:fs/promises");
    await expect(access(s.directory)).rejects.toThrow();

    // A later sim with the default key sees AKIDCLOSE as unknown again.
    const t = await sim();
    await t.put("k", "x");
    const res = await request(`${t.url}/${t.bucket}/k`, { headers: fakeSigV4Headers("AKIDCLOSE", t.region) });
    await res.body.dump();
    expect(res.statusCode).toBe(403);
  });
});
