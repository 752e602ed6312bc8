import { constants, createGunzip } from "node:zlib";

/**
 * Whether the first bytes of a backup are an etcd snapshot. `etcdctl snapshot save` (and Talos' etcd
 * snapshot) writes a bbolt database: page 0 is a meta page whose magic 0xED0CDAED sits, little-endian, right
 * after the 16-byte page header. Backups are often gzip'ed; the start of the stream is decompressed to find it.
 */
export interface Verification {
  verified: boolean;
  /** One line for /debug/status and the backup check, e.g. "bbolt magic found (gzip)". */
  reason: string;
}

export const BBOLT_MAGIC = 0xed0cdaed;
export const BBOLT_MAGIC_OFFSET = 16;
const MAGIC_END = BBOLT_MAGIC_OFFSET + 4;

/**
 * How much of a backup is read to verify it. A plain snapshot needs 20 bytes; a gzip'ed one needs enough of the
 * deflate stream to rebuild them, which the first few KiB always hold. The rest is headroom, still far from a
 * download of the whole file.
 */
export const VERIFY_HEAD_BYTES = 64 * 1024;

const GZIP = Buffer.from([0x1f, 0x8b]);

/**
 * Compressions recognised by their magic but not decompressed: node:zlib on Node 20 has no zstd, xz, bzip2
 * or lz4, and a decoder dependency for a prefix check is not worth it. They are reported as such.
 */
const UNSUPPORTED: { name: string; magic: Buffer }[] = [
  { name: "zstd", magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  { name: "xz", magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { name: "bzip2", magic: Buffer.from("BZh", "latin1") },
  { name: "lz4", magic: Buffer.from([0x04, 0x22, 0x4d, 0x18]) },
];

function hex32(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(8, "0")}`;
}

function checkMagic(bytes: Buffer, via: string | undefined): Verification {
  if (bytes.length < MAGIC_END) {
    return { verified: false, reason: `not an etcd snapshot: only ${bytes.length} bytes${via ? ` after ${via} decompression` : ""}` };
  }
  const magic = bytes.readUInt32LE(BBOLT_MAGIC_OFFSET);
  if (magic === BBOLT_MAGIC) return { verified: true, reason: `bbolt magic found${via ? ` (${via})` : ""}` };
  return { verified: false, reason: `not an etcd snapshot: magic ${hex32(magic)}${via ? ` after ${via} decompression` : ""}` };
}

/**
 * Decompresses the start of a gzip stream, stopping as soon as `want` bytes are out. The input may be cut
 * anywhere (it is a prefix of the file), and output is bounded by one zlib chunk beyond `want`, so a
 * highly compressible file cannot blow up memory.
 */
export function gunzipHead(input: Buffer, want: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // SYNC_FLUSH at the end: a truncated stream yields what it has instead of "unexpected end of file".
    const gunzip = createGunzip({ finishFlush: constants.Z_SYNC_FLUSH });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      gunzip.destroy();
      resolve(Buffer.concat(chunks, size));
    };
    gunzip.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= want) finish();
    });
    gunzip.on("end", finish);
    gunzip.on("error", (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
    gunzip.end(input);
  });
}

/** Judges the first bytes of a backup; `sizeBytes` is the backup's full size as listed. */
export async function verifySnapshotHead(head: Buffer, sizeBytes: number): Promise<Verification> {
  if (sizeBytes === 0 || head.length === 0) return { verified: false, reason: "empty file" };
  if (head.subarray(0, GZIP.length).equals(GZIP)) {
    let inflated: Buffer;
    try {
      inflated = await gunzipHead(head, MAGIC_END);
    } catch (err) {
      return { verified: false, reason: `gzip data is corrupt: ${(err as Error).message}` };
    }
    return checkMagic(inflated, "gzip");
  }
  for (const { name, magic } of UNSUPPORTED) {
    if (head.subarray(0, magic.length).equals(magic)) {
      return { verified: false, reason: `${name}-compressed; cannot verify: only plain and gzip'ed snapshots are read` };
    }
  }
  return checkMagic(head, undefined);
}
