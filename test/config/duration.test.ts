import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../src/config/duration.ts";

describe("parseDuration", () => {
  it.each([
    ["15s", 15_000],
    ["1m30s", 90_000],
    ["500ms", 500],
    ["1.5h", 5_400_000],
    ["7d", 604_800_000],
    ["2w", 1_209_600_000],
    ["0", 0],
    ["1h2m3s4ms", 3_723_004],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["5", "", "s", "5 s", "1m30", "-5s", "5sec", "1y", "1m x"])("%j is not a duration", (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it("formats back to the shortest form", () => {
    expect(formatDuration(90_000)).toBe("1m30s");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(86_400_000 + 1_000)).toBe("1d1s");
    expect(formatDuration(0)).toBe("0s");
  });
});
