import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { loadConfig, quickRead, validateConfig, type Validation } from "../../src/config/load.ts";
import { outcome } from "./outcome.ts";

const ROOT = join(import.meta.dirname, "../..");
const SEEDS = ["test/fixtures/seed-config.yaml", "examples/demo.yaml", "k8s/base/config.yaml"].map(
  (file) => parse(readFileSync(join(ROOT, file), "utf8")) as Record<string, unknown>,
);

const dir = mkdtempSync(join(tmpdir(), "sidecar-property-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every outcome is either a config or findings that each name a field and say what is wrong. */
function expectWellFormed(result: Validation): void {
  expect(typeof result.ok).toBe("boolean");
  expect(Array.isArray(result.warnings)).toBe(true);
  for (const w of result.warnings) {
    expect(typeof w.path).toBe("string");
    expect(w.message.length).toBeGreaterThan(0);
  }
  if (result.ok) {
    expect(typeof result.config.metrics.port).toBe("number");
    expect(Array.isArray(result.config.checks)).toBe(true);
    return;
  }
  expect(result.errors.length).toBeGreaterThan(0);
  for (const e of result.errors) {
    expect(typeof e.path).toBe("string");
    expect(e.path.length).toBeGreaterThan(0);
    expect(typeof e.message).toBe("string");
    expect(e.message.length).toBeGreaterThan(0);
  }
}

/** Keys of the configuration at any depth, plus names that are traps for naive object handling. */
const KEYS = [
  "metrics", "health", "grpcHealth", "server", "sources", "limits", "leaderElection", "healthChecks", "debug", "logging",
  "enabled", "port", "path", "secure", "tls", "auth", "collection", "custom", "labels", "interval", "timeout", "name",
  "type", "critical", "endpoint", "url", "method", "expectedStatus", "bodyMatch", "headers", "address", "service",
  "source", "target", "maxAge", "minBytes", "dependencies", "level", "format", "components", "fields", "sampling",
  "levels", "talos", "kubernetes", "tailscale", "backups", "operatorMetrics", "targets", "apiKey", "env", "file",
  "seriesPerSource", "maxConnections", "__proto__", "constructor", "toString", "",
];

/** Values that sit on the edges of what the schema accepts. */
const EDGE_VALUES = fc.constantFrom<unknown>(
  "15s", "0", "0s", "-1s", "1e400", "1m30s", "7d", "5", "", " ", "2xx", "200-299", "[", "(?<", "localhost:5005", ":0",
  "http://x", "https://", "/health/x", "/healthz", "debug", "loud", 0, -1, 1, 65_536, 1e21, Number.MAX_SAFE_INTEGER, 0.5,
  true, false, null, [], {}, { file: "/nonexistent" }, { env: "" },
);

const leaf = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), EDGE_VALUES);
const value: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string()), tie("value"), { maxKeys: 5 }),
  ),
})).value;

interface Mutation {
  steps: number[];
  op: "replace" | "delete" | "add";
  key: string;
  value: unknown;
}

/** A change somewhere in a document: the path is walked by child index, modulo the children there are. */
const mutation: fc.Arbitrary<Mutation> = fc.record({
  steps: fc.array(fc.nat(), { maxLength: 5 }),
  op: fc.constantFrom("replace" as const, "delete" as const, "add" as const),
  key: fc.constantFrom(...KEYS),
  value,
});

function mutate(doc: unknown, m: Mutation): unknown {
  const root = { doc };
  let parent: Record<string, unknown> | unknown[] = root;
  let key: string | number = "doc";
  for (const step of m.steps) {
    const node: unknown = (parent as Record<string | number, unknown>)[key];
    if (typeof node !== "object" || node === null) break;
    const keys: (string | number)[] = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) break;
    parent = node as Record<string, unknown> | unknown[];
    key = keys[step % keys.length] as string | number;
  }
  const target = parent as Record<string | number, unknown>;
  if (m.op === "replace") target[key] = m.value;
  else if (m.op === "delete") {
    if (Array.isArray(target)) target.splice(key as number, 1);
    else delete target[key];
  } else {
    const node = target[key];
    if (Array.isArray(node)) node.push(m.value);
    else if (typeof node === "object" && node !== null) (node as Record<string, unknown>)[m.key] = m.value;
    else target[key] = { [m.key]: m.value };
  }
  return root.doc;
}

/** A seed configuration as YAML text after random changes, cut short or spliced with arbitrary text. */
const seedText = fc
  .tuple(fc.nat(SEEDS.length - 1), fc.array(mutation, { maxLength: 4 }), fc.nat(), fc.string({ maxLength: 40 }), fc.boolean())
  .map(([seed, mutations, cut, splice, truncate]) => {
    let doc: unknown = structuredClone(SEEDS[seed]);
    for (const m of mutations) doc = mutate(doc, m);
    const yaml = (stringify(doc) as string | undefined) ?? "";
    const at = cut % (yaml.length + 1);
    return truncate ? yaml.slice(0, at) : yaml.slice(0, at) + splice + yaml.slice(at);
  });

