import { readFile } from "node:fs/promises";
import * as z from "zod";
import { UpstreamError } from "../errors.ts";
import { Secret } from "../secret.ts";
import { markField } from "./fields.ts";
import { show } from "./primitives.ts";

/**
 * Where a credential comes from: a file (a mounted Secret) or an environment variable. Credentials are never
 * written into the config file itself, so a ConfigMap can be shared and printed freely.
 */
export const secretRef = () =>
  markField(
    z
      .strictObject({ file: z.string().min(1).optional(), env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional() })
      .refine((r) => (r.file === undefined) !== (r.env === undefined), {
        error: (iss) => `${show(iss.input)} must name exactly one of file or env, e.g. { file: /var/run/secrets/x/key } or { env: API_KEY }`,
      }),
    "secret",
  );

export type SecretRef = z.output<ReturnType<typeof secretRef>>;

export function describeRef(ref: SecretRef): string {
  return ref.file !== undefined ? `file ${ref.file}` : `environment variable ${ref.env}`;
}

/**
 * Reads the credential now. Files are re-read on every call so rotated Secrets are picked up; the value is
 * wrapped so it cannot be printed by accident.
 */
export async function readSecret(ref: SecretRef, field: string, env: NodeJS.ProcessEnv = process.env): Promise<Secret> {
  if (ref.env !== undefined) {
    const value = env[ref.env];
    if (value === undefined || value.trim() === "") {
      throw new UpstreamError(`${field}: environment variable ${ref.env} is not set; set it or use { file: ... }`, "unauthorized");
    }
    return new Secret(value.trim());
  }
  try {
    return new Secret((await readFile(ref.file as string, "utf8")).trim());
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UpstreamError(`${field}: cannot read ${ref.file}: ${code}; mount the Secret there or fix the path`, "unauthorized");
  }
}
