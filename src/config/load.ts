import { closest, distance } from "fastest-levenshtein";
import type * as z from "zod";
import { rememberSecret } from "../secret.ts";
import { holdsSecret, knownKeysAt } from "./fields.ts";
import { readConfigFile } from "./read-file.ts";
import { configSchema } from "./schema.ts";
import { resolveConfig, type Finding } from "./resolve.ts";
import type { Config } from "./types.ts";

export type Validation =
  | { ok: true; config: Config; warnings: Finding[] }
  | { ok: false; errors: Finding[]; warnings: Finding[] };

export type LoadResult = Validation & { file: string | undefined };

/** Environment variables that override single settings, and the field each one sets. */
export const ENV_OVERRIDES: Readonly<Record<string, readonly string[]>> = {
  SIDECAR_METRICS_PORT: ["metrics", "port"],
  SIDECAR_METRICS_SECURE: ["metrics", "secure"],
  SIDECAR_METRICS_SCRAPE_THREAD: ["metrics", "scrapeThread"],
  SIDECAR_HEALTH_PORT: ["health", "port"],
  SIDECAR_GRPC_HEALTH_PORT: ["grpcHealth", "port"],
  SIDECAR_LOG_LEVEL: ["logging", "level"],
  SIDECAR_LOG_FORMAT: ["logging", "format"],
};

/**
 * The YAML parser, loaded when a file is read: a start without a config file does not read its modules (a chunk
 * of their own in the bundle). yaml is CommonJS, so its module.exports is the default export: Node's own import
 * also offers the names one by one, a bundled chunk only the default.
 */
const yaml = async () => (await import("yaml")).default;

/**
 * Signs of YAML where js-yaml and yaml may read differently (a %YAML 1.1 directive, a document end marker, a tag, a
 * byte-order mark past the start) or of anchors and aliases. A tag, anchor or alias starts a node, so only a "!",
 * "&" or "*" at the start of a line or after a space or flow indicator is one: "?a=1&b=2" in a URL is not.
 */
