import { readFile } from "node:fs/promises";
import { parse, YAMLError } from "yaml";
import { UpstreamError } from "../../errors.ts";
import { rememberSecret, Secret } from "../../secret.ts";

/** One context of a talosctl client configuration, decoded. The private key stays wrapped. */
export interface TalosContext {
  name: string;
  endpoints: string[];
  nodes: string[];
  /** PEM of the CA that signed the nodes' apid certificates. */
  ca: Buffer;
  /** PEM client certificate. */
  crt: Buffer;
  /** PEM private key of the client certificate. */
  key: Secret;
}

/** A talosconfig is a few kilobytes; anything far larger is not one. */
const MAX_TALOSCONFIG_BYTES = 1024 * 1024;

/** Every problem with client credentials is a `tls` failure: without them no handshake can succeed. */
function fail(message: string): never {
  throw new UpstreamError(message, "tls");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringList(value: unknown, where: string, file: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    fail(`talosconfig ${file}: ${where} must be a list of strings`);
  }
  return value.map((v) => v.trim()).filter((v) => v !== "");
}

/**
 * Decodes one base64 PEM entry. The value itself never appears in a message, not even a prefix of it: for
 * `key` that would leak the private key.
 */
function pemEntry(ctx: Record<string, unknown>, key: "ca" | "crt" | "key", context: string, file: string): string {
  const raw = ctx[key];
  const where = `contexts.${context}.${key}`;
  if (raw === undefined || raw === null || raw === "") {
    const hint = key === "ca" ? "" : " (talosconfigs that authenticate through Omni are not supported; use one with a client certificate)";
    fail(`talosconfig ${file}: ${where} is missing${hint}`);
  }
  if (typeof raw !== "string") fail(`talosconfig ${file}: ${where} must be a base64 string`);
  // The base64 form is as secret as the PEM: remember it so log scrubbing catches either.
  if (key === "key") rememberSecret(raw);
  const pem = Buffer.from(raw.replace(/\s+/g, ""), "base64").toString("utf8");
  if (!pem.includes("-----BEGIN ")) fail(`talosconfig ${file}: ${where} is not a base64-encoded PEM block`);
  return pem;
}

function position(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/**
 * Parses talosctl's YAML client configuration and picks one context: `contextName`, else the file's current
 * `context`. `file` only names the source in messages.
 */
export function parseTalosconfig(text: string, file: string, contextName?: string): TalosContext {
  let doc: unknown;
  try {
    // prettyErrors off: a pretty error quotes the offending line, which may be the private key. logLevel error:
    // warnings would go to the console, outside the structured log.
    doc = parse(text, { prettyErrors: false, logLevel: "error" });
  } catch (err) {
    // Only the position and the error code: the parser's message may quote the text around the error.
    const where = err instanceof YAMLError ? ` at ${position(text, err.pos[0])} (${err.code})` : "";
    fail(`talosconfig ${file}: not valid YAML${where}`);
  }
  if (!isRecord(doc)) fail(`talosconfig ${file}: expected a mapping with "context" and "contexts"`);
  const contexts = doc.contexts;
  if (!isRecord(contexts) || Object.keys(contexts).length === 0) fail(`talosconfig ${file}: "contexts" is missing or empty`);
  const available = Object.keys(contexts).join(", ");

  let name = contextName;
  if (name === undefined) {
    if (typeof doc.context !== "string" || doc.context === "") {
      fail(`talosconfig ${file}: "context" (the current context) is not set; set sources.talos.context to one of: ${available}`);
    }
    name = doc.context;
  }
  const ctx = contexts[name];
  if (!isRecord(ctx)) {
    const origin = contextName === undefined ? `current context "${name}"` : `context "${name}"`;
    fail(`talosconfig ${file}: ${origin} is not under "contexts"; use one of: ${available}`);
  }

  const endpoints = stringList(ctx.endpoints, `contexts.${name}.endpoints`, file);
  const nodes = stringList(ctx.nodes, `contexts.${name}.nodes`, file);
  const ca = pemEntry(ctx, "ca", name, file);
  const crt = pemEntry(ctx, "crt", name, file);
  const key = pemEntry(ctx, "key", name, file);
  return { name, endpoints, nodes, ca: Buffer.from(ca), crt: Buffer.from(crt), key: new Secret(key) };
}

/**
 * The latest parse of each talosconfig file, by file and context: a file read again with the same bytes is not
 * parsed again (a talosconfig naming hundreds of nodes takes tens of milliseconds of YAML on every poll).
 */
const parsed = new Map<string, { text: Buffer; ctx: TalosContext }>();

/** Reads and parses a talosconfig file; read on every poll so a rotated Secret is picked up. */
export async function loadTalosconfig(file: string, contextName?: string): Promise<TalosContext> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    fail(`talosconfig ${file}: cannot read it (${code}); mount the talosconfig Secret there or fix sources.talos.talosconfig`);
  }
  if (text.length > MAX_TALOSCONFIG_BYTES) fail(`talosconfig ${file}: larger than 1 MiB, not a talosconfig`);
  const cacheKey = `${file}\u0000${contextName ?? ""}`;
  const last = parsed.get(cacheKey);
  if (last?.text.equals(text)) return last.ctx;
  parsed.delete(cacheKey);
  const ctx = parseTalosconfig(text.toString("utf8"), file, contextName);
  parsed.set(cacheKey, { text, ctx });
  return ctx;
}
