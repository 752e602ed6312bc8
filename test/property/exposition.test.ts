import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseExposition, renderFamilies, sampleNames, type ExpositionSample, type Family, type FamilyType } from "../../src/metrics/text-format.ts";
import { canonicalFloat, readFloat } from "../../src/metrics/spelling.ts";
import { outcome } from "./outcome.ts";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES: FamilyType[] = ["counter", "gauge", "histogram", "summary", "untyped"];

const nameChars = fc.constantFrom(..."abcxyz_:019".split(""));
const metricName = fc.tuple(fc.constantFrom("a", "b", "x", "_", ":"), fc.string({ unit: nameChars, maxLength: 8 })).map(([h, t]) => h + t);
const labelName = fc.tuple(fc.constantFrom("a", "le", "quantile", "_", "job"), fc.string({ unit: fc.constantFrom(..."ab_19".split("")), maxLength: 4 })).map(([h, t]) => h + t);
/** Label values and help texts: anything, including quotes, backslashes, newlines and non-ASCII. */
const anyText = fc.string({ unit: fc.oneof(fc.constantFrom('"', "\\", "\n", "\r", "\t", " ", "}", ",", "=", "{", "#", "\u2028", "é", "\u{1F600}"), fc.string({ minLength: 1, maxLength: 1 })), maxLength: 12 });
const sampleValue = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => String(d)),
  fc.constantFrom("+Inf", "-Inf", "NaN", "1e3", ".5", "1.", "-0", "+7"),
);
const timestamp = fc.option(fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }).map(String), { nil: undefined });

/**
 * Well-formed families. Family names end in a distinct "_f<index>", so no family's sample names can be taken
 * for another family's.
 */