const NOT_PLAIN = /^(?:%|\.\.\.)|(?:^|[\s:,[{])[!&*]|\ufeff/m;

/**
 * A quick first reading of a configuration file by js-yaml's core schema: on a file of a thousand checks (140 KB)
 * it takes about a quarter of yaml's time, which is a third of the start before any port opens. It is offered only
 * for plain files: no directive, no tag (js-yaml refuses unknown ones, yaml warns), no anchor or alias (each alias
 * would be one more reference for validation to walk). Undefined when it cannot be offered, when js-yaml finds
 * fault or when the file is not a mapping: the file is then read by yaml, whose errors and warnings say line and
 * column.
 */
export async function quickRead(text: string): Promise<Record<string, unknown> | undefined> {
  if (NOT_PLAIN.test(text)) return undefined;
  const { load, CORE_SCHEMA } = await import("js-yaml");
  let doc: unknown;
  try {
    doc = load(text, { schema: CORE_SCHEMA });
  } catch {
    return undefined;
  }
  // A null key (": x", "~: x") is "null" to js-yaml and "" to yaml; a file with a key of either spelling is yaml's.
  return isRecord(doc) && !hasKey(doc, (k) => k === "null" || k === "") ? doc : undefined;
}

function hasKey(value: unknown, test: (key: string) => boolean): boolean {
  if (Array.isArray(value)) return value.some((v) => hasKey(v, test));
  if (typeof value !== "object" || value === null) return false;
  return Object.entries(value).some(([k, v]) => test(k) || hasKey(v, test));
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out || "(top level)";
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function suggestion(key: string, known: string[]): string {
  if (known.length === 0) return "";
  const best = closest(key, known);
  const limit = Math.max(2, Math.floor(best.length / 3));
  return distance(key.toLowerCase(), best.toLowerCase()) <= limit ? `; did you mean "${best}"?` : "";
}

function deleteAt(root: unknown, path: readonly PropertyKey[], key: string): void {
  let node: unknown = root;
  for (const seg of path) node = (node as Record<PropertyKey, unknown> | undefined)?.[seg];
  if (isRecord(node)) delete node[key];
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "custom") return issue.message;
  const input = (issue as { input?: unknown }).input;
  if (issue.code === "invalid_type") {
    if (input === undefined) return `missing: expected ${issue.expected}`;
    if (holdsSecret(configSchema, issue.path)) return secretTypeMessage(issue.expected, input);
    return `expected ${issue.expected}, got ${describe(input)}`;
  }
  return issue.message;
}

/**
 * A type error about a credential field never quotes the value: a credential written inline (`apiKey: tskey-…`)
 * is the usual cause. It is remembered, so that nothing else prints it either (a reload logs its errors).
 */
function secretTypeMessage(expected: string, input: unknown): string {
  if (typeof input === "string" || typeof input === "number") rememberSecret(String(input));
  const got = Array.isArray(input) ? "a list" : isRecord(input) ? "a mapping" : `a ${typeof input}`;
  const hint = expected === "object" ? "; a credential is not written in the configuration: put it in a file (a mounted Secret) or an environment variable and name that, { file: /path } or { env: NAME }" : "";
  return `expected ${expected}, got ${got}, not shown as it may be a credential${hint}`;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (isRecord(v)) return "a mapping";
  return JSON.stringify(v) ?? String(v);
}

/**
 * jitless: zod would otherwise generate and compile a parser for each object shape on its first use, which pays
 * off over many parses of one shape; a configuration is parsed once per start or reload, and the defaults parse
 * in a third of the time without it (5 ms against 16 cold), which is time before the health server listens.
 */
const PARSE_OPTIONS = { reportInput: true, jitless: true } as const;

/** Validates an already-parsed document (YAML or anything else) and resolves it. */
export function validateConfig(input: unknown, origins: ReadonlyMap<string, string> = new Map()): Validation {
  const warnings: Finding[] = [];
  const doc: unknown = input ?? {};
  const where = (path: string) => (origins.has(path) ? `${path} (from ${origins.get(path)})` : path);
  let parsed = configSchema.safeParse(doc, PARSE_OPTIONS);
  if (!parsed.success) {
    const errors: Finding[] = [];
    for (const issue of parsed.error.issues) {
      if (issue.code === "unrecognized_keys") {
        const known = knownKeysAt(configSchema, issue.path);
        for (const key of issue.keys) {
          warnings.push({ path: formatPath([...issue.path, key]), message: `unknown key, ignored${suggestion(key, known)}` });
          deleteAt(doc, issue.path, key);
        }
      } else {
        const path = formatPath(issue.path);
        errors.push({ path: where(path), message: issueMessage(issue) });
      }
    }
    if (errors.length > 0) return { ok: false, errors, warnings };
    parsed = configSchema.safeParse(doc, PARSE_OPTIONS);
    if (!parsed.success) {
      return { ok: false, errors: parsed.error.issues.map((i) => ({ path: formatPath(i.path), message: issueMessage(i) })), warnings };
    }
  }
  const resolved = resolveConfig(parsed.data);
  warnings.push(...resolved.warnings);
  if (resolved.errors.length > 0) return { ok: false, errors: resolved.errors, warnings };
  return { ok: true, config: resolved.config, warnings };
}

function applyEnv(doc: Record<string, unknown>, env: NodeJS.ProcessEnv, origins: Map<string, string>): void {
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    let node = doc;
    for (const seg of path.slice(0, -1)) {
      if (!isRecord(node[seg])) node[seg] = {};
      node = node[seg] as Record<string, unknown>;
    }
    node[path[path.length - 1] as string] = value;
    origins.set(path.join("."), name);
  }
}

/** Reads, overrides and validates the configuration. Never throws: every problem is a Finding. */
export async function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let doc: unknown = {};
  let yamlWarnings: Finding[] = [];
  if (file !== undefined) {
    const read = await readConfigFile(file);
    if (!read.ok) return { ok: false, errors: [{ path: file, message: read.message }], warnings: [], file };
    const { text } = read;
    // A file the quick reading takes is done, valid or not: yaml would read the same document and validation find
    // the same faults, at several times the cost. Any other file is read by yaml, to say where it is wrong.
    const quick = await quickRead(text);
    if (quick) return { ...validateWithEnv(quick, env), file };
    const { LineCounter, parseDocument } = await yaml();
    const lineCounter = new LineCounter();
    // logLevel "error": YAML warnings (an unknown tag) are reported with the config's other warnings, not printed
    // by the library on its own.
    const parsedDoc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter, logLevel: "error" });
    yamlWarnings = parsedDoc.warnings.map((w) => ({
      path: ((p) => `${file}:${p.line}:${p.col}`)(lineCounter.linePos(w.pos[0])),
      message: `YAML: ${w.message.split("\n")[0] ?? ""}`,
    }));
    if (parsedDoc.errors.length > 0) {
      return {
        ok: false,
        errors: parsedDoc.errors.map((e) => ({
          path: ((p) => `${file}:${p.line}:${p.col}`)(lineCounter.linePos(e.pos[0])),
          message: `not valid YAML: ${e.message.split("\n")[0]}`,
        })),
        warnings: [],
        file,
      };
    }
    try {
      doc = parsedDoc.toJS() ?? {};
    } catch (err) {
      // Aliases are resolved only here: one without its anchor, or too many of them (an expansion bomb).
      return { ok: false, errors: [{ path: file, message: `not valid YAML: ${(err as Error).message.split("\n")[0]?.trim().replace(/:$/, "")}` }], warnings: [], file };
    }
    if (!isRecord(doc)) {
      return { ok: false, errors: [{ path: file, message: `the top level must be a mapping of sections (metrics, health, healthChecks, logging), got ${describe(doc)}` }], warnings: [], file };
    }
  }
  const validation = validateWithEnv(doc as Record<string, unknown>, env);
  return { ...validation, warnings: [...yamlWarnings, ...validation.warnings], file };
}

/** A document read from the file (or none) with the environment's overrides applied, validated. */
function validateWithEnv(doc: Record<string, unknown>, env: NodeJS.ProcessEnv): Validation {
  const origins = new Map<string, string>();
  applyEnv(doc, env, origins);
  return validateConfig(doc, origins);
}