/** Scalars and punctuation where YAML readers are known to part ways. */
const yamlToken = fc.constantFrom(
  "~", "null", "Null", "NULL", "true", "True", "TRUE", "yes", "on", "0x1F", "0o17", "017", "0b11", "1_000", "+12", "-0",
  ".5", "1.", "1e3", "1E+3", ".inf", "-.Inf", ".nan", "2001-12-14", "12:30:45", "'a''b'", '"a\\tb"', '"\\u00e9"', "|",
  ">-", "- ", "? ", ": ", "{", "}", "[", "]", ",", "#", "\t", "\n", "\n  ", "\r\n", "\ufeff", "---", "...", "<<", "__proto__",
  "a", "b", " ", ":", "-", "&", "*", "!", "a&b", "x!y", "p*q", "?a=1&b=2", "&x ", "*x", "!!str ", "!t ",
);
const yamlText = fc.oneof(
  seedText,
  value.map((doc) => (stringify(doc) as string | undefined) ?? ""),
  value.map((doc) => (stringify(doc, { collectionStyle: "flow" }) as string | undefined) ?? ""),
  fc.array(yamlToken, { maxLength: 30 }).map((tokens) => tokens.join("")),
);

function validate(doc: unknown): Validation {
  // validateConfig drops unknown keys from what it is given; the generated value stays intact for reporting.
  return validateConfig(structuredClone(doc));
}

describe("config loader: any document yields a config or field-path errors, never a throw", () => {
  it("validateConfig over arbitrary JSON-like documents", () => {
    fc.assert(
      fc.property(value, (doc) => {
        expectWellFormed(validate(doc));
      }),
      { numRuns: 400 },
    );
  });

  it("validateConfig over the seed configurations with random changes", () => {
    const outcomes = { ok: 0, failed: 0 };
    fc.assert(
      fc.property(fc.nat(SEEDS.length - 1), fc.array(mutation, { minLength: 1, maxLength: 6 }), (seed, mutations) => {
        let doc: unknown = structuredClone(SEEDS[seed]);
        for (const m of mutations) doc = mutate(doc, m);
        const result = validate(doc);
        expectWellFormed(result);
        outcomes[result.ok ? "ok" : "failed"]++;
      }),
      { numRuns: 300 },
    );
    // Small changes keep some documents valid and break others: both paths were exercised.
    expect(outcomes.ok).toBeGreaterThan(10);
    expect(outcomes.failed).toBeGreaterThan(10);
  });

  it("the seeds themselves are valid", () => {
    for (const seed of SEEDS) {
      const r = validate(seed);
      expect(r.ok ? [] : r.errors).toEqual([]);
    }
  });

  it("loadConfig reports YAML aliases it cannot resolve instead of throwing", async () => {
    const file = join(dir, "alias.yaml");
    const laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]", ...Array.from({ length: 8 }, (_, i) => `${"bcdefghi"[i]}: &${"bcdefghi"[i]} [${Array(10).fill(`*${"abcdefgh"[i]}`).join(", ")}]`)];
    for (const text of ["*\0", "metrics: *missing", laughs.join("\n")]) {
      writeFileSync(file, text);
      const r = await loadConfig(file, {});
      expectWellFormed(r);
      expect(r.ok ? [] : r.errors.map((e) => e.message)).toEqual([expect.stringMatching(/^not valid YAML: /)]);
    }
  });

  it("loadConfig over arbitrary file bytes", async () => {
    const file = join(dir, "bytes.yaml");
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (bytes) => {
        writeFileSync(file, bytes);
        const r = await loadConfig(file, {});
        expectWellFormed(r);
        expect(r.file).toBe(file);
      }),
      { numRuns: 300 },
    );
  });

  it("loadConfig over YAML text: mutated seeds, cut short or spliced with arbitrary text", async () => {
    const file = join(dir, "text.yaml");
    await fc.assert(
      fc.asyncProperty(seedText, async (yaml) => {
        writeFileSync(file, yaml);
        expectWellFormed(await loadConfig(file, {}));
      }),
      { numRuns: 150 },
    );
  });

  it("a quick reading, whenever one is offered, is what yaml reads", async () => {
    let offered = 0;
    await fc.assert(
      fc.asyncProperty(yamlText, async (text) => {
        const quick = await quickRead(text);
        if (quick === undefined) return;
        offered++;
        const slow = outcome(() => parse(text, { uniqueKeys: true, logLevel: "error" }) as unknown);
        expect(slow).toEqual({ ok: true, value: quick });
      }),
      { numRuns: 2_000 },
    );
    expect(offered).toBeGreaterThan(200);
  });

  it("loadConfig with arbitrary environment overrides", async () => {
    const names = ["SIDECAR_METRICS_PORT", "SIDECAR_METRICS_SECURE", "SIDECAR_HEALTH_PORT", "SIDECAR_GRPC_HEALTH_PORT", "SIDECAR_LOG_LEVEL", "SIDECAR_LOG_FORMAT"];
    const file = join(dir, "seed.yaml");
    writeFileSync(file, stringify(SEEDS[0]));
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom(...names), fc.string({ maxLength: 12 })), async (env) => {
        expectWellFormed(await loadConfig(file, env));
      }),
      { numRuns: 200 },
    );
  });
});
