import { describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.ts";
import { runCli, writeConfig } from "../cli-process.ts";

function withPatterns(bodyMatch: string, match: string): Record<string, unknown> {
  return {
    healthChecks: { dependencies: [{ name: "web", type: "http", url: "http://127.0.0.1:1/health", bodyMatch }] },
    sources: { backups: { targets: [{ name: "local", type: "filesystem", path: "/var/backups" }], match } },
  };
}

function errorLines(doc: Record<string, unknown>): string[] {
  const r = validateConfig(doc);
  return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`).sort();
}

describe("configured patterns", () => {
  it("refuses a backreference or a lookahead in bodyMatch and in the backups match, naming the field and what to do", () => {
    expect(errorLines(withPatterns("(a)\\1", "(?=x)"))).toEqual([
      'healthChecks.dependencies[0].bodyMatch: "(a)\\\\1" is not a pattern this exporter can run: invalid escape sequence at "\\\\1"; backreferences are not supported in RE2 syntax: match the repeated text itself',
      'sources.backups.match: "(?=x)" is not a pattern this exporter can run: invalid or unsupported Perl syntax at "(?="; lookahead and lookbehind are not supported in RE2 syntax: match the surrounding text itself',
    ]);
    expect(errorLines(withPatterns("(?=x)", "(a)\\1"))).toEqual([
      expect.stringMatching(/^healthChecks\.dependencies\[0\]\.bodyMatch: .*lookahead and lookbehind are not supported/),
      expect.stringMatching(/^sources\.backups\.match: .*backreferences are not supported/),
    ]);
  });

  it("says what to write instead of lookbehind, possessive and atomic forms, \\u escapes and a pattern too large to compile", () => {
    const problem = (p: string) => errorLines(withPatterns(p, "x")).join("\n");
    expect(problem("(?<!debug)ok")).toMatch(/bodyMatch: .*lookahead and lookbehind are not supported/);
    expect(problem("a++")).toMatch(/bodyMatch: .*possessive and atomic forms are not supported/);
    expect(problem("a{2}+")).toMatch(/bodyMatch: .*possessive and atomic forms are not supported/);
    expect(problem("(?>a)")).toMatch(/bodyMatch: .*possessive and atomic forms are not supported/);
    expect(problem("\\u0041")).toMatch(/bodyMatch: .*write a code point as \\x\{0041\}/);
    expect(problem("[a-z")).toMatch(/bodyMatch: "\[a-z" is not a pattern this exporter can run: missing closing \] .*RE2 syntax/);
    expect(problem("[xy]{1000}".repeat(6))).toMatch(/bodyMatch: .*compiles to \d+ instructions, more than the 5000 allowed; use smaller repeat counts/);
  });

  it("accepts RE2 syntax, including what JavaScript's own engine would refuse", () => {
    for (const p of ['"status":\\s*"ok"', "(?i)^healthy$", "(?P<version>\\d+\\.\\d+)", "\\.db(\\.gz)?$", "\\x{41}\\pL+", "[[:digit:]]{3}"]) {
      expect(errorLines(withPatterns(p, p)), p).toEqual([]);
    }
  });

  it("exits 2 on a pattern the engine cannot run, naming the field, before any port opens", async () => {
    const run = runCli(["--config", writeConfig({ ...withPatterns("(a)\\1", "(?=x)"), health: { port: 0 }, metrics: { port: 0 }, grpcHealth: { port: 0 } })]);
    // A process that accepted the patterns would run on: it is ended at the deadline rather than left behind.
    const deadline = setTimeout(() => run.child.kill("SIGKILL"), 15_000);
    const code = await run.exited;
    clearTimeout(deadline);
    expect(code).toBe(2);
    expect(run.stderr()).toContain("✗ healthChecks.dependencies[0].bodyMatch: ");
    expect(run.stderr()).toContain("✗ sources.backups.match: ");
    expect(run.stdout()).not.toMatch(/listening/);
  });
});
