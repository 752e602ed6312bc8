import { readFile } from "node:fs/promises";
import type { TlsConfig } from "../config/schema.ts";
import { UpstreamError } from "../errors.ts";

export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

async function readOne(path: string | undefined, field: string): Promise<Buffer | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UpstreamError(`cannot read tls.${field} ${path}: ${code}`, "tls");
  }
}

/** Reads the CA, certificate and key a check's `tls` block names. Files are read when needed so mounts may arrive late. */
export async function readTlsMaterial(tls: TlsConfig | undefined): Promise<TlsMaterial> {
  if (!tls) return {};
  const [ca, cert, key] = await Promise.all([
    readOne(tls.caFile, "caFile"),
    readOne(tls.certFile, "certFile"),
    readOne(tls.keyFile, "keyFile"),
  ]);
  return { ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }) };
}
