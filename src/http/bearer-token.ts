import { readFile } from "node:fs/promises";
import { UpstreamError } from "../errors.ts";
import { Secret } from "../secret.ts";

/**
 * The `Authorization` value for a bearerTokenFile, read on every call: projected service-account tokens are
 * rotated on disk. The token is remembered as a rotating secret, so it is scrubbed from anything printed later.
 */
export async function bearerFromFile(file: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, "utf8")).trim();
  } catch (err) {
    throw new UpstreamError(`cannot read bearerTokenFile ${file}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`, "unauthorized");
  }
  new Secret(token, { rotating: true });
  return `Bearer ${token}`;
}
