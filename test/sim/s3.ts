// An S3 endpoint for tests, backed by s3rver in a temp directory.
//
// What s3rver 3.7 does and does not check (read from its source, confirmed by
// test/sim/s3.test.ts), so tests do not read more into a green result:
// - Requests without any auth are served (no bucket policy/ACL enforcement).
// - SigV4 (`Authorization: AWS4-HMAC-SHA256 ...`): only the shape is checked
//   (Credential/SignedHeaders/Signature present, x-amz-content-sha256 present,
//   x-amz-date within 15 minutes) and that the access key id is registered.
//   The signature itself is NOT verified, so a wrong secret still gets 200;
//   an unknown access key id gets 403 InvalidAccessKeyId.
// - SigV2 signatures are verified.
import { createRequire } from "node:module";
import { mkdtemp, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { request } from "undici";
import { readFixtureSnapshot } from "./etcd-snapshot.ts";

// s3rver ships no type declarations; these describe the parts used here.
interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;
interface AwsAccountModule {
  DUMMY_ACCOUNT: {
    createKeyPair(id: string, secret: string): void;
    revokeAccessKey(id: string): void;
  };
}

const require = createRequire(import.meta.url);
// require() is typed any; narrowed to the interfaces above.
const S3rver = require("s3rver") as S3rverCtor;
// Same module instance s3rver itself loads (CJS cache), so keys registered
// here are the ones its auth middleware looks up.
const awsAccount = require("s3rver/lib/models/account") as AwsAccountModule;

/** s3rver's built-in account; always registered. */
export const S3RVER_DEFAULT_KEY = "S3RVER";

// The key registry is process-global; count users so closing one sim does not
// revoke a key another live sim still relies on.
const keyUsers = new Map<string, number>();

export interface S3SimOptions {
  bucket?: string;
  /** Default S3RVER/S3RVER (s3rver's built-in account). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Reported to clients for signing; s3rver itself ignores the region. */
  region?: string;
}

export interface S3PutOptions {
  contentType?: string;
  /** Sets the object's LastModified (s3rver takes it from the file mtime). */
  lastModified?: Date;
}

export interface S3Sim {
  /** Path-style endpoint, e.g. http://127.0.0.1:PORT (bucket goes in the path). */
  readonly url: string;
  readonly port: number;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly directory: string;
  put(key: string, body: Buffer | string, opts?: S3PutOptions): Promise<void>;
  /** Uploads the etcd fixture (gzip'ed on request) and returns the bytes stored. */
  putSnapshot(key: string, opts?: { gzip?: boolean; lastModified?: Date; body?: Buffer }): Promise<Buffer>;
  remove(key: string): Promise<void>;
  close(): Promise<void>;
}

function objectUrl(base: string, bucket: string, key: string): string {
  return `${base}/${encodeURIComponent(bucket)}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

export async function startS3Sim(opts: S3SimOptions = {}): Promise<S3Sim> {
  const bucket = opts.bucket ?? "etcd-backups";
  const accessKeyId = opts.accessKeyId ?? S3RVER_DEFAULT_KEY;
  const secretAccessKey = opts.secretAccessKey ?? (accessKeyId === S3RVER_DEFAULT_KEY ? "S3RVER" : "sim-secret");
  const region = opts.region ?? "us-east-1";
  const directory = await mkdtemp(join(tmpdir(), "s3sim-"));

  if (accessKeyId !== S3RVER_DEFAULT_KEY) {
    awsAccount.DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
    keyUsers.set(accessKeyId, (keyUsers.get(accessKeyId) ?? 0) + 1);
  }

  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  let addr: AddressInfo;
  try {
    addr = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const url = `http://127.0.0.1:${addr.port}`;

  const put = async (key: string, body: Buffer | string, putOpts: S3PutOptions = {}): Promise<void> => {
    // Unsigned on purpose: s3rver accepts anonymous writes, and the helper
    // should not depend on the signer under test.
    const res = await request(objectUrl(url, bucket, key), {
      method: "PUT",
      body,
      headers: { "content-type": putOpts.contentType ?? "application/octet-stream" },
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`s3 sim: PUT ${key} -> ${res.statusCode}: ${text}`);
    if (putOpts.lastModified) {
      // s3rver's on-disk layout: <dir>/<bucket>/<key dirs>/<last segment>._S3rver_object
      const parts = key.split("/");
      const last = parts.pop() ?? key;
      const file = join(directory, bucket, ...parts, `${last}._S3rver_object`);
      await utimes(file, putOpts.lastModified, putOpts.lastModified);
    }
  };

  let closed = false;
  return {
    url,
    port: addr.port,
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    directory,
    put,
    async putSnapshot(key, snapOpts = {}) {
      const raw = snapOpts.body ?? readFixtureSnapshot();
      const body = snapOpts.gzip ? gzipSync(raw) : raw;
      await put(key, body, {
        contentType: snapOpts.gzip ? "application/gzip" : "application/octet-stream",
        ...(snapOpts.lastModified ? { lastModified: snapOpts.lastModified } : {}),
      });
      return body;
    },
    async remove(key) {
      const res = await request(objectUrl(url, bucket, key), { method: "DELETE" });
      await res.body.dump();
      if (res.statusCode !== 204) throw new Error(`s3 sim: DELETE ${key} -> ${res.statusCode}`);
    },
    async close() {
      if (closed) return;
      closed = true;
      const closing = server.close();
      // s3rver's close() waits for keep-alive sockets (undici keeps them).
      server.httpServer?.closeAllConnections();
      await closing;
      if (accessKeyId !== S3RVER_DEFAULT_KEY) {
        const left = (keyUsers.get(accessKeyId) ?? 1) - 1;
        if (left <= 0) {
          keyUsers.delete(accessKeyId);
          awsAccount.DUMMY_ACCOUNT.revokeAccessKey(accessKeyId);
        } else {
          keyUsers.set(accessKeyId, left);
        }
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