const families: fc.Arbitrary<Family[]> = fc
  .array(
    fc.record({
      name: metricName,
      type: fc.constantFrom(...TYPES),
      // Whitespace around HELP text is not significant in the format; the rest must survive.
      help: fc.option(anyText.map((h) => h.replace(/^\s+|\s+$/g, "")), { nil: undefined }),
      samples: fc.array(
        fc.record({
          suffix: fc.nat(),
          labels: fc.uniqueArray(fc.tuple(labelName, anyText), { selector: ([n]) => n, maxLength: 3 }),
          value: sampleValue,
          timestamp,
          le: fc.oneof(fc.double({ noNaN: true }), fc.constantFrom(0.005, 1, 10, 1e6, 1e-5)),
          quantile: fc.double({ min: 0, max: 1, noNaN: true }),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    }),
    { maxLength: 5 },
  )
  .map((list) =>
    list.map((f, i): Family => {
      const name = `${f.name}_f${i}`;
      const names = sampleNames(name, f.type);
      const samples = f.samples.map((s): ExpositionSample => {
        const sampleName = names[s.suffix % names.length] as string;
        // A bucket carries its bound and a summary's quantile sample its quantile, spelled canonically.
        const bound = f.type === "histogram" && sampleName === `${name}_bucket` ? "le" : f.type === "summary" && sampleName === name ? "quantile" : undefined;
        const labels: [string, string][] =
          bound === undefined ? s.labels : [...s.labels.filter(([n]) => n !== bound), [bound, canonicalFloat(bound === "le" ? s.le : s.quantile)]];
        return { name: sampleName, labels, value: s.value, ...(s.timestamp !== undefined && { timestamp: s.timestamp }) };
      });
      return { name, type: f.type, ...(f.help !== undefined && { help: f.help }), samples };
    }),
  );

/** Few names, some of them another's sample name, so that families and their samples collide often. */
const collidingName = fc.constantFrom("x", "x_total", "x_count", "x_sum", "x_bucket", "x_created", "y", "x_total_total");

/** Lines that look like the format, each a little off or not. */
const lineish = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.tuple(fc.constantFrom("# HELP ", "# TYPE ", "#  TYPE\t", "# ", "#"), fc.oneof(metricName, collidingName), fc.constantFrom(" counter", " gauge", " histogram", " bogus", "", " "), anyText).map((p) => p.join("")),
  fc.tuple(fc.oneof(metricName, collidingName), fc.constantFrom("", "{", "{}", "{a=\"1\"}", "{a=1}", "{a=\"x\",a=\"y\"}", "{a=\"\\", "{,}", "{a=\"b\" c}"), fc.constantFrom(" ", "\t", ""), sampleValue, fc.constantFrom("", " 123", " -1", " x", " 1 2")).map((p) => p.join("")),
);
const exposition = fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.array(lineish, { maxLength: 15 }).map((l) => l.join("\n")));

describe("operator metrics exposition: any input parses to families and line errors, never a throw", () => {
  it("parses arbitrary text; every family is well-formed and every error names its line", () => {
    fc.assert(
      fc.property(exposition, (text) => {
        const result = outcome(() => parseExposition(text));
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        for (const f of result.value.families) {
          expect(f.name).toMatch(NAME);
          expect(TYPES).toContain(f.type);
          expect(f.samples.length).toBeGreaterThan(0);
          // Every sample is one its family's type may have: otherwise OpenMetrics output would be invalid.
          for (const s of f.samples) expect(sampleNames(f.name, f.type)).toContain(s.name);
        }
        for (const e of result.value.errors) expect(e).toMatch(/^line \d+: \S/);
      }),
      { numRuns: 1_000, examples: [["# TYPE x counter\n# TYPE x gauge\nx_total 1\n"], ["# TYPE x histogram\nx 0"]] },
    );
  });

  it("what it parsed renders in both formats and reads back the same", () => {
    fc.assert(
      fc.property(exposition, (text) => {
        const first = parseExposition(text).families;
        const text2 = renderFamilies(first, {}, "text");
        expect(() => renderFamilies(first, { cluster: "c" }, "openmetrics")).not.toThrow();
        const second = parseExposition(text2);
        expect(second.errors).toEqual([]);
        expect(second.families).toEqual(first);
      }),
      { numRuns: 1_000 },
    );
  });

  it("well-formed families survive render → parse unchanged", () => {
    fc.assert(
      fc.property(families, (fams) => {
        const parsed = parseExposition(renderFamilies(fams, {}, "text"));
        expect(parsed.errors).toEqual([]);
        expect(parsed.families).toEqual(fams);
      }),
      { numRuns: 1_000 },
    );
  });

  it("added labels reach every sample that lacks them, escaped", () => {
    fc.assert(
      fc.property(families, anyText, (fams, value) => {
        const parsed = parseExposition(renderFamilies(fams, { zone: value }, "text"));
        expect(parsed.errors).toEqual([]);
        for (const f of parsed.families) for (const s of f.samples) expect(s.labels).toContainEqual(["zone", s.labels.find(([n]: [string, string]) => n === "zone")?.[1] ?? value]);
      }),
      { numRuns: 300 },
    );
  });

  it("writes HELP as each format escapes it and bucket bounds and quantiles in canonical form", () => {
    // The text format's HELP escapes backslash and line feed only; OpenMetrics' is an escaped-string, which also
    // escapes the double quote (a bare one is no escaped-char).
    const textHelp = /^# HELP \S+ (?:[^\\\n]|\\[\\n])*$/;
    const openMetricsHelp = /^# HELP \S+ (?:[^\\"\n]|\\[\\n"])*$/;
    fc.assert(
      fc.property(fc.oneof(families.map((f) => renderFamilies(f, {}, "text")), exposition), (text) => {
        const parsed = parseExposition(text).families;
        for (const [format, help] of [["text", textHelp], ["openmetrics", openMetricsHelp]] as const) {
          const lines = renderFamilies(parsed, {}, format).split("\n");
          for (const line of lines.filter((l) => l.startsWith("# HELP "))) expect(line).toMatch(help);
        }
        const reread = parseExposition(renderFamilies(parsed, {}, "text")).families;
        for (const f of reread) {
          for (const s of f.samples) {
            const name = f.type === "histogram" && s.name === `${f.name}_bucket` ? "le" : f.type === "summary" && s.name === f.name ? "quantile" : undefined;
            const bound = s.labels.find(([n]) => n === name);
            if (bound) expect(bound[1]).toBe(canonicalFloat(readFloat(bound[1]) as number));
          }
        }
      }),
      { numRuns: 1_000 },
    );
  });

  it("a line with very many labels parses in linear time", () => {
    // 50,000 labels is a 600 KB line, well inside the default 10 MiB body cap.
    const labels = Array.from({ length: 50_000 }, (_, i) => `l${i}="v"`).join(",");
    const started = performance.now();
    const result = parseExposition(`m{${labels}} 1\nm{${labels},l7="again"} 2\n`);
    expect(result.families[0]?.samples[0]?.labels).toHaveLength(50_000);
    expect(result.errors).toEqual(["line 2: label l7 repeated"]);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
