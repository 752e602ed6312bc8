import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { UpstreamError } from "../../errors.ts";
import { Secret } from "../../secret.ts";
import type { TalosSourceConfig } from "../config.ts";
import { loadTalosconfig, type TalosContext } from "./talosconfig.ts";

export const TALOS_API_PORT = 50000;

/** What one poll connects to, as whom, and which nodes it asks about. */
export interface TalosTarget {
  /** The talosconfig context, when one was used. */
  context?: string;
  /** host:port, in the order they are tried. */
  endpoints: string[];
  /** Node names sent in the `nodes` metadata, as the user wrote them. */
  nodes: string[];
  ca: Buffer;
  cert: Buffer;
  key: Secret;
  /** Changes whenever endpoints or credentials change, so a channel is rebuilt only then. Not printable material. */
  fingerprint: string;
}

/** "host" → "host:50000"; "host:port" and "[v6]:port" stay; a bare IPv6 literal gets brackets. */
export function normalizeEndpoint(endpoint: string): string {
  const e = endpoint.trim().replace(/^(https?|tcp):\/\//, "").replace(/\/+$/, "");
  if (e.startsWith("[")) return /\]:\d+$/.test(e) ? e : `${e}:${TALOS_API_PORT}`;
  const colons = e.split(":").length - 1;
  if (colons === 0) return `${e}:${TALOS_API_PORT}`;
  if (colons > 1) return `[${e}]:${TALOS_API_PORT}`;
  return e;
}

/** The host part of an endpoint, which is how apid knows the node behind it. */
export function endpointHost(endpoint: string): string {
  const e = normalizeEndpoint(endpoint);
  const host = e.slice(0, e.lastIndexOf(":"));
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

async function readPem(path: string, field: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new UpstreamError(`sources.talos.${field} ${path}: cannot read it (${code}); mount it there or fix the path`, "tls");
  }
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

/**
 * Combines the config with the talosconfig (re-read every time, so rotated credentials are picked up).
 * Explicit endpoints, nodes and PEM files override what the talosconfig context says.
 */
export async function resolveTarget(config: TalosSourceConfig): Promise<TalosTarget> {
  let ctx: TalosContext | undefined;
  if (config.talosconfig !== undefined) ctx = await loadTalosconfig(config.talosconfig, config.context);

  const endpoints = dedupe((config.endpoints?.length ? config.endpoints : (ctx?.endpoints ?? [])).map(normalizeEndpoint));
  if (endpoints.length === 0) {
    const where = ctx ? `talosconfig ${config.talosconfig} context "${ctx.name}" has no endpoints` : "no endpoints are configured";
    throw new UpstreamError(`${where}; set sources.talos.endpoints`, "other");
  }
  const nodes = dedupe(config.nodes?.length ? config.nodes : ctx?.nodes.length ? ctx.nodes : endpoints.map(endpointHost));

  const [ca, cert, keyPem] = await Promise.all([
    config.caFile !== undefined ? readPem(config.caFile, "caFile") : ctx?.ca,
    config.certFile !== undefined ? readPem(config.certFile, "certFile") : ctx?.crt,
    config.keyFile !== undefined ? readPem(config.keyFile, "keyFile").then((b) => new Secret(b.toString("utf8"))) : ctx?.key,
  ]);
  if (!ca || !cert || !keyPem) {
    throw new UpstreamError("sources.talos needs a talosconfig, or caFile, certFile and keyFile", "tls");
  }

  const hash = createHash("sha256");
  for (const part of [endpoints.join(","), ca, cert, keyPem.reveal()]) hash.update(part).update("\u0000");
  return {
    ...(ctx && { context: ctx.name }),
    endpoints,
    nodes,
    ca,
    cert,
    key: keyPem,
    fingerprint: hash.digest("hex"),
  };
}
