import { describe, expect, it } from "vitest";
import { INLINE_STEPS, matchCost, matchEach, matches } from "../../src/patterns/match.ts";
import { compilePattern } from "../../src/patterns/pattern.ts";
import { TimeoutError } from "../../src/timeout.ts";

describe("matching a configured pattern", () => {
  it("matches many short inputs on the event loop in slices, handing it back between them", async () => {
    const pattern = compilePattern("\\.db(\\.gz)?$");
    const keys = Array.from({ length: 20_000 }, (_, i) => `etcd/cluster-${i}.${["db", "db.gz", "txt"][i % 3]}`);
    expect(keys.reduce((sum, k) => sum + matchCost(pattern, k), 0)).toBeGreaterThan(2 * INLINE_STEPS);
    let turned = false;
    setImmediate(() => (turned = true));
    const matched = await matchEach(pattern, keys, AbortSignal.timeout(30_000));
    // Without a turn of the event loop the immediate above would still be waiting.
    expect(turned).toBe(true);
    expect(matched).toEqual(keys.map((k) => !k.endsWith(".txt")));
  });

  it("matches an input too costly for one slice on a worker thread", async () => {
    const pattern = compilePattern("a+ok$");
    const body = `${"a".repeat(1_000_000)}ok`;
    expect(matchCost(pattern, body)).toBeGreaterThan(INLINE_STEPS);
    expect(await matches(pattern, body, AbortSignal.timeout(30_000))).toBe(true);
    expect(await matches(pattern, `${body}!`, AbortSignal.timeout(30_000))).toBe(false);
  });

  it("ends the worker at the signal, rejecting with its reason, while the event loop stays free", async () => {
    // A thousand positions tracked over every character of a megabyte: many seconds of matching.
    const pattern = compilePattern("x[xy]{1000}[^xy]");
    let seed = 7;
    const body = Array.from({ length: 1 << 20 }, () => ((seed = (seed * 1_103_515_245 + 12_345) & 0x7fff_ffff) & 0x4000 ? "x" : "y")).join("");
    const controller = new AbortController();
    const reason = new TimeoutError(500);
    // The timer can fire only if the match is not holding the event loop.
    setTimeout(() => controller.abort(reason), 500);
    await expect(matches(pattern, body, controller.signal)).rejects.toBe(reason);
  });

  it("rejects at once on a signal that has already fired", async () => {
    const reason = new TimeoutError(1);
    await expect(matches(compilePattern("a+ok$"), "a".repeat(1_000_000), AbortSignal.abort(reason))).rejects.toBe(reason);
  });
});
