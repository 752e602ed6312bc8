// Access to the committed etcd snapshot fixture (see test/fixtures/README.md)
// and a corrupted twin for the "not a bbolt file" path.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const FIXTURE_SNAPSHOT_PATH = fileURLToPath(new URL("../fixtures/etcd-snapshot.db", import.meta.url));

/** bbolt meta-page magic, stored little-endian after the 16-byte page header. */
export const BBOLT_MAGIC = 0xed0cdaed;
export const BBOLT_MAGIC_OFFSET = 16;
/** `etcdctl snapshot save` appends a SHA-256 of the bbolt bytes. */
export const SNAPSHOT_HASH_TRAILER_BYTES = 32;

let cached: Buffer | undefined;

/** A fresh copy each call, so a test that mutates it cannot affect another. */
export function readFixtureSnapshot(): Buffer {
  cached ??= readFileSync(FIXTURE_SNAPSHOT_PATH);
  return Buffer.from(cached);
}

/**
 * Same length as the fixture but with the magic of both meta pages broken:
 * bbolt falls back to the second meta page when the first is bad, so
 * corrupting only page 0 would still describe a readable database.
 */
export function corruptSnapshot(): Buffer {
  const buf = readFixtureSnapshot();
  const pageSize = buf.readUInt32LE(BBOLT_MAGIC_OFFSET + 8);
  buf.writeUInt32LE(0xdeadbeef, BBOLT_MAGIC_OFFSET);
  if (pageSize > 0 && pageSize + BBOLT_MAGIC_OFFSET + 4 <= buf.length) {
    buf.writeUInt32LE(0xdeadbeef, pageSize + BBOLT_MAGIC_OFFSET);
  }
  return buf;
}
